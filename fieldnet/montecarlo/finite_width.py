"""Finite-width (1/n) statistics of explicit random networks, with standard errors (THEORY.md sec. 0, 4, 5).

Conventions as in :mod:`fieldnet.montecarlo.deep` (the same weight streams: network k of seed s draws from
``SeedSequence(s).spawn(M)[k]``). Layer l = 1 .. L+1 (array index l - 1) has width n_l and fan-in
n_{l-1} (``fan_in[l-1]``); every O(1/n) coefficient of layer l is normalised by **n_{l-1}**.

Per network the *conditional variance* of layer l is

    hat G^(l)_ab = C_b^(l) + (C_W^(l) / n_{l-1}) sum_j phi(z^(l-1)_{j;a}) phi(z^(l-1)_{j;b})    (phi(z^(0)) := x),

so that, given layer l-1, the z^(l)_i are iid N(0, hat G^(l)). All estimators below are unbiased (ratios up
to O(1/M)), with M networks; standard errors come from the spread across networks (linearised: each
estimator is written as a mean of per-network influence values u_k and se = sd(u) / sqrt(M)).

Two-point function and four-point vertex (pairs P = (a1 a2), Q = (a3 a4)):

* ``G``  = mean_k hat G_k  (E hat G = E z_a z_b exactly; the Rao-Blackwellised neuron average).
  ``G_direct`` = mean_k (1/n_l) sum_i z_{i;a} z_{i;b} (the plain estimator, same expectation).
* ``V``  = n_{l-1} Cov_k(hat G_P, hat G_Q) (sample covariance, ddof = 1): exactly
  n_{l-1} [E z_{i;a1} z_{i;a2} z_{k;a3} z_{k;a4} - E z_{a1} z_{a2} E z_{a3} z_{a4}], i != k, at any width.
  ``V_cross`` is that i != k definition estimated directly from the neurons (the cross-check):
  n_{l-1} [mean_k q_k - (E z z)(E z z)], q_k = mean_{i != k'} of the neuron products, with the product of
  means taken over distinct networks (unbiased).
* ``kurtosis`` (one input a) = E z^4 / (E z^2)^2 - 3 = 3 (E hat G_aa^2 / (E hat G_aa)^2 - 1) (z | hat G is
  Gaussian); ``kurtosis_direct`` = mean z^4 / (mean z^2)^2 - 3 over neurons and networks.

NTK (``ntk=True``, every input pair); H_{ij;ab} is the NTK of neurons i, j of layer l on inputs a, b (rates as
in deep.py), computed by backpropagation for the first P = ``ntk_neurons`` neurons. With n = n_{l-1}, i != j
(estimated from the P (P - 1) ordered neuron pairs of each network) and the index orders of
:class:`fieldnet.analysis.finite_width.FiniteWidthResult` (THEORY.md sec. 5.1, 5.3):

* ``Theta`` (L+1, N, N) = E H_ii;ab (= Theta + H1 / n + O(1/n^2)).
* ``A`` (L+1, N, N, N, N): A[l-1, a, b, c, d] = n Cov(H_ii;ab, H_jj;cd).
* ``D`` (L+1, N, N, N, N): D[l-1, a, b, c, d] = n Cov(H_ii;ab, z_j;c z_j;d) = n Cov(mean_i H_ii;ab, hat G_cd)
  (exact: given layer l-1, z_j is independent of H_ii).
* ``B`` (L+1, N, N, N, N): B[l-1, a1, a3, a2, a4] = n E[H_ij;a1a2 H_ij;a3a4].
* ``F`` (L+1, N, N, N, N): F[l-1, a1, a3, a2, a4] = n E[H_ij;a1a2 z_i;a3 z_j;a4].
* ``ntk_covariance`` (L+1, N, N, N, N) = n Cov(H_ii;ab, H_ii;cd) (-> A_(ab)(cd) + B_acbd + B_adbc);
  ``ntk_variance`` (L+1, N) = n Var(H_ii;aa) (-> A + 2B per input), ``ntk_relative_variance`` (L+1, N) =
  Var(H_ii;aa) / (E H_ii;aa)^2.

Per-network statistics (``samples``, axis 0 networks, axis 1 layers; pairs in np.triu_indices order): t1 = mean_i
H_ii;P, t2 = mean_i H_ii;P H_ii;Q, c = mean_{i != j} H_ii;P H_jj;Q, b[a1, a2, a3, a4] = mean_{i != j} H_ij;a1a2
H_ij;a3a4, f[a1, a2, a3, a4] = mean_{i != j} H_ij;a1a2 z_i;a3 z_j;a4.

Layer 1 is deterministic (hat G^(1) = K^(1), H^(1)_ij = delta_ij Theta^(1)): its fluctuation statistics are
exactly 0 with standard error 0. A quantity constant across networks likewise gets covariance 0 exactly.

:func:`finite_width_scan` samples several width profiles and :meth:`FiniteWidthScan.fit` fits
y(n) = a + b / n_{l-1} per layer (weighted least squares, :func:`fieldnet.montecarlo.stats.fit_inverse_width`);
e.g. ``fit("G")`` gives K0 = a and K1 = b, ``fit("V").intercept`` the infinite-width vertex.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from fieldnet.errors import DivergenceError, ParameterError, require
from fieldnet.montecarlo.deep import (_CHUNK_BYTES, _allocate, _check_int, _check_seed, _draw, _forward,
                                      _hidden_widths, _Layer, _layers, activation_functions)
from fieldnet.montecarlo.stats import InverseWidthFit, fit_inverse_powers
from fieldnet.numeric.kernels import validate_inputs
from fieldnet.spec import DeepNetwork

#: statistics that :meth:`FiniteWidthScan.fit` accepts (``name`` -> attribute, ``name_se``)
FIT_QUANTITIES = ("G", "G_direct", "V", "V_cross", "kurtosis", "kurtosis_direct", "Theta", "A", "B", "D", "F",
                  "ntk_covariance", "ntk_variance", "ntk_relative_variance")


@dataclass(frozen=True)
class FiniteWidthMoments:
    """Finite-width estimates for layers l = 1 .. L+1 (index l - 1); each ``X`` has a standard error ``X_se``.

    Shapes: G, G_direct (L+1, N, N); V, V_cross (L+1, N, N, N, N); kurtosis, kurtosis_direct (L+1, N);
    NTK statistics (None unless ``ntk``): Theta (L+1, N, N); A, B, D, F, ntk_covariance (L+1, N, N, N, N), index
    orders as in fieldnet.analysis.finite_width (B, F: [l, a1, a3, a2, a4]); ntk_variance, ntk_relative_variance
    (L+1, N), per input. ``widths`` = (n_0, .., n_{L+1}),
    ``fan_in[l-1]`` = n_{l-1}. Definitions: module docstring.
    """

    widths: tuple
    n_networks: int
    seed: object
    ntk_neurons: tuple
    G: np.ndarray
    G_se: np.ndarray
    G_direct: np.ndarray
    G_direct_se: np.ndarray
    V: np.ndarray
    V_se: np.ndarray
    V_cross: np.ndarray | None
    V_cross_se: np.ndarray | None
    kurtosis: np.ndarray
    kurtosis_se: np.ndarray
    kurtosis_direct: np.ndarray
    kurtosis_direct_se: np.ndarray
    Theta: np.ndarray | None = None
    Theta_se: np.ndarray | None = None
    A: np.ndarray | None = None
    A_se: np.ndarray | None = None
    B: np.ndarray | None = None
    B_se: np.ndarray | None = None
    D: np.ndarray | None = None
    D_se: np.ndarray | None = None
    F: np.ndarray | None = None
    F_se: np.ndarray | None = None
    ntk_covariance: np.ndarray | None = None
    ntk_covariance_se: np.ndarray | None = None
    ntk_variance: np.ndarray | None = None
    ntk_variance_se: np.ndarray | None = None
    ntk_relative_variance: np.ndarray | None = None
    ntk_relative_variance_se: np.ndarray | None = None
    samples: dict | None = field(default=None, repr=False)

    @property
    def depth(self) -> int:
        return len(self.widths) - 2

    @property
    def fan_in(self) -> tuple:
        """(n_0, .., n_L): the width that normalises the 1/n coefficients of layer l is fan_in[l-1]."""
        return self.widths[:-1]


# ----------------------------------------------------------------------------------------------
# per-network statistics of one chunk


def _ntk_blocks(l: int, grams: list, dh: list, weights: list, layers: list[_Layer], P: int, B: int):
    """H^(l)_{pq;ab} for neurons p, q < P of layer l and every input pair a, b: (B, P, P, N, N).

    H_pq;ab = sum_{m<=l} (delta^(m)_{p;a} . delta^(m)_{q;b}) [lambda_b^(m) + lambda_W^(m) phi^(m-1)_a . phi^(m-1)_b / n_{m-1}],
    delta^(l)_p = e_p (deep.py's backpropagation, kept per neuron pair and input pair instead of averaged over p = q);
    ``grams[m]`` = phi^(m)_a . phi^(m)_b / n_m.
    """
    lay = layers[l - 1]
    N = grams[0].shape[-1]
    own = np.broadcast_to(lay.lam_b + lay.lam_w * grams[l - 1], (B, N, N))
    H = np.zeros((B, P, P, N, N))
    idx = np.arange(P)
    H[:, idx, idx] = own[:, None]
    if l == 1:
        return H
    w_l = weights[l - 1][0]
    delta = lay.scale_w * w_l[:, :P, None, :] * dh[l - 1][:, None, :, :]          # (B, P, N, n_{l-1})
    for m in range(l - 1, 0, -1):
        Pn, Nn, n_m = delta.shape[1:]
        flat = delta.reshape(B, Pn * Nn, n_m)
        s = (flat @ np.swapaxes(flat, -1, -2)).reshape(B, Pn, Nn, Pn, Nn).transpose(0, 1, 3, 2, 4)   # (B, P, P, N, N)
        rate = layers[m - 1].lam_b + layers[m - 1].lam_w * grams[m - 1]          # (B or 1, N, N)
        H += s * np.broadcast_to(rate, (B, N, N))[:, None, None]
        if m > 1:
            back = flat @ weights[m - 1][0]
            delta = layers[m - 1].scale_w * back.reshape(B, Pn, Nn, -1) * dh[m - 1][:, None, :, :]
    return H


def _chunk_statistics(X, generators, buffers, layers, phi, dphi, P, cross_check):
    """Per-network sufficient statistics, each (B, L+1, ...), keyed by name."""
    B = len(generators)
    weights = _draw(generators, buffers)
    z, h, dh = _forward(X, weights, layers, phi, dphi)
    N = X.shape[0]
    iu = np.triu_indices(N)
    out = {k: [] for k in ("ghat", "gdir", "z2", "z4", "q", "t1", "t2", "c", "b", "f")}
    grams = [hm @ np.swapaxes(hm, -1, -2) / hm.shape[-1] for hm in h]   # phi^(m)_a . phi^(m)_b / n_m, m = 0 .. L
    for l, lay in enumerate(layers, start=1):
        gram = grams[l - 1]
        ghat = np.broadcast_to(lay.scale_b ** 2 + lay.scale_w ** 2 * lay.fan_in * gram, (B, N, N))[:, iu[0], iu[1]]
        zl = z[l]                                                # (B, N, n_l)
        n_l = zl.shape[-1]
        prods = zl[:, iu[0], :] * zl[:, iu[1], :]                # (B, pairs, n_l)
        gdir = prods.mean(axis=-1)
        out["ghat"].append(ghat)
        out["gdir"].append(gdir)
        diag = zl ** 2
        out["z2"].append(diag.mean(-1))
        out["z4"].append((diag ** 2).mean(-1))
        if cross_check:
            same = prods @ np.swapaxes(prods, -1, -2)            # sum_i P_i P_i^T
            out["q"].append((n_l * n_l * gdir[:, :, None] * gdir[:, None, :] - same) / (n_l * (n_l - 1)))
        if dphi is not None:
            H = _ntk_blocks(l, grams, dh, weights, layers, min(P, n_l), B)     # (B, P, P, N, N)
            p = H.shape[1]
            ordered = p * (p - 1)
            hd = H[:, np.arange(p), np.arange(p)][:, :, iu[0], iu[1]]           # (B, P, pairs): H_ii;P
            s1 = hd.sum(1)
            same = np.swapaxes(hd, 1, 2) @ hd                                   # sum_i H_ii;P H_ii;Q
            out["t1"].append(s1 / p)
            out["t2"].append(same / p)
            out["c"].append((s1[:, :, None] * s1[:, None, :] - same) / ordered)
            off = ~np.eye(p, dtype=bool)
            Ho = H[:, off].reshape(B, ordered, N * N)                           # H_ij;ab, i != j
            out["b"].append((np.swapaxes(Ho, 1, 2) @ Ho).reshape(B, N, N, N, N) / ordered)
            zp = zl[:, :, :p]                                                   # (B, N, P)
            Hz = np.einsum("bijxy,bui,bwj->bxyuw", H, zp, zp)
            Hz -= np.einsum("biixy,bui,bwi->bxyuw", H, zp, zp)
            out["f"].append(Hz / ordered)
    return {k: np.stack(v, axis=1) for k, v in out.items() if v}


def _auto_chunk(layers: list[_Layer], N: int, P: int) -> int:
    pairs = N * (N + 1) // 2
    floats = sum(lay.width * (lay.fan_in + 1) + (4 * N + 2 * pairs) * lay.width for lay in layers)
    floats += 3 * P * N * max(lay.fan_in for lay in layers) + 4 * P * P * N * N * len(layers)
    floats += (4 * pairs * pairs + 3 * N ** 4) * len(layers)
    return max(1, _CHUNK_BYTES // (8 * floats))


# ----------------------------------------------------------------------------------------------
# estimators (axis 0: networks)


def _constant(x: np.ndarray) -> np.ndarray:
    """Columns that are identical across networks (deterministic quantities)."""
    return np.ptp(x, axis=0) == 0


def _mean(u: np.ndarray):
    """(mean, se) of per-network values u (se = sd_{ddof=1} / sqrt(M)); exactly 0 se for constant columns."""
    M = u.shape[0]
    se = u.std(axis=0, ddof=1) / np.sqrt(M)
    return u.mean(axis=0), np.where(_constant(u), 0.0, se)


def _influence_se(u: np.ndarray) -> np.ndarray:
    return u.std(axis=0, ddof=1) / np.sqrt(u.shape[0])


def _covariance(x: np.ndarray, y: np.ndarray, scale):
    """scale * Cov(x, y) for every pair of trailing entries: x (M, p), y (M, r) -> (p, r) with se.

    Sample covariance (ddof = 1); influence u = (x - xbar)(y - ybar), whose variance is formed from matrix
    products (no (M, p, r) array); exactly 0 where x or y is constant."""
    M = x.shape[0]
    dx, dy = x - x.mean(0), y - y.mean(0)
    mean_u = dx.T @ dy / M
    var_u = np.maximum((dx * dx).T @ (dy * dy) / M - mean_u ** 2, 0.0) * M / (M - 1)
    cov = mean_u * M / (M - 1)
    se = np.sqrt(var_u / M)
    fixed = _constant(x)[:, None] | _constant(y)[None, :]
    return np.where(fixed, 0.0, scale * cov), np.where(fixed, 0.0, np.abs(scale) * se)


def _product_of_means(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unbiased E[x] E[y] from one sample: (sum x sum y - sum x y) / (M (M - 1)), elementwise."""
    M = x.shape[0]
    return (x.sum(0) * y.sum(0) - (x * y).sum(0)) / (M * (M - 1))


def _ratio_minus_one(num: np.ndarray, den: np.ndarray, power: int = 2):
    """(mean num / mean(den)^power - 1, se) by the delta method (num, den per network)."""
    a, b = num.mean(0), den.mean(0)
    r = a / b ** power
    u = num / b ** power - power * r * den / b
    return r - 1.0, _influence_se(u)


def _pair_index(N: int) -> np.ndarray:
    iu = np.triu_indices(N)
    idx = np.empty((N, N), dtype=int)
    idx[iu] = np.arange(iu[0].size)
    idx[iu[1], iu[0]] = np.arange(iu[0].size)
    return idx


def _estimate(stats: dict, fan_in: tuple, N: int, ntk: bool, cross_check: bool) -> dict:
    """All estimators from the per-network statistics (see the module docstring)."""
    L1 = len(fan_in)
    idx = _pair_index(N)
    diag = idx[np.arange(N), np.arange(N)]
    res = {k: [] for k in ("G", "G_se", "G_direct", "G_direct_se", "V", "V_se", "V_cross", "V_cross_se",
                           "kurtosis", "kurtosis_se", "kurtosis_direct", "kurtosis_direct_se",
                           "Theta", "Theta_se", "A", "A_se", "B", "B_se", "D", "D_se", "F", "F_se",
                           "ntk_covariance", "ntk_covariance_se", "ntk_variance", "ntk_variance_se", "ntk_relative_variance",
                           "ntk_relative_variance_se")}

    def put(name, pair):
        res[name].append(pair[0])
        res[name + "_se"].append(pair[1])

    for l in range(L1):
        n = float(fan_in[l])
        gh, gd = stats["ghat"][:, l], stats["gdir"][:, l]
        put("G", _mean(gh))
        put("G_direct", _mean(gd))
        put("V", _covariance(gh, gh, n))
        if cross_check:
            q = stats["q"][:, l]
            pm = _product_of_means(gd[:, :, None], gd[:, None, :])
            mean_g = gd.mean(0)
            u = n * (q - gd[:, :, None] * mean_g[None, None, :] - mean_g[None, :, None] * gd[:, None, :])
            put("V_cross", (n * (q.mean(0) - pm), _influence_se(u)))
        g_aa = gh[:, diag]
        if l == 0:
            zero = np.zeros(N)
            put("kurtosis", (zero, zero))
        else:
            r, se = _ratio_minus_one(g_aa ** 2, g_aa)
            put("kurtosis", (3.0 * r, 3.0 * se))
        r, se = _ratio_minus_one(stats["z4"][:, l], stats["z2"][:, l])
        put("kurtosis_direct", (r + 1.0 - 3.0, se))
        if not ntk:
            continue
        t1, t2, c, b, f = (stats[k][:, l] for k in ("t1", "t2", "c", "b", "f"))
        put("Theta", _mean(t1))
        pairs = t1.shape[1]
        if l == 0:                                # H^(1)_ij = delta_ij Theta^(1): no fluctuations
            for name, shape in (("A", (pairs, pairs)), ("D", (pairs, pairs)), ("ntk_covariance", (pairs, pairs)),
                                ("B", (N,) * 4), ("F", (N,) * 4), ("ntk_variance", (N,)),
                                ("ntk_relative_variance", (N,))):
                put(name, (np.zeros(shape), np.zeros(shape)))
            continue
        m1 = t1.mean(0)
        pm = _product_of_means(t1[:, :, None], t1[:, None, :])                  # E t1_P E t1_Q, unbiased
        cross = m1[None, None, :] * t1[:, :, None] + m1[None, :, None] * t1[:, None, :]
        put("A", (n * (c.mean(0) - pm), n * _influence_se(c - cross)))
        put("ntk_covariance", (n * (t2.mean(0) - pm), n * _influence_se(t2 - cross)))
        put("B", (n * b.mean(0).transpose(0, 2, 1, 3), n * _influence_se(b).transpose(0, 2, 1, 3)))   # -> [a1, a3, a2, a4]
        put("F", (n * f.mean(0).transpose(0, 2, 1, 3), n * _influence_se(f).transpose(0, 2, 1, 3)))
        put("D", _covariance(t1, gh, n))
        t_aa, t2_aa, m_aa = t1[:, diag], t2[:, diag, diag], m1[diag]
        var = t2_aa.mean(0) - _product_of_means(t_aa, t_aa)
        u = t2_aa - 2 * m_aa * t_aa
        put("ntk_variance", (n * var, n * _influence_se(u)))
        put("ntk_relative_variance", (var / m_aa ** 2, _influence_se(u / m_aa ** 2 - 2 * var * t_aa / m_aa ** 3)))
    out = {}
    for k, v in res.items():
        out[k] = np.stack(v) if v else None
    for k in ("V", "V_cross", "A", "D", "ntk_covariance"):       # pair coordinates -> (N, N, N, N)
        for key in (k, k + "_se"):
            if out[key] is not None:
                out[key] = out[key][:, idx[:, :, None, None], idx[None, None, :, :]]
    for k in ("G", "G_direct", "Theta"):
        for key in (k, k + "_se"):
            if out[key] is not None:
                out[key] = out[key][:, idx]
    return out


# ----------------------------------------------------------------------------------------------
# public entry points


def sample_finite_width(network: DeepNetwork, X, n_networks: int, *, output_width: int | None = None,
                        ntk: bool = True, ntk_neurons: int = 8, seed=0, chunk_size: int | None = None,
                        cross_check: bool = True, keep_samples: bool = False) -> FiniteWidthMoments:
    """Finite-width estimates (two-point function, four-point vertex, kurtosis, NTK fluctuations) of every layer.

    Parameters
    ----------
    network : DeepNetwork with ``widths`` set (``network.with_widths(n)``) unless depth = 0.
    X : array (N, n_0) of inputs.
    n_networks : int >= 3, independent networks (standard errors are across them).
    output_width : n_{L+1} (default n_L; n_0 when depth = 0); >= 2 (the estimators need two neurons).
    ntk : also the NTK statistics (Theta, A, B, D, F, NTK variance) for each input.
    ntk_neurons : P >= 2, neurons per layer whose P x P NTK block is computed (capped at the width).
    seed : None, a non-negative int or a tuple of them; chunk_size : networks per chunk (default: ~64 MB).
    cross_check : also the direct i != k estimator ``V_cross`` (costs pairs^2 n per layer and network).
    keep_samples : keep the per-network statistics in ``samples``.
    """
    require(isinstance(network, DeepNetwork), "network", f"expected a DeepNetwork, got {type(network).__name__}")
    X = validate_inputs(X, network.input_dim)
    n_networks = _check_int(n_networks, "n_networks", 3)
    hidden = _hidden_widths(network)
    out_w = _check_int(output_width, "output_width", 2) if output_width is not None else (
        hidden[-1] if hidden else X.shape[1])
    widths = (X.shape[1],) + hidden + (out_w,)
    require(min(widths[1:]) >= 2, "widths", f"every layer needs at least 2 neurons, got widths {widths[1:]}")
    P = _check_int(ntk_neurons, "ntk_neurons", 2)
    chunk = None if chunk_size is None else _check_int(chunk_size, "chunk_size", 1)
    seed = _check_seed(seed)
    layers = _layers(network, widths)
    phi, dphi = activation_functions(network.activation, bool(ntk))
    N = X.shape[0]
    chunk = chunk or _auto_chunk(layers, N, P)
    pairs = N * (N + 1) // 2
    if cross_check:
        need = 8 * 3 * n_networks * len(layers) * pairs * pairs
        require(need <= 2 * 2 ** 30, "cross_check",
                f"the i != k estimator keeps {pairs}^2 statistics per layer and network (about {need / 2**30:.1f} GB "
                f"for {n_networks} networks and {N} inputs): pass cross_check=False or use fewer inputs")

    streams = np.random.SeedSequence(seed).spawn(n_networks)
    buffers = _allocate(layers, min(chunk, n_networks))
    parts = []
    for start in range(0, n_networks, chunk):
        generators = [np.random.default_rng(s) for s in streams[start:start + chunk]]
        parts.append(_chunk_statistics(X, generators, buffers, layers, phi, dphi if ntk else None, P,
                                       cross_check))
    stats = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    bad = [k for k, v in stats.items() if not np.all(np.isfinite(v))]
    if bad:
        raise DivergenceError(f"Monte Carlo statistics overflowed ({network.describe()}): "
                              "reduce the depth or the variances")
    est = _estimate(stats, widths[:-1], N, bool(ntk), cross_check)
    neurons = tuple(min(P, n) for n in widths[1:]) if ntk else ()
    return FiniteWidthMoments(widths=widths, n_networks=n_networks, seed=seed, ntk_neurons=neurons,
                              samples=stats if keep_samples else None, **est)


@dataclass(frozen=True)
class FiniteWidthScan:
    """Ensembles at several width profiles; :meth:`fit` extrapolates in 1/n_{l-1} layer by layer."""

    ensembles: tuple

    @property
    def fan_in(self) -> np.ndarray:
        """(profiles, L+1): n_{l-1} of each ensemble."""
        return np.array([e.fan_in for e in self.ensembles], dtype=float)

    def fit(self, quantity: str, scaled: bool = False, order: int = 1) -> InverseWidthFit:
        """Weighted fit y = a + b / n_{l-1} (+ c_2 / n_{l-1}^2 + .. up to ``order``) of ``quantity`` (a name in
        FIT_QUANTITIES) for every layer.

        ``scaled=True`` fits n_{l-1} * y instead (e.g. ``fit("kurtosis", scaled=True).intercept`` = 3V/K^2,
        ``fit("ntk_relative_variance", scaled=True).intercept`` = (A + 2B)/Theta^2). Layers whose n_{l-1} does
        not vary (layer 1, fan-in n_0: exactly Gaussian, so no 1/n term) get the weighted mean of the profiles
        as intercept and slope 0 with se 0; entries without fluctuations (se 0 at every width) are returned
        exactly (intercept = the common value, slope 0, se 0; if they differ between profiles, ParameterError).
        Returns arrays of shape (L+1, ...) with ``dof`` = profiles - order - 1.
        """
        require(quantity in FIT_QUANTITIES, "quantity", f"must be one of {', '.join(FIT_QUANTITIES)}")
        values = [getattr(e, quantity) for e in self.ensembles]
        require(all(v is not None for v in values), "quantity", f"{quantity} was not computed (ntk=False?)")
        y = np.stack(values).astype(float)                       # (W, L+1, ...)
        s = np.stack([getattr(e, quantity + "_se") for e in self.ensembles]).astype(float)
        n = self.fan_in                                          # (W, L+1)
        if scaled:
            shape = n.shape + (1,) * (y.ndim - 2)
            y, s = y * n.reshape(shape), s * n.reshape(shape)
        parts = {k: np.zeros(y.shape[1:]) for k in ("a", "b", "as", "bs", "cov", "chi2")}
        for l in range(y.shape[1]):
            yl, sl, nl = y[:, l], s[:, l], n[:, l]
            if np.unique(nl).size < 2:
                # fan-in not varied (layer 1: n_0): exactly Gaussian, no 1/n term; weighted mean of the profiles
                w = np.where(sl > 0, 1.0 / np.where(sl > 0, sl, 1.0) ** 2, 0.0)
                exact = np.all(sl == 0, axis=0)
                wsum = np.where(exact, 1.0, w.sum(0))
                parts["a"][l] = np.where(exact, yl[0], (w * yl).sum(0) / wsum)
                parts["as"][l] = np.where(exact, 0.0, 1.0 / np.sqrt(wsum))
                parts["chi2"][l] = np.where(exact, 0.0, (w * (yl - parts["a"][l]) ** 2).sum(0))
                continue
            exact = np.all(sl == 0, axis=0)
            if np.any(exact):
                same = np.all(np.isclose(yl, yl[:1], rtol=1e-12, atol=0.0), axis=0)
                require(bool(np.all(same[exact])), "widths",
                        f"layer {l + 1}: {quantity} is deterministic but differs between profiles")
                parts["a"][l][exact] = yl[0][exact]
            live = ~exact
            if np.any(live):
                require(bool(np.all(sl[:, live] > 0)), "n_networks",
                        f"layer {l + 1}: some {quantity} estimates have zero spread at one width only")
                fit = fit_inverse_powers(nl, yl[:, live], sl[:, live], order)
                for key, val in (("a", fit.intercept), ("b", fit.slope), ("as", fit.intercept_se),
                                 ("bs", fit.slope_se), ("cov", fit.covariance), ("chi2", fit.chi2)):
                    parts[key][l][live] = val
        return InverseWidthFit(parts["a"], parts["b"], parts["as"], parts["bs"], parts["cov"], parts["chi2"],
                               len(self.ensembles) - order - 1)


def finite_width_scan(network: DeepNetwork, X, widths: Sequence, n_networks, *, seed=0,
                      **kwargs) -> FiniteWidthScan:
    """:func:`sample_finite_width` at each width profile: an int n (every hidden and the output width n) or a
    sequence of L hidden widths (output width: the last hidden one). ``n_networks``: one int or one per profile;
    profile k uses the seed (seed, k). For the 1/n fit to be meaningful the ratios n_l / n_{l-1} should be the
    same in every profile (the coefficients depend on them, THEORY.md sec. 4.1)."""
    require(isinstance(network, DeepNetwork), "network", f"expected a DeepNetwork, got {type(network).__name__}")
    try:
        profiles = list(widths)
    except TypeError:
        raise ParameterError(f"widths: expected a sequence of widths or width profiles, got {widths!r}") from None
    require(len(profiles) >= 1, "widths", "need at least one width")
    counts = [n_networks] * len(profiles) if isinstance(n_networks, (int, np.integer)) else list(n_networks)
    require(len(counts) == len(profiles), "n_networks",
            f"expected one count per width profile ({len(profiles)}), got {len(counts)}")
    seed = _check_seed(seed)
    base = () if seed is None else (seed if isinstance(seed, tuple) else (seed,))
    out = []
    for k, (w, m) in enumerate(zip(profiles, counts)):
        net = network.with_widths(w)
        kw = dict(kwargs)
        if isinstance(w, (int, np.integer)) and "output_width" not in kw:
            kw["output_width"] = int(w)
        out.append(sample_finite_width(net, X, m, seed=None if seed is None else base + (k,), **kw))
    return FiniteWidthScan(tuple(out))


__all__ = ["FIT_QUANTITIES", "FiniteWidthMoments", "FiniteWidthScan", "finite_width_scan", "sample_finite_width"]
