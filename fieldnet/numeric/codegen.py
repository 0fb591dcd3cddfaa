"""sympy -> numba source: the printer and the symbolic facts the generated integrators need.

:class:`NumbaPrinter` is sympy's ``PythonCodePrinter`` (``math`` functions, which numba compiles)
with fieldnet's conventions: Heaviside(0) = 1/2, and a clear :class:`LoweringError` for functions
numba cannot compile (the caller then falls back to the numpy path). :func:`breakpoints` finds
where a Piecewise / Abs / Max / Heaviside / sign integrand is not smooth, so that quadrature
panels end there; :func:`split_factors` writes a pair integrand h(z_a, z_b) as f(z_a) g(z_b) when
it factorises (the Mehler path needs that).
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from fieldnet.errors import FieldnetError
from fieldnet.symbolic.distributions import normalize_deltas


class LoweringError(FieldnetError):
    """An expression cannot be turned into numba source (e.g. a special function numba lacks)."""


class NumbaPrinter(PythonCodePrinter):
    """Python source that numba's nopython mode compiles: scalars, ``math`` functions."""

    printmethod = "_numbacode"

    def __init__(self, settings=None):
        super().__init__(dict(settings or {}, fully_qualified_modules=True))

    def _print_Heaviside(self, expr):
        arg = self._print(expr.args[0])
        return f"(1.0 if {arg} > 0 else (0.5 if {arg} == 0 else 0.0))"

    def _print_Integer(self, expr):
        return f"{int(expr)}.0"

    def _print_Rational(self, expr):
        return f"({expr.p}.0/{expr.q}.0)"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp.is_Integer and 0 < abs(int(exp)) <= 4:  # x**2 as x*x, x**-1 as 1.0/x: exact, and fast
            b = self.parenthesize(base, 1000)
            product = "*".join([b] * abs(int(exp)))
            return f"({product})" if exp > 0 else f"(1.0/({product}))" if abs(int(exp)) > 1 else f"(1.0/{b})"
        if exp.is_Integer:
            return f"{self.parenthesize(base, 1000)}**{int(exp)}"
        return super()._print_Pow(expr, rational=rational)

    def _print_not_supported(self, expr):
        raise LoweringError(f"cannot lower {expr} to numba: {type(expr).__name__} has no numba implementation")

    def _print_DiracDelta(self, expr):
        raise LoweringError(f"{expr}: a delta function has no pointwise value")


def numba_source(expr) -> str:
    """One-line numba-compatible source for ``expr`` (deltas normalised first)."""
    expr = normalize_deltas(sp.sympify(expr))
    return NumbaPrinter({"strict": True}).doprint(expr)


def function_source(name: str, args, expr, doc: str = "") -> str:
    """``@njit(cache=True) def name(args): return expr`` as source text."""
    params = ", ".join(str(a) for a in args)
    body = f'    """{doc}"""\n' if doc else ""
    return f"@njit(cache=True)\ndef {name}({params}):\n{body}    return {numba_source(expr)}\n"


_KINKED = (sp.Heaviside, sp.Abs, sp.sign, sp.DiracDelta, sp.floor, sp.ceiling)


def breakpoints(expr, var) -> list[float]:
    """Real points where ``expr`` (as a function of ``var``) may be non-smooth: zeros of the
    arguments of Heaviside, Abs, sign, floor, of Max/Min differences and of Piecewise conditions.
    Raises LoweringError if a breakpoint depends on another variable (a kink along a line that
    the tensor panels cannot follow)."""
    points = set()
    for node in sp.preorder_traversal(expr):
        args = []
        if isinstance(node, _KINKED):
            args = [node.args[0]]
        elif isinstance(node, (sp.Max, sp.Min)):
            args = [a - b for i, a in enumerate(node.args) for b in node.args[i + 1:]]
        elif isinstance(node, sp.Piecewise):
            args = [c.lhs - c.rhs for _, c in node.args if isinstance(c, sp.core.relational.Relational)]
        for arg in args:
            if not arg.has(var):
                continue
            if arg.free_symbols - {var}:
                raise LoweringError(f"kink of {expr} along {arg} = 0 involves several variables")
            for root in sp.solve(sp.Eq(arg, 0), var):
                if root.is_real:
                    points.add(float(root))
    return sorted(points)


def split_factors(integrand, za, zb):
    """(f, g) with integrand = f(za) * g(zb), or None if it does not factorise."""
    expanded = sp.factor_terms(integrand)
    f, g = expanded.as_independent(zb, as_Add=False)
    if g.has(za) or f.has(zb):
        return None
    return f, g
