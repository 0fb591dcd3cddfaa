"""Closed-form solutions of single-input recursions (explicit functions of the layer l).

For one input the NTK-parameterized recursion is (THEORY.md section 1)

    K^(l+1) = C_b + C_W <phi^2>_{K^(l)},      Theta^(l+1) = K^(l+1) + C_W <phi'^2>_{K^(l)} Theta^(l),
    K^(1) = Theta^(1) = K_1 = C_b + C_W |x|^2 / n_0.

When <phi^2>_K = A_2 K + g_0 is affine in K and <phi'^2>_K = s is constant — linear, relu,
leaky relu, ABReLU, abs: the scale-invariant class — both are first-order linear recurrences
x(l+1) = chi x(l) + src(l), solved exactly by

    x(l) = chi^(l-1) x(1) + sum_{k=1}^{l-1} chi^(l-1-k) src(k).

In this class chi_K = C_W A_2 equals chi_Theta = C_W s; the solution is written in chi. The
critical case chi = 1 (relu: C_W = 2) is a separate branch of the returned Piecewise, where K
grows linearly in l (or stays constant at C_b = 0) and Theta picks up the familiar factor l.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from fieldnet.symbolic.activations import get_activation
from fieldnet.symbolic.expectation import gaussian_expectation

# the symbols of a solution
L = sp.Symbol("l", integer=True, positive=True)
K1 = sp.Symbol("K_1", positive=True)
C_W = sp.Symbol("C_W", positive=True)
C_B = sp.Symbol("C_b", nonnegative=True)
CHI = sp.Symbol("chi", positive=True)
_CW = C_W  # for methods whose keyword argument is also called C_W
# internal: summation index, a variance and an integration variable
_k = sp.Symbol("k", integer=True, positive=True)
_K = sp.Symbol("K", positive=True)
_z = sp.Symbol("z", real=True)


@dataclass(frozen=True)
class SingleInputSolution:
    """K^(l) and Theta^(l) as explicit functions of l, in the symbols l, K_1, C_b and
    chi = C_W <phi^2>'(K) (the per-layer factor; ``chi_definition`` gives it in C_W)."""

    activation: str
    K: sp.Expr
    Theta: sp.Expr
    chi_definition: sp.Expr   # chi in terms of C_W
    critical_weight_var: sp.Expr  # C_W at which chi = 1

    def at(self, C_W=None, C_b=None, K_1=None, l=None):
        """Substitute numbers (C_W also fixes chi), e.g. ``sol.at(C_W=2, C_b=0)``."""
        subs = {}
        if C_W is not None:
            subs[CHI] = self.chi_definition.subs(_CW, C_W)
        for sym, value in ((C_B, C_b), (K1, K_1), (L, l)):
            if value is not None:
                subs[sym] = value
        return (sp.simplify(sp.piecewise_fold(self.K.subs(subs))),
                sp.simplify(sp.piecewise_fold(self.Theta.subs(subs))))


def _solve_linear(chi, source, x1):
    """chi^(l-1) x1 + sum_{k=1}^{l-1} chi^(l-1-k) source(k), simplified."""
    total = chi ** (L - 1) * x1 + sp.summation(chi ** (L - 1 - _k) * source(_k), (_k, 1, L - 1))
    return sp.simplify(sp.piecewise_fold(total))


def _generic(expr):
    """The generic (``True``) branch of a Piecewise that summation produced for special chi."""
    expr = sp.piecewise_fold(expr)
    if isinstance(expr, sp.Piecewise):
        expr = next(e for e, c in expr.args if c == sp.true)
    return sp.simplify(expr)


def solve_single_input(activation) -> SingleInputSolution | None:
    """Explicit K^(l), Theta^(l) for one input (NTK parameterization), or None when the
    recursion is not linear in K (every activation outside the scale-invariant class)."""
    return _solve(get_activation(activation))


@lru_cache(maxsize=128)
def _solve(act) -> SingleInputSolution | None:
    phi = act.expr.subs(sp.Symbol("x", real=True), _z)
    second = gaussian_expectation(phi ** 2, (_z,), [[_K]])
    slope = gaussian_expectation(sp.diff(phi, _z) ** 2, (_z,), [[_K]])
    if not (second.is_polynomial(_K) and sp.degree(second, _K) <= 1 and slope.is_number):
        return None
    poly = sp.Poly(second, _K)
    a2, g0 = poly.coeff_monomial(_K), poly.coeff_monomial(1)
    if a2 == 0 or sp.simplify(slope - a2) != 0:
        return None  # the NNGP and NTK factors differ: not the scale-invariant class
    source = C_B + CHI / a2 * g0  # C_b + C_W g_0 with C_W = chi / A_2
    k_gen = _generic(_solve_linear(CHI, lambda k: source, K1))
    t_gen = _generic(_solve_linear(CHI, lambda k: k_gen.subs(L, k + 1), K1))
    k_crit = _solve_linear(sp.S.One, lambda k: source.subs(CHI, 1), K1)
    t_crit = _solve_linear(sp.S.One, lambda k: k_crit.subs(L, k + 1), K1)
    cond = sp.Eq(CHI, 1)
    return SingleInputSolution(act.name, sp.Piecewise((k_crit, cond), (k_gen, True)),
                               sp.Piecewise((t_crit, cond), (t_gen, True)), C_W * a2, 1 / a2)
