"""Generic numba building blocks for Gaussian expectations (no activation appears here).

The generated code of :mod:`fieldnet.numeric.lowering` evaluates the integrand at the nodes
these functions return and sums; everything activation-specific lives in the generated code.

Conventions. Averages are over z ~ N(0, Sigma) in whitened coordinates z = L x, x ~ N(0, 1)^k.

* **Panel rule** (1 and 2 dimensions): composite 16-point Gauss–Legendre on panels of the
  whitened axis [-R, R], with the Gaussian density folded into the weights. Panel edges include
  the integrand's breakpoints (kinks of a Piecewise / Abs / Max / Heaviside activation, found by
  sympy), so a kink never sits inside a panel and the rule converges exponentially for
  activations analytic between their breakpoints. A panel is at most ``w_z / sigma`` wide (and
  at most 3, or less where Hermite functions of high order must be resolved), where ``w_z`` is the resolution in preactivation units: the scale separation between the
  activation (features of size ~1 in z) and the Gaussian (size sigma) is explicit.
* **Mehler / Hermite series** (pairs): with h_k = He_k / sqrt(k!) orthonormal,
  phi(sigma_a x) = sum_k alpha_k h_k(x), and for unit-variance x, y of correlation rho,
  E[f(sigma_a x) g(sigma_b y)] = sum_k alpha_k beta_k rho^k. The tail after order M is bounded
  (Cauchy–Schwarz) by |rho|^{M+1} sqrt(T_a(M) T_b(M)), T(M) = sum_{k>M} alpha_k^2, known from
  Parseval: E f^2 - sum_{k<=M} alpha_k^2 (THEORY.md 2.4).
* **Gauss–Hermite** (k >= 3): tensor-product probabilists' rule, nodes whose weight is below
  1e-18 of the largest dropped.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

GL_X, GL_W = np.polynomial.legendre.leggauss(16)
RADIUS = 9.0           # whitened half-width for averages: density e^{-81/2} ~ 2.6e-18
COEF_RADIUS = 12.0     # for Hermite coefficients: h_k(x) e^{-x^2/4} = O(1) up to 2 sqrt(k)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(cache=True)
def panel_rule(sigma, w_z, radius, breaks, max_width):
    """Nodes and weights of E_{x ~ N(0,1)} f(x) on [-radius, radius]; panel width
    min(max_width, w_z / sigma); ``breaks`` are breakpoints in whitened units (panel edges)."""
    width = max_width
    if sigma > 0.0 and w_z / sigma < width:
        width = w_z / sigma
    n_regular = int(math.ceil(2.0 * radius / width))
    edges = np.empty(n_regular + 1 + breaks.size)
    for i in range(n_regular + 1):
        edges[i] = -radius + 2.0 * radius * i / n_regular
    m = n_regular + 1
    for b in breaks:
        if -radius < b < radius:
            edges[m] = b
            m += 1
    edges = np.sort(edges[:m])
    nodes = np.empty((m - 1) * 16)
    weights = np.empty((m - 1) * 16)
    count = 0
    for p in range(m - 1):
        lo, hi = edges[p], edges[p + 1]
        if hi - lo <= 0.0:
            continue
        half, mid = 0.5 * (hi - lo), 0.5 * (hi + lo)
        for j in range(16):
            x = mid + half * GL_X[j]
            nodes[count] = x
            weights[count] = half * GL_W[j] * INV_SQRT_2PI * math.exp(-0.5 * x * x)
            count += 1
    return nodes[:count], weights[:count]


@njit(cache=True)
def scaled_breaks(breaks_z, sigma, shift):
    """Breakpoints t (in z units) of f(sigma x + shift) as points of the x axis."""
    out = np.empty(breaks_z.size)
    m = 0
    if sigma > 0.0:
        for t in breaks_z:
            out[m] = (t - shift) / sigma
            m += 1
    return out[:m]


@njit(cache=True)
def hermite_project(values, nodes, weights, n_coef, alpha):
    """alpha_k = E[f h_k] for k < n_coef from tabulated f(nodes); h_k = He_k/sqrt(k!) by the stable
    recurrence h_{k+1} = (x h_k - sqrt(k) h_{k-1}) / sqrt(k+1). Returns E f^2 (Parseval check)."""
    root = np.empty(n_coef + 1)
    inv_root = np.empty(n_coef + 1)
    for k in range(n_coef + 1):
        root[k] = math.sqrt(k)
        inv_root[k] = 1.0 / math.sqrt(k + 1.0)
    for k in range(n_coef):
        alpha[k] = 0.0
    energy = 0.0
    for j in range(nodes.size):
        x, fw = nodes[j], values[j] * weights[j]
        energy += values[j] * fw
        h_prev, h = 0.0, 1.0
        for k in range(n_coef):
            alpha[k] += fw * h
            h_prev, h = h, (x * h - root[k] * h_prev) * inv_root[k]
    return energy


@njit(cache=True)
def tail_energies(alpha, energy, tails):
    """tails[M] = sum_{k > M} alpha_k^2, from Parseval (floored at 4 ulp of the energy)."""
    n = alpha.size
    acc = 0.0
    for k in range(n):
        acc += alpha[k] * alpha[k]
        tails[k] = max(energy - acc, 4.0 * 2.220446049250313e-16 * abs(energy))


@njit(cache=True)
def mehler_sum(alpha, beta, tail_a, tail_b, rho, tol):
    """sum_k alpha_k beta_k rho^k, stopping once the Cauchy–Schwarz tail bound is below ``tol``.
    Returns (value, converged)."""
    total = 0.0
    power = 1.0
    r2 = rho * rho
    tol2 = tol * tol
    for k in range(alpha.size):
        total += alpha[k] * beta[k] * power
        if power * power * r2 * tail_a[k] * tail_b[k] <= tol2:  # the squared bound: no sqrt per term
            return total, True
        power *= rho
    return total, False


@njit(cache=True)
def regularise_pair(va, vab, vb):
    """Variances floored at the smallest normal float; K_ab clipped to |K_ab| <= sqrt(va vb) and
    snapped to +-sqrt(va vb) within 8 ulp (duplicate or parallel inputs give rho = 1 exactly)."""
    tiny = 2.2250738585072014e-308
    va = max(va, tiny)
    vb = max(vb, tiny)
    return va, snap_to_bound(vab, math.sqrt(va) * math.sqrt(vb)), vb


@njit(cache=True)
def snap_to_bound(vab, bound):
    """vab clipped to |vab| <= bound and snapped to +-bound within 8 ulp (``regularise_pair``'s
    rule for the covariance, given bound = sqrt(va) sqrt(vb) of floored variances)."""
    if abs(vab) >= bound * (1.0 - 8.0 * 2.220446049250313e-16):
        vab = math.copysign(bound, vab)
    return vab


@njit(cache=True)
def pair_index(p, n):
    """The p-th pair (a, b), a < b, of range(n) in row-major upper-triangle order."""
    # rows a hold n - 1 - a pairs; invert the cumulative count
    a = int(n - 2 - math.floor(math.sqrt(-8.0 * p + 4.0 * n * (n - 1) - 7.0) / 2.0 - 0.5))
    start = a * (2 * n - a - 1) // 2
    if p < start:  # guard against rounding of the square root
        a -= 1
        start = a * (2 * n - a - 1) // 2
    elif p >= start + (n - 1 - a):
        start += n - 1 - a
        a += 1
    return a, a + 1 + p - start


def gauss_hermite_rule(k: int, n: int):
    """Tensor-product probabilists' Gauss–Hermite rule in k dimensions, weights summing to 1;
    nodes with weight below 1e-18 of the largest dropped."""
    from fieldnet.numeric.quadrature import gauss_hermite

    nodes, weights = gauss_hermite(k, n)
    keep = weights >= 1e-18 * weights.max()
    return np.ascontiguousarray(nodes[keep]), np.ascontiguousarray(weights[keep] / weights[keep].sum())


def cholesky_factors(covs: np.ndarray) -> np.ndarray:
    """L with L L^T = cov for a batch (P, k, k) of PSD matrices (eigen-factor, so semi-definite
    and singular matrices are allowed)."""
    vals, vecs = np.linalg.eigh(covs)
    return np.ascontiguousarray(vecs * np.sqrt(np.maximum(vals, 0.0))[:, None, :])


@njit(cache=True)
def coefficient_nodes(kdiag, breaks_z, n_coef):
    """Per input a, the panel nodes x_j (whitened) used to project f(sqrt(K_aa) x) on h_k, k < n_coef:
    flattened points z = sqrt(K_aa) x_j, the x_j, their weights, and offsets[a]:offsets[a+1]."""
    width = min(1.0, 12.0 / math.sqrt(n_coef))  # GL-16 resolves h_k, k < n_coef, on such panels
    offsets = np.zeros(kdiag.size + 1, dtype=np.int64)
    parts_x = []
    parts_w = []
    for a in range(kdiag.size):
        sigma = math.sqrt(max(kdiag[a], 0.0))
        x, w = panel_rule(sigma, 1.0, COEF_RADIUS, scaled_breaks(breaks_z, sigma, 0.0), width)
        parts_x.append(x)
        parts_w.append(w)
        offsets[a + 1] = offsets[a] + x.size
    xs = np.empty(offsets[-1])
    ws = np.empty(offsets[-1])
    zs = np.empty(offsets[-1])
    for a in range(kdiag.size):
        sigma = math.sqrt(max(kdiag[a], 0.0))
        lo = offsets[a]
        for j in range(parts_x[a].size):
            xs[lo + j] = parts_x[a][j]
            ws[lo + j] = parts_w[a][j]
            zs[lo + j] = sigma * parts_x[a][j]
    return zs, xs, ws, offsets


@njit(cache=True, parallel=True)
def hermite_tables(values, xs, ws, offsets, n_coef, alpha, tails, energy):
    """alpha[a, k] = E[f(sqrt(K_aa) x) h_k(x)] from tabulated values (see coefficient_nodes),
    tails[a, M] = sum_{k > M} alpha[a, k]^2 and energy[a] = E f^2, for every input in parallel."""
    for a in prange(offsets.size - 1):
        lo, hi = offsets[a], offsets[a + 1]
        energy[a] = hermite_project(values[lo:hi], xs[lo:hi], ws[lo:hi], n_coef, alpha[a])
        tail_energies(alpha[a], energy[a], tails[a])


@njit(cache=True)
def graded_breaks(points, width):
    """Panel edges at points +- width 2^j (j = -3 .. 8): the z_b kinks seen from the outer axis of a
    2-D rule are smoothed over ``width`` = sqrt(1 - rho^2)/|rho|, so near-parallel pairs need
    panels graded down to that scale to keep exponential convergence."""
    out = np.empty(points.size * 24)
    m = 0
    for p in points:
        for j in range(-3, 9):
            d = width * 2.0 ** j
            out[m] = p - d
            out[m + 1] = p + d
            m += 2
    return out[:m]


@njit(cache=True, parallel=True)
def mirror_upper(state):
    """state[q, b, a] = state[q, a, b] for every b > a: the lower triangles from the upper ones,
    in 64 x 64 tiles so that the transposed reads stay in cache."""
    nq, n = state.shape[0], state.shape[1]
    tile = 64
    n_tiles = (n + tile - 1) // tile
    for t in prange(nq * n_tiles):
        q = t // n_tiles
        ta = t % n_tiles
        for tb in range(ta, n_tiles):  # the tiles on and right of the diagonal
            for a in range(ta * tile, min(n, (ta + 1) * tile)):
                for b in range(max(a + 1, tb * tile), min(n, (tb + 1) * tile)):
                    state[q, b, a] = state[q, a, b]


@njit(cache=True, parallel=True)
def largest_correlation(k, limit):
    """max |rho_ab| = |k_ab| / sqrt(k_aa k_bb) over the pairs a < b (upper triangle) with
    |rho_ab| <= limit; 0 if there are none. Variances are floored at the smallest normal float."""
    n = k.shape[0]
    d = np.empty(n)
    for a in range(n):
        d[a] = math.sqrt(max(k[a, a], 2.2250738585072014e-308))
    row_max = np.zeros(n)
    for a in prange(n):
        top = 0.0
        for b in range(a + 1, n):
            rho = abs(k[a, b] / d[a] / d[b])
            if top < rho <= limit:
                top = rho
        row_max[a] = top
    return row_max.max() if n > 0 else 0.0
