"""Replica theory of an MLP's input landscape at finite aspect ratios alpha_l = N_l / N.

Model and conventions as in :mod:`fieldnet.landscape.covariance` (H(x) = sqrt(N) f(x), x on the
sphere |x|^2 = N, widths N_l = alpha_l N, readout variance C_v). The replicated partition function,
averaged over the weights, is (THEORY.md 8.2; the derivation and its LaTeX are in
:mod:`fieldnet.landscape.replica`)

    (1/N) ln E Z^n = extr [ (1/2) ln det Q^0 + (beta^2/2) sum_ab (C_v Q^L_ab + C_bv)
                             + sum_l alpha_l ( -tr(Qh^l Q^l) + ln E_z exp(phi(z)^T Qh^l phi(z)) ) ],
    z ~ N(0, C_W Q^{l-1} + C_b) over the n replicas,

with overlaps Q^0_ab = x^a.x^b / N, Q^l_ab = phi(z^l_a).phi(z^l_b) / N_l and their conjugates Qh^l.

**Replica symmetry** (per replica, n -> 0): Q^l = (d_l on the diagonal, q_l off it; d_0 = 1),
Qh^l = (dh_l, qh_l), D_l = C_W d_{l-1} + C_b, c_l = C_W q_{l-1} + C_b, v_l = D_l - c_l, and

    P = (1/2)[ln(1 - q_0) + q_0/(1 - q_0)] + (beta^2/2) C_v (d_L - q_L)
        + sum_l alpha_l [ -(dh_l d_l - qh_l q_l) + G_l ],
    G_l = E_{zeta, y} ln E_eta exp((dh_l - qh_l) phi(z)^2 + sqrt(2 qh_l) y phi(z)),
    z = sqrt(c_l) zeta + sqrt(v_l) eta     (zeta, y, eta independent standard normals).

Its stationarity conditions are a forward-backward ("zipper") system:

    forward   d_l = E<phi^2>,  q_l = E<phi>^2                            (tilted averages, layer l)
    backward  dh_L = qh_L = beta^2 C_v / (2 alpha_L),
              dh_{l-1} = (alpha_l/alpha_{l-1}) C_W E[Z''/Z]/2,  qh_{l-1} = (alpha_l/alpha_{l-1}) C_W E[(Z'/Z)^2]/2,
    input     q_0 / (1 - q_0)^2 = alpha_1 C_W E[(Z'/Z)^2]_1           (' = d/d mu, the centre sqrt(c) zeta)

solved by damped iteration from the alpha -> infinity solution. Then u = <H>/N = -beta C_v (d_L - q_L)
and s = P + beta u. As every alpha_l -> infinity, Qh -> 0 and P becomes the spherical RS functional
of xi (:mod:`fieldnet.landscape.spherical`); for linear phi the result is independent of alpha
(a test).

**Replicon (AT) stability.** In the replicon sector (perturbations r_ab with zero row sums, the same
for every overlap matrix) the second variation is, with eps_l, epsh_l the amplitudes on Q^l, Qh^l,

    S_2 = -eps_0^2 / (4 (1 - q_0)^2) + sum_l alpha_l [ -epsh_l eps_l + L^hh_l epsh_l^2
                                + C_W L^hm_l eps_{l-1} epsh_l + (C_W^2/4) L^mm_l eps_{l-1}^2 ],

L^xy_l = E[(d^2 ln Z / dx dy)^2] over the RS fields (x, y in the linear field h and the centre mu).
Eliminating eps_l, epsh_l (l >= 1) at their stationary point leaves kappa eps_0^2; we report
R = 1 + 4 kappa (1 - q_0)^2 and the replicon 1 - R: RS is stable iff R <= 1. For alpha -> infinity
R = beta^2 xi''(q_0)(1 - q_0)^2, the de Almeida–Thouless condition of the spherical model.

**One-step RSB** (Parisi parameter m, the same block structure in every layer): Q^l has d_l, q1_l,
q0_l, Qh^l has dh_l, qh1_l, qh0_l and

    P = (1/2)[(1 - 1/m) ln(1 - q1) + (1/m) ln lam + q0/lam],  lam = 1 - q1 + m (q1 - q0)   (input overlaps)
        + (beta^2/2) C_v (d_L - (1 - m) q1_L - m q0_L)
        + sum_l alpha_l [ -(dh d - (1 - m) qh1 q1 - m qh0 q0)_l + (1/m) E_0 ln E_1 Z^m ],

with the layer field split over the two levels (``rsb1_layer`` in :mod:`fieldnet.landscape.tilted`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fieldnet.errors import DivergenceError, positive_number, require
from fieldnet.landscape.covariance import NetworkCovariance
from fieldnet.landscape.tilted import (D, G, GC1, GD, LHH, LHM, LMM, N_RESULTS, Q1, activation_kinks,
                                       centre_grid, hermite_rule, kink_rule, tilted_module)

NODES = 40          # Gauss–Hermite nodes per outer dimension (RS)
TILT_GRID = 0.5     # above this tilt 2 qh v a smooth phi's centre average uses the uniform grid (centre_grid)
MU_STEP = 0.08      # its step in mu (halved above 2 qh v = 8); converged to 1e-7 in u (sin, tanh; beta <= 16)
NODES_1RSB = 14     # per dimension at each of the two 1RSB levels (14^4 inner integrals per layer)
TOL = 1e-10         # convergence of the zipper iteration (max change of any order parameter)
MAX_ITER = 4000


def _alphas(alpha, depth: int) -> np.ndarray:
    a = np.atleast_1d(np.asarray(alpha, dtype=float))
    if a.size == 1:
        a = np.full(depth, float(a[0]))
    require(a.shape == (depth,), "alpha", f"needs one aspect ratio or one per hidden layer ({depth}), got {alpha!r}")
    require(bool(np.all(np.isfinite(a) & (a > 0))), "alpha", f"aspect ratios N_l / N must be > 0 and finite, got {alpha!r}")
    return a


def _beta(beta) -> float:
    return positive_number(beta, "beta")


def _rs_overlap(xi_prime, beta: float) -> float:
    """The largest root of beta^2 xi'(q) (1 - q)^2 = q in [0, 1) (the alpha -> infinity RS overlap)."""
    from scipy.optimize import brentq

    grid = np.linspace(0.0, 1.0, 257)[:-1]
    g = beta ** 2 * xi_prime(grid) * (1.0 - grid) ** 2 - grid
    down = np.flatnonzero((g[:-1] > 0) & (g[1:] <= 0))
    if down.size == 0:
        return 0.0
    i = down[-1]
    f = lambda t: beta ** 2 * float(xi_prime(np.array([t]))[0]) * (1.0 - t) ** 2 - t
    return brentq(f, grid[i], grid[i + 1], xtol=1e-14)


@dataclass
class RSLayers:
    """A replica-symmetric saddle point at finite alpha (module docstring for the symbols)."""

    beta: float
    alpha: np.ndarray
    q0: float                 # overlap of two Gibbs samples of the inputs, x^a.x^b / N
    d: np.ndarray             # layer self-overlaps d_l = |phi(z^l)|^2 / N_l   (l = 1..L)
    q: np.ndarray             # layer overlaps q_l
    dh: np.ndarray            # conjugates
    qh: np.ndarray
    free_energy: float        # P = (1/N) E ln int dsigma exp(-beta H)
    energy: float             # u = <H>/N
    entropy: float            # s = P + beta u
    replicon: float           # 1 - R; RS stable iff >= 0
    iterations: int
    layers: list = field(default_factory=list, repr=False)   # raw per-layer averages

    @property
    def stable(self) -> bool:
        return self.replicon >= -1e-9


@dataclass
class RSB1Layers:
    """A one-step RSB saddle point at finite alpha."""

    beta: float
    alpha: np.ndarray
    m: float
    q1: float                 # input overlaps within / across states
    q0: float
    d: np.ndarray
    q1_layers: np.ndarray
    q0_layers: np.ndarray
    free_energy: float
    energy: float
    entropy: float
    iterations: int


class FiniteAlphaLandscape:
    """Replica theory of H(x) = sqrt(N) f(x) for an MLP with hidden widths alpha_l N (module docstring).

    Parameters: ``activation`` (name or sympy expression), ``depth`` L (hidden layers), ``weight_var``
    C_W, ``bias_var`` C_b, ``alpha`` (one value or L values), ``readout_var`` C_v (default C_W).
    """

    def __init__(self, activation, depth, weight_var, bias_var, alpha, readout_var=None, *, nodes: int = NODES):
        self.covariance = NetworkCovariance(activation, depth, weight_var, bias_var, readout_var)
        self.alpha = _alphas(alpha, self.covariance.depth)
        require(isinstance(nodes, int) and nodes >= 8, "nodes", f"must be an integer >= 8, got {nodes!r}")
        self.nodes = nodes
        self._module = tilted_module(self.covariance.activation)
        self._kinks = activation_kinks(self.covariance.activation)
        self._memo: dict = {}

    # -- shorthand ---------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return self.covariance.depth

    @property
    def cw(self) -> float:
        return self.covariance.weight_var

    @property
    def cb(self) -> float:
        return self.covariance.bias_var

    @property
    def cv(self) -> float:
        return self.covariance.readout_var

    def spherical_model(self):
        """The alpha -> infinity limit (a spherical mixed p-spin model with this network's xi)."""
        return self.covariance.spherical_model()

    # -- replica symmetry ----------------------------------------------------------------------
    def _rs_layer(self, l, d_prev, q_prev, dh, qh):
        D_ = self.cw * d_prev + self.cb
        c = self.cw * q_prev + self.cb
        v = D_ - c
        if not v > 0:
            raise DivergenceError(f"layer {l}: the replicas' overlap reached their self-overlap "
                                  f"(v = {v:.3g}); the replica-symmetric saddle is degenerate here")
        if qh < 0:
            raise DivergenceError(f"layer {l}: negative conjugate overlap qh = {qh:.3g} (no real saddle)")
        res = np.empty(N_RESULTS)
        x, w = hermite_rule(self.nodes)
        if self._kinks or 2.0 * qh * v <= TILT_GRID:
            zx, zw = kink_rule(self._kinks, c, v, self.nodes)
        else:
            # strong tilt, smooth phi: ln Z(mu) develops near-kinks (the tilted neuron jumps between wells of
            # h phi(z)) that Gauss-Hermite nodes miss; a uniform grid in the centre mu resolves them
            zx, zw = centre_grid(c, MU_STEP if 2.0 * qh * v <= 8.0 else MU_STEP / 2.0)
        if self._kinks and qh > 0:
            # the tilt h = sqrt(2 qh) y switches the neuron between its linear pieces over |h| sigma ~ 1
            x, w = kink_rule((0.0,), 1.0, 1.0 / (2.0 * qh * v), self.nodes)
        self._module.rs_layer(c, v, dh - qh, qh, zx, zw, x, w, res)
        if not np.all(np.isfinite(res)):
            raise DivergenceError(f"layer {l}: the tilted average E exp(a phi^2 + h phi) diverges "
                                  f"(a = {dh - qh:.3g} times the variance {v:.3g}); beta or 1/alpha too large")
        return res, v

    def rs(self, beta, *, damping: float = 0.5, start: RSLayers | None = None) -> RSLayers:
        """The RS saddle point at inverse temperature ``beta`` (damped zipper iteration; solutions are memoised per
        beta, and ``start`` — a solution at a nearby beta — only changes where the iteration begins)."""
        beta = _beta(beta)
        key = (beta, damping)
        if key in self._memo:
            return self._memo[key]
        L, a = self.depth, self.alpha
        top = beta ** 2 * self.cv / (2.0 * a[-1])
        if start is not None:
            q0, d, q, dh, qh = start.q0, start.d.copy(), start.q.copy(), start.dh.copy(), start.qh.copy()
        else:
            q0, d, q, dh, qh = self._rs_start(beta)
        for it in range(1, MAX_ITER + 1):
            layers, d_new, q_new = [], np.empty(L), np.empty(L)
            d_prev, q_prev = 1.0, q0
            for l in range(L):
                res, v = self._rs_layer(l + 1, d_prev, q_prev, dh[l], qh[l])
                layers.append(res)
                d_new[l], q_new[l] = res[D], res[Q1]
                d_prev, q_prev = d_new[l], q_new[l]
            dh_new, qh_new = np.empty(L), np.empty(L)
            dh_new[-1] = qh_new[-1] = top
            for l in range(L - 1, 0, -1):
                ratio = a[l] / a[l - 1] * self.cw
                dh_new[l - 1] = ratio * layers[l][GD]
                qh_new[l - 1] = ratio * layers[l][GC1]
            t = 2.0 * a[0] * self.cw * layers[0][GC1]
            q0_new = 0.0 if t <= 0 else 1.0 + (1.0 - math.sqrt(1.0 + 4.0 * t)) / (2.0 * t)
            change = max(abs(q0_new - q0), np.max(np.abs(d_new - d)), np.max(np.abs(q_new - q)),
                         np.max(np.abs(dh_new - dh)), np.max(np.abs(qh_new - qh)))
            mix = 1.0 - damping
            q0 = q0 + mix * (q0_new - q0)
            d, q = d + mix * (d_new - d), q + mix * (q_new - q)
            dh, qh = dh + mix * (dh_new - dh), qh + mix * (qh_new - qh)
            if change < TOL:
                break
        else:
            raise DivergenceError(f"beta = {beta:g}: the replica-symmetric saddle did not converge "
                                  f"in {MAX_ITER} iterations (last change {change:.2e})")
        self._memo[key] = self._rs_solution(beta, q0, d, q, dh, qh, it)
        return self._memo[key]

    def _rs_start(self, beta):
        """Start from the alpha -> infinity RS solution: NNGP layer overlaps and the leading conjugates."""
        q0 = _rs_overlap(self.covariance.xi_prime, beta)
        L = self.depth
        d, q = np.empty(L), np.empty(L)
        k_d, k_q = self.cw + self.cb, self.cw * q0 + self.cb
        from fieldnet.analysis.averages import averages

        avg = averages(self.covariance.activation)
        slopes = np.empty(L)
        for l in range(L):
            d[l] = float(avg.second_moment(k_d))
            q[l] = float(avg.pair(k_d, min(k_q / k_d, 1.0)))
            slopes[l] = float(avg.derivative_pair(k_d, min(k_q / k_d, 1.0)))
            k_d, k_q = self.cw * d[l] + self.cb, self.cw * q[l] + self.cb
        qh = np.empty(L)
        qh[-1] = beta ** 2 * self.cv / (2.0 * self.alpha[-1])
        for l in range(L - 1, 0, -1):
            qh[l - 1] = self.alpha[l] / self.alpha[l - 1] * self.cw * slopes[l] * qh[l]
        return q0, d, q, qh.copy(), qh

    def _rs_solution(self, beta, q0, d, q, dh, qh, it) -> RSLayers:
        L, a = self.depth, self.alpha
        layers, d_prev, q_prev = [], 1.0, q0
        for l in range(L):
            res, v = self._rs_layer(l + 1, d_prev, q_prev, dh[l], qh[l])
            layers.append((res, v))
            d_prev, q_prev = d[l], q[l]
        P = 0.5 * (math.log1p(-q0) + q0 / (1.0 - q0)) + 0.5 * beta ** 2 * self.cv * (d[-1] - q[-1])
        P += float(sum(a[l] * (-(dh[l] * d[l] - qh[l] * q[l]) + layers[l][0][G]) for l in range(L)))
        u = -beta * self.cv * (d[-1] - q[-1])
        replicon = 1.0 - self._replicon_ratio(q0, [r for r, _ in layers])
        return RSLayers(beta, a.copy(), q0, d, q, dh, qh, P, u, P + beta * u, replicon, it,
                        [r for r, _ in layers])

    def _replicon_ratio(self, q0, layers) -> float:
        """R = 1 + 4 kappa (1 - q0)^2 from the replicon quadratic form (module docstring)."""
        L, a, cw = self.depth, self.alpha, self.cw
        n = 2 * L                        # x = (epsh_1, eps_1, ..., epsh_L, eps_L)
        A = np.zeros((n, n))
        b = np.zeros(n)
        c = -0.25 / (1.0 - q0) ** 2
        for l in range(L):
            hat, eps = 2 * l, 2 * l + 1
            lam = layers[l]
            A[hat, eps] += -a[l] / 2.0
            A[eps, hat] += -a[l] / 2.0
            A[hat, hat] += a[l] * lam[LHH]
            cross = a[l] * cw * lam[LHM] / 2.0
            curv = a[l] * cw ** 2 * lam[LMM] / 4.0
            if l == 0:
                b[hat] += cross
                c += curv
            else:
                prev = 2 * (l - 1) + 1
                A[prev, hat] += cross
                A[hat, prev] += cross
                A[prev, prev] += curv
        kappa = c - b @ np.linalg.solve(A, b)
        return 1.0 + 4.0 * kappa * (1.0 - q0) ** 2


@dataclass
class FiniteAlphaGroundState:
    """RS zero-temperature energy at finite alpha, extrapolated from finite beta (see ``ground_state_rs``)."""

    energy: float            # u_GS^RS = lim_{beta -> inf} <H>/N on the RS branch
    uncertainty: float       # spread between two extrapolation bases (an estimate of the truncation error)
    betas: np.ndarray
    energies: np.ndarray
    replicons: np.ndarray    # 1 - R at each beta (negative: RS AT-unstable there)


def ground_state_rs(landscape: FiniteAlphaLandscape, betas=(4.0, 6.0, 8.0, 12.0, 16.0)) -> FiniteAlphaGroundState:
    """The RS ground-state energy at finite alpha by extrapolating u(beta) to beta = infinity.

    Fit u(beta) = sum_p c_p beta^{-p} by least squares: p in {0, 1, 2, 3} for smooth phi (u is analytic in
    1/beta) and p in {0, 1/2, 1, 3/2, 2} for kinked phi (xi''(q) ~ (1 - q)^{-1/2} near q = 1 gives half-integer
    powers). Checked against the exact alpha -> infinity value -sqrt(xi'(1)): 2e-4 to 7e-4 for tanh and relu at
    depths 1, 2 (tests). ``uncertainty`` = |difference to the fit with the highest power dropped|.
    """
    betas = np.array([_beta(b) for b in betas], dtype=float)
    require(betas.size >= 4, "betas", f"need at least 4 inverse temperatures, got {betas.size}")
    kinked = bool(landscape._kinks)
    powers = (0.0, 0.5, 1.0, 1.5, 2.0) if kinked else (0.0, 1.0, 2.0, 3.0)
    energies, replicons, sol = [], [], None
    for b in np.sort(betas):
        sol = landscape.rs(b, start=sol)      # continuation from the previous temperature
        energies.append(sol.energy)
        replicons.append(sol.replicon)
    energies, replicons, betas = np.array(energies), np.array(replicons), np.sort(betas)

    def fit(pw):
        X = betas[:, None] ** (-np.array(pw))[None, :]
        return float(np.linalg.lstsq(X, energies, rcond=None)[0][0])

    best = fit(powers if betas.size > len(powers) - 1 else powers[:betas.size - 1])
    coarse = fit(powers[:-1])
    return FiniteAlphaGroundState(best, abs(best - coarse), betas, energies, replicons)
