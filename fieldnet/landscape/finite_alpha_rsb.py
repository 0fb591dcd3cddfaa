"""One-step RSB saddle point of the finite-alpha replica action (:mod:`fieldnet.landscape.finite_alpha`).

The action (finite_alpha's module docstring; one Parisi parameter m shared by every layer):

    P = P0(q1, q0, m) + (beta^2/2) C_v (d_L - (1 - m) q1_L - m q0_L)
        + sum_l alpha_l [ -(dh_l d_l - (1 - m) qh1_l q1_l - m qh0_l q0_l) + G_l ],
    P0 = (1/2) [(1 - 1/m) ln(1 - q1) + (1/m) ln lam + q0 / lam],   lam = 1 - q1 + m (q1 - q0),
    G_l = (1/m) E_0 ln E_1 Z^m,   Z = E_eta exp(a phi(z)^2 + h phi(z)),   a = dh_l - qh1_l,
    z = sqrt(c0) zeta0 + sqrt(c1 - c0) zeta1 + sqrt(v) eta,   h = sqrt(2 qh0) y0 + sqrt(2 (qh1 - qh0)) y1,

with D = C_W d_{l-1} + C_b, c1 = C_W q1_{l-1} + C_b, c0 = C_W q0_{l-1} + C_b, v = D - c1 (d_0 = 1 and
(q1_0, q0_0) = (q1, q0), the input overlaps). Its stationarity conditions, as implemented (each checked
against finite differences of P in tests/test_landscape_rsb.py):

    forward   d_l = E w <phi^2>,  q1_l = E w <phi>^2,  q0_l = E_0 (E_1 w <phi>)^2        (w = Z^m / E_1 Z^m)
    backward  dh_L = qh1_L = qh0_L = beta^2 C_v / (2 alpha_L),
              (dh, qh1, qh0)_{l-1} = (alpha_l / alpha_{l-1}) C_W (GD, GC1, GC0)_l
    input     q0 / lam^2 = g0,   (q1 - q0) / ((1 - q1) lam) + q0 / lam^2 = g1,   g = 2 alpha_1 C_W (GC0, GC1)_1
    Parisi m  dP/dm = dP0/dm + (beta^2/2) C_v (q1_L - q0_L) + sum_l alpha_l (qh0 q0 - qh1 q1 + dG/dm)_l = 0

(GD = E w Z_mumu / 2Z, GC1 = E w (Z_mu/Z)^2 / 2, GC0 = E_0 (E_1 w Z_mu/Z)^2 / 2, as in
:func:`fieldnet.landscape.tilted.rsb1_layer`). The input equations are dP0/dq1 = (1 - m) alpha_1 C_W GC1 and
dP0/dq0 = m alpha_1 C_W GC0 with dP0/dq0 = m q0 / (2 lam^2) and dP0/dq1 = ((1 - m)/2) [(q1 - q0)/((1 - q1) lam)
+ q0/lam^2]; with x = 1 - q1 they read 1/x - 1/lam = m (g1 - g0), 1 - x (1 - 1/m) - lam/m = g0 lam^2, one
strictly decreasing equation in lam on (0, 1] (solved by brentq). For g1 = g0 they reduce to the RS
condition q / (1 - q)^2 = 2 alpha_1 C_W GC1 of finite_alpha.

**How m is fixed.** The inner integrals (the expensive part) do not depend on m: for each layer we tabulate
ln Z and the tilted moments on the layer's quadrature grid once per sweep (the kernel below reuses
tilted's generated ``inner``), and then G_l(m), all the layer averages and the exact m-derivatives
dG/dm = (1/m) E_0 [E_1 w ln Z - (1/m) ln E_1 Z^m] and d^2G/dm^2 are cheap numpy sums over the table. Each sweep
therefore solves dP/dm = 0 at fixed other order parameters (safeguarded Newton, bracketed in (0, 1]) with
no extra quadrature; at the joint fixed point this is the stationarity of P in m (envelope theorem: the
total derivative of P along the saddle equals this partial). Finite differences of P in m would cost two
extra tables per layer and per sweep. The root is the one Newton reaches from the current m (m = 1/2 at the
start). It is the right extremum: the free energy of the fixed-m saddles (``rsb1(..., m=...)``) is minimal at
the returned m (a test), as the Crisanti–Sommers functional's optimum is its infimum over Parisi measures, the
alpha -> infinity result agrees with the spherical 1RSB optimum, and P_1RSB < P_RS where RSB occurs. A
converged m = 1 is the RS saddle (the action does not depend on q1 there) and is reported as a collapse.

**Quadrature.** By default every layer uses :class:`GridTable`: ln Z(mu, h) on a uniform grid in the centre mu
(step ``grid_step``, |mu| <= 7 sqrt(c1)) times nodes in y0 and y1, both Gaussian mu-averages (level 0 around
0, level 1 around mu0) being normalised discrete kernels on that grid. The top layer has qh1 = qh0 (h has no
block part): one y1 node and a trapezoid rule in y0 (:func:`y_rule`, step min(0.5, 1/sqrt(2 qh0)) on
|y0| <= 8; ``grid_nodes`` = n switches to n Gauss–Hermite nodes). Lower layers (qh1 != qh0) take ``nodes``
Gauss–Hermite nodes in y0 and in y1 (an int or a pair), unless ``grid_all=False``, and ``grid_step=None`` gives
the plain tensor Gauss–Hermite table over (zeta0, y0, zeta1, y1) everywhere (:class:`LayerTable`, n^4 inner
integrals, the rule of :func:`fieldnet.landscape.tilted.rsb1_layer`). This matters: at low alpha the
tilt h = sqrt(2 qh) y is large (qh = beta^2 C_v / (2 alpha) = 9 for sin, C_W = 2, beta = 3, alpha = 1) and
ln Z(mu) has near-kinks where the maximiser of the eta-integrand switches branch, which Gauss–Hermite in zeta
resolves badly: E_zeta ln Z(zeta, h = 5) has error 1e-2 at 16 nodes and 4e-4 at 48, and the 1RSB solution at
alpha = 4 moved by 0.02 in q0 and 0.04 in m between 12 and 32 Gauss–Hermite nodes, while on the grid it is
converged to 1e-6 (24 vs 28 y0-nodes, mu-step 0.04 vs 0.02); for depth 2 (alpha = 20) Gauss–Hermite tables
left dP/dq1 = 5e-3 at the solution (m off by 3e-3), the grid 5e-9. At alpha = 1 the y0 integral limits too (ln Z
is |h|-like): 24 vs 28 Gauss–Hermite y0-nodes moved q0 by 6e-4, hence the trapezoid default. The same error
is in the RS free energy of :meth:`FiniteAlphaLandscape.rs` (40 Gauss–Hermite nodes): 4e-4 at alpha = 4,
8e-5 at alpha = 20, 5e-7 at alpha = 100 for that example, so compare P_1RSB with P_RS evaluated by
:meth:`RSB1Solver.action` at the RS point with the same rule. Depth 1 costs (14 sqrt(c1) / grid_step) times
the number of y0-nodes inner integrals per sweep (~1e4, 0.3-1 s on one core).

**Iteration.** Starting from the RS solution ``landscape.rs(beta)`` with the within-state overlaps pushed
up (q1 = q0 + ``split`` (1 - q0) for the input and every layer, conjugates at their RS values, m = 1/2), one
sweep is forward (Gauss–Seidel through the layers), backward, input and m; the sweep map is iterated with
Anderson mixing (memory 5, mixing 1 - ``damping``), falling back to the plain sweep when an extrapolation leaves
the physical region. If q1 - q0 falls below ``COLLAPSE`` (input and every layer) the 1RSB branch has collapsed
onto RS: the RS solution is returned in RSB1Layers form (q1 = q0 exactly, m = 1; :func:`is_replica_symmetric`).
Otherwise u = -beta C_v (d_L - (1 - m) q1_L - m q0_L) and s = P + beta u; the returned RSB1Layers carries the
conjugates as extra attributes ``dh``, ``qh1``, ``qh0`` (for continuation via ``start``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq

from fieldnet.errors import DivergenceError, ParameterError, require
from fieldnet.landscape.finite_alpha import NODES_1RSB, FiniteAlphaLandscape, RSB1Layers, RSLayers, _beta
from fieldnet.landscape.tilted import hermite_rule, module_source
from fieldnet.numeric.lowering import load_generated
from fieldnet.symbolic.activations import get_activation

TOL = 1e-9          # convergence: max change of any order parameter over a sweep
MAX_ITER = 400
COLLAPSE = 1e-6     # q1 - q0 below this (input and every layer): the branch has collapsed onto RS
GRID_SIGMAS = 7.0    # the mu-grid of GridTable spans this many standard deviations
GRID_STEP = 0.04    # its step
GRID_NODES = None   # Gauss–Hermite nodes in y0 for GridTable (None: the trapezoid y_rule)
H_STEP = 1.0        # y_rule: the step in h = sqrt(2 qh0) y
Y_MAX = 8.0
M_MIN = 1e-4        # the Parisi parameter is kept in [M_MIN, 1]
GENERATOR_VERSION = "rsb-table-2"

_TABLE_KERNEL = r'''

@njit(cache=True, parallel=True)
def rsb1_table(c0, c1, v, a, qh0, qh1, z0, y0, z1, y1, out):
    """out[i, j, k, l] = [ln Z, <phi>, <phi^2>, <eta>, <eta^2>, <phi eta>] at mu = sqrt(c0) z0_i + sqrt(c1 - c0) z1_k,
    h = sqrt(2 qh0) y0_j + sqrt(2 (qh1 - qh0)) y1_l (a degenerate level gets the one node 0)."""
    sig = math.sqrt(v)
    r0 = math.sqrt(c0)
    r1 = math.sqrt(max(c1 - c0, 0.0))
    s0 = math.sqrt(2.0 * qh0)
    s1 = math.sqrt(2.0 * max(qh1 - qh0, 0.0))
    n0 = len(z0)
    m0 = len(y0)
    for ij in prange(n0 * m0):
        i = ij // m0
        j = ij - i * m0
        buf = np.empty(6)
        for k in range(len(z1)):
            mu = r0 * z0[i] + r1 * z1[k]
            for l in range(len(y1)):
                h = s0 * y0[j] + s1 * y1[l]
                for t in range(6):
                    buf[t] = np.nan
                inner(mu, sig, a, h, buf)
                for t in range(6):
                    out[i, j, k, l, t] = buf[t]
'''


@lru_cache(maxsize=32)
@lru_cache(maxsize=32)
def _table_module(activation):
    act = get_activation(activation)
    _, _, module = load_generated(module_source(act) + _TABLE_KERNEL, GENERATOR_VERSION, "fieldnet_tilted_rsb")
    return module


def _check_layer(layer, v, c0, c1, qh0, qh1) -> None:
    """DivergenceError unless the layer's 1RSB parameters are physical (v > 0, 0 <= c0 <= c1, 0 <= qh0 <= qh1)."""
    if not v > 0:
        raise DivergenceError(f"layer {layer}: the within-state overlap reached the self-overlap (v = {v:.3g}); "
                              "the 1RSB saddle is degenerate here")
    if not (qh0 >= 0 and qh1 >= qh0 - 1e-14 and c0 >= 0 and c1 >= c0 - 1e-14):
        raise DivergenceError(f"layer {layer}: order parameters left the physical region (c0 = {c0:.3g}, "
                              f"c1 = {c1:.3g}, qh0 = {qh0:.3g}, qh1 = {qh1:.3g})")


class LayerTable:
    """ln Z and the tilted moments of one layer on the 1RSB grid; averages at any m by numpy sums."""

    def __init__(self, module, c0, c1, v, a, qh0, qh1, rules, layer=0):
        _check_layer(layer, v, c0, c1, qh0, qh1)
        (x0, w0), (x1, w1) = rules
        one = (np.zeros(1), np.ones(1))
        zk, wk = (x1, w1) if c1 > c0 else one
        yl, wl = (x1, w1) if qh1 > qh0 else one
        out = np.empty((len(x0), len(x0), len(zk), len(yl), 6))
        module.rsb1_table(float(c0), float(c1), float(v), float(a), float(qh0), float(qh1), x0, x0, zk, yl, out)
        if not np.all(np.isfinite(out)):
            raise DivergenceError(f"layer {layer}: the tilted average E exp(a phi^2 + h phi) diverges "
                                  f"(a = {a:.3g} times the variance {v:.3g}); beta or 1/alpha too large")
        self.v, self.sig = v, math.sqrt(v)
        self.w0 = w0[:, None] * w0[None, :]
        self.w1 = wk[:, None] * wl[None, :]
        self.t = out

    def averages(self, m):
        """dict of G, D, Q1, Q0, GD, GC1, GC0, dG (= dG/dm), d2G at Parisi parameter m."""
        t, v = self.t, self.v
        lz = t[..., 0]
        A = m * lz
        top = A.max(axis=(2, 3), keepdims=True)
        e = self.w1 * np.exp(A - top)
        norm = e.sum(axis=(2, 3), keepdims=True)
        w1 = e / norm
        lnE = (top + np.log(norm))[..., 0, 0]            # ln E_1 Z^m
        E1 = lambda f: (w1 * f).sum(axis=(2, 3))
        E0 = lambda f: float((self.w0 * f).sum())
        mlz = E1(lz)
        return _layer_averages(E0, E1, t, lnE, mlz, E1((lz - mlz[..., None, None]) ** 2), v, self.sig, m)


def _layer_averages(E0, E1, t, lnE, mlz, vlz, v, sig, m) -> dict:
    """The 1RSB layer averages from a table t[..., (ln Z, <phi>, <phi^2>, <eta>, <eta^2>, <phi eta>)] given the
    outer average E0, the block-weighted average E1 (weights Z^m / E_1 Z^m), ln E_1 Z^m, and the block mean and
    variance of ln Z (for the exact m-derivatives of G)."""
    mphi, meta = E1(t[..., 1]), E1(t[..., 3])
    return {
        "G": E0(lnE) / m,
        "D": E0(E1(t[..., 2])),
        "Q1": E0(E1(t[..., 1] ** 2)),
        "Q0": E0(mphi ** 2),
        "GD": E0(E1(0.5 * (t[..., 4] - 1.0) / v)),
        "GC1": E0(E1(0.5 * t[..., 3] ** 2 / v)),
        "GC0": E0(0.5 * (meta / sig) ** 2),
        "dG": E0(mlz - lnE / m) / m,
        "d2G": E0(2.0 * lnE / m ** 3 - 2.0 * mlz / m ** 2 + vlz / m),
    }


def y_rule(scale):
    """Trapezoid rule for E over y ~ N(0, 1) of a function of h = scale * y: uniform nodes on |y| <= Y_MAX with
    step min(0.5, H_STEP / scale), normalised Gaussian weights. ln Z(h) is analytic but bends on a scale O(1) in h
    (|h|-like at large tilt), where the trapezoid rule converges geometrically and Gauss–Hermite only slowly
    (E_y ln Z(h = 4.24 y): 2.8e-6 at 48 Hermite nodes, 1e-8 with 61 trapezoid nodes)."""
    step = min(0.5, H_STEP / scale) if scale > 0 else 0.5
    half = int(math.ceil(Y_MAX / step))
    y = step * np.arange(-half, half + 1, dtype=float)
    w = np.exp(-0.5 * y * y)
    return y, w / w.sum()


class GridTable:
    """ln Z(mu, h) tabulated on a uniform grid in the centre mu (step ``step``, |mu| <= GRID_SIGMAS sqrt(c1)) times
    nodes in y0 and y1 (h = sqrt(2 qh0) y0 + sqrt(2 (qh1 - qh0)) y1; y1 has one node when qh1 = qh0, as in the top
    layer). Both Gaussian averages over mu (level 0: variance c0; level 1: variance c1 - c0 around mu0) are
    discrete Gaussian kernels on that grid, normalised to 1. ``ny0``, ``ny1``: Gauss–Hermite node counts, or
    None for the trapezoid :func:`y_rule`. ln Z(mu) has near-kinks where the maximiser of the tilted
    eta-integrand switches branch (sin at large tilt: width ~0.1 in mu), which Gauss–Hermite in zeta resolves
    poorly."""

    def __init__(self, module, c0, c1, v, a, qh0, qh1, ny0, ny1, step, layer=0):
        _check_layer(layer, v, c0, c1, qh0, qh1)
        half = max(1, int(math.ceil(GRID_SIGMAS * math.sqrt(max(c1, 0.0)) / step)))
        mu = step * np.arange(-half, half + 1, dtype=float)
        y0, w0 = hermite_rule(ny0) if ny0 is not None else y_rule(math.sqrt(2.0 * qh0))
        if qh1 > qh0:
            y1, w1 = hermite_rule(ny1) if ny1 is not None else y_rule(math.sqrt(2.0 * (qh1 - qh0)))
        else:
            y1, w1 = np.zeros(1), np.ones(1)
        out = np.empty((len(mu), len(y0), 1, len(y1), 6))
        module.rsb1_table(1.0, 1.0, float(v), float(a), float(qh0), float(max(qh1, qh0)), mu, y0, np.zeros(1), y1, out)
        if not np.all(np.isfinite(out)):
            raise DivergenceError(f"layer {layer}: the tilted average E exp(a phi^2 + h phi) diverges "
                                  f"(a = {a:.3g} times the variance {v:.3g}); beta or 1/alpha too large")
        self.t = out[:, :, 0, :, :]                      # (mu, y0, y1, 6)
        self.v, self.sig, self.wy, self.wl = v, math.sqrt(v), w0, w1
        self.w0 = self._kernel(mu, 0.0, c0, step)[0]
        self.k1 = self._kernel(mu, mu, max(c1 - c0, 0.0), step)

    @staticmethod
    def _kernel(mu, centre, var, step):
        """Normalised discrete N(centre, var) weights on the grid, one row per centre."""
        d = np.subtract.outer(np.atleast_1d(centre), mu)
        if var < (0.05 * step) ** 2:
            k = (np.abs(d) < 0.5 * step).astype(float)
        else:
            k = np.exp(-0.5 * d * d / var)
        return k / k.sum(axis=1, keepdims=True)

    def averages(self, m):
        t, v, k1, wl = self.t, self.v, self.k1, self.wl
        lz = t[..., 0]                                   # (mu, y0, y1)
        A = m * lz
        top = A.max(axis=(0, 2), keepdims=True)
        e = np.exp(A - top)
        S = lambda f: k1 @ (f @ wl)                      # level-1 sum: y1 nodes, then the mu-kernel
        norm = S(e)                                      # E_1 Z^m e^-top at each (mu0, y0)
        lnE = top[:, :, 0] + np.log(norm)
        E1 = lambda f: S(e * f) / norm
        W = self.w0[:, None] * self.wy[None, :]
        E0 = lambda f: float((W * f).sum())
        mlz = E1(lz)
        return _layer_averages(E0, E1, t, lnE, mlz, E1(lz * lz) - mlz ** 2, v, self.sig, m)


# ---------------------------------------------------------------------------------------------- input part
def p0(q1, q0, m):
    """The input (Q^0) part of the 1RSB action."""
    lam = 1.0 - q1 + m * (q1 - q0)
    return 0.5 * ((1.0 - 1.0 / m) * math.log1p(-q1) + math.log(lam) / m + q0 / lam)


def p0_derivatives(q1, q0, m):
    """(dP0/dq1, dP0/dq0, dP0/dm, d^2P0/dm^2), analytic."""
    x, dq = 1.0 - q1, q1 - q0
    lam = x + m * dq
    d1 = 0.5 * (1.0 - m) * (dq / (x * lam) + q0 / lam ** 2)
    d0 = 0.5 * m * q0 / lam ** 2
    lx, ll = math.log(x), math.log(lam)
    dm = 0.5 * ((lx - ll) / m ** 2 + dq / (m * lam) - q0 * dq / lam ** 2)
    dmm = 0.5 * (2.0 * (ll - lx) / m ** 3 - 2.0 * dq / (m ** 2 * lam) - dq ** 2 / (m * lam ** 2)
                 + 2.0 * q0 * dq ** 2 / lam ** 3)
    return d1, d0, dm, dmm


def input_overlaps(g1, g0, m):
    """(q1, q0) solving q0/lam^2 = g0, (q1 - q0)/((1 - q1) lam) + q0/lam^2 = g1 (module docstring)."""
    g0 = max(g0, 0.0)
    k = m * max(g1 - g0, 0.0)

    def f(lam):
        x = lam / (1.0 + k * lam)
        return 1.0 - x * (1.0 - 1.0 / m) - lam / m - g0 * lam * lam

    lam = brentq(f, 1e-300, 1.0, xtol=1e-16, rtol=1e-15) if f(1.0) < 0 else 1.0
    x = lam / (1.0 + k * lam)
    q0 = g0 * lam * lam
    return 1.0 - x, min(q0, 1.0 - x)


# ---------------------------------------------------------------------------------------------- the solver
class _State:
    """All order parameters as one vector: (q1, q0, m, d[L], q1_l[L], q0_l[L], dh[L], qh1[L], qh0[L])."""

    def __init__(self, L):
        self.L = L

    def pack(self, q1, q0, m, d, q1l, q0l, dh, qh1, qh0):
        return np.concatenate([[q1, q0, m], d, q1l, q0l, dh, qh1, qh0])

    def unpack(self, X):
        L = self.L
        s = [X[3 + i * L: 3 + (i + 1) * L].copy() for i in range(6)]
        return (float(X[0]), float(X[1]), float(X[2]), *s)


class RSB1Solver:
    """The 1RSB equations of one landscape at one beta (module docstring); used by :func:`rsb1`."""

    def __init__(self, landscape: FiniteAlphaLandscape, beta, nodes=NODES_1RSB, grid_step=GRID_STEP,
                 grid_nodes=GRID_NODES, grid_all=True):
        self.ls = landscape
        self.beta = _beta(beta)
        try:
            n0, n1 = (nodes, nodes) if isinstance(nodes, (int, np.integer)) else tuple(nodes)
        except (TypeError, ValueError):
            raise ParameterError(f"nodes: an integer >= 4 or a pair of them, got {nodes!r}") from None
        require(all(isinstance(n, (int, np.integer)) and n >= 4 for n in (n0, n1)), "nodes",
                f"must be an integer >= 4 or a pair of them (level 0, level 1), got {nodes!r}")
        self.nodes = (int(n0), int(n1))
        self.rules = (hermite_rule(int(n0)), hermite_rule(int(n1)))
        require(grid_step is None or (isinstance(grid_step, float) and 0 < grid_step <= 0.5), "grid_step",
                f"must be None or a float in (0, 0.5], got {grid_step!r}")
        require(grid_nodes is None or (isinstance(grid_nodes, int) and grid_nodes >= 4), "grid_nodes",
                f"must be None or an integer >= 4, got {grid_nodes!r}")
        self.grid_step, self.grid_nodes, self.grid_all = grid_step, grid_nodes, bool(grid_all)
        self.module = _table_module(landscape.covariance.activation)
        self.L = landscape.depth
        self.top = self.beta ** 2 * landscape.cv / (2.0 * landscape.alpha[-1])
        self.state = _State(self.L)

    # ---- pieces
    def table(self, l, c0, c1, v, a, qh0, qh1):
        """Layer l's table: GridTable when qh1 = qh0 (and grid_step is set), else the Gauss–Hermite LayerTable."""
        if self.grid_step is not None and qh1 == qh0:
            return GridTable(self.module, c0, c1, v, a, qh0, qh1, self.grid_nodes, None, self.grid_step, l + 1)
        if self.grid_step is not None and self.grid_all:
            return GridTable(self.module, c0, c1, v, a, qh0, qh1, self.nodes[0], self.nodes[1], self.grid_step, l + 1)
        return LayerTable(self.module, c0, c1, v, a, qh0, qh1, self.rules, l + 1)

    def tables(self, q1, q0, d, q1l, q0l, dh, qh1, qh0):
        """The layer tables for the given overlaps (layer l's input from layer l-1's d, q1, q0)."""
        ls, out = self.ls, []
        dp, p1, p0_ = 1.0, q1, q0
        for l in range(self.L):
            D_ = ls.cw * dp + ls.cb
            c1 = ls.cw * p1 + ls.cb
            c0 = ls.cw * p0_ + ls.cb
            out.append(self.table(l, c0, c1, D_ - c1, dh[l] - qh1[l], qh0[l], qh1[l]))
            dp, p1, p0_ = d[l], q1l[l], q0l[l]
        return out

    def action(self, X, tables=None):
        """P at the order parameters X (any point, not only the saddle)."""
        q1, q0, m, d, q1l, q0l, dh, qh1, qh0 = self.state.unpack(X)
        if tables is None:
            tables = self.tables(q1, q0, d, q1l, q0l, dh, qh1, qh0)
        a, ls = self.ls.alpha, self.ls
        P = p0(q1, q0, m) + 0.5 * self.beta ** 2 * ls.cv * (d[-1] - (1.0 - m) * q1l[-1] - m * q0l[-1])
        for l in range(self.L):
            P += a[l] * (-(dh[l] * d[l] - (1.0 - m) * qh1[l] * q1l[l] - m * qh0[l] * q0l[l])
                         + tables[l].averages(m)["G"])
        return P

    def dP_dm(self, m, q1, q0, q1l, q0l, qh1, qh0, tables):
        """(dP/dm, d^2P/dm^2) at fixed other order parameters."""
        a, ls = self.ls.alpha, self.ls
        _, _, g, gg = p0_derivatives(q1, q0, m)
        g += 0.5 * self.beta ** 2 * ls.cv * (q1l[-1] - q0l[-1])
        for l in range(self.L):
            av = tables[l].averages(m)
            g += a[l] * (qh0[l] * q0l[l] - qh1[l] * q1l[l] + av["dG"])
            gg += a[l] * av["d2G"]
        return g, gg

    def solve_m(self, m, q1, q0, q1l, q0l, qh1, qh0, tables):
        """The root of dP/dm = 0 in [M_MIN, 1] nearest m (safeguarded Newton); m itself if dP/dm has none."""
        f = lambda t: self.dP_dm(t, q1, q0, q1l, q0l, qh1, qh0, tables)
        lo, hi = M_MIN, 1.0
        g, gg = f(m)
        for _ in range(60):
            if abs(g) < 1e-13:
                break
            step = -g / gg if gg != 0 else -math.copysign(0.1, g)
            new = m + step
            if not (lo < new <= hi) or abs(step) > 0.25:
                new = min(max(m + math.copysign(min(abs(step), 0.25), step), lo), hi)
            if new == m:
                break
            m = new
            g, gg = f(m)
        return m

    def sweep(self, X):
        """One zipper sweep: forward (Gauss–Seidel), backward, input overlaps, m. Returns (F(X), tables)."""
        ls, a, L = self.ls, self.ls.alpha, self.L
        q1, q0, m, d, q1l, q0l, dh, qh1, qh0 = self.state.unpack(X)
        tables, avs = [], []
        dp, p1, p0_ = 1.0, q1, q0
        for l in range(L):
            D_ = ls.cw * dp + ls.cb
            c1 = ls.cw * p1 + ls.cb
            c0 = ls.cw * p0_ + ls.cb
            t = self.table(l, c0, c1, D_ - c1, dh[l] - qh1[l], qh0[l], qh1[l])
            av = t.averages(m)
            tables.append(t)
            avs.append(av)
            d[l], q1l[l], q0l[l] = av["D"], av["Q1"], av["Q0"]
            dp, p1, p0_ = d[l], q1l[l], q0l[l]
        dh[-1] = qh1[-1] = qh0[-1] = self.top
        for l in range(L - 1, 0, -1):
            r = a[l] / a[l - 1] * ls.cw
            dh[l - 1], qh1[l - 1], qh0[l - 1] = r * avs[l]["GD"], r * avs[l]["GC1"], r * avs[l]["GC0"]
        g = 2.0 * a[0] * ls.cw
        q1, q0 = input_overlaps(g * avs[0]["GC1"], g * avs[0]["GC0"], m)
        m = self.solve_m(m, q1, q0, q1l, q0l, qh1, qh0, tables)
        return self.state.pack(q1, q0, m, d, q1l, q0l, dh, qh1, qh0), tables

    def start(self, rs: RSLayers, split=0.3, m=0.5):
        q1 = rs.q0 + split * (1.0 - rs.q0)
        q1l = rs.q + split * (rs.d - rs.q)
        return self.state.pack(q1, rs.q0, m, rs.d, q1l, rs.q.copy(), rs.dh.copy(), rs.qh.copy(), rs.qh.copy())

    @staticmethod
    def _valid(X, L):
        q1, q0, m = X[0], X[1], X[2]
        q1l, q0l = X[3 + L: 3 + 2 * L], X[3 + 2 * L: 3 + 3 * L]
        qh1, qh0 = X[3 + 4 * L: 3 + 5 * L], X[3 + 5 * L: 3 + 6 * L]
        d = X[3: 3 + L]
        return bool(0 <= q0 <= q1 < 1 and M_MIN <= m <= 1 and np.all(q0l >= 0) and np.all(q1l >= q0l)
                    and np.all(d > q1l) and np.all(qh0 >= 0) and np.all(qh1 >= qh0))

    def iterate(self, X, *, damping=0.3, memory=5, max_iter=MAX_ITER, tol=TOL):
        """Anderson-mixed fixed-point iteration of :meth:`sweep`. Returns (X, iterations, collapsed)."""
        L = self.L
        hist_x, hist_f = [], []
        change = math.inf
        for it in range(1, max_iter + 1):
            FX, _ = self.sweep(X)
            R = FX - X
            change = float(np.max(np.abs(R)))
            if change < tol:
                return FX, it, False
            if FX[0] - FX[1] < COLLAPSE and np.all(FX[3 + L: 3 + 2 * L] - FX[3 + 2 * L: 3 + 3 * L] < COLLAPSE):
                return FX, it, True
            hist_x.append(X.copy())
            hist_f.append(R)
            hist_x, hist_f = hist_x[-(memory + 1):], hist_f[-(memory + 1):]
            new = X + (1.0 - damping) * R
            if len(hist_f) > 1:
                dF = np.array([hist_f[i + 1] - hist_f[i] for i in range(len(hist_f) - 1)]).T
                dX = np.array([hist_x[i + 1] - hist_x[i] for i in range(len(hist_x) - 1)]).T
                gamma, *_ = np.linalg.lstsq(dF, R, rcond=None)
                cand = X + (1.0 - damping) * R - (dX + (1.0 - damping) * dF) @ gamma
                if self._valid(cand, L):
                    new = cand
            if not self._valid(new, L):
                new = FX
            X = new
        raise DivergenceError(f"beta = {self.beta:g}: the 1RSB saddle did not converge in {max_iter} sweeps "
                              f"(last change {change:.2e}, q1 - q0 = {X[0] - X[1]:.3g}, m = {X[2]:.4g})")

    def solution(self, X, iterations) -> RSB1Layers:
        q1, q0, m, d, q1l, q0l, dh, qh1, qh0 = self.state.unpack(X)
        P = self.action(X)
        u = -self.beta * self.ls.cv * (d[-1] - (1.0 - m) * q1l[-1] - m * q0l[-1])
        sol = RSB1Layers(self.beta, self.ls.alpha.copy(), m, q1, q0, d, q1l, q0l, P, u, P + self.beta * u, iterations)
        sol.dh, sol.qh1, sol.qh0 = dh, qh1, qh0          # conjugates, for diagnostics
        return sol


def rs_as_rsb1(rs: RSLayers) -> RSB1Layers:
    """The RS saddle written as a (degenerate) 1RSB one: q1 = q0, m = 1."""
    sol = RSB1Layers(rs.beta, rs.alpha.copy(), 1.0, rs.q0, rs.q0, rs.d.copy(), rs.q.copy(), rs.q.copy(),
                     rs.free_energy, rs.energy, rs.entropy, rs.iterations)
    sol.dh, sol.qh1, sol.qh0 = rs.dh.copy(), rs.qh.copy(), rs.qh.copy()
    return sol


def is_replica_symmetric(solution: RSB1Layers) -> bool:
    """True when ``rsb1`` collapsed onto the RS saddle (q1 == q0 exactly, in the input and every layer)."""
    return solution.q1 == solution.q0 and bool(np.all(solution.q1_layers == solution.q0_layers))


def rsb1(landscape: FiniteAlphaLandscape, beta, *, m=None, start=None, nodes=NODES_1RSB, grid_step=GRID_STEP,
         grid_nodes=GRID_NODES, grid_all=True, split=0.3, damping=0.3,
         max_iter=MAX_ITER) -> RSB1Layers:
    """The one-step RSB saddle point of ``landscape`` at inverse temperature ``beta`` (module docstring).

    ``m``: fix the Parisi parameter instead of making P stationary in it. ``start``: an RSLayers (default
    ``landscape.rs(beta)``) or an RSB1Layers (continuation). Quadrature (module docstring): ``grid_step`` the
    mu-grid step (None: tensor Gauss–Hermite everywhere, ``nodes`` per dimension); ``grid_nodes`` Gauss–Hermite
    nodes in y0 of the top layer (None: trapezoid); ``nodes`` (int or a pair for the two levels) the y0, y1 nodes of
    the lower layers; ``grid_all=False`` keeps the lower layers on Gauss–Hermite. ``split`` the initial
    q1 - q0 (fraction of d - q0), ``damping`` of the Anderson-mixed sweeps, ``max_iter`` sweeps at most.
    Returns an RSB1Layers; if the branch collapses onto RS (q1 - q0 < COLLAPSE, or m -> 1), the RS saddle in that
    form (:func:`is_replica_symmetric` is then True). Raises DivergenceError if the sweeps do not converge or m
    runs to 0.
    """
    solver = RSB1Solver(landscape, beta, nodes, grid_step, grid_nodes, grid_all)
    if m is not None:
        require(isinstance(m, (int, float)) and M_MIN <= m <= 1, "m", f"must be in [{M_MIN}, 1], got {m!r}")
        fixed_m = float(m)
        solver.solve_m = lambda *args: fixed_m
    if start is None or isinstance(start, RSLayers):
        rs = landscape.rs(solver.beta) if start is None else start
        X = solver.start(rs, split=split, m=0.5 if m is None else float(m))
    elif isinstance(start, RSB1Layers):
        rs = None
        require(all(hasattr(start, k) for k in ("dh", "qh1", "qh0")), "start",
                "an RSB1Layers returned by rsb1 (it carries the conjugates dh, qh1, qh0)")
        X = solver.state.pack(start.q1, start.q0, start.m if m is None else float(m), start.d, start.q1_layers,
                              start.q0_layers, start.dh, start.qh1, start.qh0)
    else:
        raise ParameterError(f"start: expected an RSLayers or RSB1Layers, got {type(start).__name__}")
    X, it, collapsed = solver.iterate(X, damping=damping, max_iter=max_iter)
    if not collapsed and m is None and X[2] <= 2 * M_MIN:
        raise DivergenceError(f"beta = {solver.beta:g}: the Parisi parameter ran to its lower bound m = {X[2]:.3g}; "
                              "no 1RSB saddle with 0 < m < 1 was found")
    if collapsed or X[2] >= 1.0 - 1e-9:
        rs = landscape.rs(solver.beta) if rs is None else rs
        out = rs_as_rsb1(rs)
        out.iterations = it
        return out
    return solver.solution(X, it)
