"""Replica theory of spherical mixed p-spin models for any covariance xi (issue 7).

The model: a centred Gaussian field H on the sphere S^{N-1}(sqrt N) with

    E H(x) H(y) = N xi(x.y / N),    xi(q) = sum_p a_p q^p,  a_p >= 0,  xi(0) = 0,

given as vectorised callables xi, xi', xi'' on [0, 1] (xi''(1) may be +inf, as for ReLU networks;
xi'(0) > 0 is a random external field). Only differences of xi and values of xi', xi'' enter below,
so an additive constant in xi is harmless.

Conventions (the project's)
---------------------------
* dsigma is the uniform *probability* measure on the sphere and the free energy is
  P(beta) = lim (1/N) E ln int dsigma(x) exp(-beta H(x))   (P = beta^2 xi(1)/2 at high temperature).
* Energies are SIGNED per input dimension: u = <H>/N = -dP/dbeta (negative at low temperature) and
  u_GS = lim (1/N) min_x H(x) < 0. The formula references write e = -u (a positive ground-state energy).
  Entropy s = P + beta u <= 0 is the log of the fraction of the sphere at energy u.

Crisanti-Sommers / Parisi functional (Crisanti & Sommers, Z. Phys. B 87, 341 (1992); proved by
Talagrand, PTRF 134, 339 (2006), and Chen, EJP 18, 94 (2013), arXiv:1204.5115): P(beta) = inf over
Parisi CDFs x(q) on [0, 1] of

    P(x) = (1/2) [ beta^2 int_0^1 x(q) xi'(q) dq + int_0^{q_max} dq / lambda(q) + ln(1 - q_max) ],
    lambda(q) = int_q^1 x(s) ds,   q_max = top of the support of x.

k-step RSB: x = 0 on [0, q_0), m_i on [q_{i-1}, q_i) (i = 1..k), 1 on [q_k, 1], with
0 <= q_0 <= ... <= q_k < 1 and 0 < m_1 <= ... <= m_k <= 1 (k = 0 is RS). Then lambda is piecewise
linear, lambda_k = 1 - q_k, lambda_{i-1} = lambda_i + m_i (q_i - q_{i-1}), and

    2P = beta^2 [ sum_i m_i (xi(q_i) - xi(q_{i-1})) + xi(1) - xi(q_k) ]
         + q_0 / lambda_0 + sum_i (1/m_i) ln(lambda_{i-1} / lambda_i) + ln(1 - q_k),

with no quadrature. Its gradient is exact: d(2P)/dq_i = (m_i - m_{i+1}) [beta^2 xi'(q_i) - int_0^{q_i} dq/lambda^2]
(m_0 = 0, m_{k+1} = 1), the usual stationarity condition. u = -beta int x xi' (envelope theorem).
For RS (x = 1[q >= q0]) this is

    P = (1/2) [beta^2 (xi(1) - xi(q)) + q/(1-q) + ln(1-q)],   beta^2 xi'(q) = q/(1-q)^2,
    u = -beta (xi(1) - xi(q)),   s = (1/2) [-beta^2 (xi(1) - xi(q)) + q/(1-q) + ln(1-q)],

and RS is locally stable (de Almeida-Thouless) iff the replicon 1 - beta^2 xi''(q) (1-q)^2 >= 0. On the RS
branch with q > 0 the saddle gives beta^2 (1-q)^2 = q / xi'(q), so the AT condition reads q xi''(q) <= xi'(q).

Zero temperature (derived here; the form of Chen & Sen, arXiv:1512.08492, after an integration by parts).
Put x(q) = alpha(q)/beta on [0, q_max), 1 - q_max = Lambda_top/beta, and L = Lambda_top + int_0^1 alpha.
Then lambda(q) = Lambda(q)/beta with Lambda(q) = L - int_0^q alpha, the ln(1 - q_max) term is O(ln beta),
beta^2 (xi(1) - xi(q_max)) -> beta xi'(1) Lambda_top, and P/beta -> -u_GS with

    u_GS = -(1/2) min_{L, alpha} [ xi'(1) L - int_0^1 alpha(q) (xi'(1) - xi'(q)) dq + int_0^1 dq / (L - int_0^q alpha) ]
         = -(1/2) min [ xi'(1) Lambda_top + int_0^1 alpha xi' dq + int_0^1 dq / Lambda(q) ],

alpha >= 0 non-decreasing, Lambda_top = L - int_0^1 alpha > 0. Note int_0^1 alpha (xi'(1) - xi'(q)) dq =
int_0^1 xi''(q) (int_0^q alpha) dq: it equals "int xi''(q) alpha(q) q dq" only for constant alpha (one step
starting at q = 0); the form above is the one the large-beta k-RSB numerics confirm
(tests/test_landscape_spherical.py). k steps: alpha = 0 on [0, q_0), a_i on [q_{i-1}, q_i), q_k = 1, so

    -2 u_GS = min [ xi'(1) Lambda_k + sum_i a_i (xi(q_i) - xi(q_{i-1}))
                    + q_0/Lambda_0 + sum_i (1/a_i) ln(Lambda_{i-1}/Lambda_i) ],

Lambda_{i-1} = Lambda_i + a_i (q_i - q_{i-1}): the finite-beta formula with m -> a, lambda -> Lambda and the
top plateau replaced by xi'(1) Lambda_k. RS (k = 0): u_GS = -sqrt(xi'(1)), exact iff xi''(1) <= xi'(1).

The brief's literal reading "- int_0^1 xi''(q) alpha(q) q dq" with alpha the step function is NOT equivalent for
q_0 > 0 or several steps, and is unbounded below for xi = q^2/2 + 0.1 q^4 (alpha -> inf on [0.8, 1)).

Numerics. k-step optima are found by bounded truncated Newton (scipy TNC) with the exact gradients above, in
log-variables 1 - q_i = exp(-sum_{j<=i} t_j), m_i = exp(-sum_{j>=i} w_j) (T = 0: alpha_i = exp(sum_{j<=i} v_j),
Lambda_k = e^l), which keep the order constraints as boxes and resolve q -> 1, m -> 0 at low temperature. Starts:
every split of a plateau of the (k-1)-step optimum (one of them exactly degenerate, so the k-step result is never
worse than k-1) plus a few seeded random points. The energy at finite beta comes from the optimal parameters
(error ~ 1e-8); at T = 0 it is the optimal value itself (~ 1e-12). Results are cached per model instance.
Checks (tests/test_landscape_spherical.py): the 1RSB T = 0 energy of pure p = 3, 4 equals the zero of the
Kac-Rice complexity of Auffinger, Ben Arous & Cerny (arXiv:1003.1129) to 1e-9 (-1.656998 for xi = q^3, i.e.
-1.171675 for xi = q^3/2); k-RSB at beta = 200..800 extrapolates to the T = 0 k-step optimum with
u(beta) = u_GS + 1/(2 beta) + O(beta^-2).

Phase diagnostics: :meth:`SphericalModel.phase` compares k-RSB optima for k = 0..k_max. Talagrand's
criterion as recalled (Talagrand 2006; not re-derived here, informational only): if xi''(q)^{-1/2} is convex on
(0, 1], the Parisi measure is at most 1RSB. Example: xi = q^2/2 + c q^4 is FRSB at T = 0 for small c (c = 0.1:
k-RSB energies keep rising, levels spread) and 1RSB for large c (c = 10: one step at q_0 = 0); xi''^{-1/2} is
concave on q < 1/sqrt(24 c).

The RS root search assumes xi'(q) <= xi'(1) on [0, 1] (true for non-negative coefficients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, minimize

from fieldnet.errors import DivergenceError, ParameterError, require

_AT_TOL = 1e-9          # replicon >= -_AT_TOL counts as stable (pure 2-spin is exactly marginal)
_T_MAX, _W_MAX = 40.0, 60.0     # bounds of the log-variables: 1 - q >= e^-40 per level, m >= e^-60
_OPT = dict(maxfun=2000, ftol=1e-15, gtol=1e-11)   # TNC: L-BFGS-B setulb is BLAS-bound and slow on busy cores


# ----------------------------------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class RSSolution:
    """Replica-symmetric saddle at inverse temperature beta (energy, entropy per input dimension, signed)."""
    beta: float
    q: float
    free_energy: float
    energy: float
    entropy: float
    replicon: float
    stable: bool


@dataclass(frozen=True)
class ParisiSolution:
    """k-RSB optimum: q = (q_0..q_k), m = (m_1..m_k); levels = RSB steps left after merging degenerate ones."""
    beta: float
    k: int
    q: np.ndarray
    m: np.ndarray
    free_energy: float
    energy: float
    entropy: float
    levels: int
    converged: bool


@dataclass(frozen=True)
class GroundState:
    """T = 0 k-step optimum of the Chen-Sen functional: alpha = a_i on [q_{i-1}, q_i), q_k = 1, L as above."""
    k: int
    energy: float
    q: np.ndarray
    alpha: np.ndarray
    L: float
    levels: int
    converged: bool


@dataclass(frozen=True)
class Phase:
    """Replica phase at beta (None: T = 0). energies[k] (and free_energies[k] at finite beta), k = 0..k_max."""
    label: str
    reason: str
    beta: float | None
    energies: tuple
    free_energies: tuple | None
    levels: tuple
    rs_replicon: float
    talagrand_convex: bool | None


@dataclass(frozen=True)
class EntropyCurve:
    """Thermodynamics along betas: RS branch (u_rs, s_rs, replicon) and the equilibrium (u, s, free_energy):
    RS where it is the optimum, k-RSB where that lowers P by more than tol (mask rsb)."""
    beta: np.ndarray
    u_rs: np.ndarray
    s_rs: np.ndarray
    replicon: np.ndarray
    u: np.ndarray
    s: np.ndarray
    free_energy: np.ndarray
    rsb: np.ndarray
    k: int


# ----------------------------------------------------------------------------------------------------- helpers
def _log1p_over(z):
    """ln(1+z)/z, = 1 at z = 0."""
    z = np.asarray(z, dtype=float)
    small = np.abs(z) < 1e-6
    zs = np.where(small, 1.0, z)
    return np.where(small, 1.0 - z / 2 + z * z / 3, np.log1p(zs) / zs)


def _cs_core(y, m, lam_top):
    """Entropic part B = q_0/lambda_0 + sum_i (1/m_i) ln(lambda_{i-1}/lambda_i) of the CS functional.

    y = 1 - q (k+1 levels, non-increasing), m (k values), lam_top = lambda_k. Returns B, G (G_i = -int_0^{q_i}
    dq/lambda^2) and mdB (m_i dB/dm_i at fixed q and lambda_k); see the module docstring for the adjoints.
    """
    k = len(m)
    delta = y[:-1] - y[1:]
    lam = np.empty(k + 1)
    lam[k] = lam_top
    for i in range(k, 0, -1):
        lam[i - 1] = lam[i] + m[i - 1] * delta[i - 1]
    q0 = 1.0 - y[0]
    ratio = delta / lam[1:]
    logs = ratio * _log1p_over(m * ratio)            # (1/m_i) ln(lambda_{i-1}/lambda_i)
    B = q0 / lam[0] + logs.sum()
    G = np.empty(k + 1)
    G[0] = -q0 / lam[0] ** 2
    for i in range(1, k + 1):
        G[i] = G[i - 1] - delta[i - 1] / (lam[i - 1] * lam[i])
    mdB = -logs + delta / lam[:-1] + m * delta * G[:-1]
    return B, G, mdB


def _y_from_t(t):
    return np.exp(-np.cumsum(t))


def _t_from_y(y):
    y = np.clip(np.minimum.accumulate(np.asarray(y, float)), math.exp(-_T_MAX * len(y)), 1.0)
    t = -np.diff(np.log(np.concatenate([[1.0], y])))
    return np.clip(t, 0.0, _T_MAX)


def _effective_levels(edges, values, top, tol=1e-4):
    """Number of intermediate plateaus of a step function: segments [edges_i, edges_{i+1}) with values_i,
    after dropping segments narrower than tol and merging neighbours that agree to tol (relative).
    The outer values 0 (bottom) and `top` (1 at finite beta, none at T = 0) do not count."""
    segs = [(e1 - e0, v) for e0, e1, v in zip(edges[:-1], edges[1:], values) if e1 - e0 > tol]
    merged = []
    for _, v in segs:
        if merged and abs(v - merged[-1]) <= tol * max(1.0, abs(v)):
            continue
        merged.append(v)
    return sum(1 for v in merged if v > tol * max(1.0, top or 1.0) and (top is None or v < top * (1 - tol)))


def _split_starts(edges, values, top):
    """Starts for k+1 levels from a k-level step function (values[j] on [edges[j], edges[j+1])): each segment split
    at its midpoint: exactly (a degenerate copy, same functional), with the upper half moved half-way to the next
    value (to 1.5 x value + 0.1 past the last segment when there is no cap `top`), and for the top segment also with
    its lower half moved half-way down to the previous value."""
    out = []
    for j in range(len(values)):
        mid = 0.5 * (edges[j] + edges[j + 1])
        e = np.insert(edges, j + 1, mid)
        nxt = values[j + 1] if j + 1 < len(values) else (top if top is not None else 1.5 * values[j] + 0.1)
        below = values[j - 1] if j > 0 else 0.0
        variants = [(values[j], values[j]), (values[j], 0.5 * (values[j] + nxt))]
        if j == len(values) - 1:           # the top plateau: also move its lower half down
            variants.append((0.5 * (below + values[j]), values[j]))
        for lower, upper in variants:
            v = np.insert(values, j + 1, upper)
            v[j] = lower
            out.append((e, v))
    return out


def _check_beta(beta):
    require(isinstance(beta, (int, float, np.floating, np.integer)) and not isinstance(beta, bool)
            and math.isfinite(beta) and beta > 0, "beta", f"must be a finite number > 0, got {beta!r}")
    return float(beta)


def _check_k(k, name="k"):
    require(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0, name,
            f"must be an integer >= 0, got {k!r}")
    return int(k)


def _best_of(fun, starts, bounds):
    """Truncated Newton with bounds (TNC, exact gradients) from each start; the lowest finite optimum, or DivergenceError."""
    best = None
    for x0 in starts:
        x0 = np.clip(np.asarray(x0, float), [b[0] for b in bounds], [b[1] for b in bounds])
        try:
            res = minimize(fun, x0, jac=True, method="TNC", bounds=bounds, options=_OPT)
        except (FloatingPointError, ValueError, ZeroDivisionError):
            continue
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise DivergenceError("parameters: the Crisanti-Sommers functional could not be minimised from any start")
    g = np.asarray(fun(best.x)[1])
    lo, hi = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
    free = ~(((best.x <= lo) & (g > 0)) | ((best.x >= hi) & (g < 0)))      # components not pushing into a bound
    best.converged = bool(best.success or np.max(np.abs(g[free]), initial=0.0) <= 1e-7 * (1 + abs(best.fun)))
    return best


# ----------------------------------------------------------------------------------------------------- the model
class SphericalModel:
    """Spherical mixed p-spin model with covariance N xi(x.y/N) (conventions in the module docstring).

    ``xi``, ``xi_prime``, ``xi_second``: vectorised callables on [0, 1]. With ``xi_second=None``, xi'' is
    estimated by central finite differences of xi' (one-sided at the ends, step 1e-5); at q = 1 the backward
    differences at steps 1e-4 and 1e-6 are compared and +inf is returned when they grow like a power of the
    step (ratio > 3, e.g. the (1-q)^{-1/2} singularity of ReLU networks), else the 1e-6 value.
    """

    def __init__(self, xi, xi_prime, xi_second=None, *, name="xi"):
        for pname, f in (("xi", xi), ("xi_prime", xi_prime)):
            require(callable(f), pname, f"must be a callable, got {type(f).__name__}")
        require(xi_second is None or callable(xi_second), "xi_second",
                f"must be a callable or None, got {type(xi_second).__name__}")
        self._xi, self._xp, self._x2 = xi, xi_prime, xi_second
        self.name = str(name)
        probe = np.array([0.0, 0.5, 1.0])
        for pname, f in (("xi", xi), ("xi_prime", xi_prime)) + ((("xi_second", xi_second),) if xi_second else ()):
            try:
                val = np.asarray(f(probe), dtype=float)
            except Exception as exc:  # noqa: BLE001 - any failure of user code is a bad parameter
                raise ParameterError(f"{pname}: calling it on a numpy array failed ({exc})") from exc
            require(val.shape == probe.shape, pname, f"must be vectorised (array in, same-shape array out), got shape "
                    f"{val.shape}")
        self.xi1, self.xip1 = float(self.xi(1.0)), float(self.xi_prime(1.0))
        require(math.isfinite(self.xi1) and self.xi1 > 0, "xi", f"xi(1) must be finite and > 0, got {self.xi1}")
        require(math.isfinite(self.xip1) and self.xip1 > 0, "xi_prime",
                f"xi'(1) must be finite and > 0, got {self.xip1}")
        self._cache = {}

    @classmethod
    def from_coefficients(cls, coeffs):
        """xi(q) = sum_p a_p q^p from {p: a_p}, p >= 1 integers, a_p >= 0 (not all zero)."""
        require(isinstance(coeffs, dict) and coeffs, "coeffs", "must be a non-empty dict {p: a_p}")
        items = []
        for p, a in sorted(coeffs.items()):
            require(isinstance(p, (int, np.integer)) and not isinstance(p, bool) and p >= 1, "coeffs",
                    f"powers must be integers >= 1, got {p!r}")
            require(isinstance(a, (int, float, np.floating, np.integer)) and math.isfinite(a) and a >= 0, "coeffs",
                    f"coefficient of q^{p} must be finite and >= 0, got {a!r}")
            if a > 0:
                items.append((int(p), float(a)))
        require(bool(items), "coeffs", "at least one coefficient must be > 0")
        dense = np.zeros(items[-1][0] + 1)
        for p, a in items:
            dense[p] = a
        d1 = np.polynomial.polynomial.polyder(dense)
        d2 = np.polynomial.polynomial.polyder(d1)

        def poly(c):
            return lambda q: np.polynomial.polynomial.polyval(np.asarray(q, float), c)

        model = cls(poly(dense), poly(d1), poly(d2),
                    name=" + ".join(f"{a:g} q^{p}" for p, a in items))
        model.coefficients = dict(items)
        return model

    def tabulated(self, n=401):
        """A copy with xi replaced by its cubic Hermite interpolant through (xi, xi') at n Chebyshev-clustered nodes
        q = (1 - cos(pi s))/2 (dense at both ends), xi' by the interpolant's exact derivative (so the optimisers'
        gradients stay consistent) and xi'' by linear interpolation of the node values (the value at q = 1, possibly
        inf, kept). For covariances whose callables are slow (quadrature per point): 3 n evaluations once.
        Interpolation error is O(h^4) times the fourth derivative away from singular points; compare with the
        original where it matters."""
        from scipy.interpolate import CubicHermiteSpline

        n = _check_k(n, "n")
        require(n >= 8, "n", f"must be >= 8, got {n}")
        nodes = 0.5 - 0.5 * np.cos(np.pi * np.linspace(0.0, 1.0, n))
        nodes[0], nodes[-1] = 0.0, 1.0
        f, fp, f2 = self.xi(nodes), self.xi_prime(nodes), self.xi_second(nodes)
        require(bool(np.all(np.isfinite(f)) and np.all(np.isfinite(fp))), "xi", "non-finite values on [0, 1]")
        spline = CubicHermiteSpline(nodes, f, fp)
        deriv = spline.derivative()
        ok = np.isfinite(f2)
        end = float(f2[-1])

        def second(q):
            q = np.asarray(q, float)
            return np.where(q >= 1.0, end, np.interp(q, nodes[ok], f2[ok]))

        return SphericalModel(lambda q: spline(np.clip(q, 0.0, 1.0)), lambda q: deriv(np.clip(q, 0.0, 1.0)), second,
                              name=f"{self.name} (tabulated, n={n})")

    # ------------------------------------------------------------------------------------------ xi and derivatives
    def xi(self, q):
        return np.asarray(self._xi(np.asarray(q, float)), float)

    def xi_prime(self, q):
        return np.asarray(self._xp(np.asarray(q, float)), float)

    def xi_second(self, q):
        """xi''(q): the supplied callable, else finite differences of xi' (class docstring)."""
        q = np.asarray(q, float)
        if self._x2 is not None:
            return np.asarray(self._x2(q), float)
        h = 1e-5
        lo, hi = np.clip(q - h, 0, 1), np.clip(q + h, 0, 1)
        out = (self.xi_prime(hi) - self.xi_prime(lo)) / (hi - lo)
        at1 = q >= 1.0
        if np.any(at1):
            out = np.where(at1, self._xi_second_at_one(), out)
        return out

    def _xi_second_at_one(self):
        d = [float((self.xip1 - self.xi_prime(1 - h)) / h) for h in (1e-4, 1e-6)]
        return math.inf if d[1] > 3 * max(d[0], 1e-300) else d[1]

    def xi_second_at_one(self):
        """xi''(1) (possibly +inf)."""
        return float(self.xi_second(1.0)) if self._x2 is not None else self._xi_second_at_one()

    # ------------------------------------------------------------------------------------------ replica symmetric
    def _rs_value(self, beta, q):
        return 0.5 * (beta ** 2 * (self.xi1 - float(self.xi(q))) + q / (1 - q) + math.log1p(-q))

    def rs(self, beta):
        """RS saddle: the root of beta^2 xi'(q) (1-q)^2 = q that minimises P (q = 0 is a root iff xi'(0) = 0)."""
        beta = _check_beta(beta)
        b = beta ** 2 * self.xip1
        y_star = (math.sqrt(1 + 4 * b) - 1) / (2 * b)     # beyond q* = 1 - y*, q/(1-q)^2 > beta^2 xi'(1)
        grid = 1 - np.exp(np.linspace(0.0, math.log(0.5 * y_star), 400))
        grid = np.unique(np.concatenate([np.geomspace(1e-12, max(grid[1], 2e-12), 40), grid[1:]]))

        def F(q):
            return beta ** 2 * self.xi_prime(q) * (1 - q) ** 2 - q

        f = F(grid)
        cands = [0.0] if abs(float(self.xi_prime(0.0))) <= 1e-14 * self.xip1 else []
        for i in np.nonzero(np.sign(f[:-1]) * np.sign(f[1:]) <= 0)[0]:
            a, c = grid[i], grid[i + 1]
            cands.append(a if f[i] == 0 else c if f[i + 1] == 0 else brentq(F, a, c, xtol=1e-15, rtol=1e-15))
        if not cands and f[0] > 0 and f[-1] <= 0:
            cands.append(brentq(F, grid[0], grid[-1], xtol=1e-15, rtol=1e-15))
        if not cands:
            raise DivergenceError(f"beta: no RS saddle found at beta = {beta}")
        q = min(cands, key=lambda c: self._rs_value(beta, c))
        P = self._rs_value(beta, q)
        u = -beta * (self.xi1 - float(self.xi(q)))
        replicon = 1 - beta ** 2 * float(self.xi_second(q)) * (1 - q) ** 2
        if not all(map(math.isfinite, (P, u, replicon))):
            raise DivergenceError(f"beta: the RS solution at beta = {beta} is not finite (q = {q})")
        return RSSolution(beta, float(q), P, u, P + beta * u, replicon, replicon >= -_AT_TOL)

    def at_beta(self, beta_min=1e-2, beta_max=1e4):
        """Smallest beta (cooling) at which the RS branch is AT-unstable (replicon < -1e-9); math.inf if it stays
        stable on [beta_min, beta_max] and xi''(1) <= xi'(1) (stable down to T = 0); beta_min if already unstable
        there. Grid scan (241 log-spaced points) + bisection (rtol 1e-10); DivergenceError if stable up to beta_max
        although xi''(1) > xi'(1).
        The AT line is local: a discontinuous (1RSB) transition, e.g. pure p >= 3, comes first; see phase()."""
        betas = np.geomspace(beta_min, beta_max, 241)
        prev = None
        for bt in betas:
            if not self.rs(float(bt)).stable:
                if prev is None:
                    return float(bt)
                lo, hi = prev, float(bt)
                while hi - lo > 1e-10 * hi:
                    mid = 0.5 * (lo + hi)
                    lo, hi = (mid, hi) if self.rs(mid).stable else (lo, mid)
                return hi
            prev = float(bt)
        if self.xi_second_at_one() > self.xip1 * (1 + 1e-9):
            raise DivergenceError(f"beta: RS is unstable at T = 0 (xi''(1) > xi'(1)) but stable up to beta = {beta_max}")
        return math.inf

    def at_temperature(self):
        """1 / at_beta() (0.0 if RS is AT-stable down to T = 0)."""
        b = self.at_beta()
        return 0.0 if math.isinf(b) else 1.0 / b

    def ground_state_rs(self):
        """RS ground-state energy u_GS = -sqrt(xi'(1)) (signed)."""
        return -math.sqrt(self.xip1)

    # ------------------------------------------------------------------------------------------ finite-beta k-RSB
    def crisanti_sommers(self, beta, q, m):
        """P(x) of the module docstring for the k-step x: q = (q_0..q_k) non-decreasing in [0, 1), m = (m_1..m_k)
        non-decreasing in (0, 1]. q = [q0], m = [] is the RS value at overlap q0 (stationary or not)."""
        beta = _check_beta(beta)
        q, m = np.atleast_1d(np.asarray(q, float)), np.atleast_1d(np.asarray(m, float))
        require(q.ndim == 1 and m.ndim == 1 and len(q) == len(m) + 1, "q", "need len(q) == len(m) + 1")
        require(bool(np.all(np.diff(q) >= 0) and q[0] >= 0 and q[-1] < 1), "q", f"must be non-decreasing in [0, 1), got {q}")
        require(bool(np.all(np.diff(m) >= 0) and np.all(m > 0) and np.all(m <= 1)), "m",
                f"must be non-decreasing in (0, 1], got {m}")
        y = 1 - q
        B = _cs_core(y, m, y[-1])[0]
        return 0.5 * (beta ** 2 * float(m @ np.diff(self.xi(q)) + self.xi1 - self.xi(q[-1])) + B + math.log(y[-1]))

    def zero_temperature_functional(self, q, alpha, L):
        """Energy -(1/2) Q(L, alpha) of the T = 0 functional (module docstring) for alpha = alpha_i on [q_{i-1}, q_i),
        q = (q_0..q_k) with q_k = 1, alpha non-decreasing >= 0, L > int_0^1 alpha. Since min Q = -2 u_GS, every
        admissible point gives a value <= u_GS, with equality at the optimum."""
        q, a = np.atleast_1d(np.asarray(q, float)), np.atleast_1d(np.asarray(alpha, float))
        require(q.ndim == 1 and len(q) == len(a) + 1 and q[-1] == 1.0, "q", "need len(q) == len(alpha) + 1 and q[-1] == 1")
        require(bool(np.all(np.diff(q) >= 0) and q[0] >= 0), "q", f"must be non-decreasing in [0, 1], got {q}")
        require(bool(np.all(a >= 0) and np.all(np.diff(a) >= 0)), "alpha", f"must be non-decreasing and >= 0, got {a}")
        lam_k = float(L) - float(a @ np.diff(q))
        require(lam_k > 0, "L", f"must exceed int_0^1 alpha = {float(a @ np.diff(q))}, got {L}")
        B = _cs_core(1 - q, a, lam_k)[0]
        return -0.5 * (self.xip1 * lam_k + float(a @ np.diff(self.xi(q))) + B)

    def _parisi_objective(self, beta, k):
        b2 = beta * beta

        def fun(theta):
            t, w = theta[:k + 1], theta[k + 1:]
            y = _y_from_t(t)
            q = 1 - y
            m = np.exp(-np.cumsum(w[::-1])[::-1])
            xq = self.xi(q)
            dxi = np.diff(xq)
            B, G, mdB = _cs_core(y, m, y[-1])
            two_p = b2 * (m @ dxi + self.xi1 - xq[-1]) + B + math.log(y[-1])
            mm = np.concatenate([[0.0], m, [1.0]])
            gq = (mm[:-1] - mm[1:]) * (b2 * self.xi_prime(q) + G)
            gt = np.cumsum((gq * y)[::-1])[::-1]
            gw = -np.cumsum(b2 * m * dxi + mdB)
            return 0.5 * two_p, 0.5 * np.concatenate([gt, gw])

        return fun

    def _parisi_unpack(self, beta, k, theta):
        y = _y_from_t(theta[:k + 1])
        m = np.exp(-np.cumsum(theta[k + 1:][::-1])[::-1])
        return 1 - y, y, m

    @staticmethod
    def _theta(y, m):
        m = np.clip(np.maximum.accumulate(np.asarray(m, float)), math.exp(-_W_MAX), 1.0)
        w = np.diff(np.log(np.concatenate([m, [1.0]])))
        return np.concatenate([_t_from_y(y), np.clip(w, 0, _W_MAX)])

    def parisi(self, beta, k, n_random=3):
        """k-RSB optimum of the CS functional at beta (k = 0: RS). Starts: every way of splitting a level of the
        (k-1)-RSB optimum (so P_k <= P_{k-1}) plus seeded random points (n_random for k = 1, 1 beyond: the
        Parisi functional is convex in x, so continuation from k-1 is the main route); the lowest optimum wins."""
        beta, k = _check_beta(beta), _check_k(k)
        key = ("parisi", beta, k)
        if key in self._cache:
            return self._cache[key]
        if k == 0:
            r = self.rs(beta)
            sol = ParisiSolution(beta, 0, np.array([r.q]), np.zeros(0), r.free_energy, r.energy, r.entropy, 0, True)
            self._cache[key] = sol
            return sol
        prev = self.parisi(beta, k - 1)
        edges = np.concatenate([[0.0], prev.q, [1.0]])
        starts = [self._theta(1 - e[1:-1], v[1:-1])
                  for e, v in _split_starts(edges, np.concatenate([[0.0], prev.m, [1.0]]), 1.0)]
        rng = np.random.default_rng(1000 + k)
        scale = math.log(1 + beta * beta * self.xip1) + 1
        for _ in range(n_random if k == 1 else min(n_random, 1)):
            starts.append(np.concatenate([rng.uniform(0, 2 * scale / (k + 1), k + 1),
                                          rng.uniform(0, min(_W_MAX, math.log(1 + beta) + 1), k)]))
        bounds = [(0.0, _T_MAX)] * (k + 1) + [(0.0, _W_MAX)] * k
        fun = self._parisi_objective(beta, k)
        res = _best_of(fun, starts, bounds)
        q, y, m = self._parisi_unpack(beta, k, res.x)
        P = float(res.fun)
        if P > prev.free_energy + 1e-10 * max(1.0, abs(P)):        # the degenerate starts embed the (k-1) optimum
            raise DivergenceError(f"parameters: k = {k} optimum above k = {k - 1} at beta = {beta}")
        u = -beta * float(m @ np.diff(self.xi(q)) + self.xi1 - self.xi(q[-1]))
        if not all(map(math.isfinite, (P, u))):
            raise DivergenceError(f"beta: non-finite k-RSB solution at beta = {beta}, k = {k}")
        edges = np.concatenate([[0.0], q, [1.0]])
        levels = _effective_levels(edges, np.concatenate([[0.0], m, [1.0]]), 1.0)
        sol = ParisiSolution(beta, k, q, m, P, u, P + beta * u, levels, res.converged)
        self._cache[key] = sol
        return sol

    # ------------------------------------------------------------------------------------------ zero temperature
    def _gs_objective(self, k):
        xp1 = self.xip1

        def fun(theta):
            t, v, ell = theta[:k], theta[k:2 * k], theta[-1]
            y = np.concatenate([_y_from_t(t), [0.0]])
            q = 1 - y
            a = np.exp(np.cumsum(v))
            lam_k = math.exp(ell)
            xq = self.xi(q)
            dxi = np.diff(xq)
            B, G, mdB = _cs_core(y, a, lam_k)
            Q = xp1 * lam_k + a @ dxi + B
            aa = np.concatenate([[0.0], a])
            gq = (aa[:-1] - aa[1:]) * (self.xi_prime(q[:-1]) + G[:-1])
            gt = np.cumsum((gq * y[:-1])[::-1])[::-1]
            gv = np.cumsum((a * dxi + mdB)[::-1])[::-1]
            return Q, np.concatenate([gt, gv, [lam_k * (xp1 + G[-1])]])

        return fun

    def ground_state(self, k, n_random=3):
        """T = 0 k-step minimum of the Chen-Sen functional (module docstring): u_GS = -(1/2) min Q. Starts as in
        :meth:`parisi` (splits of the (k-1) optimum, so u_k >= u_{k-1}; n_random random points for k = 1, 1 beyond)."""
        k = _check_k(k)
        key = ("gs", k)
        if key in self._cache:
            return self._cache[key]
        if k == 0:
            L = 1 / math.sqrt(self.xip1)
            gs = GroundState(0, self.ground_state_rs(), np.array([1.0]), np.zeros(0), L, 0, True)
            self._cache[key] = gs
            return gs
        prev = self.ground_state(k - 1)
        lam_top = prev.L - float(prev.alpha @ np.diff(prev.q))
        starts = [self._gs_theta(e[1:], v[1:], lam_top)
                  for e, v in _split_starts(np.concatenate([[0.0], prev.q]), np.concatenate([[0.0], prev.alpha]), None)]
        rng = np.random.default_rng(2000 + k)
        for _ in range(n_random if k == 1 else min(n_random, 1)):
            starts.append(np.concatenate([rng.uniform(0, 3 / k, k), [rng.uniform(-2, 2)], rng.uniform(0, 2, k - 1),
                                          [rng.uniform(-3, 1)]]))
        bounds = [(0.0, _T_MAX)] * k + [(-30.0, 30.0)] + [(0.0, 30.0)] * (k - 1) + [(-40.0, 20.0)]
        res = _best_of(self._gs_objective(k), starts, bounds)
        theta = res.x
        q = np.concatenate([1 - _y_from_t(theta[:k]), [1.0]])
        a = np.exp(np.cumsum(theta[k:2 * k]))
        lam_k = math.exp(theta[-1])
        L = lam_k + float(a @ np.diff(q))
        u = -0.5 * float(res.fun)
        if not math.isfinite(u) or u < prev.energy - 1e-10 * max(1.0, abs(u)):     # min Q_k <= min Q_{k-1}
            raise DivergenceError(f"parameters: T = 0 k = {k} optimum is worse than k = {k - 1}")
        levels = _effective_levels(np.concatenate([[0.0], q]), np.concatenate([[0.0], a]), None)
        gs = GroundState(k, u, q, a, L, levels, res.converged)
        self._cache[key] = gs
        return gs

    @staticmethod
    def _gs_theta(q, a, lam_top):
        y = 1 - np.asarray(q[:-1], float)
        a = np.maximum.accumulate(np.maximum(np.asarray(a, float), math.exp(-30)))
        v = np.diff(np.log(np.concatenate([[1.0], a])))
        v[0] = np.log(a[0])
        return np.concatenate([_t_from_y(y), np.clip(v, -30, 30), [math.log(max(lam_top, 1e-12))]])

    # ------------------------------------------------------------------------------------------ diagnostics
    def talagrand_convex(self, n=400):
        """Is xi''(q)^{-1/2} numerically convex on a grid of (0, 1]? None without a supplied xi'' or where xi'' <= 0.
        Recalled criterion (Talagrand 2006): convex => at most 1RSB. Informational only."""
        if self._x2 is None:
            return None
        q = np.linspace(1.0 / n, 1.0, n)
        d2 = self.xi_second(q)
        if np.any(~(d2 > 0)):
            return None
        f = d2 ** -0.5
        second = f[:-2] - 2 * f[1:-1] + f[2:]
        return bool(np.all(second >= -1e-9 * np.maximum(np.abs(f[1:-1]), 1e-300)))

    def phase(self, beta=None, k_max=4, tol=1e-7):
        """RS / 1RSB / FRSB at beta (None: T = 0), from the k-RSB optima for k = 0..k_max.

        RS: the RS saddle is AT-stable (at T = 0: xi''(1) <= xi'(1)) and one RSB step lowers the objective
        (P at finite beta, u_GS at T = 0) by at most tol — the second check catches discontinuous 1RSB
        transitions (pure p >= 3), which the local AT test cannot see. Else "1RSB" if k = 2 improves on k = 1
        by at most tol and keeps at most one effective RSB level, otherwise "FRSB" (k-RSB keeps improving).
        """
        k_max = _check_k(k_max, "k_max")
        require(k_max >= 2, "k_max", f"must be >= 2 to tell 1RSB from FRSB, got {k_max}")
        require(isinstance(tol, (int, float)) and tol > 0, "tol", f"must be > 0, got {tol!r}")
        if beta is None:
            sols = [self.ground_state(k) for k in range(k_max + 1)]
            obj = [s.energy for s in sols]
            x2 = self.xi_second_at_one()
            replicon = 1 - x2 / self.xip1 if math.isfinite(x2) else -math.inf
            free = None
            what = "u_GS"
        else:
            beta = _check_beta(beta)
            sols = [self.parisi(beta, k) for k in range(k_max + 1)]
            obj = [s.free_energy for s in sols]
            replicon = self.rs(beta).replicon
            free = tuple(obj)
            what = "P"
        energies = tuple(s.energy for s in sols)
        levels = tuple(s.levels for s in sols)
        sign = 1.0 if beta is None else -1.0       # RSB raises u_GS (lowers min Q) and lowers P
        gain = [sign * (obj[k] - obj[k - 1]) for k in range(1, k_max + 1)]      # gain[k-1]: k-1 -> k improvement
        where = "T = 0" if beta is None else f"beta = {beta:g}"
        if replicon >= -_AT_TOL and gain[0] <= tol:
            label = "RS"
            reason = (f"RS at {where}: replicon {replicon:.6g} >= 0 and 1RSB changes {what} by {gain[0]:.2e} <= tol {tol:g}")
        elif gain[1] <= tol and levels[2] <= 1:
            label = "1RSB"
            reason = (f"1RSB at {where}: replicon {replicon:.6g}; 1RSB improves {what} by {gain[0]:.3e}, 2RSB by only "
                      f"{gain[1]:.2e} <= tol {tol:g} with {levels[2]} effective level(s)")
        else:
            label = "FRSB"
            reason = (f"FRSB at {where}: replicon {replicon:.6g}; {what} improvements k-1 -> k for k = 1..{k_max}: "
                      + ", ".join(f"{g:.3e}" for g in gain) + f" (tol {tol:g}); effective levels {levels}")
        return Phase(label, reason, beta, energies, free, levels, replicon, self.talagrand_convex())

    def entropy_curve(self, betas, k=1, tol=1e-9):
        """RS branch and equilibrium along betas (EntropyCurve): k-RSB values replace RS where they lower P by
        more than tol. s(u) curves: plot (u_rs, s_rs) and (u, s)."""
        k = _check_k(k)
        require(k >= 1, "k", f"must be >= 1 for the RSB branch, got {k}")
        betas = np.asarray(betas, float).ravel()
        require(betas.size >= 1, "betas", "must be non-empty")
        rows = []
        for bt in betas:
            r = self.rs(float(bt))
            p = self.parisi(float(bt), k)
            rsb = p.free_energy < r.free_energy - tol
            rows.append((r.energy, r.entropy, r.replicon, *((p.energy, p.entropy, p.free_energy) if rsb else
                                                           (r.energy, r.entropy, r.free_energy)), rsb))
        cols = list(zip(*rows))
        return EntropyCurve(betas, *(np.array(c, float) for c in cols[:6]), np.array(cols[6], bool), k)


# ----------------------------------------------------------------------------------------------------- closed forms
def linear_closed_forms():
    """Exact RS solution for xi = c q (a pure random field, RS at all beta), as sympy expressions in beta, c, u."""
    import sympy as sp

    beta, c = sp.symbols("beta c", positive=True)
    u = sp.Symbol("u", negative=True)
    root = sp.sqrt(1 + 4 * beta ** 2 * c)
    q = 1 + (1 - root) / (2 * beta ** 2 * c)
    energy = -(root - 1) / (2 * beta)
    free_energy = sp.Rational(1, 2) * (beta ** 2 * (c - c * q) + q / (1 - q) + sp.log(1 - q))
    return {
        "q": q,
        "energy": energy,
        "free_energy": free_energy,
        "entropy": sp.simplify(free_energy + beta * energy),
        "entropy_of_energy": sp.log(1 - u ** 2 / c) / 2,
        "ground_state_energy": -sp.sqrt(c),
    }
