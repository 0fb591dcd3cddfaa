"""Two-time kernels of shared-weight recurrent networks and of their deep counterparts, derived by the engine.

Networks (:class:`fieldnet.spec.RecurrentNetwork`; Segadlo et al. arXiv:2112.05589, Yang arXiv:1910.12478).
Time t = 0 .. T, index 0 the first preactivation (THEORY.md section 7 counts from 1: its h_t is our h^{t-1}):

    recurrent:  h^0 = U x^(0) + b,   h^t = W phi(h^{t-1}) + b + U x^(t)       W_ij ~ N(0, C_W/n), b_i ~ N(0, C_b),
    deep:       h^t = W^t phi(h^{t-1}) + b^t + U^t x^(t)  (independent per step)   U_ik ~ N(0, C_U/n_0)

The two-time kernel of inputs a, b is C^{(s,t)}_{ab} = lim_n E[(1/n) sum_i h^s_{i;a} h^t_{i;b}]. Its recursion is
composed from the layer maps, the elementwise :class:`~fieldnet.symbolic.layers.Nonlinearity` (Gaussian
averages over the 2 x 2 block of C on the two time-input variables) and :class:`SharedDense`:

    C^{(0,0)}_{ab}     = C_b + C_U x^(0)_a.x^(0)_b / n_0
    C^{(0,t)}_{ab}     = C_b + C_U x^(0)_a.x^(t)_b / n_0               (recurrent; t >= 1)       0 (deep)
    C^{(s+1,t+1)}_{ab} = C_b + C_W <phi(z_a) phi(z_b)>_{C^{(s,t)}} + C_U x^(s+1)_a.x^(t+1)_b / n_0   (recurrent)
    C^{(t+1,t+1)}_{ab} = the same with s = t;  C^{(s,t)} = 0 for s != t                               (deep)

where <.>_{C^{(s,t)}} averages over (z_a, z_b) ~ N(0, [[C^{(s,s)}_{aa}, C^{(s,t)}_{ab}], [C^{(s,t)}_{ab}, C^{(t,t)}_{bb}]])
and the input terms are present only with input at every step. Equal-time entries obey the same closed recursion in
both architectures (THEORY.md 7.4); cross-time entries exist only in the recurrent net.

:func:`response_entries` differentiates the update with ``sympy.diff`` (Price's theorem on the Gaussian-average
nodes): the response J of the one-loop formula (THEORY.md 7.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from fieldnet.symbolic.activations import get_activation
from fieldnet.symbolic.layers import PHI, X, Nonlinearity, compose

S_TIME, T_TIME = sp.symbols("s t", integer=True, nonnegative=True)
INPUT_A, INPUT_B = sp.symbols("a b")
C_W = sp.Symbol("C_W", positive=True)
C_B = sp.Symbol("C_b", nonnegative=True)
C_U = sp.Symbol("C_U", positive=True)


def _key(time, inp):
    return (sp.default_sort_key(sp.sympify(time)), sp.default_sort_key(sp.sympify(inp)))


class TwoTimeKernel(sp.Expr):
    """``C^{(s,t)}_{ab}``: the covariance of h^s_a and h^t_b. Symmetric under (s, a) <-> (t, b) jointly (not a <-> b
    alone), so the pair of (time, input) variables is stored in a canonical order."""

    is_commutative = True
    is_real = True
    _diff_wrt = True

    def __new__(cls, s, t, a=INPUT_A, b=INPUT_B, name="C"):
        s, t = sp.sympify(s), sp.sympify(t)
        a = sp.Symbol(a) if isinstance(a, str) else sp.sympify(a)
        b = sp.Symbol(b) if isinstance(b, str) else sp.sympify(b)
        if _key(t, b) < _key(s, a):
            s, t, a, b = t, s, b, a
        return sp.Expr.__new__(cls, sp.Symbol(name), s, t, a, b)

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def times(self):
        return self.args[1], self.args[2]

    @property
    def inputs(self):
        return self.args[3], self.args[4]

    @property
    def free_symbols(self):
        return self.args[1].free_symbols | self.args[2].free_symbols

    def _sympystr(self, printer):
        s, t = (printer._print(v) for v in self.times)
        a, b = (printer._print(v) for v in self.inputs)
        return f"{self.name}{a}{b}[{s},{t}]"

    def _latex(self, printer):
        s, t = (printer._print(v) for v in self.times)
        a, b = (printer._print(v) for v in self.inputs)
        return f"{{{self.name}^{{({s},{t})}}_{{{a}{b}}}}}"  # braced: a power prints as {C^{(s,t)}_{ab}}^{2}


class TimeInputOverlap(sp.Expr):
    """``x^(s)_a . x^(t)_b / n_0``: the overlap of the inputs fed at steps s and t."""

    is_commutative = True
    is_real = True

    def __new__(cls, s, t, a=INPUT_A, b=INPUT_B):
        s, t, a, b = (sp.sympify(v) for v in (s, t, a, b))
        if _key(t, b) < _key(s, a):
            s, t, a, b = t, s, b, a
        return sp.Expr.__new__(cls, s, t, a, b)

    @property
    def free_symbols(self):
        return self.args[0].free_symbols | self.args[1].free_symbols

    def _sympystr(self, printer):
        s, t, a, b = (printer._print(v) for v in self.args)
        return f"(x{a}[{s}].x{b}[{t}]/n0)"

    def _latex(self, printer):
        s, t, a, b = (printer._print(v) for v in self.args)
        return rf"\frac{{x^{{({s})}}_{{{a}}} \cdot x^{{({t})}}_{{{b}}}}}{{n_0}}"


def block(s, t, a=INPUT_A, b=INPUT_B) -> sp.ImmutableMatrix:
    """The 2 x 2 covariance of (h^s_a, h^t_b): [[C^{(s,s)}_aa, C^{(s,t)}_ab], [C^{(s,t)}_ab, C^{(t,t)}_bb]]."""
    return sp.ImmutableMatrix([[TwoTimeKernel(s, s, a, a), TwoTimeKernel(s, t, a, b)],
                               [TwoTimeKernel(s, t, a, b), TwoTimeKernel(t, t, b, b)]])


@dataclass(frozen=True)
class SharedDense:
    """The affine step h -> W phi + b + U x^(t) acting on the 2 x 2 kernel block of times (s, t).

        K' = C_b + C_W K + C_U x^(s)_a.x^(t)_b / n_0 (input every step)        when ``same_weights``
        K' = 0 for s != t                                                      independent W^t, b^t, U^t (deep)
    """

    s: object
    t: object
    same_weights: bool
    input_every: bool

    def kernel_map(self, state: dict) -> dict:
        k = state["K"]
        pair = (INPUT_A, INPUT_B)

        def entry(i, j):
            ti, tj = (self.s, self.t)[i], (self.s, self.t)[j]
            if not self.same_weights and sp.simplify(ti - tj) != 0:
                return sp.S.Zero
            value = C_B + C_W * k[i, j]
            if self.input_every:
                value += C_U * TimeInputOverlap(ti, tj, pair[i], pair[j])
            return value

        return {"K": sp.ImmutableMatrix(2, 2, entry), "Theta": sp.zeros(2, 2)}


def _phi(activation):
    act = None if activation is None else get_activation(activation)
    return act, (PHI(X) if act is None else act.expr.subs(sp.Symbol("x", real=True), X))


def mean_field_update(activation=None, same_weights: bool = True, input_every: bool = False, evaluate: bool = True,
                      s=S_TIME, t=T_TIME):
    """C^{(s+1,t+1)}_{ab} as derived from Nonlinearity then SharedDense (generic phi when ``activation`` is None)."""
    act, phi = _phi(activation)
    state = {"K": block(s, t), "Theta": sp.zeros(2, 2)}
    out = compose(state, Nonlinearity(phi, evaluate=evaluate and act is not None),
                  SharedDense(s + 1, t + 1, same_weights, input_every))
    return out["K"][0, 1]


@dataclass(frozen=True)
class RecurrentRecursion:
    """The two-time mean-field recursion as equations ``initial`` (boundary at time 0) and ``update``."""

    name: str
    architecture: str
    input_mode: str
    initial: dict
    update: dict
    activation: object = None
    notes: tuple = field(default=())

    def equations(self, which: str = "update") -> list:
        table = self.initial if which == "initial" else self.update
        return [sp.Eq(lhs, rhs) for lhs, rhs in table.items()]

    def __str__(self) -> str:
        lines = [self.name + (f" — activation {self.activation.name}" if self.activation else " — generic phi")]
        for title, which in (("time 0 (boundary)", "initial"), ("step", "update")):
            lines.append(f"  {title}:")
            lines += [f"    {sp.sstr(eq.lhs)} = {sp.sstr(eq.rhs)}" for eq in self.equations(which)]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def latex(self) -> str:
        from fieldnet.export.latex import latex

        rows = [f"{latex(eq.lhs)} &= {latex(eq.rhs)}" for which in ("initial", "update") for eq in self.equations(which)]
        return "\\begin{align*}\n" + " \\\\\n".join(rows) + "\n\\end{align*}"


def recurrent_mean_field_recursion(activation=None, architecture: str = "recurrent", input_mode: str = "first",
                                   evaluate: bool = True) -> RecurrentRecursion:
    """The two-time kernel recursion C^{(s,t)}_{ab} of the recurrent net or of its deep counterpart (module doc)."""
    from fieldnet.errors import require

    require(architecture in ("recurrent", "deep"), "architecture", f"must be recurrent or deep, got {architecture!r}")
    require(input_mode in ("first", "every"), "input_mode", f"must be first or every, got {input_mode!r}")
    act, _ = _phi(activation)
    shared, every = architecture == "recurrent", input_mode == "every"
    zero, one = sp.S.Zero, sp.S.One
    first = C_B + C_U * TimeInputOverlap(zero, zero)
    initial = {TwoTimeKernel(zero, zero): first}
    cross0 = (C_B + (C_U * TimeInputOverlap(zero, T_TIME + one) if every else zero)) if shared else zero
    initial[TwoTimeKernel(zero, T_TIME + one)] = cross0
    if shared:
        update = {TwoTimeKernel(S_TIME + 1, T_TIME + 1): mean_field_update(act, True, every, evaluate)}
    else:
        update = {TwoTimeKernel(T_TIME + 1, T_TIME + 1): mean_field_update(act, False, every, evaluate, T_TIME, T_TIME),
                  TwoTimeKernel(S_TIME, T_TIME): zero}
    notes = ("W_ij ~ N(0, C_W/n), b_i ~ N(0, C_b), U_ik ~ N(0, C_U/n_0); "
             + ("one W, b, U for all steps." if shared else "independent W^t, b^t, U^t per step."),
             "time index 0 is the first preactivation h^0 = U x^(0) + b.")
    if not shared:
        notes += ("the second update holds for s != t.",)
    title = f"{architecture} two-time mean field (input at {'every step' if every else 'the first step'})"
    return RecurrentRecursion(title, architecture, input_mode, initial, update, act, notes)


def response_entries(activation=None, architecture: str = "recurrent") -> dict:
    """J_{x,z} = dC^x / dC^z for x = (s+1, t+1; a, b) and z in the block (s, t): the one-loop response (THEORY 7.5),
    derived with ``sympy.diff`` (Price's theorem: d<f>/dC_ab = <d_a d_b f>, d<f>/dC_aa = (1/2)<d_a^2 f>).

    Keys are the entries z of time (s, s), (s, t), (t, t) (for the deep net only the equal-time x = (t+1, t+1))."""
    act, _ = _phi(activation)
    shared = architecture == "recurrent"
    s = S_TIME if shared else T_TIME
    x = mean_field_update(act, shared, False, True, s, T_TIME)
    blk = block(s, T_TIME)
    entries = [blk[0, 0], blk[0, 1], blk[1, 1]]
    return {z: sp.diff(x, z) for z in dict.fromkeys(entries)}


_ONE_LOOP = r"""
\subsection*{One loop: leading $1/n$ corrections}
Given the past, neuron $i$'s trajectory is Gaussian with the conditional covariance
$C_{vw}[h] = C_b + \frac{C_W}{n}\sum_j \phi(h_{j,v-1})\phi(h_{j,w-1}) + C_U\, x_v\cdot x_w/n_0 = \frac1n\sum_j \psi^{vw}(h_j)$
over (time, input) variables $v, w$ (no $W$ term at time 0; the deep net keeps only equal times). Averaging the
response functional over $W, b, U$ is exact, and the auxiliary-field action
$S = -\sum_x \tilde C^x C^x + \ln \mathbb{E}_{h\sim\mathcal N(0,C)} e^{\sum_x \tilde C^x \psi^x(h)}$ is multiplied by $n$
(Segadlo et al.\ arXiv:2112.05589). Its saddle is the mean field above, $C^* = F(C^*)$, $F^x = \langle\psi^x\rangle_C$.
With the response $J_{xz} = \partial F^x/\partial C^z$ (Price's theorem, symmetric coordinates),
$R = (1-J)^{-1}$, the single-neuron noise $\Pi_{xz} = \mathrm{Cov}_{C^*}(\psi^x,\psi^z)$ and $\Sigma = R\Pi R^{\mathsf T}$,
the one-loop (Hessian) term gives
\[
\mathbb{E}\, C = C^* + \frac{1}{n}\, R\Big[\tfrac12 \sum_{z,z'} \frac{\partial^2 F}{\partial C^z \partial C^{z'}}\,\Sigma_{zz'} + a\Big],
\qquad a^w = \sum_{u,z} \frac{\partial \Pi^{wu}}{\partial C^z} R_{zu},
\]
and for the observable $\frac1n\sum_i h_{i,v} h_{i,w}$ (whose Gaussian average is $C_{vw}$)
\[
\mathbb{E}\Big[\frac1n \sum_i h_{i,v} h_{i,w}\Big] = \mathbb{E}\, C_{vw}
 + \frac1n \sum_{u,z} \frac{\partial}{\partial C^z}\Big[\sum_{k,m} C_{vk} C_{wm} \big\langle \partial_k\partial_m \psi^u\big\rangle_C\Big] R_{zu}
 + O(n^{-2}),
\]
the last term (zero in the deep net) separating $\frac1n|h_t|^2$ from $C_{tt}$ in the recurrent net.
""".strip()


def recurrent_latex_document(activation=None, architecture: str = "recurrent", input_mode: str = "first") -> str:
    """A standalone LaTeX document: conventions, the derived two-time recursion, its response entries and the
    one-loop formulas (THEORY.md 7.3-7.5)."""
    from fieldnet import __version__
    from fieldnet.export.latex import latex

    rec = recurrent_mean_field_recursion(activation, architecture, input_mode)
    title = "any activation" if rec.activation is None else f"$\\phi(x) = {latex(rec.activation.expr)}$"
    net = (r"h^0 = U x^{(0)} + b,\quad h^t = W\phi(h^{t-1}) + b + U x^{(t)}" if architecture == "recurrent" else
           r"h^0 = U^0 x^{(0)} + b^0,\quad h^t = W^t\phi(h^{t-1}) + b^t + U^t x^{(t)}")
    inputs = ("input at every step" if input_mode == "every" else r"input at the first step only ($x^{(t)} = 0$, $t \ge 1$)")
    rows = [f"{latex(z)} &\\colon\\ {latex(v)}" for z, v in response_entries(rec.activation, architecture).items()]
    parts = [r"\documentclass[11pt]{article}", r"\usepackage[margin=2cm]{geometry}", r"\usepackage{amsmath,amssymb}",
             r"\allowdisplaybreaks", r"\begin{document}",
             rf"\section*{{fieldnet: {architecture} network, two-time kernel, {title}}}",
             rf"Generated by fieldnet {__version__} from its symbolic engine; do not edit by hand.",
             r"\subsection*{Conventions}",
             rf"\[ {net}, \]",
             r"$W_{ij}\sim\mathcal N(0, C_W/n)$, $b_i \sim \mathcal N(0, C_b)$, $U_{ik}\sim\mathcal N(0, C_U/n_0)$, "
             + inputs + r"; time $t = 0,\dots,T$ with $h^0$ the first preactivation. "
             r"$C^{(s,t)}_{ab} = \lim_{n\to\infty}\mathbb E\big[\frac1n\sum_i h^s_{i;a} h^t_{i;b}\big]$ and "
             r"$\mathbb E\big[\frac1n\sum_i h^s_{i;a} h^t_{i;b}\big] = C0 + C1/n + O(n^{-2})$.",
             r"\subsection*{Mean field}", rec.latex(),
             r"\subsection*{Response (derivatives of the update, Price's theorem)}",
             r"$\partial C^{(s+1,t+1)}_{ab} / \partial z$ for the entries $z$ of the block:",
             "\\begin{align*}\n" + " \\\\\n".join(rows) + "\n\\end{align*}",
             _ONE_LOOP, r"\end{document}", ""]
    return "\n\n".join(parts)
