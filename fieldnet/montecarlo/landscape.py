"""Monte Carlo of the energy landscape of real finite random MLPs (issue 7; Winer & Hanin, arXiv:2503.23982).

The model. Inputs x in R^N (N = n_0) on the sphere |x|^2 = N; hidden widths N_l = round(alpha_l N), l = 1..L;
W^l, v standard-normal entries, b^l_i ~ N(0, C_b), b_v ~ N(0, C_bv) (defaults C_v = C_W, C_bv = C_b):

    z^1 = sqrt(C_W) W^1 x / sqrt(N) + b^1,   z^l = sqrt(C_W) W^l phi(z^{l-1}) / sqrt(N_{l-1}) + b^l,
    f(x) = sqrt(C_v) v . phi(z^L) / sqrt(N_L) + b_v,        H(x) = sqrt(N) f(x)   (extensive: Var H = O(N)).

Gibbs measure exp(-beta H(x)) dsigma(x), dsigma the uniform probability measure on the sphere. Energies are
signed and per input dimension: u = H / N, the ground state u_GS = min_x H(x) / N < 0. Free energy
P(beta) = (1/N) ln int dsigma exp(-beta H), so dP/dbeta = -<H>/N = -u(beta), P(0) = 0, and the entropy
s = P + beta u <= 0.

Centering (``center=True``, default). H has a constant component sqrt(N) (b_v + the sphere average of the
v . phi term), O(N^{-1/2}) per N and random from network to network, which the theory drops. Each network
subtracts the average c of H over ``n_center`` (default 2048) uniform points of the sphere drawn from its own
seeded stream. A constant does not change the Gibbs measure or the minimiser; it moves u and u_GS of that
network by -c/N and P by +beta c/N, and leaves s unchanged. Since the law of H is symmetric under
(v, b_v) -> (-v, -b_v), E c = 0: the ensemble means are unchanged in expectation (by O(1/N) at most through
correlations of c with the rest of the landscape), while the O(N^{-1/2}) network-to-network noise of the
constant is removed (what is left of it is O(1 / sqrt(N n_center)) per N).

Contents.

* :class:`LandscapeEnsemble` — ``n_networks`` networks drawn at once (network k from
  ``SeedSequence(seed).spawn(n_networks)[k]``: W^1, b^1, .., W^L, b^L, v, b_v, then the centering points);
  ``energy(X)`` and ``energy_and_grad(X)`` for X of shape (P, N) (the same points for every network) or
  (n_networks, P, N), vectorised by batched matmuls and chunked over points.
* :func:`find_ground_states` — Riemannian gradient descent with Armijo backtracking from random starts.
* :func:`sample_gibbs` — annealed Metropolis chains on the sphere: u(beta) and the overlap of chain pairs.
* :func:`thermodynamic_integration` / :func:`energy_entropy` — P(beta) and s(beta) from u(beta).
* :func:`landscape_width_scan` — all of these at several N with the fit value(N) = a + b/N (+ c/N^2 ..).

Errors are estimated across networks: every per-network quantity (an average over its starts, chains and
sweeps) is one independent draw, and means carry sd / sqrt(n_networks). This is honest for the fluctuations
but not for a bias (a chain not equilibrated, a ground state not found), which the caller must bound.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fieldnet.errors import DivergenceError, require
from fieldnet.montecarlo.deep import activation_functions
from fieldnet.montecarlo.stats import InverseWidthFit, fit_inverse_powers, mean_and_sem
from fieldnet.symbolic.activations import get_activation

_CHUNK_BYTES = 32 * 2 ** 20  # working memory of one chunk of points


# ----------------------------------------------------------------------------------------------
# validation helpers


def _int(value, name: str, minimum: int) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    require(ok, name, f"must be an integer, got {value!r}")
    require(int(value) >= minimum, name, f"must be >= {minimum}, got {value}")
    return int(value)


def _real(value, name: str, *, positive: bool = False, minimum: float | None = None) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    require(ok and math.isfinite(float(value)), name, f"must be a finite real number, got {value!r}")
    value = float(value)
    if positive:
        require(value > 0, name, f"must be > 0, got {value}")
    if minimum is not None:
        require(value >= minimum, name, f"must be >= {minimum}, got {value}")
    return value


def _seed(seed):
    parts = seed if isinstance(seed, tuple) else (seed,)
    ok = len(parts) > 0 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
                                for v in parts)
    require(ok, "seed", f"expected a non-negative integer or a tuple of them, got {seed!r}")
    return tuple(int(v) for v in parts)


def uniform_sphere(rng: np.random.Generator, shape: tuple, N: int) -> np.ndarray:
    """Uniform points on the sphere |x|^2 = N, of shape ``shape + (N,)``."""
    g = rng.standard_normal(tuple(shape) + (N,))
    return _retract(g, N)


def _retract(X: np.ndarray, N: int) -> np.ndarray:
    """x -> sqrt(N) x / |x| along the last axis."""
    return X * (math.sqrt(N) / np.linalg.norm(X, axis=-1, keepdims=True))


def _tangent(X: np.ndarray, G: np.ndarray, N: int) -> np.ndarray:
    """Riemannian gradient on |x|^2 = N: G - (G . x / N) x."""
    return G - (np.sum(G * X, axis=-1, keepdims=True) / N) * X


# ----------------------------------------------------------------------------------------------
# the ensemble of networks


class LandscapeEnsemble:
    """``n_networks`` random MLPs H_k(x) = sqrt(N) f_k(x) over inputs x in R^N (module docstring).

    Parameters: ``N`` >= 2 input dimension; ``alpha`` > 0 (a number, or one per hidden layer) with
    N_l = round(alpha_l N); ``depth`` L >= 1; ``activation`` a name or expression accepted by
    :func:`fieldnet.symbolic.activations.get_activation`; ``C_W`` > 0, ``C_b`` >= 0, ``C_v`` > 0 (default C_W),
    ``C_bv`` >= 0 (default C_b); ``n_networks`` >= 2; ``seed`` a non-negative int or tuple of them;
    ``center`` and ``n_center`` (the centering constant, module docstring).

    Attributes: ``N``, ``widths`` = (N, N_1, .., N_L), ``n_networks``, ``depth``, ``activation``,
    ``center_constant`` (n_networks,) the constant c_k subtracted from H_k (zeros if not centered).
    """

    def __init__(self, N: int, alpha=4.0, depth: int = 1, activation="tanh", *, C_W: float = 1.0,
                 C_b: float = 0.0, C_v: float | None = None, C_bv: float | None = None, n_networks: int = 16,
                 seed=0, center: bool = True, n_center: int = 2048):
        self.N = _int(N, "N", 2)
        self.depth = _int(depth, "depth", 1)
        alphas = [alpha] * self.depth if np.ndim(alpha) == 0 else list(alpha)
        require(len(alphas) == self.depth, "alpha", f"needs one value per hidden layer ({self.depth}), got {alpha!r}")
        alphas = [_real(a, "alpha", positive=True) for a in alphas]
        hidden = [int(round(a * self.N)) for a in alphas]
        require(min(hidden) >= 1, "alpha", f"gives a hidden width round(alpha N) = 0 at N = {self.N}")
        self.widths = (self.N, *hidden)
        self.C_W = _real(C_W, "C_W", positive=True)
        self.C_b = _real(C_b, "C_b", minimum=0.0)
        self.C_v = self.C_W if C_v is None else _real(C_v, "C_v", positive=True)
        self.C_bv = self.C_b if C_bv is None else _real(C_bv, "C_bv", minimum=0.0)
        self.n_networks = _int(n_networks, "n_networks", 2)
        self.seed = _seed(seed)
        require(isinstance(center, (bool, np.bool_)), "center", f"must be True or False, got {center!r}")
        self.n_center = _int(n_center, "n_center", 1)
        self.activation = get_activation(activation)
        try:
            self._phi, self._dphi = activation_functions(self.activation)
        except DivergenceError:                       # e.g. a step: H is defined, its gradient is not
            self._phi, _ = activation_functions(self.activation, with_derivative=False)
            self._dphi = None
        self._draw()
        self.center_constant = np.zeros(self.n_networks)
        if center:
            self.center_constant = np.array([self.energy(self._center_points[k], networks=[k])[0].mean()
                                             for k in range(self.n_networks)])
        del self._center_points

    # weights are stored pre-scaled: Wt[l] (B, N_{l-1}, N_l) = sqrt(C_W / N_{l-1}) W^l^T, b[l] = sqrt(C_b) b^l,
    # v = sqrt(N C_v / N_L) v, bv = sqrt(N C_bv) b_v, so that H = phi(z^L) . v + bv
    def _draw(self):
        B, w = self.n_networks, self.widths
        self._Wt = [np.empty((B, w[l - 1], w[l])) for l in range(1, self.depth + 1)]
        self._b = [np.empty((B, w[l])) for l in range(1, self.depth + 1)]
        self._v = np.empty((B, w[-1]))
        self._bv = np.empty(B)
        self._center_points = []
        streams = np.random.SeedSequence(self.seed).spawn(B)
        for k, stream in enumerate(streams):
            rng = np.random.default_rng(stream)
            for l in range(self.depth):
                self._Wt[l][k] = rng.standard_normal((w[l + 1], w[l])).T
                self._b[l][k] = rng.standard_normal(w[l + 1])
            self._v[k] = rng.standard_normal(w[-1])
            self._bv[k] = rng.standard_normal()
            self._center_points.append(uniform_sphere(rng, (self.n_center,), self.N))
        for l in range(self.depth):
            self._Wt[l] *= math.sqrt(self.C_W / w[l])
            self._b[l] *= math.sqrt(self.C_b)
        self._v *= math.sqrt(self.N * self.C_v / w[-1])
        self._bv *= math.sqrt(self.N * self.C_bv)

    def _points(self, X, networks) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        nb = len(networks)
        require(X.ndim in (2, 3) and X.shape[-1] == self.N, "X",
                f"expected shape (P, {self.N}) or ({nb}, P, {self.N}), got {X.shape}")
        require(X.ndim == 2 or X.shape[0] == nb, "X", f"leading axis must be the {nb} networks, got {X.shape}")
        require(bool(np.all(np.isfinite(X))), "X", "contains NaN or infinite values")
        return X

    def _networks(self, networks):
        if networks is None:
            return slice(None), self.n_networks
        idx = np.asarray(networks, dtype=np.int64).ravel()
        require(idx.size >= 1 and bool(np.all((idx >= 0) & (idx < self.n_networks))), "networks",
                f"must be indices in [0, {self.n_networks}), got {networks!r}")
        return idx, idx.size

    def _chunk(self, nb: int) -> int:
        per_point = 8 * nb * (3 * sum(self.widths[1:]) + 2 * self.N)
        return max(1, _CHUNK_BYTES // per_point)

    def _evaluate(self, X, networks, grad: bool):
        sel, nb = self._networks(networks)
        X = self._points(X, range(nb))
        Wt = [w[sel] for w in self._Wt]
        bs = [b[sel][:, None, :] for b in self._b]
        v, bv, c = self._v[sel], self._bv[sel], self.center_constant[sel]
        P = X.shape[-2]
        E = np.empty((nb, P))
        G = np.empty((nb, P, self.N)) if grad else None
        step = self._chunk(nb)
        for lo in range(0, P, step):
            Xc = X[..., lo:lo + step, :]
            h, zs = Xc, []
            for l in range(self.depth):
                z = h @ Wt[l] + bs[l]
                zs.append(z)
                h = self._phi(z)
            E[:, lo:lo + step] = np.einsum("bpn,bn->bp", h, v) + (bv - c)[:, None]
            if grad:
                delta = v[:, None, :] * self._dphi(zs[-1])
                for l in range(self.depth - 1, 0, -1):
                    delta = (delta @ np.swapaxes(Wt[l], 1, 2)) * self._dphi(zs[l - 1])
                G[:, lo:lo + step] = delta @ np.swapaxes(Wt[0], 1, 2)
        return E, G

    def energy(self, X, networks=None) -> np.ndarray:
        """H_k(x_p) (centered if the ensemble is), shape (n, P) for the n selected networks (default all).

        X: (P, N), the same points for every network, or (n, P, N), points per network. H is evaluated
        for any x in R^N; it is the landscape on the sphere only for |x|^2 = N."""
        return self._evaluate(X, networks, grad=False)[0]

    def energy_and_grad(self, X, networks=None) -> tuple[np.ndarray, np.ndarray]:
        """(H_k(x_p) of shape (n, P), the Euclidean gradient dH_k/dx at x_p of shape (n, P, N)).

        The gradient is backpropagated through the explicit weights (relu: phi' = Heaviside, 1/2 at 0)."""
        require(self._dphi is not None, "activation",
                f"{self.activation.name} has no pointwise derivative: the gradient of H is not defined")
        return self._evaluate(X, networks, grad=True)

    def preactivations(self, X, networks=None) -> list:
        """[z^1, .., z^L], each of shape (n, P, N_l), at X (shape as in :meth:`energy`)."""
        sel, nb = self._networks(networks)
        h, zs = self._points(X, range(nb)), []
        for Wt, b in zip(self._Wt, self._b):
            zs.append(h @ Wt[sel] + b[sel][:, None, :])
            h = self._phi(zs[-1])
        return zs


# ----------------------------------------------------------------------------------------------
# ground states


@dataclass(frozen=True)
class GroundStates:
    """Lowest energies found per network, u = H / N (centered H if the ensemble is).

    ``u_best`` (n_networks,) the best u per network after the polish; ``x_best`` (n_networks, N) its point;
    ``u_starts`` (n_networks, n_starts) the local minima reached from each start; ``fraction_best``
    (n_networks,) the fraction of starts with u within ``match_tol`` of u_best; ``grad_norm`` (n_networks,)
    |Riemannian grad H| / sqrt(N) at x_best (not small when the minimum sits on a kink of relu); ``mean``,
    ``sem`` of u_best over networks; ``iterations`` = (momentum steps, Armijo iterations of all starts, of the
    polish).
    """

    u_best: np.ndarray
    x_best: np.ndarray
    u_starts: np.ndarray
    fraction_best: np.ndarray
    grad_norm: np.ndarray
    mean: float
    sem: float
    iterations: tuple
    match_tol: float


def _descend(ens: LandscapeEnsemble, X: np.ndarray, max_iter: int, tol: float, step0: float = 0.1):
    """Riemannian gradient descent of H on |x|^2 = N, every (network, start) with its own step.

    A trial x' = retract(x - eta g_R) is accepted if H(x') <= H(x) - 1e-4 eta |g_R|^2 (Armijo); then
    eta *= 1.5, else eta /= 2 and x stays. One energy+gradient evaluation per iteration, of the points still
    active only (gathered per network). A point stops when |g_R| / sqrt(N) < tol or when its step
    eta |g_R| falls below 1e-13 sqrt(N) (round-off, or a kink of a relu network).
    Returns (X, H, |g_R| / sqrt(N), iterations)."""
    N = ens.N
    rootN = math.sqrt(N)
    E, G = ens.energy_and_grad(X)
    gR = _tangent(X, G, N)
    g2 = np.sum(gR * gR, axis=-1)
    eta = np.full(E.shape, step0)
    it = 0
    for it in range(1, max_iter + 1):
        active = (g2 > (tol * rootN) ** 2) & (eta * np.sqrt(g2) > 1e-13 * rootN)
        width = int(active.sum(axis=1).max())
        if width == 0:
            it -= 1
            break
        idx = np.argsort(~active, axis=1, kind="stable")[:, :width]       # active starts first, per network
        take = (lambda a: np.take_along_axis(a, idx, axis=1))
        take3 = (lambda a: np.take_along_axis(a, idx[..., None], axis=1))
        x, e, g, s2, h, act = take3(X), take(E), take3(gR), take(g2), take(eta), take(active)
        xt = _retract(x - (h * act)[..., None] * g, N)
        et, gt = ens.energy_and_grad(xt)
        ok = act & (et <= e - 1e-4 * h * s2)
        gt = _tangent(xt, gt, N)
        np.put_along_axis(X, idx[..., None], np.where(ok[..., None], xt, x), axis=1)
        np.put_along_axis(E, idx, np.where(ok, et, e), axis=1)
        np.put_along_axis(gR, idx[..., None], np.where(ok[..., None], gt, g), axis=1)
        np.put_along_axis(g2, idx, np.where(ok, np.sum(gt * gt, axis=-1), s2), axis=1)
        np.put_along_axis(eta, idx, np.where(ok, h * 1.5, np.where(act, h * 0.5, h)), axis=1)
    return X, E, np.sqrt(g2) / rootN, it


def _momentum_descent(ens: LandscapeEnsemble, X: np.ndarray, n_iter: int, step_start: float = 0.3,
                      step_end: float = 1e-5, beta1: float = 0.9) -> np.ndarray:
    """Normalised-gradient descent with momentum and a geometrically decaying step on |x|^2 = N.

    m <- beta1 P_x m + (1 - beta1) g_R sqrt(N) / |g_R|,  x <- retract(x - eta_t m), eta_t decaying from
    ``step_start`` to ``step_end`` (a relative step: the angle moved is about eta_t). It does not need a
    descent direction at every step, so it follows the valleys along the kinks of relu networks where
    Armijo steps stall. Returns the lowest point met by each start."""
    N = ens.N
    m = np.zeros_like(X)
    E, G = ens.energy_and_grad(X)
    best_E, best_X = E.copy(), X.copy()
    for t in range(n_iter):
        eta = step_start * (step_end / step_start) ** (t / max(n_iter - 1, 1))
        g = _tangent(X, G, N)
        g *= math.sqrt(N) / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-300)
        m = beta1 * _tangent(X, m, N) + (1.0 - beta1) * g
        X = _retract(X - eta * m, N)
        E, G = ens.energy_and_grad(X)
        better = E < best_E
        best_E = np.where(better, E, best_E)
        best_X = np.where(better[..., None], X, best_X)
    return best_X


def find_ground_states(ens: LandscapeEnsemble, n_starts: int = 20, *, momentum_iter: int = 1500,
                       max_iter: int = 2000, tol: float = 1e-6, polish_iter: int = 20000, polish_tol: float = 1e-9,
                       match_tol: float = 1e-3, seed=0) -> GroundStates:
    """Minimise H_k on the sphere from ``n_starts`` uniform random starts per network (seeded by ``seed``).

    Three stages, all starts of all networks together: ``momentum_iter`` steps of :func:`_momentum_descent`
    (0 to skip); Armijo gradient descent (:func:`_descend`, at most ``max_iter`` iterations, stop at
    |g_R| / sqrt(N) < ``tol``), giving the local minimum u_starts of each start; then the best start of each
    network is polished by :func:`_descend` with ``polish_iter`` and ``polish_tol``.
    """
    n_starts = _int(n_starts, "n_starts", 1)
    momentum_iter = _int(momentum_iter, "momentum_iter", 0)
    max_iter = _int(max_iter, "max_iter", 1)
    polish_iter = _int(polish_iter, "polish_iter", 0)
    tol = _real(tol, "tol", positive=True)
    polish_tol = _real(polish_tol, "polish_tol", positive=True)
    match_tol = _real(match_tol, "match_tol", positive=True)
    rng = np.random.default_rng(np.random.SeedSequence(_seed(seed)))
    X = uniform_sphere(rng, (ens.n_networks, n_starts), ens.N)
    if momentum_iter:
        X = _momentum_descent(ens, X, momentum_iter)
    X, E, gn, it1 = _descend(ens, X, max_iter, tol)
    u_starts = E / ens.N
    best = np.argmin(E, axis=1)
    rows = np.arange(ens.n_networks)
    Xb, Eb, gb, it2 = _descend(ens, X[rows, best][:, None, :], polish_iter, polish_tol)
    u_best = Eb[:, 0] / ens.N
    fraction = np.mean(u_starts <= u_best[:, None] + match_tol, axis=1)
    mean, sem = mean_and_sem(u_best)
    return GroundStates(u_best, Xb[:, 0], u_starts, fraction, gb[:, 0], float(mean), float(sem),
                        (momentum_iter, it1, it2), match_tol)


# ----------------------------------------------------------------------------------------------
# finite temperature


@dataclass(frozen=True)
class GibbsSamples:
    """Annealed Metropolis estimates on the grid ``betas`` (K,), per network and over networks.

    ``u`` (n_networks, K): <H>/N per network (average over its chains and measurement sweeps);
    ``u_mean``, ``u_sem`` (K,) over networks. ``q``, ``q2`` (n_networks, K): <q>, <q^2> of the overlap
    q = x^a . x^b / N of independent chain pairs in the same network, ``q_mean`` .. ``q2_sem`` over networks;
    ``q_hist`` (K, n_bins) the density of q (average over networks of each network's normalised histogram)
    on ``q_edges`` (n_bins + 1,). ``acceptance`` (n_networks, K) during measurement, ``step`` (n_networks, K)
    the frozen proposal size delta; ``sweeps`` = (n_burn, n_measure) per beta.
    """

    betas: np.ndarray
    u: np.ndarray
    u_mean: np.ndarray
    u_sem: np.ndarray
    q: np.ndarray
    q2: np.ndarray
    q_mean: np.ndarray
    q_sem: np.ndarray
    q2_mean: np.ndarray
    q2_sem: np.ndarray
    q_hist: np.ndarray
    q_edges: np.ndarray
    acceptance: np.ndarray
    step: np.ndarray
    sweeps: tuple


def _betas(betas) -> np.ndarray:
    b = np.asarray(betas, dtype=np.float64)
    require(b.ndim == 1 and b.size >= 1 and bool(np.all(np.isfinite(b))), "betas",
            f"expected a non-empty 1-d grid of finite values, got {betas!r}")
    require(bool(np.all(b >= 0)) and bool(np.all(np.diff(b) > 0)), "betas",
            f"must be >= 0 and strictly increasing (the chains are annealed along it), got {betas!r}")
    return b


def sample_gibbs(ens: LandscapeEnsemble, betas, *, n_pairs: int = 4, n_burn: int = 400, n_measure: int = 800,
                 target_accept: float = 0.4, thin: int = 4, n_bins: int = 40, step0: float = 0.3,
                 seed=0) -> GibbsSamples:
    """Metropolis chains for exp(-beta H_k) dsigma, 2 ``n_pairs`` chains per network, annealed along ``betas``.

    Proposal x' = sqrt(N) (x + delta g) / |x + delta g|, g standard normal in R^N (symmetric: its density
    depends only on the angle between x and x'), accepted with probability min(1, exp(-beta (H(x') - H(x)))).
    The chains start uniform at betas[0] and carry their state to the next beta. At each beta: ``n_burn``
    sweeps of burn-in, during the first half of which delta (one per network, shared by its chains) is
    adapted every 20 sweeps, delta *= exp(2 (acceptance - target_accept)), clipped to [1e-4, 10]; then delta
    is frozen and ``n_measure`` sweeps are measured: H every sweep, the overlaps of chains (2i, 2i+1) every
    ``thin`` sweeps. A sweep is one proposal for every chain.
    """
    b = _betas(betas)
    n_pairs = _int(n_pairs, "n_pairs", 1)
    n_burn = _int(n_burn, "n_burn", 0)
    n_measure = _int(n_measure, "n_measure", 1)
    thin = _int(thin, "thin", 1)
    n_bins = _int(n_bins, "n_bins", 1)
    target = _real(target_accept, "target_accept")
    require(0 < target < 1, "target_accept", f"must be in (0, 1), got {target}")
    step0 = _real(step0, "step0", positive=True)
    rng = np.random.default_rng(np.random.SeedSequence(_seed(seed)))
    B, N, K, C = ens.n_networks, ens.N, b.size, 2 * n_pairs
    rootN = math.sqrt(N)
    edges = np.linspace(-1.0, 1.0, n_bins + 1)
    X = uniform_sphere(rng, (B, C), N)
    E = ens.energy(X)
    delta = np.full(B, step0)
    u, q1, q2 = (np.zeros((B, K)) for _ in range(3))
    acc_out, step_out = np.zeros((B, K)), np.zeros((B, K))
    hist = np.zeros((B, K, n_bins))
    rows = np.repeat(np.arange(B), n_pairs)

    def sweep(beta):
        nonlocal X, E
        Y = X + delta[:, None, None] * rng.standard_normal(X.shape)
        Y *= rootN / np.linalg.norm(Y, axis=-1, keepdims=True)
        Ey = ens.energy(Y)
        with np.errstate(over="ignore"):
            ok = rng.random(E.shape) < np.exp(-beta * (Ey - E))
        X = np.where(ok[..., None], Y, X)
        E = np.where(ok, Ey, E)
        return ok.mean(axis=1)

    window, acc_win = 20, np.zeros(B)
    for k, beta in enumerate(b):
        for t in range(n_burn):
            acc_win += sweep(beta)
            if t < n_burn // 2 and (t + 1) % window == 0:
                delta = np.clip(delta * np.exp(2.0 * (acc_win / window - target)), 1e-4, 10.0)
                acc_win[:] = 0.0
        acc_win[:] = 0.0
        n_q = 0
        for t in range(n_measure):
            acc_out[:, k] += sweep(beta)
            u[:, k] += E.mean(axis=1)
            if t % thin == 0:
                q = np.sum(X[:, 0::2] * X[:, 1::2], axis=-1) / N           # (B, n_pairs)
                q1[:, k] += q.mean(axis=1)
                q2[:, k] += (q * q).mean(axis=1)
                idx = np.clip(np.searchsorted(edges, q.ravel(), side="right") - 1, 0, n_bins - 1)
                np.add.at(hist[:, k], (rows, idx), 1.0)
                n_q += 1
        u[:, k] /= n_measure * N
        acc_out[:, k] /= n_measure
        q1[:, k] /= n_q
        q2[:, k] /= n_q
        step_out[:, k] = delta
    hist /= hist.sum(axis=-1, keepdims=True) * np.diff(edges)
    um, us = mean_and_sem(u)
    qm, qs = mean_and_sem(q1)
    q2m, q2s = mean_and_sem(q2)
    return GibbsSamples(b, u, um, us, q1, q2, qm, qs, q2m, q2s, hist.mean(axis=0), edges, acc_out, step_out,
                        (n_burn, n_measure))


@dataclass(frozen=True)
class EnergyEntropy:
    """The curve (u(beta), s(beta)) from thermodynamic integration, with SEMs over networks.

    ``P``, ``s`` (n_networks, K) per network; ``*_mean``, ``*_sem`` (K,) over networks."""

    betas: np.ndarray
    u_mean: np.ndarray
    u_sem: np.ndarray
    P: np.ndarray
    P_mean: np.ndarray
    P_sem: np.ndarray
    s: np.ndarray
    s_mean: np.ndarray
    s_sem: np.ndarray


def thermodynamic_integration(betas, u) -> tuple[np.ndarray, np.ndarray]:
    """(P, s) from u(beta) = <H>/N on a grid starting at beta = 0, along the last axis of ``u``.

    P(beta_k) = -int_0^{beta_k} u dbeta (cumulative trapezoid: exact for u linear in beta, error O(h^2 u''))
    and s = P + beta u, per network when u is (n_networks, K)."""
    b = _betas(betas)
    require(b[0] == 0.0, "betas", f"thermodynamic integration starts at beta = 0, got betas[0] = {b[0]}")
    u = np.asarray(u, dtype=np.float64)
    require(u.shape[-1:] == b.shape, "u", f"last axis must match the {b.size} betas, got {u.shape}")
    pieces = 0.5 * (u[..., 1:] + u[..., :-1]) * np.diff(b)
    P = -np.concatenate([np.zeros(u.shape[:-1] + (1,)), np.cumsum(pieces, axis=-1)], axis=-1)
    return P, P + b * u


def energy_entropy(samples: GibbsSamples) -> EnergyEntropy:
    """Thermodynamic integration of a :class:`GibbsSamples` (its betas must start at 0)."""
    P, s = thermodynamic_integration(samples.betas, samples.u)
    Pm, Ps = mean_and_sem(P)
    sm, ss = mean_and_sem(s)
    return EnergyEntropy(samples.betas, samples.u_mean, samples.u_sem, P, Pm, Ps, s, sm, ss)


# ----------------------------------------------------------------------------------------------
# scans in N


@dataclass(frozen=True)
class LandscapeScan:
    """Per-N ensemble means and SEMs, and their extrapolation value(N) = a + b/N (+ ...) to N -> infinity.

    ``widths`` (W,) the input dimensions N; ``gs_mean``, ``gs_sem`` (W,) the ground-state u; ``fraction_best``
    (W,) the mean fraction of starts reaching the best; ``betas`` (K,) and ``u_mean``, ``u_sem``, ``s_mean``,
    ``s_sem``, ``q2_mean``, ``q2_sem`` (W, K) (None without betas); ``*_fit`` the
    :class:`~fieldnet.montecarlo.stats.InverseWidthFit` of each (NaN where a column has zero SEM, e.g. s at
    beta = 0); ``seconds_gs``, ``seconds_gibbs`` (W,) wall time.
    """

    widths: tuple
    gs_mean: np.ndarray
    gs_sem: np.ndarray
    fraction_best: np.ndarray
    gs_fit: InverseWidthFit | None
    betas: np.ndarray | None
    u_mean: np.ndarray | None
    u_sem: np.ndarray | None
    s_mean: np.ndarray | None
    s_sem: np.ndarray | None
    q2_mean: np.ndarray | None
    q2_sem: np.ndarray | None
    u_fit: InverseWidthFit | None
    s_fit: InverseWidthFit | None
    q2_fit: InverseWidthFit | None
    seconds_gs: np.ndarray
    seconds_gibbs: np.ndarray


def _extrapolate(widths, means, sems, order: int) -> InverseWidthFit | None:
    """fit_inverse_powers over axis 0, NaN in the columns that cannot be fitted (a zero SEM)."""
    if means is None or len(widths) < order + 1:
        return None
    means, sems = np.asarray(means, dtype=np.float64), np.asarray(sems, dtype=np.float64)
    good = np.all(sems > 0, axis=0)
    if means.ndim == 1:
        return fit_inverse_powers(widths, means, sems, order=order) if good else None
    out = {f: np.full(means.shape[1:], np.nan) for f in ("intercept", "slope", "intercept_se", "slope_se",
                                                        "covariance", "chi2")}
    if good.any():
        fit = fit_inverse_powers(widths, means[:, good], sems[:, good], order=order)
        for f in out:
            out[f][good] = getattr(fit, f)
    return InverseWidthFit(dof=len(widths) - order - 1, **out)


def landscape_width_scan(widths: Sequence[int], alpha=4.0, depth: int = 1, activation="tanh", *,
                         C_W: float = 1.0, C_b: float = 0.0, C_v: float | None = None, C_bv: float | None = None,
                         n_networks: int = 50, n_starts: int = 20, betas=None, seed=0, order: int = 1,
                         ground_state: bool = True, descent: dict | None = None, gibbs: dict | None = None,
                         center: bool = True) -> LandscapeScan:
    """Ground states and (if ``betas`` is given, starting at 0) u(beta), s(beta), <q^2> at each N in ``widths``.

    The ensemble at N uses the seed (seed, N) (tuple seeds are flattened); ``descent`` and ``gibbs`` are extra
    keyword arguments of :func:`find_ground_states` and :func:`sample_gibbs`. The fits are
    :func:`~fieldnet.montecarlo.stats.fit_inverse_powers` of the given ``order`` (1: a + b/N)."""
    require(len(widths) >= 1, "widths", f"need at least one N, got {widths!r}")
    Ns = tuple(_int(n, "widths", 2) for n in widths)
    require(len(set(Ns)) == len(Ns), "widths", f"must be distinct, got {widths!r}")
    base = _seed(seed)
    b = None if betas is None else _betas(betas)
    W = len(Ns)
    gs_m, gs_s, frac = np.full(W, np.nan), np.full(W, np.nan), np.full(W, np.nan)
    t_gs, t_mc = np.zeros(W), np.zeros(W)
    curves = []
    for i, N in enumerate(Ns):
        ens = LandscapeEnsemble(N, alpha, depth, activation, C_W=C_W, C_b=C_b, C_v=C_v, C_bv=C_bv,
                                n_networks=n_networks, seed=base + (N,), center=center)
        if ground_state:
            t0 = time.perf_counter()
            gs = find_ground_states(ens, n_starts, seed=base + (N, 1), **(descent or {}))
            t_gs[i] = time.perf_counter() - t0
            gs_m[i], gs_s[i], frac[i] = gs.mean, gs.sem, gs.fraction_best.mean()
        if b is not None:
            t0 = time.perf_counter()
            samples = sample_gibbs(ens, b, seed=base + (N, 2), **(gibbs or {}))
            curves.append((energy_entropy(samples), samples))
            t_mc[i] = time.perf_counter() - t0
    um = us = sm = ss = q2m = q2s = None
    if curves:
        um, us = np.array([c.u_mean for c, _ in curves]), np.array([c.u_sem for c, _ in curves])
        sm, ss = np.array([c.s_mean for c, _ in curves]), np.array([c.s_sem for c, _ in curves])
        q2m, q2s = np.array([g.q2_mean for _, g in curves]), np.array([g.q2_sem for _, g in curves])
    return LandscapeScan(Ns, gs_m, gs_s, frac, _extrapolate(Ns, gs_m, gs_s, order) if ground_state else None,
                         b, um, us, sm, ss, q2m, q2s, _extrapolate(Ns, um, us, order),
                         _extrapolate(Ns, sm, ss, order), _extrapolate(Ns, q2m, q2s, order), t_gs, t_mc)


__all__ = ["EnergyEntropy", "GibbsSamples", "GroundStates", "LandscapeEnsemble", "LandscapeScan", "energy_entropy",
           "find_ground_states", "landscape_width_scan", "sample_gibbs", "thermodynamic_integration",
           "uniform_sphere"]
