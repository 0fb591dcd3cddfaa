"""Criticality and signal propagation at infinite width, for any activation.

Conventions (THEORY.md sections 0 and 3; Poole et al. arXiv:1606.05340, Schoenholz et al.
arXiv:1611.01232, Roberts–Yaida–Hanin arXiv:2106.10165 ch. 5). Dictionary: sigma_w^2 = C_W,
sigma_b^2 = C_b, q = K_aa, c = K_ab / sqrt(K_aa K_bb), chi_1 = chi_perp. For z ~ N(0, q):

    variance map        q^{l+1} = C_b + C_W <phi(z)^2>_{q^l},         fixed point q*
    correlation map     c^{l+1} = [C_b + C_W <phi(u) phi(v)>_{q*, c^l}] / q*,   (u, v) ~ N(0, q*[[1, c], [c, 1]])
    chi_parallel = C_W d<phi^2>_q/dq |_{q*} = (C_W / 2 q*^2) <phi^2 (z^2 - q*)>_{q*}
    chi_perp     = C_W <phi'(z)^2>_{q*}                   (= chi_1; the slope of the correlation map at c = 1)
    chi_c        = C_W <phi'(u) phi'(v)>_{q*, c*}         (the slope at the fixed point c*)
    xi_q = -1 / log|chi_parallel|,   xi_c = -1 / log chi_c   (infinite when the slope is 1)

Phases: **ordered** (chi_1 < 1: c* = 1 attracts), **chaotic** (chi_1 > 1: c = 1 repels and c* < 1 is
the root of the correlation map in [0, 1), unique because the map is increasing and convex on
[0, 1] by Mehler's expansion), **critical** (|chi_1 - 1| <= ``CRITICAL_TOL``: xi_c = inf).

The fixed point q* is the one the iteration reaches from ``q0`` (the input's K^(1), default 1):
F(q) = C_b + C_W <phi^2>_q - q is scanned from q0 in factors of 2 towards the side the map moves
and the first sign change is bisected. Edge cases:

* **no fixed point** (the map grows past ``q_max``: exp, or relu with C_W > 2): :class:`DivergenceError`;
* **q* = 0** (C_b = 0, phi(0) = 0 and chi_1 <= 1 at q = 0, e.g. tanh with C_W <= 1; also any
  fixed point below 1e-12 q0): reported as q* = 0 with the limits q -> 0+ of the susceptibilities (Taylor values); the correlation map is
  0/0 there and c* = 1, chi_c = chi_1 are its limits C_b -> 0+ (the ordered side);
* **a line of fixed points** (scale-invariant phi at C_W = 1/A2, C_b = 0): q* = q0.

Depth scales that are infinite are returned as ``math.inf``; :meth:`SignalPropagation.as_dict`
turns them into ``None`` (JSON ``null``, since ``Infinity`` is not valid JSON).

The critical line (THEORY.md 3.1), parameterised by q* > 0:

    C_W(q*) = 1 / <phi'^2>_{q*},      C_b(q*) = q* - C_W(q*) <phi^2>_{q*}      (physical where C_b >= 0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from fieldnet.analysis.averages import averages, quiet
from fieldnet.errors import DivergenceError, ParameterError, positive_number, require

CRITICAL_TOL = 1e-9   # |chi - 1| below this counts as exactly 1 (critical; infinite depth scale)
Q_MAX = 1e6           # the variance map is declared divergent beyond this q
_Q_MIN_FACTOR = 1e-12  # scanning down from q0 stops at q0 * this and reports q* = 0 if F(0) = 0


_positive = positive_number   # shared validation (fieldnet.errors)


def depth_scale(chi: float) -> float:
    """xi = -1 / log|chi| (layers over which a perturbation changes by a factor e); inf at |chi| = 1.

    Negative when |chi| > 1: the fixed point repels and -xi is the growth length."""
    a = abs(float(chi))
    if abs(a - 1.0) <= CRITICAL_TOL:
        return math.inf
    if a == 0.0:
        return 0.0
    return -1.0 / math.log(a)


# ---------------------------------------------------------------------------------------------
# the variance map and its fixed point


def variance_map(activation, weight_var, bias_var, q):
    """q^{l+1} = C_b + C_W <phi^2>_{q^l} (vectorised over q)."""
    return bias_var + weight_var * averages(activation).second_moment(q)


def _bisect(F, lo, hi, f_lo, iterations=200):
    """Vectorised bisection of F on brackets [lo, hi] where sign F(lo) = sign f_lo != sign F(hi)."""
    lo, hi = lo.copy(), hi.copy()
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if np.all((hi - lo) <= 4e-16 * np.maximum(np.abs(hi), 1e-300)):
            break
        f_mid = F(mid)
        same = np.sign(f_mid) == np.sign(f_lo)
        lo = np.where(same, mid, lo)
        hi = np.where(same, hi, mid)
    return 0.5 * (lo + hi)


def fixed_points_q(activation, weight_var, bias_var, q0=1.0, q_max=Q_MAX):
    """q* for arrays of (C_W, C_b) (broadcast); ``inf`` where the variance map has no fixed point
    below ``q_max``. See :func:`fixed_point_q` for the scalar, checked version."""
    avg = averages(activation)
    cw, cb, q0 = (np.asarray(a, dtype=float) for a in np.broadcast_arrays(weight_var, bias_var, q0))
    shape = cw.shape
    cw, cb, q0 = cw.ravel(), cb.ravel(), q0.ravel()

    def F(q, idx):
        with np.errstate(all="ignore"):
            value = cb[idx] + cw[idx] * quiet(_safe_moment, avg, q) - q
        return np.where(np.isfinite(value), value, np.inf)

    idx_all = np.arange(cw.size)
    f0 = F(q0, idx_all)
    out = np.full(cw.size, np.nan)
    flat = np.abs(f0) <= 1e-13 * np.maximum(q0, 1.0)  # q0 is (numerically) a fixed point
    out[flat] = q0[flat]
    lo, hi, f_lo = q0.copy(), q0.copy(), f0.copy()
    # upward: the first q0 2^k with F <= 0
    todo = np.flatnonzero((f0 > 0) & ~flat)
    q = q0.copy()
    while todo.size:
        q_next = np.minimum(2.0 * q[todo], q_max)
        f_next = F(q_next, todo)
        found = f_next <= 0
        lo[todo[found]], hi[todo[found]], f_lo[todo[found]] = q[todo[found]], q_next[found], 1.0
        stuck = ~found & (q_next >= q_max)
        out[todo[stuck]] = np.inf
        q[todo] = q_next
        todo = todo[~found & ~stuck]
    # downward: the first q0 2^-k with F >= 0, then q = 0
    todo = np.flatnonzero((f0 < 0) & ~flat)
    q = q0.copy()
    while todo.size:
        q_next = 0.5 * q[todo]
        at_bottom = q_next < q0[todo] * _Q_MIN_FACTOR
        q_next = np.where(at_bottom, 0.0, q_next)
        f_next = F(q_next, todo)
        found = f_next >= 0
        zero = found & at_bottom & (f_next <= 0)
        out[todo[zero]] = 0.0
        take = found & ~zero
        lo[todo[take]], hi[todo[take]], f_lo[todo[take]] = q_next[take], q[todo[take]], 1.0
        q[todo] = q_next
        todo = todo[~found]
    bracket = np.flatnonzero(np.isnan(out))
    if bracket.size:
        out[bracket] = _bisect(lambda qq: F(qq, bracket), lo[bracket], hi[bracket], f_lo[bracket])
    return out.reshape(shape)


def _safe_moment(avg, q):
    try:
        return avg.second_moment(q)
    except DivergenceError:  # overflow in a scan: treat element-wise
        out = np.empty_like(q)
        for i, qi in enumerate(q):
            try:
                out[i] = avg.second_moment(np.array([qi]))[0]
            except DivergenceError:
                out[i] = np.inf
        return out


def fixed_point_q(activation, weight_var, bias_var, q0=1.0, q_max=Q_MAX) -> float:
    """The fixed point q* = C_b + C_W <phi^2>_{q*} that the variance map reaches from q0.

    Raises :class:`DivergenceError` when q^(l) grows past ``q_max`` without a fixed point."""
    cw = _positive(weight_var, "weight_var")
    cb = _positive(bias_var, "bias_var", allow_zero=True)
    q0 = _positive(q0, "q0")
    q_max = _positive(q_max, "q_max")
    require(q_max > q0, "q_max", f"must exceed q0 = {q0}, got {q_max}")
    q_star = float(fixed_points_q(activation, cw, cb, q0, q_max))
    if not math.isfinite(q_star):
        name = averages(activation).name
        raise DivergenceError(f"weight_var: no fixed point of the variance map for {name} at C_W = {cw:g}, "
                              f"C_b = {cb:g}: q^(l) grows without bound (past q = {q_max:g}) from q0 = {q0:g}")
    return q_star


# ---------------------------------------------------------------------------------------------
# susceptibilities and the correlation map


def susceptibilities(activation, weight_var, q):
    """(chi_parallel, chi_perp) = (C_W d<phi^2>/dq, C_W <phi'^2>) at variance q (vectorised)."""
    avg = averages(activation)
    return weight_var * avg.second_moment_slope(q), weight_var * avg.derivative_moment(q)


def correlation_map(activation, weight_var, bias_var, c, q_star=None):
    """c^{l+1} = [C_b + C_W <phi(u) phi(v)>_{q*, c}] / q* (vectorised over c; q* computed if not given)."""
    q_star = fixed_point_q(activation, weight_var, bias_var) if q_star is None else float(q_star)
    require(q_star > 0, "q_star", "the correlation map needs q* > 0 (at q* = 0 it is 0/0)")
    return (bias_var + weight_var * averages(activation).pair(q_star, c)) / q_star


def fixed_point_c(activation, weight_var, bias_var, q_star=None) -> tuple[float, float]:
    """(c*, chi_c): the attracting fixed point of the correlation map and its slope
    chi_c = C_W <phi'(u) phi'(v)>_{q*, c*}. c* = 1 unless the phase is chaotic; then c* is the
    root in [0, 1) (see the module docstring)."""
    cw = _positive(weight_var, "weight_var")
    cb = _positive(bias_var, "bias_var", allow_zero=True)
    q_star = fixed_point_q(activation, cw, cb) if q_star is None else float(q_star)
    avg = averages(activation)
    chi_1 = cw * float(avg.derivative_moment(q_star))
    if q_star == 0.0 or chi_1 <= 1.0 + CRITICAL_TOL:
        return 1.0, chi_1

    def G(c):
        return float(correlation_map(activation, cw, cb, c, q_star)) - c

    hi = None
    for k in range(1, 48):  # G < 0 just below 1 in the chaotic phase
        c = 1.0 - 2.0 ** -k
        if G(c) < 0:
            hi = c
            break
    if hi is None:  # chi_1 within rounding of 1: the root merges with c = 1
        return 1.0, chi_1
    c_star = 0.0 if G(0.0) == 0.0 else brentq(G, 0.0, hi, xtol=1e-15, rtol=1e-15)
    return float(c_star), cw * float(avg.derivative_pair(q_star, c_star))


def phase_of(chi_perp: float) -> str:
    """'ordered' (chi_1 < 1), 'chaotic' (chi_1 > 1) or 'critical' (|chi_1 - 1| <= CRITICAL_TOL)."""
    if abs(chi_perp - 1.0) <= CRITICAL_TOL:
        return "critical"
    return "ordered" if chi_perp < 1.0 else "chaotic"


@dataclass(frozen=True)
class SignalPropagation:
    """Fixed points, susceptibilities, depth scales and phase at one (C_W, C_b)."""

    activation: str
    weight_var: float
    bias_var: float
    q_star: float
    c_star: float
    chi_parallel: float
    chi_perp: float
    chi_c: float
    xi_q: float
    xi_c: float
    phase: str

    def as_dict(self) -> dict:
        """JSON-ready: infinite depth scales become None (JSON null)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("xi_q", "xi_c"):
            if math.isinf(out[key]):
                out[key] = None
        return out


def signal_propagation(activation, weight_var, bias_var, q0=1.0) -> SignalPropagation:
    """Everything of the module docstring at one point (C_W, C_b)."""
    cw = _positive(weight_var, "weight_var")
    cb = _positive(bias_var, "bias_var", allow_zero=True)
    q_star = fixed_point_q(activation, cw, cb, q0)
    chi_par, chi_perp = (float(v) for v in susceptibilities(activation, cw, q_star))
    c_star, chi_c = fixed_point_c(activation, cw, cb, q_star)
    phase = phase_of(chi_perp)
    xi_c = math.inf if phase == "critical" else depth_scale(chi_c)
    return SignalPropagation(averages(activation).name, cw, cb, q_star, c_star, chi_par, chi_perp, chi_c,
                             depth_scale(chi_par), xi_c, phase)


# ---------------------------------------------------------------------------------------------
# the critical line


@dataclass(frozen=True)
class CriticalLine:
    """Points (C_W, C_b) with chi_1 = 1 at the fixed point q*, one per q*; ``physical`` marks C_b >= 0."""

    activation: str
    q_star: np.ndarray
    weight_var: np.ndarray
    bias_var: np.ndarray

    @property
    def physical(self) -> np.ndarray:
        return self.bias_var >= 0


def critical_line(activation, q_star) -> CriticalLine:
    """C_W = 1/<phi'^2>_{q*}, C_b = q* - C_W <phi^2>_{q*} for each q* >= 0 (THEORY.md 3.1).

    At q* = 0 the values are the limits (C_W = 1/phi'(0)^2, C_b = -C_W phi(0)^2)."""
    q = np.atleast_1d(np.asarray(q_star, dtype=float))
    require(q.ndim == 1 and np.all(np.isfinite(q)) and np.all(q >= 0), "q_star",
            "expected finite values >= 0")
    avg = averages(activation)
    s = avg.derivative_moment(q)
    require(bool(np.all(s > 0)), "activation", f"{avg.name}: <phi'^2> = 0, so chi_1 = 0 for every C_W")
    cw = 1.0 / s
    return CriticalLine(avg.name, q, cw, q - cw * avg.second_moment(q))


def critical_point(activation, bias_var, q_range=(1e-8, 1e4)) -> tuple[float, float | None]:
    """(C_W, q*) of the critical line at the given C_b (the point with the smallest q* if several).

    C_b = 0 uses the exact limit q* -> 0 where it exists (K* = 0 and half-stable classes:
    C_W = 1/phi'(0)^2, q* = 0) and the scale-invariant point C_W = 1/A2, where every q is a fixed
    point (q* = None). Otherwise the root in q* of C_b(q*) = bias_var is searched on ``q_range``
    (the numerically resolvable C_b is above ~1e-23 for tanh, whose line starts as C_b ~ 4 q*^3/3).
    Raises :class:`ParameterError` when the line does not reach this C_b."""
    from fieldnet.analysis.universality import universality_class

    cb = _positive(bias_var, "bias_var", allow_zero=True)
    uc = universality_class(activation)
    if cb == 0.0 and uc.critical_weight_var is not None:
        return float(uc.critical_weight_var), (None if uc.name == "scale-invariant" else 0.0)
    if uc.name == "scale-invariant":
        raise ParameterError(
            f"bias_var: {uc.activation} is scale-invariant; its critical line is the single point "
            f"C_W = {uc.critical_weight_var}, C_b = 0 (at C_b = {cb:g} > 0 and C_W = {uc.critical_weight_var}, "
            "chi_1 = 1 but q^(l) grows linearly without a fixed point)")
    grid = np.geomspace(q_range[0], q_range[1], 121)
    line = quiet(critical_line, activation, grid)
    g = line.bias_var - cb
    sign_change = np.flatnonzero(np.sign(g[:-1]) * np.sign(g[1:]) <= 0)
    if sign_change.size == 0:
        lo, hi = float(np.min(line.bias_var)), float(np.max(line.bias_var))
        raise ParameterError(
            f"bias_var: the critical line of {line.activation} does not reach C_b = {cb:g} for q* in "
            f"[{q_range[0]:g}, {q_range[1]:g}] (there C_b ranges over [{lo:.6g}, {hi:.6g}])")
    i = sign_change[0]
    h = (lambda q: float(critical_line(activation, [q]).bias_var[0]) - cb)
    q_star = brentq(h, grid[i], grid[i + 1], xtol=1e-14, rtol=1e-15)
    return float(critical_line(activation, [q_star]).weight_var[0]), float(q_star)


def critical_weight_var(activation, bias_var, q_range=(1e-8, 1e4)) -> float:
    """The C_W of the critical line at the given C_b (see :func:`critical_point`)."""
    return critical_point(activation, bias_var, q_range)[0]


def signal_propagation_at_critical_line(activation, bias_var) -> SignalPropagation:
    """:func:`signal_propagation` at the point of the critical line at this C_b, started from its q*.

    Raises :class:`DivergenceError` for the half-stable class at C_b = 0 (GELU, SWISH): there the
    critical fixed point is q* = 0, which repels (a1 > 0), and the variance map runs away from it."""
    from fieldnet.analysis.universality import universality_class

    cw, q_star = critical_point(activation, bias_var)
    if q_star == 0.0 and universality_class(activation).name == "half-stable":
        uc = universality_class(activation)
        raise DivergenceError(
            f"bias_var: the critical line of {uc.activation} reaches C_b = 0 only at q* -> 0 (C_W = "
            f"{uc.critical_weight_var}), a fixed point that repels since a1 = {uc.a1} > 0; choose C_b > 0")
    return signal_propagation(activation, cw, bias_var, q0=q_star or 1.0)


def chi_perp_grid(activation, weight_vars, bias_vars, q0=1.0):
    """(q*, chi_1) on the grid C_W x C_b (arrays of shape (len(bias_vars), len(weight_vars)));
    chi_1 = inf where the variance map diverges. For phase diagrams."""
    cw, cb = np.meshgrid(np.asarray(weight_vars, dtype=float), np.asarray(bias_vars, dtype=float))
    q = fixed_points_q(activation, cw, cb, q0)
    chi = np.full_like(q, np.inf)
    ok = np.isfinite(q)
    chi[ok] = cw[ok] * quiet(averages(activation).derivative_moment, q[ok])
    return q, chi
