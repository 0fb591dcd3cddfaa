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
        if isinstance(base, (LayerQuantity, InputOverlap)) and not (exp.is_Rational and exp.q == 2):
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
