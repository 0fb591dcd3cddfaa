"""Universality classes of criticality, derived symbolically (RDLT arXiv:2106.10165 ch. 5; THEORY.md 3.2).

RDLT criticality asks for chi_parallel(K*) = chi_perp(K*) = 1 at the fixed point K*. The class
follows from the activation alone:

* **scale-invariant** — phi(lambda z) = lambda phi(z) for lambda > 0 (linear, relu, leaky relu,
  ABReLU, abs). Detected from the symbolic averages: <phi^2>_K = A2 K and <phi'^2>_K = A2. Then
  chi_parallel = chi_perp = C_W A2 for every K, so criticality is C_W = 1/A2, C_b = 0 (sympy solves
  C_W A2 = 1; relu: 2, linear: 1), with A4 = <phi^4>_K / (3 K^2) and rho4 = A4 / A2^2.
* **K* = 0** — phi analytic at 0 with phi(0) = 0, phi_1 = phi'(0) != 0. From the sympy series
  phi = sum_p phi_p z^p / p!:

      K' = K + a1 K^2 + O(K^3),      a1 = phi_3/phi_1 + (3/4)(phi_2/phi_1)^2
      chi_perp = 1 + b1 K + O(K^2),  b1 = phi_3/phi_1 + (phi_2/phi_1)^2

  at C_W = 1/phi_1^2, C_b = 0. With a1 < 0, K^(l) ~ 1/((-a1) l) and the partial Jacobian falls
  like l^(-zeta), zeta = b1/a1 (tanh, erf, sin: a1 = b1, zeta = 1).
* **half-stable (a1 > 0)** — the same conditions but a1 > 0 (GELU, SWISH): K = 0 repels from
  above, so C_W = 1/phi_1^2, C_b = 0 is not a usable critical point (RDLT 5.3.3; THEORY.md 3.2(c)).
* **marginal (a1 = 0)** — higher orders decide (none of the built-ins).
* **none** — phi(0) != 0 (sigmoid, softplus, cos, exp), phi'(0) = 0, or kinked without scale
  invariance (step, sign): no critical point with K* = 0. Such activations may still have the
  Poole/Schoenholz critical line chi_1 = 1 at finite q* (see :func:`critical_line`).

:func:`equal_susceptibility_points` finds, numerically and for any activation, the points of the
critical line where chi_parallel = chi_perp = 1 as well, i.e. the zeros of <phi phi''>_q
(chi_parallel - chi_perp = C_W <phi phi''>): that is RDLT criticality at K* > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy.optimize import brentq

from fieldnet.analysis.averages import Q, averages, quiet, taylor_coefficients
from fieldnet.symbolic.activations import get_activation

C_W = sp.Symbol("C_W", positive=True)


@dataclass(frozen=True)
class UniversalityClass:
    """The class of an activation and its exact critical point, where it has one."""

    activation: str
    name: str                       # 'scale-invariant', 'K*=0', 'half-stable', 'marginal', 'none'
    critical_weight_var: sp.Expr | None
    critical_bias_var: sp.Expr | None
    taylor: tuple | None            # (phi(0), phi'(0), phi''(0), phi'''(0)) if analytic at 0
    a1: sp.Expr | None = None
    b1: sp.Expr | None = None
    A2: sp.Expr | None = None
    A4: sp.Expr | None = None

    @property
    def zeta(self):
        """Critical exponent of the partial Jacobian, J ~ l^(-zeta), zeta = b1/a1 (K* = 0 class)."""
        return sp.simplify(self.b1 / self.a1) if self.name == "K*=0" else None

    @property
    def rho4(self):
        return sp.simplify(self.A4 / self.A2 ** 2) if self.A2 is not None else None

    def describe(self) -> str:
        if self.name == "scale-invariant":
            return (f"scale-invariant class: A2 = {self.A2}, A4 = {self.A4}; critical at C_W = 1/A2 = "
                    f"{self.critical_weight_var}, C_b = 0 (chi_parallel = chi_perp = C_W A2 for all K)")
        if self.name == "K*=0":
            return (f"K*=0 class: a1 = {self.a1}, b1 = {self.b1}; critical at C_W = {self.critical_weight_var}, "
                    f"C_b = 0; K^(l) ~ {1 / (-self.a1 * sp.Symbol('l'))}, APJN ~ l^(-{self.zeta})")
        if self.name == "half-stable":
            return (f"phi(0) = 0 but a1 = {self.a1} > 0 (b1 = {self.b1}): K* = 0 at C_W = "
                    f"{self.critical_weight_var}, C_b = 0 is unstable from above, no usable K*=0 criticality")
        if self.name == "marginal":
            return "phi(0) = 0 and a1 = 0: higher orders decide"
        return "no K*=0 or scale-invariant criticality (phi(0) != 0, phi'(0) = 0, or kinked)"


def _scale_invariant(act):
    """(A2, A4) if <phi^2>_K = A2 K and <phi'^2>_K = A2 (the scale-invariant class), else None."""
    avg = averages(act)
    second, slope = avg.closed_form("V"), avg.closed_form("S")
    if second is None or slope is None or not slope.is_number:
        return None
    a2 = sp.simplify(second / Q)
    if not a2.is_number or a2 == 0 or sp.simplify(slope - a2) != 0:
        return None
    from fieldnet.symbolic.expectation import gaussian_expectation

    z = sp.Symbol("z", real=True)
    phi = act.expr.subs(sp.Symbol("x", real=True), z)
    fourth = gaussian_expectation(phi ** 4, (z,), sp.ImmutableMatrix([[Q]]))
    a4 = sp.simplify(fourth / (3 * Q ** 2))
    return a2, (a4 if a4.is_number else None)


def universality_class(activation) -> UniversalityClass:
    """Classify ``activation`` symbolically (see the module docstring)."""
    act = get_activation(activation)
    taylor = taylor_coefficients(act)
    scale = _scale_invariant(act)
    if scale is not None:
        a2, a4 = scale
        cw = sp.solve(sp.Eq(C_W * a2, 1), C_W)[0]
        return UniversalityClass(act.name, "scale-invariant", cw, sp.S.Zero, taylor, A2=a2, A4=a4)
    if taylor is None or taylor[0] != 0 or taylor[1] == 0:
        return UniversalityClass(act.name, "none", None, None, taylor)
    p1, p2, p3 = taylor[1:4]
    a1 = sp.simplify(p3 / p1 + sp.Rational(3, 4) * (p2 / p1) ** 2)
    b1 = sp.simplify(p3 / p1 + (p2 / p1) ** 2)
    cw = sp.solve(sp.Eq(C_W * p1 ** 2, 1), C_W)[0]
    name = "K*=0" if a1.is_negative else ("half-stable" if a1.is_positive else "marginal")
    return UniversalityClass(act.name, name, cw, sp.S.Zero, taylor, a1=a1, b1=b1)


def equal_susceptibility_points(activation, q_range=(1e-3, 16.0), points=200):
    """Points (q*, C_W, C_b) of the critical line where also chi_parallel = 1, i.e. the zeros of
    d<phi^2>/dq - <phi'^2> for q* in ``q_range``, with C_b >= 0 (RDLT criticality at K* > 0)."""
    from fieldnet.analysis.criticality import critical_line

    avg = averages(activation)
    h = (lambda q: quiet(avg.second_moment_slope, q) - quiet(avg.derivative_moment, q))
    grid = np.geomspace(q_range[0], q_range[1], points)
    values = h(grid)
    found = []
    for i in np.flatnonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0):
        q = brentq(lambda t: float(h(np.array([t]))[0]), grid[i], grid[i + 1], xtol=1e-14, rtol=1e-15)
        line = critical_line(activation, [q])
        if line.bias_var[0] >= 0:
            found.append((q, float(line.weight_var[0]), float(line.bias_var[0])))
    return found
