"""LaTeX export: a sympy printer for fieldnet's nodes and standalone documents.

:class:`FieldnetLatexPrinter` adds one method per node type to sympy's ``LatexPrinter``:
``K^{(l)}_{ab}`` for layer quantities, ``x_a \\cdot x_b / n_0`` for input overlaps,
``\\langle f \\rangle_{K^{(l)}}`` for Gaussian averages, ``\\phi'(z_a)`` for derivatives of the
generic activation. :func:`latex_document` writes a complete ``.tex`` file with the conventions,
the recursion, its Gaussian averages for a concrete activation and, where one exists, the
single-input solution in closed form.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter

from fieldnet import __version__
from fieldnet.symbolic.activations import get_activation
from fieldnet.symbolic.expectation import evaluate_node
from fieldnet.symbolic.layers import PHI, X, Nonlinearity, quantity_matrix
from fieldnet.symbolic.nodes import GaussianExpectation, InputOverlap, LayerQuantity
from fieldnet.symbolic.recursions import LAYER, mean_field_recursion

_NAMES = {"Theta": r"\Theta", "lambda_W": r"\lambda_W", "lambda_b": r"\lambda_b"}
_PRIMES = {1: "'", 2: "''", 3: "'''"}


class FieldnetLatexPrinter(LatexPrinter):
    """sympy's LaTeX printer, extended with fieldnet's expression nodes."""

    def __init__(self, settings=None):
        settings = dict(settings or {})
        settings.setdefault("inv_trig_style", "full")
        super().__init__(settings)

    def _print_LayerQuantity(self, expr):
        layer = self._print(expr.layer)
        if expr.name == "n":
            return f"n_{{{layer}}}"
        name = _NAMES.get(expr.name, self._print(sp.Symbol(expr.name)))
        idx = "".join(self._print(i) for i in expr.indices)
        sub = f"_{{{idx}}}" if idx else ""
        return f"{name}^{{({layer})}}{sub}"

    def _print_Pow(self, expr):
        base, exp = expr.as_base_exp()
        if isinstance(base, (LayerQuantity, InputOverlap)) and not (exp.is_Rational and exp.q == 2 and abs(exp.p) == 1):
            return rf"\left({self._print(base)}\right)^{{{self._print(exp)}}}"
        return super()._print_Pow(expr)

    def _print_InputOverlap(self, expr):
        a, b = (self._print(i) for i in expr.args)
        return rf"\frac{{x_{{{a}}} \cdot x_{{{b}}}}}{{n_0}}"

    def _print_GaussianExpectation(self, expr):
        body = self._print(expr.integrand)
        return rf"\left\langle {body} \right\rangle_{{{self._covariance_label(expr.covariance)}}}"

    def _covariance_label(self, cov):
        entries = set(cov)
        heads = {(e.name, e.layer) for e in entries if isinstance(e, LayerQuantity)}
        if len(heads) == 1 and all(isinstance(e, LayerQuantity) for e in entries):
            name, layer = next(iter(heads))
            return f"{_NAMES.get(name, name)}^{{({self._print(layer)})}}"
        return rf"\mathcal{{N}}\left(0,\, {self._print(sp.Matrix(cov))}\right)"

    def _print_Derivative(self, expr):
        inner = expr.expr
        if (isinstance(inner, sp.Function) and isinstance(inner.func, sp.core.function.UndefinedFunction)
                and len(inner.args) == 1 and len(expr.variable_count) == 1):
            var, order = expr.variable_count[0]
            if var == inner.args[0] and order in _PRIMES:
                return f"{self._print(sp.Symbol(inner.func.__name__))}{_PRIMES[order]}\\left({self._print(var)}\\right)"
        return super()._print_Derivative(expr)

    def _print_Heaviside(self, expr, exp=None):
        out = rf"\mathbf{{1}}_{{{self._print(expr.args[0])} > 0}}"
        return f"\\left({out}\\right)^{{{exp}}}" if exp else out


def latex(expr, **settings) -> str:
    """LaTeX for any expression containing fieldnet nodes."""
    return FieldnetLatexPrinter(settings).doprint(expr)


def _abbreviate_angles(expr):
    """Replace arccos(K_ab / sqrt(K_aa K_bb)) by theta^{(l)}_{ab}; returns (expr, definitions)."""
    defs = []
    for node in sorted(expr.atoms(sp.acos), key=sp.default_sort_key):
        symbol = sp.Symbol(r"\theta^{(l)}_{ab}") if not defs else sp.Symbol(rf"\theta_{{{len(defs) + 1}}}")
        defs.append((symbol, node))
        expr = expr.xreplace({node: symbol})
    return expr, defs


def _equation(lhs, rhs, width: int = 170) -> str:
    """One displayed equation; a long sum is broken over lines (multline*)."""
    left, right = latex(lhs), latex(rhs)
    if len(right) <= width or not isinstance(rhs, sp.Add):
        return f"\\begin{{equation*}}\n{left} = {right}\n\\end{{equation*}}"
    lines, current = [], ""
    for term in sp.Add.make_args(rhs):
        text = latex(term)
        piece = text if not current and not lines else (text if text.startswith("-") else "+ " + text)
        if current and len(current) + len(piece) > width:
            lines.append(current)
            current = piece
        else:
            current = f"{current} {piece}".strip()
    lines.append(current)
    body = " \\\\\n".join(lines)
    return f"\\begin{{multline*}}\n{left} = {body}\n\\end{{multline*}}"


def recursion_latex(rec) -> str:
    """The recursion's equations (layer 1, then layer l -> l+1) as an ``align*`` block."""
    rows = []
    for which in ("initial", "update"):
        for eq in rec.equations(which):
            rows.append(f"{latex(eq.lhs)} &= {latex(eq.rhs)}")
    return "\\begin{align*}\n" + " \\\\\n".join(rows) + "\n\\end{align*}"


CONVENTIONS = r"""
Deep fully connected network of depth $L$ ($L$ hidden layers and a linear readout, so
preactivations $z^{(1)},\dots,z^{(L+1)}$), standard parameterization:
\[
z^{(1)}_i = b^{(1)}_i + \sum_{j=1}^{n_0} W^{(1)}_{ij} x_j, \qquad
z^{(l+1)}_i = b^{(l+1)}_i + \sum_{j=1}^{n_l} W^{(l+1)}_{ij}\, \phi\big(z^{(l)}_j\big),
\]
\[
W^{(l)}_{ij} \sim \mathcal{N}\big(0, C_W/n_{l-1}\big), \qquad b^{(l)}_i \sim \mathcal{N}(0, C_b).
\]
$K^{(l)}_{ab} = \lim_{n\to\infty} \mathbb{E}\big[z^{(l)}_{i;a} z^{(l)}_{i;b}\big]$ is the NNGP kernel of inputs
$a, b$, and $\langle f \rangle_{K^{(l)}}$ the average over $(z_a, z_b) \sim \mathcal{N}(0, K^{(l)}|_{\{a,b\}})$.
The NTK is $\Theta^{(l)}_{ab} = \sum_\mu \lambda_\mu\, \partial_{\theta_\mu} z^{(l)}_{i;a}\, \partial_{\theta_\mu} z^{(l)}_{i;b}$
with rate $\lambda_b$ for biases and $\lambda_W/n_{l-1}$ for $W^{(l)}$; the NTK parameterization (used here) has
$\lambda_W = C_W$, $\lambda_b = C_b$, the standard parameterization $\lambda_W = n_{l-1}$, $\lambda_b = 1$; a global
learning rate $\eta$ multiplies $\Theta$. In neural-tangents, \texttt{stax.serial(*[Dense, Act]*L, Dense)}
with \texttt{Dense(W\_std, b\_std)} has $C_W = W_{\mathrm{std}}^2$, $C_b = b_{\mathrm{std}}^2$.
""".strip()


def _averages(phi):
    """[(label expression, value)] for <phi phi> and <phi' phi'>, diagonal and off-diagonal."""
    k = quantity_matrix("K", LAYER)
    generic, concrete = Nonlinearity(PHI(X), evaluate=False), Nonlinearity(phi, evaluate=False)
    rows = []
    for order in (0, 1):
        g, c = sp.diff(PHI(X), X, order), sp.diff(phi, X, order)
        for i, j in ((0, 0), (0, 1)):
            label = generic.average(g, i, j, k)
            node = concrete.average(c, i, j, k)
            rows.append((label, evaluate_node(node) if isinstance(node, GaussianExpectation) else node))
    return rows


def latex_document(activation=None, parameterization: str = "ntk") -> str:
    """A standalone LaTeX document of the deep mean-field recursions for ``activation``."""
    from fieldnet.symbolic.solve import solve_single_input

    generic = mean_field_recursion(None, parameterization)
    parts = [
        r"\documentclass[11pt]{article}",
        r"\usepackage[margin=2cm]{geometry}",
        r"\usepackage{amsmath,amssymb}",
        r"\allowdisplaybreaks",
        r"\begin{document}",
    ]
    act = None if activation is None else get_activation(activation)
    title = "any activation" if act is None else f"$\\phi(x) = {latex(act.expr)}$"
    parts += [rf"\section*{{fieldnet: deep mean-field kernels, {title}}}",
              rf"Generated by fieldnet {__version__} from its symbolic engine; do not edit by hand.",
              r"\subsection*{Conventions}", CONVENTIONS,
              r"\subsection*{Recursion}",
              "For every pair of inputs $a, b$ (the diagonal $a = b$ uses one-dimensional averages):",
              recursion_latex(generic)]
    if parameterization == "standard":
        parts.append(r"Here $n_l$ is the width of hidden layer $l$ (standard-parameterization NTK).")
    if act is not None:
        phi = act.expr.subs(sp.Symbol("x", real=True), X)
        parts += [r"\subsection*{Gaussian averages}",
                  rf"For $\phi(x) = {latex(act.expr)}$, with $\phi'(x) = {latex(sp.diff(act.expr, sp.Symbol('x', real=True)))}$:"]
        defined = set()
        for label, value in _averages(phi):
            if isinstance(value, GaussianExpectation):
                parts.append(f"\\begin{{equation*}}\n{latex(label)} = {latex(value)}\n\\end{{equation*}}\n"
                             "(no closed form: evaluated numerically by Gauss--Hermite quadrature)")
            elif value.has(sp.zoo, sp.oo, sp.nan):
                parts.append(f"\\begin{{equation*}}\n{latex(label)} = \\infty\n\\end{{equation*}}\n"
                             r"(divergent: $\phi'$ contains a delta function, so the NTK is infinite)")
            else:
                short, defs = _abbreviate_angles(value)
                parts.append(_equation(label, short))
                for symbol, node in defs:
                    if symbol not in defined:
                        defined.add(symbol)
                        parts.append(f"where ${latex(symbol)} = {latex(node)}$.")
        solution = solve_single_input(act) if parameterization == "ntk" else None
        if solution is not None:
            k1 = sp.Symbol("K_1")
            parts += [r"\subsection*{One input: closed-form solution}",
                      rf"With $K_1 = K^{{(1)}}_{{aa}} = \Theta^{{(1)}}_{{aa}} = C_b + C_W\, x_a\cdot x_a/n_0$ and the "
                      rf"per-layer factor $\chi = {latex(solution.chi_definition)}$ (critical at $C_W = "
                      rf"{latex(solution.critical_weight_var)}$):",
                      _equation(sp.Symbol("K^{(l)}_{aa}"), solution.K.subs(sp.Symbol("K_1", positive=True), k1)),
                      _equation(sp.Symbol(r"\Theta^{(l)}_{aa}"), solution.Theta.subs(sp.Symbol("K_1", positive=True), k1))]
    parts.append(r"\end{document}")
    return "\n\n".join(parts) + "\n"


_NAMES.update({"K1": r"{K^{\{1\}}}", "H1": r"{H^{\{1\}}}"})  # RDLT's K^{1}, H^{1} (1/n coefficients)

FINITE_WIDTH_CONVENTIONS = r"""
Leading $1/n$ corrections (Roberts--Yaida--Hanin arXiv:2106.10165; Yaida arXiv:1910.00019; Hanin--Nica
arXiv:1909.05989). Layer $l$ has fan-in $n_{l-1}$ and every $O(1/n)$ coefficient of layer $l$ is normalised by it:
\[
\mathbb{E}\big[z^{(l)}_{i;a} z^{(l)}_{k;b}\big] = \delta_{ik}\Big[K^{(l)}_{ab} + \frac{{K^{\{1\}}}^{(l)}_{ab}}{n_{l-1}}\Big],\qquad
\mathbb{E}\big[z_{i_1;a_1} z_{i_2;a_2} z_{i_3;a_3} z_{i_4;a_4}\big]_{\mathrm{conn}} = \frac{1}{n_{l-1}}\Big[\delta_{i_1i_2}\delta_{i_3i_4} V_{(a_1a_2)(a_3a_4)} + \text{2 perms}\Big],
\]
written $V_{a_1a_2a_3a_4}$ below. Layer 1 is exactly Gaussian ($V^{(1)} = {K^{\{1\}}}^{(1)} = 0$), and $r^{(l)} = n_l/n_{l-1}$.
For the NTK, $\mathbb{E}[H_{ii}] = \Theta + H^{\{1\}}/n_{l-1}$, and for neurons $i \neq k$:
$\mathrm{Cov}(H_{ii}, H_{kk}) = A/n$, $\mathbb{E}[H_{ik}^2] = B/n$, $\mathrm{Cov}(H_{ii}, z_k^2) = D/n$,
$\mathbb{E}[H_{ik} z_i z_k] = F/n$, so $\mathrm{Var}(H_{ii}) = (A + 2B)/n$. Rates: $\lambda_b$ for biases,
$\lambda_W/n_{l-1}$ for $W^{(l)}$ (NTK parameterization: $\lambda = C$). Every update below is derived by the
engine: Jacobians and Hessians of the mean-field map by Price's theorem (\texttt{sympy.diff}), sources as
connected Gaussian averages.
""".strip()


def finite_width_document(activation=None) -> str:
    """A standalone LaTeX document of the 1/n recursions (V, K1; NTK H1, A, B, D, F for one input)."""
    from fieldnet.symbolic.asymptotics import kstar_zero_asymptotics, scale_invariant_solution
    from fieldnet.symbolic.finite_width import finite_width_recursion, ntk_finite_width_recursion

    act = None if activation is None else get_activation(activation)
    title = "any activation" if act is None else f"$\\phi(x) = {latex(act.expr)}$"
    parts = [r"\documentclass[11pt]{article}", r"\usepackage[margin=2cm]{geometry}", r"\usepackage{amsmath,amssymb}",
             r"\allowdisplaybreaks", r"\begin{document}",
             rf"\section*{{fieldnet: finite-width (1/n) corrections, {title}}}",
             rf"Generated by fieldnet {__version__} from its symbolic engine; do not edit by hand.",
             r"\subsection*{Conventions}", CONVENTIONS, FINITE_WIDTH_CONVENTIONS]
    for heading, rec in (("Four-point vertex and two-point correction", finite_width_recursion(act)),
                         ("NTK at order $1/n$, one input", ntk_finite_width_recursion(act))):
        parts.append(rf"\subsection*{{{heading}}}")
        parts.append("Layer 1: all of these vanish. Layer $l \\to l+1$:")
        parts += [_equation(eq.lhs, eq.rhs) for eq in rec.equations("update")]
    if act is not None:
        sol = scale_invariant_solution(act)
        if sol is not None:
            parts += [r"\subsection*{Closed form at criticality}",
                      rf"$C_b = \lambda_b = 0$, $C_W = {latex(sol.critical_weight_var)}$, uniform width, $K_1 = K^{{(1)}}_{{aa}}$:"]
            parts += [_equation(sp.Symbol(f"{_NAMES.get(k, k)}^{{(l)}}"), v) for k, v in sol.solutions.items()]
            parts.append(_equation(sp.Symbol(r"\frac{A + 2B}{\Theta^2}"), sol.ntk_relative_variance()))
        else:
            try:
                asy = kstar_zero_asymptotics(act)
            except ValueError:
                asy = None
            if asy is not None:
                parts += [r"\subsection*{Large-depth asymptotics at criticality ($K^* = 0$ class)}",
                          rf"$C_b = 0$, $C_W = {latex(asy.critical_weight_var)}$, $a_1 = {latex(asy.a1)}$, "
                          rf"$b_1 = {latex(asy.b1)}$ (from the Taylor coefficients of $\phi$):"]
                parts += [_equation(sp.Symbol(k), v) for k, v in (("K^{(l)}", asy.K), ("V^{(l)}", asy.V),
                                                                 ("{K^{\\{1\\}}}^{(l)}", asy.K1), ("3V/K^2", asy.kurtosis_coefficient))]
    parts.append(r"\end{document}")
    return "\n\n".join(parts) + "\n"
