"""The Gaussian averages of one activation that signal propagation needs, as numpy functions.

For z ~ N(0, q) and (u, v) ~ N(0, q [[1, c], [c, 1]]) (THEORY.md sections 2-3):

    V(q)  = <phi(z)^2>_q                 the variance map's average
    V'(q) = d<phi^2>_q / dq = <phi^2 (z^2 - q)>_q / (2 q^2)   (derivative-free: also for kinks)
    S(q)  = <phi'(z)^2>_q                 chi_perp = C_W S(q)
    P(q, c)  = <phi(u) phi(v)>            the correlation map's average
    P'(q, c) = <phi'(u) phi'(v)>          its slope: d P / d c = q P'(q, c)
    P''(q, c) = <phi''(u) phi''(v)>        d P' / d c = q P''(q, c) (Price's theorem; closed forms by
                                          differentiating P' in c, so kinks give their delta functions)

Each is the symbolic closed form (:func:`fieldnet.symbolic.expectation.gaussian_expectation`,
lambdified) where the table has one, and otherwise a numeric Gaussian average through the single
private helper :func:`_gaussian_average` (today :func:`fieldnet.numeric.quadrature.batched_expectation`,
the adaptive whitened trapezoid rule; one place to swap the integrator). At q = 0 the values are the
limits q -> 0+: the closed form's sympy limit, or, for an activation analytic at 0, the Taylor
values V = phi(0)^2, V' = phi'(0)^2 + phi(0) phi''(0), S = phi'(0)^2.

Accuracy: closed forms to rounding (below q = 1e-3 through their Taylor polynomial in q, which
avoids the cancellation in forms such as (1 - e^{-2q})/2); quadrature to the integrator's contract (1e-12 relative for
tanh up to q ~ 16). Single-input averages at q > 16 fall back to scipy's adaptive Gauss–Kronrod
(``scipy.integrate.quad``) on the unwhitened integrand, which resolves the activation's O(1)
features that the whitened rule's finest step cannot.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import sympy as sp
from scipy.integrate import quad

from fieldnet.errors import DivergenceError
from fieldnet.numeric.functions import numpy_function
from fieldnet.numeric.quadrature import batched_expectation
from fieldnet.symbolic.activations import Activation, get_activation
from fieldnet.symbolic.activations import x as _x
from fieldnet.symbolic.expectation import gaussian_expectation
from fieldnet.symbolic.nodes import GaussianExpectation

Q = sp.Symbol("q", positive=True)
C = sp.Symbol("c", real=True)
_z, _u, _v = sp.symbols("z u v", real=True)
_SERIES_Q = 1e-3  # below this, closed forms are evaluated by their Taylor polynomial in q
_LARGE_Q = 16.0  # beyond this, single-input averages use scipy.integrate.quad (see module docstring)
_KINKS = (sp.Heaviside, sp.Max, sp.Min, sp.Abs, sp.sign, sp.Piecewise, sp.DiracDelta)


def _gaussian_average(f, cov: np.ndarray) -> np.ndarray:
    """E_{z ~ N(0, cov[p])} f(z) for a batch cov (P, k, k): the one place the integrator is called."""
    return batched_expectation(f, cov)


def _quad_average(f, q: float) -> float:
    """E_{z ~ N(0, q)} f(z) by adaptive Gauss–Kronrod in z on |z| <= 12 sqrt(q) (the Gaussian mass
    outside is 2e-33). Where the weight is below e^{-32}, a non-finite value of f (e.g. e^{-z}
    overflowing inside the sigmoid's derivative) counts as 0, and so does NaN anywhere: NaN comes from an
    indeterminate form of the formula (inf/inf), not from the function."""
    from scipy.integrate import IntegrationWarning

    def integrand(z):
        w = np.exp(-z * z / (2 * q)) / np.sqrt(2 * np.pi * q)
        value = float(f(np.asarray(z, dtype=float)))
        if np.isnan(value) or (not np.isfinite(value) and z * z > 64 * q):
            return 0.0
        return value * w

    s = np.sqrt(q)
    cuts = [-12 * s, -8.0, 8.0, 12 * s]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)  # roundoff in the negligible tails
        return float(sum(quad(integrand, a, b, epsabs=0.0, epsrel=1e-11, limit=400)[0]
                         for a, b in zip(cuts[:-1], cuts[1:])))


def _is_finite_number(value) -> bool:
    return value.is_number and value.is_finite is not False and not value.has(sp.zoo, sp.oo, sp.nan)


class ActivationAverages:
    """V, V', S, P, P' of one activation (see the module docstring), vectorised over q and c."""

    def __init__(self, activation):
        self.activation = get_activation(activation)
        phi = self.activation.expr.subs(_x, _z)
        self._phi = phi
        self._dphi = sp.diff(phi, _z)
        self._ddphi = sp.diff(phi, _z, 2)
        self._closed: dict = {}
        self._zero: dict = {}
        self._taylor = _taylor_at_zero(phi)

    @property
    def closed_forms(self) -> dict:
        """{'V', 'dV', 'S', 'P', 'dP', 'ddP'} -> sympy closed form in q (and c), or None (quadrature)."""
        return {key: self.closed_form(key) for key in ("V", "dV", "S", "P", "dP", "ddP")}

    def closed_form(self, key: str):
        """The closed form of one average (computed on first use), or None."""
        if key not in self._closed:
            phi, dphi = self._phi, self._dphi
            one = sp.ImmutableMatrix([[Q]])
            pair = sp.ImmutableMatrix([[Q, Q * C], [Q * C, Q]])
            if key == "V":
                value = _closed(gaussian_expectation(phi ** 2, (_z,), one))
            elif key == "S":
                value = _closed(gaussian_expectation(dphi ** 2, (_z,), one))
            elif key == "dV":
                second = self.closed_form("V")
                value = None if second is None else sp.diff(second, Q)
            elif key == "ddP":
                slope = self.closed_form("dP")
                value = None if slope is None else sp.simplify(sp.diff(slope, C) / Q)
            else:
                f = phi if key == "P" else dphi
                value = _closed(gaussian_expectation(f.subs(_z, _u) * f.subs(_z, _v), (_u, _v), pair))
            self._closed[key] = value
        return self._closed[key]

    # -- numeric callables -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.activation.name

    def second_moment(self, q):
        """V(q) = <phi^2>_q."""
        return self._single("V", q, lambda: self._phi ** 2)

    def second_moment_slope(self, q):
        """V'(q) = d<phi^2>_q/dq, derivative-free: <phi^2 (z^2 - q)>_q / (2 q^2)."""
        return self._single("dV", q, None)

    def derivative_moment(self, q):
        """S(q) = <phi'^2>_q (chi_perp = C_W S)."""
        return self._single("S", q, lambda: self._dphi ** 2)

    def pair(self, q, c):
        """P(q, c) = <phi(u) phi(v)>, (u, v) ~ N(0, q [[1, c], [c, 1]])."""
        return self._pair("P", q, c, self._phi)

    def derivative_pair(self, q, c):
        """P'(q, c) = <phi'(u) phi'(v)> (the correlation map's slope is C_W P')."""
        return self._pair("dP", q, c, self._dphi)

    def second_derivative_pair(self, q, c):
        """P''(q, c) = <phi''(u) phi''(v)> = (1/q) dP'/dc (diverges at c = 1 for kinked phi: raises)."""
        return self._pair("ddP", q, c, self._ddphi)

    # -- internals ---------------------------------------------------------------------------

    def _single(self, key, q, integrand):
        q = np.asarray(q, dtype=float)
        flat = q.ravel()
        out = np.empty_like(flat)
        zero = flat == 0.0
        out[zero] = self._limit_at_zero(key)
        pos = np.flatnonzero(~zero)
        if pos.size:
            out[pos] = self._positive(key, flat[pos], integrand)
        if not np.all(np.isfinite(out)):
            raise DivergenceError(f"activation {self.name}: the Gaussian average {_DESCRIBE[key]} diverges "
                                  f"or overflows at q = {flat[~np.isfinite(out)][0]:.6g}")
        return out.reshape(q.shape)

    def _positive(self, key, q, integrand):
        closed = self.closed_form(key)
        if closed is not None:
            with np.errstate(all="ignore"):
                out = np.broadcast_to(_lambdify((Q,), closed, self.name)(q), q.shape).astype(float)
            small = q < _SERIES_Q
            series = _small_q_series(closed) if np.any(small) else None
            if series is not None:
                out[small] = _lambdify((Q,), series, self.name)(q[small])
            return out
        if key == "dV":  # derivative-free form, THEORY.md 2.1 (exact for kinked phi too)
            square = _function(self._phi ** 2, self.name, "phi^2")
            moment = self._one_dimensional(lambda z: square(z) * z * z, q)   # <phi^2 z^2>
            return (moment - q * self._one_dimensional(square, q)) / (2.0 * q ** 2)
        return self._one_dimensional(_function(integrand(), self.name, _DESCRIBE[key]), q)

    @staticmethod
    def _one_dimensional(f, q):
        """<f>_q for each q: the whitened rule up to q = 16, scipy.integrate.quad beyond."""
        out = np.empty_like(q)
        small = q <= _LARGE_Q
        with np.errstate(all="ignore"):
            if np.any(small):
                out[small] = _gaussian_average(f, q[small][:, None, None])
            for i in np.flatnonzero(~small):
                out[i] = _quad_average(f, float(q[i]))
        return out

    def _pair(self, key, q, c, integrand):
        q, c = np.broadcast_arrays(np.asarray(q, dtype=float), np.clip(np.asarray(c, dtype=float), -1.0, 1.0))
        shape = q.shape
        q, c = q.ravel(), c.ravel()
        closed = self.closed_form(key)
        if closed is not None:
            with np.errstate(all="ignore"):
                out = np.broadcast_to(_lambdify((Q, C), closed, self.name)(q, c), q.shape).astype(float)
        else:
            f = _function(integrand, self.name, _DESCRIBE[key])
            cov = np.empty((q.size, 2, 2))
            cov[:, 0, 0] = cov[:, 1, 1] = q
            cov[:, 0, 1] = cov[:, 1, 0] = q * c
            with np.errstate(all="ignore"):
                out = _gaussian_average(lambda a, b: f(a) * f(b), cov)
        if not np.all(np.isfinite(out)):
            bad = np.flatnonzero(~np.isfinite(out))[0]
            raise DivergenceError(f"activation {self.name}: the Gaussian average {_DESCRIBE[key]} diverges at "
                                  f"q = {q[bad]:.6g}, c = {c[bad]:.6g}")
        return out.reshape(shape)

    def _limit_at_zero(self, key):
        if key not in self._zero:
            self._zero[key] = self._compute_limit_at_zero(key)
        return self._zero[key]

    def _compute_limit_at_zero(self, key):
        closed = self.closed_form(key)
        if closed is not None:
            value = sp.limit(closed, Q, 0, "+")
            if _is_finite_number(value):
                return float(value)
        if self._taylor is not None:
            p0, p1, p2 = self._taylor[:3]
            value = {"V": p0 ** 2, "dV": p1 ** 2 + p0 * p2, "S": p1 ** 2}[key]
            return float(value)
        return float(self._positive(key, np.array([1e-12]),
                                    {"V": lambda: self._phi ** 2, "S": lambda: self._dphi ** 2}.get(key))[0])


_DESCRIBE = {"V": "<phi^2>", "dV": "d<phi^2>/dq", "S": "<phi'^2>", "P": "<phi(u) phi(v)>",
             "dP": "<phi'(u) phi'(v)>", "ddP": "<phi''(u) phi''(v)>", "phi^2": "<phi^2>"}


def _closed(expr):
    """The closed form, or None when an unevaluated average remains; a divergent one raises later."""
    if expr.has(GaussianExpectation):
        return None
    return expr


@lru_cache(maxsize=256)
def _small_q_series(expr):
    """The Taylor polynomial of a closed form in q at 0 (degree < 8), or None if it is not analytic
    there. Used below q = 1e-3, where formulas such as (1 - e^{-2q})/2 lose digits to cancellation
    (the dropped terms are O(q^8) relative)."""
    try:
        series = sp.series(expr, Q, 0, 8).removeO()
    except Exception:  # sympy raises many types for non-analytic expressions
        return None
    if not series.is_polynomial(Q) or series.has(sp.zoo, sp.oo, sp.nan):
        return None
    return sp.expand(series)


@lru_cache(maxsize=256)
def _lambdify(args, expr, name):
    if expr.has(sp.zoo, sp.oo, sp.nan):
        raise DivergenceError(f"activation {name}: a Gaussian average diverges ({expr}); for the step or "
                              "sign activation phi' is a delta function and chi_perp is infinite")
    return numpy_function(args, expr, f"average for activation {name}")


@lru_cache(maxsize=256)
def _function(expr, name, what):
    f = numpy_function(_z, expr, f"the integrand {what} of activation {name}")

    def apply(z):
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(f(z), dtype=float), np.shape(z))

    return apply


def _taylor_at_zero(phi, order: int = 4):
    """(phi(0), phi'(0), ..., phi^(order-1)(0)) as sympy numbers if phi is analytic at 0, else None."""
    if phi.has(*_KINKS):
        return None
    values = []
    for k in range(order):
        value = sp.simplify(sp.diff(phi, _z, k).subs(_z, 0))
        if not _is_finite_number(value):
            return None
        values.append(value)
    return tuple(values)


def taylor_coefficients(activation, order: int = 4):
    """phi^(p)(0) for p < ``order`` (sympy numbers), or None if phi is not analytic at 0."""
    act = get_activation(activation)
    return _taylor_at_zero(act.expr.subs(_x, _z), order)


@lru_cache(maxsize=64)
def _cached(activation: Activation) -> ActivationAverages:
    return ActivationAverages(activation)


def averages(activation) -> ActivationAverages:
    """The (cached) :class:`ActivationAverages` of an activation name, expression or Activation."""
    return _cached(get_activation(activation))


def quiet(func, *args, **kwargs):
    """Call ``func`` with the quadrature's convergence warnings silenced (for coarse scans)."""
    from fieldnet.numeric.quadrature import QuadratureWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuadratureWarning)
        return func(*args, **kwargs)
