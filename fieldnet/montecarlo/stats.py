"""Estimators for Monte Carlo ensembles of independent networks.

Every estimator treats the leading axis as independent draws (one value per network): neurons of
one network are correlated, so a per-network quantity is averaged over its neurons *before* it
reaches these functions.

* :func:`mean_and_sem` — sample mean and standard error of the mean, sd(ddof=1) / sqrt(M).
* :func:`moment_ratio` — E[g^2] / E[g]^2 with its delta-method standard error.
* :func:`fit_inverse_width` — weighted least squares of y(n) = a + b / n across widths, element-wise,
  with weights 1 / sem^2: the intercept a is the infinite-width extrapolation.
* :func:`fit_inverse_powers` — the same with y(n) = a + b / n + c_2 / n^2 + ... (``order`` powers of 1/n),
  for estimates taken at widths small enough that O(1/n^2) terms matter.
* :func:`deviation_in_sigmas` — |estimate - reference| / se.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fieldnet.errors import require


def _samples(samples, name: str = "samples", minimum: int = 2) -> np.ndarray:
    arr = np.asarray(samples, dtype=np.float64)
    require(arr.ndim >= 1 and arr.shape[0] >= minimum, name,
            f"need at least {minimum} independent samples along axis 0, got shape {arr.shape}")
    require(bool(np.all(np.isfinite(arr))), name, "contains NaN or infinite values")
    return arr


def mean_and_sem(samples) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard error of the mean) over axis 0: sum_k s_k / M and sd_{ddof=1}(s) / sqrt(M)."""
    arr = _samples(samples)
    return arr.mean(axis=0), arr.std(axis=0, ddof=1) / np.sqrt(arr.shape[0])


def moment_ratio(samples) -> tuple[np.ndarray, np.ndarray]:
    """(r, se) with r = mean(g^2) / mean(g)^2 over axis 0, se by the delta method.

    With m1 = mean(g), m2 = mean(g^2) and the sample covariance S of (g, g^2) divided by M,
    grad r = (-2 m2 / m1^3, 1 / m1^2) and se^2 = grad^T S grad. The estimate has an O(1/M) bias,
    negligible next to se for the ensemble sizes used here.
    """
    g = _samples(samples)
    m = g.shape[0]
    g2 = g * g
    m1, m2 = g.mean(axis=0), g2.mean(axis=0)
    require(bool(np.all(m1 != 0)), "samples", "the mean is zero: the ratio is undefined")
    d1, d2 = g - m1, g2 - m2
    v11 = (d1 * d1).sum(axis=0) / (m - 1)
    v22 = (d2 * d2).sum(axis=0) / (m - 1)
    v12 = (d1 * d2).sum(axis=0) / (m - 1)
    j1, j2 = -2.0 * m2 / m1 ** 3, 1.0 / m1 ** 2
    var = (j1 * j1 * v11 + 2.0 * j1 * j2 * v12 + j2 * j2 * v22) / m
    return m2 / m1 ** 2, np.sqrt(np.maximum(var, 0.0))


@dataclass(frozen=True)
class InverseWidthFit:
    """Element-wise weighted least-squares fit y(n) = intercept + slope / n.

    ``intercept_se``, ``slope_se`` and ``covariance`` (Cov(intercept, slope)) assume the given
    standard errors are exact; ``chi2`` (with ``dof`` = number of widths - 2) checks that.
    """

    intercept: np.ndarray
    slope: np.ndarray
    intercept_se: np.ndarray
    slope_se: np.ndarray
    covariance: np.ndarray
    chi2: np.ndarray
    dof: int


def fit_inverse_width(widths, means, sems) -> InverseWidthFit:
    """Fit means[k] = a + b / widths[k] with weights 1 / sems[k]^2 (element-wise over trailing axes).

    Parameters
    ----------
    widths : sequence of W >= 2 distinct positive numbers (n; the regressor is x = 1/n).
    means, sems : arrays of shape (W, ...): the estimate at each width and its standard error (> 0).

    With w = 1/sem^2, S = sum w, Sx = sum w x, Sxx = sum w x^2, Sy = sum w y, Sxy = sum w x y and
    D = S Sxx - Sx^2: a = (Sxx Sy - Sx Sxy) / D, b = (S Sxy - Sx Sy) / D, Var a = Sxx / D,
    Var b = S / D, Cov(a, b) = -Sx / D.
    """
    n = np.asarray(widths, dtype=np.float64)
    require(n.ndim == 1 and n.size >= 2, "widths", f"need at least two widths, got {widths!r}")
    require(bool(np.all(np.isfinite(n) & (n > 0))), "widths", f"must be positive, got {widths!r}")
    require(np.unique(n).size == n.size, "widths", f"must be distinct, got {widths!r}")
    y = np.asarray(means, dtype=np.float64)
    s = np.asarray(sems, dtype=np.float64)
    require(y.shape == s.shape and y.shape[:1] == n.shape, "means",
            f"means {y.shape} and sems {s.shape} must both have leading axis len(widths) = {n.size}")
    require(bool(np.all(np.isfinite(y))), "means", "contains NaN or infinite values")
    require(bool(np.all(np.isfinite(s) & (s > 0))), "sems",
            "must be finite and > 0 (a quantity without fluctuations cannot be weighted)")
    x = (1.0 / n).reshape((-1,) + (1,) * (y.ndim - 1))
    w = 1.0 / s ** 2
    S, Sx, Sxx = w.sum(0), (w * x).sum(0), (w * x * x).sum(0)
    Sy, Sxy = (w * y).sum(0), (w * x * y).sum(0)
    D = S * Sxx - Sx ** 2
    a = (Sxx * Sy - Sx * Sxy) / D
    b = (S * Sxy - Sx * Sy) / D
    chi2 = (w * (y - a - b * x) ** 2).sum(0)
    return InverseWidthFit(a, b, np.sqrt(Sxx / D), np.sqrt(S / D), -Sx / D, chi2, n.size - 2)


def fit_inverse_powers(widths, means, sems, order: int = 2) -> InverseWidthFit:
    """Fit means[k] = a + b / n_k + sum_{p=2}^{order} c_p / n_k^p with weights 1 / sems[k]^2, element-wise.

    Returns an :class:`InverseWidthFit` with the intercept a, the slope b (the 1/n coefficient), their
    standard errors and covariance from (X^T W X)^{-1}; ``dof`` = number of widths - (order + 1).
    ``order = 1`` is :func:`fit_inverse_width`.
    """
    require(isinstance(order, (int, np.integer)) and not isinstance(order, bool) and order >= 1, "order",
            f"must be an integer >= 1, got {order!r}")
    if order == 1:
        return fit_inverse_width(widths, means, sems)
    n = np.asarray(widths, dtype=np.float64)
    require(n.ndim == 1 and n.size >= order + 1, "widths",
            f"need at least {order + 1} widths for order {order}, got {widths!r}")
    fit_inverse_width(widths, means, sems)          # the same validation of widths, means and sems
    y = np.asarray(means, dtype=np.float64)
    s = np.asarray(sems, dtype=np.float64)
    X = (1.0 / n)[:, None] ** np.arange(order + 1)[None, :]                     # (W, p)
    w = np.moveaxis(1.0 / s ** 2, 0, -1)                                        # (..., W)
    yy = np.moveaxis(y, 0, -1)
    normal = np.einsum("...k,ki,kj->...ij", w, X, X)
    cov = np.linalg.inv(normal)
    coef = np.einsum("...ij,...j->...i", cov, np.einsum("...k,ki,...k->...i", w, X, yy))
    chi2 = (w * (yy - np.einsum("ki,...i->...k", X, coef)) ** 2).sum(-1)
    return InverseWidthFit(coef[..., 0], coef[..., 1], np.sqrt(cov[..., 0, 0]), np.sqrt(cov[..., 1, 1]),
                           cov[..., 0, 1], chi2, n.size - order - 1)


def deviation_in_sigmas(estimate, reference, se) -> np.ndarray:
    """|estimate - reference| / se, element-wise (inf where se = 0 and they differ, 0 where equal)."""
    est, ref, se = (np.asarray(v, dtype=np.float64) for v in (estimate, reference, se))
    diff = np.abs(est - ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(diff == 0, 0.0, diff / se)


__all__ = ["InverseWidthFit", "deviation_in_sigmas", "fit_inverse_powers", "fit_inverse_width", "mean_and_sem",
           "moment_ratio"]
