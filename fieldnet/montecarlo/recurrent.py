"""Monte Carlo ensembles of finite-width recurrent networks and their deep counterparts (THEORY.md 7.2).

    ens = sample_recurrent(net, X, width=64, n_networks=20000, seed=0)
    ens.Q_mean, ens.Q_sem      # E[(1/n) sum_i h^s_{i;a} h^t_{i;b}], (T+1, T+1, N, N), index [s, t, a, b]
    ens.C_mean, ens.C_sem      # E of the conditional covariance C[h] (the auxiliary field of THEORY 7.3)
    ens.P_mean, ens.P_sem      # E[(1/n) sum_i phi(h^s_{i;a}) phi(h^t_{i;b})] (readouts at times s, t)
    ens.C_var, ens.C_var_se    # n Var(C[h]_{tt;aa}) per time and input, (T+1, N)
    scan = recurrent_width_scan(net, X, [16, 32, 64], 20000, seed=0)
    scan.fit("Q").slope        # the 1/n coefficient, to compare with recurrent_finite_width(net, X).C1

**Exact sequential sampler** (``method="sequential"``, the default). Variables v = (t, a), t = 0..T. Row i of
(W, b, U) is Gaussian, so given all phi(h_{j,s}) the trajectory h_i of neuron i is Gaussian with covariance

    C_vw[h] = C_b + (C_W/n) sum_j phi(h_{j,v-1}) phi(h_{j,w-1}) + C_U x_v.x_w/n_0      (no W term at time 0)

(deep: only equal-time entries). C at times <= t depends only on h at times < t, so p(h) = prod_i N(h_i; 0, C[h])
exactly, and the sampler draws h_t | h_{<t} per neuron by Gaussian conditioning,

    mean_i = C_{t,<t} C_{<t,<t}^+ h_{i,<t},   cov = C_tt - C_{t,<t} C_{<t,<t}^+ C_{<t,t},

then appends phi(h_t) to C. No n x n matrix exists: O(n T^2 N^2) per network (numba, ``_fill_rows`` and
``_condition``). ``method="explicit"`` draws the weight matrices (O(n^2 T) per network): the cross-check.

Streams: the ensemble is split into chunks of ``chunk`` networks; chunk c draws from
``numpy.random.default_rng(SeedSequence(seed).spawn(n_chunks)[c])``, so a result depends on (seed, chunk).
Standard errors are over networks (neurons of one network are correlated): per-network neuron averages first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from fieldnet.errors import ParameterError, require
from fieldnet.montecarlo.deep import activation_functions
from fieldnet.montecarlo.stats import InverseWidthFit, fit_inverse_powers
from fieldnet.spec import RecurrentNetwork


@njit(cache=True)
def _fill_rows(t, N, PHI, G, cw, cb, cu, shared, C):
    """Entries (s, a; t, b) of C[h] for s <= t, every network of the chunk (PHI holds phi(h) of times < t)."""
    B, n, D = PHI.shape
    for k in range(B):
        for b in range(N):
            w = t * N + b
            for s in range(t + 1):
                for a in range(N):
                    v = s * N + a
                    if v > w:
                        continue
                    if not shared and s != t:
                        val = 0.0
                    else:
                        val = cb + cu * G[v, w]
                        if s >= 1:
                            acc = 0.0
                            for i in range(n):
                                acc += PHI[k, i, v - N] * PHI[k, i, w - N]
                            val += cw * acc / n
                    C[k, v, w] = val
                    C[k, w, v] = val


@njit(cache=True)
def _condition(t, N, H, C, XI):
    """H[:, :, tN:(t+1)N] drawn from N(C_{t,<t} C_{<t,<t}^+ h_{<t}, C_tt - C_{t,<t} C_{<t,<t}^+ C_{<t,t})."""
    B, n, D = H.shape
    m = t * N
    for k in range(B):
        ctt = C[k, m:m + N, m:m + N].copy()
        if m > 0:
            cpp = np.ascontiguousarray(C[k, :m, :m])
            cpt = np.ascontiguousarray(C[k, :m, m:m + N])
            A = np.linalg.pinv(cpp) @ cpt
            cov = ctt - cpt.T @ A
            mean = np.ascontiguousarray(H[k, :, :m]) @ A
        else:
            cov = ctt
            mean = np.zeros((n, N))
        cov = 0.5 * (cov + cov.T)
        lam, vec = np.linalg.eigh(cov)
        for j in range(N):
            lam[j] = np.sqrt(max(lam[j], 0.0))
        root = vec * lam                      # root @ root.T = cov
        noise = np.ascontiguousarray(XI[k]) @ root.T
        for i in range(n):
            for b in range(N):
                H[k, i, m + b] = mean[i, b] + noise[i, b]


def _conditional_cov(PHI, G, net: RecurrentNetwork, N: int) -> np.ndarray:
    """C[h] (B, D, D) from phi(h) (B, n, D) in numpy (for the explicit-weight path)."""
    B, n, D = PHI.shape
    C = net.bias_var + net.input_var * G[None].repeat(B, 0)
    prod = np.einsum("kiv,kiw->kvw", PHI[:, :, :D - N], PHI[:, :, :D - N]) * (net.weight_var / n)
    C[:, N:, N:] += prod
    if not net.shared:
        T1 = D // N
        mask = np.kron(np.eye(T1), np.ones((N, N))) > 0
        C[:, ~mask] = 0.0
    return C


def _sequential_chunk(net, G, N, n, B, rng, phi):
    T1 = net.steps + 1
    D = T1 * N
    H = np.zeros((B, n, D))
    PHI = np.zeros((B, n, D))
    C = np.zeros((B, D, D))
    for t in range(T1):
        _fill_rows(t, N, PHI, G, net.weight_var, net.bias_var, net.input_var, net.shared, C)
        XI = rng.standard_normal((B, n, N))
        _condition(t, N, H, C, XI)
        PHI[:, :, t * N:(t + 1) * N] = phi(H[:, :, t * N:(t + 1) * N])
    return H, C, PHI


def _explicit_chunk(net, X_steps, G, N, n, B, rng, phi):
    """Forward pass with drawn W (n x n), b, U: shared over steps (recurrent) or fresh per step (deep)."""
    T1 = net.steps + 1
    n0 = X_steps.shape[-1]
    H = np.zeros((B, n, T1 * N))
    PHI = np.zeros_like(H)

    def draw():
        W = rng.standard_normal((B, n, n)) * np.sqrt(net.weight_var / n)
        b = rng.standard_normal((B, n, 1)) * np.sqrt(net.bias_var)
        U = rng.standard_normal((B, n, n0)) * np.sqrt(net.input_var / n0)
        return W, b, U

    W, b, U = draw()
    for t in range(T1):
        if t > 0 and not net.shared:
            W, b, U = draw()
        h = b + np.einsum("kij,aj->kia", U, X_steps[:, t, :])
        if t > 0:
            h = h + W @ PHI[:, :, (t - 1) * N:t * N]
        H[:, :, t * N:(t + 1) * N] = h
        PHI[:, :, t * N:(t + 1) * N] = phi(h)
    return H, _conditional_cov(PHI, G, net, N), PHI


@dataclass(frozen=True)
class RecurrentMoments:
    """Ensemble statistics at one width (see the module docstring); arrays (T+1, T+1, N, N) unless stated."""

    network: RecurrentNetwork
    width: int
    n_networks: int
    Q_mean: np.ndarray
    Q_sem: np.ndarray
    C_mean: np.ndarray
    C_sem: np.ndarray
    C_var: np.ndarray       # (T+1, N): n Var(C[h]_{(t,a),(t,a)})
    C_var_se: np.ndarray
    Q_var: np.ndarray       # (T+1, N): n Var((1/n)|h^t_a|^2)
    Q_var_se: np.ndarray
    P_mean: np.ndarray      # E[(1/n) sum_i phi(h^s_{i;a}) phi(h^t_{i;b})] (the readout two-point function)
    P_sem: np.ndarray


def _variance_and_se(samples: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n Var, its standard error) over axis 0; se from the fourth central moment, sqrt((m4 - s^4)/M)."""
    M = samples.shape[0]
    d = samples - samples.mean(0)
    var = (d ** 2).sum(0) / (M - 1)
    m4 = (d ** 4).mean(0)
    return n * var, n * np.sqrt(np.maximum(m4 - var ** 2, 0.0) / M)


def _steps_inputs(net: RecurrentNetwork, X) -> np.ndarray:
    """X as (N, T+1, n_0) (zeros after step 0 for input at the first step)."""
    from fieldnet.analysis.recurrent import input_gram

    input_gram(net, X)  # validates
    X = np.asarray(X, dtype=np.float64)
    if net.input_mode == "every":
        return X
    out = np.zeros((X.shape[0], net.steps + 1, X.shape[1]))
    out[:, 0] = X
    return out


def sample_recurrent(network: RecurrentNetwork, X, width: int, n_networks: int, seed: int = 0,
                     method: str = "sequential", chunk: int | None = None) -> RecurrentMoments:
    """Ensemble of ``n_networks`` networks of width ``width`` (see the module docstring for ``method``)."""
    from fieldnet.analysis.recurrent import input_gram, to_time_major

    if not isinstance(network, RecurrentNetwork):
        raise ParameterError(f"network: expected a RecurrentNetwork, got {type(network).__name__}")
    require(isinstance(width, (int, np.integer)) and width >= 2, "width", f"must be an integer >= 2, got {width!r}")
    require(isinstance(n_networks, (int, np.integer)) and n_networks >= 2, "n_networks",
            f"must be an integer >= 2, got {n_networks!r}")
    require(isinstance(seed, (int, np.integer)) and seed >= 0, "seed", f"must be a non-negative integer, got {seed!r}")
    require(method in ("sequential", "explicit"), "method", f"must be 'sequential' or 'explicit', got {method!r}")
    G = input_gram(network, X)
    Xs = _steps_inputs(network, X)
    T1 = network.steps + 1
    N, D, n = Xs.shape[0], G.shape[0], int(width)
    phi, _ = activation_functions(network.activation, with_derivative=False)
    per_net = n * (n if method == "explicit" else 2 * D) * 8
    chunk = int(chunk or max(1, min(n_networks, 4096, (64 << 20) // per_net)))
    require(chunk >= 1, "chunk", f"must be >= 1, got {chunk}")
    n_chunks = -(-n_networks // chunk)
    streams = np.random.SeedSequence(seed).spawn(n_chunks)
    sums = {k: np.zeros((D, D)) for k in ("Q", "Q2", "C", "C2", "P", "P2")}
    diag_q, diag_c = [], []
    idx = np.arange(D)
    done = 0
    for c in range(n_chunks):
        B = min(chunk, n_networks - done)
        rng = np.random.default_rng(streams[c])
        if method == "sequential":
            H, C, PHI = _sequential_chunk(network, G, N, n, B, rng, phi)
        else:
            H, C, PHI = _explicit_chunk(network, Xs, G, N, n, B, rng, phi)
        Q = np.einsum("kiv,kiw->kvw", H, H) / n
        P = np.einsum("kiv,kiw->kvw", PHI, PHI) / n
        for key, arr in (("Q", Q), ("C", C), ("P", P)):
            sums[key] += arr.sum(0)
            sums[key + "2"] += (arr ** 2).sum(0)
        diag_q.append(Q[:, idx, idx])
        diag_c.append(C[:, idx, idx])
        done += B
    if not (np.all(np.isfinite(sums["Q"])) and np.all(np.isfinite(sums["C"]))):
        raise ParameterError("network: the simulated preactivations overflow float64 (reduce steps or variances)")
    M = n_networks

    def mean_sem(key):
        mean = sums[key] / M
        var = np.maximum(sums[key + "2"] / M - mean ** 2, 0.0) * M / (M - 1)
        return to_time_major(mean, T1, N), to_time_major(np.sqrt(var / M), T1, N)

    qm, qs = mean_sem("Q")
    cm, cs = mean_sem("C")
    pm, ps = mean_sem("P")
    cv, cvs = _variance_and_se(np.concatenate(diag_c), n)
    qv, qvs = _variance_and_se(np.concatenate(diag_q), n)
    shape = (T1, N)
    return RecurrentMoments(network, n, M, qm, qs, cm, cs, cv.reshape(shape), cvs.reshape(shape),
                            qv.reshape(shape), qvs.reshape(shape), pm, ps)


@dataclass(frozen=True)
class RecurrentScan:
    """One :class:`RecurrentMoments` per width."""

    widths: tuple
    moments: tuple

    def fit(self, quantity: str = "Q", order: int = 1) -> InverseWidthFit:
        """Weighted fit y(n) = a + b/n (+ c/n^2 ... up to ``order``) of ``Q``, ``C``, ``P`` (the means) or ``C_var``,
        ``Q_var`` (n Var), element-wise; entries without fluctuations (standard error 0) get a tiny floor."""
        require(quantity in ("Q", "C", "P", "C_var", "Q_var"), "quantity",
                f"must be Q, C, P, C_var or Q_var, got {quantity!r}")
        attr = {"Q": ("Q_mean", "Q_sem"), "C": ("C_mean", "C_sem"), "P": ("P_mean", "P_sem"), "C_var": ("C_var", "C_var_se"),
                "Q_var": ("Q_var", "Q_var_se")}[quantity]
        means = np.stack([getattr(m, attr[0]) for m in self.moments])
        sems = np.stack([getattr(m, attr[1]) for m in self.moments])
        floor = 1e-12 * max(1.0, float(np.abs(means).max()))
        return fit_inverse_powers(self.widths, means, np.maximum(sems, floor), order)


def recurrent_width_scan(network: RecurrentNetwork, X, widths, n_networks: int, seed: int = 0,
                         method: str = "sequential") -> RecurrentScan:
    """:func:`sample_recurrent` at each width (seed + index of the width, so the ensembles are independent)."""
    widths = tuple(int(w) for w in widths)
    require(len(widths) >= 2 and len(set(widths)) == len(widths), "widths", f"need >= 2 distinct widths, got {widths}")
    moments = tuple(sample_recurrent(network, X, w, n_networks, seed + i, method) for i, w in enumerate(widths))
    return RecurrentScan(widths, moments)
