"""Gauss–Hermite quadrature for Gaussian expectations, batched over many covariances.

E_{z ~ N(0, Sigma)} f(z) = sum_n w_n f(L x_n) with (x_n, w_n) the tensor-product probabilists'
Gauss–Hermite rule (weights normalised to sum to 1) and L L^T = Sigma. For 2 x 2 blocks L is
the explicit Cholesky factor; singular (perfectly correlated) blocks are allowed.

Accuracy: exact for polynomials of degree < 2n per axis. For analytic f it converges
geometrically at a rate set by the distance of f's nearest complex singularity; tanh's poles at
+-i pi/2 make it slowest at large variance (THEORY.md section 7.8). Kinks are not resolved: the
closed-form table covers the standard kinked activations.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import roots_hermitenorm

from fieldnet.errors import ParameterError

DEFAULT_NODES = {1: 160, 2: 64, 3: 24, 4: 16}
_CHUNK_POINTS = 4_000_000  # pairs x nodes evaluated at once


@lru_cache(maxsize=None)
def gauss_hermite(k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor-product rule in k dimensions: nodes (n^k, k), weights (n^k,) summing to 1."""
    x, w = roots_hermitenorm(n)
    w = w / w.sum()
    grids = np.meshgrid(*([x] * k), indexing="ij")
    wgrid = np.meshgrid(*([w] * k), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=1)
    weights = np.prod(np.stack([g.ravel() for g in wgrid], axis=1), axis=1)
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights


def factor_covariances(cov: np.ndarray) -> np.ndarray:
    """L with L L^T = cov for a batch (P, k, k) of PSD matrices (semi-definite allowed)."""
    k = cov.shape[-1]
    if k == 1:
        return np.sqrt(np.maximum(cov, 0.0))
    if k == 2:
        a, b, c = cov[:, 0, 0], cov[:, 1, 1], cov[:, 0, 1]
        sa = np.sqrt(np.maximum(a, 0.0))
        safe = np.where(sa > 0, sa, 1.0)
        l21 = np.where(sa > 0, c / safe, 0.0)
        l22 = np.sqrt(np.maximum(b - l21 ** 2, 0.0))
        out = np.zeros_like(cov)
        out[:, 0, 0], out[:, 1, 0], out[:, 1, 1] = sa, l21, l22
        return out
    vals, vecs = np.linalg.eigh(cov)
    return vecs * np.sqrt(np.maximum(vals, 0.0))[:, None, :]


def batched_expectation(f, cov: np.ndarray, n_nodes: int | None = None) -> np.ndarray:
    """E_{z ~ N(0, cov[p])} f(z_1, ..., z_k) for each p; ``f`` is vectorised, cov is (P, k, k)."""
    cov = np.asarray(cov, dtype=float)
    k = cov.shape[-1]
    nodes, weights = gauss_hermite(k, n_nodes or DEFAULT_NODES.get(k, 8))
    chol = factor_covariances(cov)
    out = np.empty(cov.shape[0])
    step = max(1, _CHUNK_POINTS // len(weights))
    for start in range(0, cov.shape[0], step):
        lc = chol[start:start + step]
        z = np.einsum("pij,nj->pni", lc, nodes)  # (P, n^k, k)
        values = np.broadcast_to(f(*[z[..., i] for i in range(k)]), z.shape[:2])
        out[start:start + step] = values @ weights
    return out


def expectation(f, cov, n_nodes: int | None = None) -> float:
    """E_{z ~ N(0, cov)} f(z) for one covariance matrix (validated: finite, symmetric, PSD)."""
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    check_covariance(cov, "cov")
    return float(batched_expectation(f, cov[None], n_nodes)[0])


def check_covariance(cov: np.ndarray, name: str) -> None:
    """Raise ParameterError unless ``cov`` is a finite symmetric positive semi-definite matrix."""
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ParameterError(f"{name}: expected a square matrix, got shape {cov.shape}")
    if not np.all(np.isfinite(cov)):
        raise ParameterError(f"{name}: contains NaN or infinite entries")
    scale = max(1.0, float(np.max(np.abs(cov))))
    if not np.allclose(cov, cov.T, rtol=1e-12, atol=1e-12 * scale):
        raise ParameterError(f"{name}: covariance is not symmetric")
    lowest = float(np.linalg.eigvalsh(cov)[0])
    if lowest < -1e-10 * scale:
        raise ParameterError(f"{name}: covariance is not positive semi-definite (lowest eigenvalue {lowest:.3g})")
