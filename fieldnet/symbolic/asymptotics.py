"""Closed forms and large-depth asymptotics of the 1/n recursions at criticality (THEORY.md 4.4-4.5, 5.4, 5.6).

* :func:`scale_invariant_solution` — linear, relu, leaky relu, ABReLU, abs at criticality (C_b = lambda_b = 0,
  C_W = 1/A_2, uniform width): the engine's one-input recursions (:mod:`fieldnet.symbolic.finite_width`) have
  constant coefficients, and ``sympy.rsolve`` gives V^(l), K1^(l), Theta, H1, A, B, D, F as explicit functions
  of l, e.g. relu V = 5 (l-1) K^2, K1 = 0 (RDLT arXiv:2106.10165 ch. 5; Hanin-Nica arXiv:1909.05989).
* :func:`kstar_zero_asymptotics` — the K* = 0 class (phi(0) = 0, phi'(0) != 0: tanh, erf, sin ...) at
  criticality C_b = 0, C_W = 1/phi_1^2: the small-K expansions of the same averages, taken from phi's Taylor
  polynomial by Wick's theorem, turn the recursions into ODEs in l (``sympy.dsolve``) whose particular solutions
  are the leading large-depth behaviour: K ~ 1/(-a1 l), V ~ 2/(3 a1^2 l) (V/K^2 -> 2l/3), K1 -> 1/(3 a1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from fieldnet.errors import ParameterError
from fieldnet.symbolic import finite_width as fw
from fieldnet.symbolic.activations import get_activation
from fieldnet.symbolic.activations import x as _x
from fieldnet.symbolic.expectation import gaussian_expectation
from fieldnet.symbolic.recursions import LAYER

L = sp.Symbol("l", integer=True, positive=True)
K1 = sp.Symbol("K_1", positive=True)          # K^(1) = K^(l) at criticality
LAMBDA_W = fw.LAMBDA_W
_K = sp.Symbol("K", positive=True)
_z = sp.Symbol("z", real=True)


@dataclass(frozen=True)
class ScaleInvariantSolution:
    """Exact one-input solutions at criticality, functions of l, K_1 = K^(1)_aa and lambda_W (r = 1)."""

    activation: str
    critical_weight_var: sp.Expr
    rho4: sp.Expr            # A4 / A2^2
    solutions: dict          # name -> expression in l ("K", "Theta", "V", "K1", "B", "F", "D", "A", "H1")

    def __getitem__(self, name):
        return self.solutions[name]

    def ntk_relative_variance(self) -> sp.Expr:
        """(A + 2B)/Theta^2, the coefficient of 1/n in Var(H)/E[H]^2."""
        s = self.solutions
        return sp.factor(sp.simplify((s["A"] + 2 * s["B"]) / s["Theta"] ** 2))


@lru_cache(maxsize=32)
def scale_invariant_solution(activation) -> ScaleInvariantSolution | None:
    """Solve the engine's one-input 1/n recursions exactly for a scale-invariant activation at criticality;
    None if <phi^2>_K is not A_2 K with <phi'^2> = A_2 (outside the class)."""
    act = get_activation(activation)
    phi = act.expr.subs(_x, _z)
    second = sp.expand(gaussian_expectation(phi ** 2, (_z,), [[_K]]))
    slope = gaussian_expectation(sp.diff(phi, _z) ** 2, (_z,), [[_K]])
    if not (second.is_polynomial(_K) and sp.degree(second, _K) == 1 and second.subs(_K, 0) == 0
            and sp.simplify(slope - second / _K) == 0):
        return None
    a2 = sp.simplify(second / _K)
    a4 = sp.simplify(gaussian_expectation(phi ** 4, (_z,), [[_K]]) / (3 * _K ** 2))
    cw = 1 / a2
    a = sp.Symbol("a")
    P = (a, a)
    rec = fw.ntk_finite_width_recursion(act)
    # mean field at criticality: K constant, Theta from its own recursion
    k_new, t_new = fw.mean_field_map(act, P)
    crit = {fw.C_W: cw, fw.C_B: 0, fw.LAMBDA_B: 0, fw.RATIO: 1}
    assert sp.simplify(k_new.subs(crit).subs(fw.kernel(P), K1) - K1) == 0
    theta_fn = sp.Function("Theta")
    t_rhs = t_new.subs(crit).subs({fw.kernel(P): K1, fw.kernel(P, name="Theta"): theta_fn(L)})
    theta = sp.rsolve(theta_fn(L + 1) - t_rhs, theta_fn(L), {theta_fn(1): LAMBDA_W * K1 / cw})
    known = {fw.kernel(P): K1, fw.kernel(P, name="Theta"): theta}
    order = (("V", fw.vertex(P, P)), ("K1", fw.kernel(P, name="K1")), ("B", fw.four_index("B", a, a, a, a)),
             ("F", fw.four_index("F", a, a, a, a)), ("D", fw.ntk_kernel_cov(P, P)),
             ("A", fw.vertex(P, P, name="A")), ("H1", fw.kernel(P, name="H1")))
    sols = {"K": K1, "Theta": sp.factor(theta)}
    for name, q in order:
        f = sp.Function(name)
        rhs = rec.update[q.at_layer(LAYER + 1)].subs(crit)
        rhs = rhs.xreplace({LAYER: L}).xreplace({k.xreplace({LAYER: L}): v.subs(L, L) for k, v in known.items()})
        rhs = rhs.xreplace({q.xreplace({LAYER: L}): f(L)})
        sol = sp.rsolve(f(L + 1) - rhs, f(L), {f(1): 0})
        sol = sp.factor(sp.expand(sol))
        sols[name] = sol
        known[q] = sol
    return ScaleInvariantSolution(act.name, cw, sp.simplify(a4 / a2 ** 2), sols)


@dataclass(frozen=True)
class KStarZeroAsymptotics:
    """Leading large-depth behaviour in the K* = 0 class at criticality (uniform width)."""

    activation: str
    taylor: tuple            # (phi_1, phi_2, phi_3)
    a1: sp.Expr
    b1: sp.Expr
    critical_weight_var: sp.Expr
    K: sp.Expr               # ~ 1/(-a1 l)
    V: sp.Expr               # ~ 2/(3 a1^2 l)
    K1: sp.Expr              # -> 1/(3 a1)
    source: sp.Expr          # C_W^2 Var(phi^2) ~ source * K^2

    @property
    def kurtosis_coefficient(self) -> sp.Expr:
        """n x excess kurtosis = 3V/K^2 (-> 2l)."""
        return sp.simplify(3 * self.V / self.K ** 2)


@lru_cache(maxsize=32)
def kstar_zero_asymptotics(activation) -> KStarZeroAsymptotics:
    """Large-depth asymptotics derived from phi's Taylor coefficients (THEORY.md 3.2(b), 4.5)."""
    act = get_activation(activation)
    series = sp.series(act.expr, _x, 0, 6).removeO()
    coeffs = [sp.nsimplify(series.coeff(_x, k)) * sp.factorial(k) for k in range(6)]
    if coeffs[0] != 0 or coeffs[1] == 0:
        raise ParameterError(f"activation: {act.name} is not in the K* = 0 class (needs phi(0) = 0, phi'(0) != 0)")
    poly = sum(coeffs[k] * _z ** k / sp.factorial(k) for k in range(6))
    cw = 1 / coeffs[1] ** 2
    avg = lambda f: sp.expand(gaussian_expectation(f, (_z,), [[_K]]))
    k_map = sp.expand(cw * avg(poly ** 2))                    # K' = C_W <phi^2>_K, C_b = 0
    a1 = sp.simplify(k_map.coeff(_K, 2))
    b1 = sp.simplify(sp.expand(cw * avg(sp.diff(poly, _z) ** 2)).coeff(_K, 1))
    source = sp.simplify(sp.expand(cw ** 2 * (avg(poly ** 4) - avg(poly ** 2) ** 2)).coeff(_K, 2))
    chi_par = sp.diff(k_map, _K)
    hess = sp.diff(k_map, _K, 2) / 2
    if not (a1.is_number and a1 < 0):
        raise ParameterError(f"activation: {act.name} has a1 = {a1}; the 1/l asymptotics need a1 < 0")
    # K' - K = a1 K^2  ->  dK/dl = a1 K^2
    kf, vf, k1f = (sp.Function(n) for n in ("K", "V", "K1"))
    K_l = sp.dsolve(sp.Eq(kf(L).diff(L), a1 * kf(L) ** 2)).rhs
    K_l = sp.simplify(K_l.subs({s: 0 for s in K_l.free_symbols - {L}}))
    lead = lambda e: sp.limit(e.subs(_K, K_l) * L, L, sp.oo)  # coefficient of 1/l of a small-K quantity
    growth_v = lead(chi_par ** 2 - 1)                         # chi_par^2 = 1 + growth/l
    growth_k1 = lead(chi_par - 1)
    h0 = sp.limit(hess, _K, 0)
    V_l = sp.dsolve(sp.Eq(vf(L).diff(L), source * K_l ** 2 + growth_v * vf(L) / L)).rhs
    V_l = _particular(V_l)
    K1_l = sp.dsolve(sp.Eq(k1f(L).diff(L), growth_k1 * k1f(L) / L + h0 * V_l)).rhs
    K1_l = _particular(K1_l)
    return KStarZeroAsymptotics(act.name, tuple(coeffs[1:4]), a1, b1, cw, sp.simplify(K_l), V_l, K1_l, source)


def _particular(solution):
    """The particular (forced) part of a dsolve solution: integration constants set to 0."""
    consts = [s for s in solution.free_symbols if s.name.startswith("C") and s.name[1:].isdigit()]
    return sp.simplify(solution.subs({c: 0 for c in consts}))
