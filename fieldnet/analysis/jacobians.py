"""Averaged partial-Jacobian norms (APJN) at infinite width (Doshi, He & Gromov arXiv:2111.12143;
THEORY.md section 6), with and without LayerNorm.

Definition, for one input and layers l >= l0 (z^(l) has width n_l):

    J^{l0,l} = E[ (1/n_l) sum_{i <= n_l} sum_{j <= n_l0} (d z^(l)_i / d z^(l0)_j)^2 ],     J^{l0,l0} = 1

(the 1/n_l makes it width-free). At infinite width it obeys J^{l0,l+1} = chi_J^(l) J^{l0,l}, so

    J^{l0,l} = prod_{k=l0}^{l-1} chi_J^(k),

with the per-layer factor chi_J and the single-input kernel K^(l) of each architecture
(g ~ N(0, 1); LN(z) = (z - mean z) / std z over the neurons, without gain or bias):

* ``layernorm=None``:  z^(l+1) = W phi(z^(l)) + b.
  K^(l+1) = C_b + C_W <phi^2>_{K^(l)},   chi_J^(l) = C_W <phi'^2>_{K^(l)} = chi_perp(K^(l)).
* ``layernorm="pre"``:  z^(l+1) = W phi(LN(z^(l))) + b.
  K^(l+1) = C_b + C_W E[phi(g)^2],        chi_J^(l) = C_W E[phi'(g)^2] / K^(l);
  criticality (chi_J = 1 for l >= 2) is the ray C_b / C_W = E[phi'(g)^2] - E[phi(g)^2].
* ``layernorm="pre-residual"``:  z^(l+1) = mu z^(l) + W phi(LN(z^(l))) + b  (``residual`` = mu).
  K^(l+1) = mu^2 K^(l) + C_b + C_W E[phi(g)^2],   chi_J^(l) = mu^2 + C_W E[phi'(g)^2] / K^(l).
  At mu = 1, K grows linearly and J^{l0,l} ~ l^{+p} with p = C_W E[phi'^2] / (C_b + C_W E[phi^2]):
  a power law for every (C_W, C_b) ("everywhere critical").

Layer 1 is z^(1) = W x + b in every architecture, with K^(1) = C_b + C_W |x|^2 / n_0 given as
``first_variance``. Without LayerNorm at the K* = 0 critical point the APJN falls as l^(-zeta) with
zeta = b1/a1 (:attr:`fieldnet.analysis.universality.UniversalityClass.zeta`); off criticality it
changes like e^{-l/xi}, xi = 1/|log chi_J*|.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from fieldnet.analysis.averages import averages
from fieldnet.analysis.criticality import _positive
from fieldnet.errors import require

LAYERNORMS = (None, "pre", "pre-residual")


@dataclass(frozen=True)
class PartialJacobians:
    """Layers l = l0 .. L+1 and, at each, K^(l), chi_J^(l) (the factor to l+1) and J^{l0,l}."""

    layers: np.ndarray
    kernel: np.ndarray
    chi: np.ndarray
    apjn: np.ndarray
    layernorm: str | None

    def exponent(self, tail: int = 4) -> float:
        """Local power-law exponent -d log J / d log l over the last ``tail`` layers (J ~ l^-exponent)."""
        require(isinstance(tail, int) and 2 <= tail <= len(self.layers), "tail",
                f"must be an integer in [2, {len(self.layers)}], got {tail!r}")
        l, j = np.log(self.layers[-tail:]), np.log(self.apjn[-tail:])
        return float(-np.polyfit(l, j, 1)[0])


def normalized_averages(activation) -> tuple[float, float]:
    """(E[phi(g)^2], E[phi'(g)^2]) for g ~ N(0, 1): the LayerNorm-ed layer's averages."""
    avg = averages(activation)
    return float(avg.second_moment(1.0)), float(avg.derivative_moment(1.0))


def layernorm_critical_ratio(activation) -> float:
    """C_b / C_W on the pre-LN critical ray: E[phi'(g)^2] - E[phi(g)^2] (negative: no critical ray)."""
    m2, s2 = normalized_averages(activation)
    return s2 - m2


def partial_jacobians(activation, weight_var, bias_var, depth, first_variance=1.0, l0=1,
                      layernorm=None, residual=1.0) -> PartialJacobians:
    """J^{l0,l} for l = l0 .. depth+1 at infinite width (module docstring; depth counts hidden layers,
    so the preactivations are z^(1) .. z^(depth+1) as in :class:`fieldnet.DeepNetwork`)."""
    cw = _positive(weight_var, "weight_var")
    cb = _positive(bias_var, "bias_var", allow_zero=True)
    k1 = _positive(first_variance, "first_variance")
    require(isinstance(depth, numbers.Integral) and depth >= 1, "depth", f"must be an integer >= 1, got {depth!r}")
    require(isinstance(l0, numbers.Integral) and 1 <= l0 <= depth + 1, "l0",
            f"must be an integer in [1, {depth + 1}], got {l0!r}")
    depth, l0 = int(depth), int(l0)
    require(layernorm in LAYERNORMS, "layernorm", f"must be one of {LAYERNORMS}, got {layernorm!r}")
    mu = float(residual)
    require(math.isfinite(mu), "residual", f"must be finite, got {residual!r}")
    avg = averages(activation)
    n = depth + 1
    K, chi = np.empty(n), np.empty(n)
    K[0] = k1
    if layernorm is None:
        for l in range(n):
            chi[l] = cw * float(avg.derivative_moment(K[l]))
            if l + 1 < n:
                K[l + 1] = cb + cw * float(avg.second_moment(K[l]))
    else:
        m2, s2 = normalized_averages(activation)
        mu2 = mu * mu if layernorm == "pre-residual" else 0.0
        for l in range(n):
            chi[l] = mu2 + cw * s2 / K[l]
            if l + 1 < n:
                K[l + 1] = mu2 * K[l] + cb + cw * m2
    layers = np.arange(l0, n + 1)
    apjn = np.concatenate([[1.0], np.cumprod(chi[l0 - 1:n - 1])])
    return PartialJacobians(layers, K[l0 - 1:], chi[l0 - 1:], apjn, layernorm)
