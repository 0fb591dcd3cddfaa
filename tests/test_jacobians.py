"""Partial Jacobians (APJN): the infinite-width recurrence (fieldnet.analysis.jacobians) against exact
results and against Monte Carlo of real networks (fieldnet.montecarlo.jacobians).

Width-exact statements used as references (no extrapolation needed):
* relu with C_b = 0 and no LayerNorm: given the previous layers, (z_j, row j of the Jacobian) flips sign
  with row j of W, so E[Theta(z_j) |J_j|^2] = E|J_j|^2 / 2 and J^{l0,l} = (C_W/2)^(l-l0) at every width;
* J^{1,2} without LayerNorm: z^(1) is exactly N(0, K^(1)) at any width, so J^{1,2} = C_W <phi'^2>_{K^(1)}.
Otherwise the Monte Carlo estimate is E J = J_inf + O(1/n): we fit a + b/n over widths 32, 64, 128
(weights 1/sem^2, fieldnet.montecarlo.fit_inverse_width) and hold the intercept to 5 of its standard
errors. Over seeds 1-6 the intercept z-scores for tanh (plain and pre-LN) had mean 0.3 and spread 0.9.
"""

import math

import numpy as np
import pytest
import sympy as sp

import fieldnet as fn
from fieldnet.analysis.jacobians import layernorm_critical_ratio, normalized_averages, partial_jacobians
from fieldnet.analysis.universality import universality_class
from fieldnet.errors import ParameterError
from fieldnet.montecarlo import fit_inverse_width
from fieldnet.montecarlo.jacobians import sample_partial_jacobians

X16 = np.ones(16)  # |x|^2 / n_0 = 1, so K^(1) = C_b + C_W


# ---------------------------------------------------------------------------------------------
# the recurrence


def test_recurrence_uses_the_kernel_of_the_network():
    # J^{l0,l} = prod chi_perp(K^(k)) with K^(k) the single-input NNGP of fieldnet.kernels
    cw, cb, depth = 1.7, 0.2, 6
    res = partial_jacobians("erf", cw, cb, depth, first_variance=cb + cw, l0=2)
    K = fn.kernels(fn.DeepNetwork(depth, "erf", cw, cb), X16[None], ntk=False).nngp[:, 0, 0]
    assert np.allclose(res.kernel, K[1:], rtol=1e-13)
    chi = cw * 4 / (np.pi * np.sqrt(1 + 4 * K[1:-1]))   # <erf'^2>_K = 4 / (pi sqrt(1 + 4K)) (THEORY 2.2)
    assert np.allclose(res.apjn, np.concatenate([[1.0], np.cumprod(chi)]), rtol=1e-13)
    assert list(res.layers) == list(range(2, depth + 2))


def test_relu_apjn_is_geometric():
    res = partial_jacobians("relu", 1.5, 0.3, 5, first_variance=0.7)
    assert np.allclose(res.apjn, 0.75 ** np.arange(6), rtol=1e-15)


@pytest.mark.parametrize("name", ["tanh", "sin(x) + (1 - cos(x))/2"])
def test_critical_exponent_is_b1_over_a1(name):
    # K* = 0 class at criticality: J ~ l^(-zeta), zeta = b1/a1 (THEORY 6). For the second activation
    # phi1 = 1, phi2 = 1/2, phi3 = -1: a1 = -13/16, b1 = -3/4, zeta = 12/13. The local exponent approaches
    # zeta with corrections O(log l / l) (measured: 0.9145 at depth 300, 0.9207 at 1200).
    uc = universality_class(name)
    zeta = float(uc.zeta)
    if name != "tanh":
        assert uc.zeta == sp.Rational(12, 13)
    errors = [abs(partial_jacobians(name, float(uc.critical_weight_var), 0.0, depth, first_variance=0.5).exponent()
                  - zeta) for depth in (300, 1200)]
    assert errors[1] < 0.004 and errors[1] < errors[0] / 2


def test_pre_layernorm_critical_ray():
    # C_b / C_W = E[phi'(g)^2] - E[phi(g)^2] makes chi_J = 1 from layer 2 on
    ratio = layernorm_critical_ratio("tanh")
    m2, s2 = normalized_averages("tanh")
    assert ratio == pytest.approx(s2 - m2) and ratio > 0
    res = partial_jacobians("tanh", 2.0, 2.0 * ratio, 8, first_variance=3.0, layernorm="pre")
    assert np.allclose(res.chi[1:], 1.0, rtol=1e-14)
    assert np.allclose(res.apjn[1:], res.apjn[1], rtol=1e-13)


def test_layernorm_residual_power_law():
    # mu = 1: K^(l) grows linearly, chi_J = 1 + C_W s2 / K^(l), J ~ l^p with p = C_W s2 / (C_b + C_W m2)
    cw, cb = 1.5, 0.1
    m2, s2 = normalized_averages("tanh")
    res = partial_jacobians("tanh", cw, cb, 4000, first_variance=1.0, layernorm="pre-residual")
    assert res.exponent() == pytest.approx(-cw * s2 / (cb + cw * m2), rel=2e-3)


def test_bad_inputs():
    with pytest.raises(ParameterError, match="layernorm"):
        partial_jacobians("tanh", 1.0, 0.0, 3, layernorm="post")
    with pytest.raises(ParameterError, match="l0"):
        partial_jacobians("tanh", 1.0, 0.0, 3, l0=5)
    with pytest.raises(ParameterError, match="width"):
        sample_partial_jacobians("tanh", 1.0, 0.0, 3, 1, 10, X16)
    with pytest.raises(ParameterError, match="x"):
        sample_partial_jacobians("tanh", 1.0, 0.0, 3, 8, 10, np.array([np.nan]))


# ---------------------------------------------------------------------------------------------
# Monte Carlo of real networks


def _sigmas(ens, theory):
    """Deviations in standard errors for l > l0 (J^{l0,l0} = 1 exactly)."""
    return (ens.apjn_mean[1:] - theory[1:]) / ens.apjn_sem[1:]


@pytest.mark.parametrize("cw", [2.0, 1.5])
def test_relu_monte_carlo_exact_at_finite_width(cw):
    ens = sample_partial_jacobians("relu", cw, 0.0, 5, 48, 800, X16, seed=3)
    theory = partial_jacobians("relu", cw, 0.0, 5).apjn
    assert ens.apjn_mean[0] == 1.0
    assert np.all(np.abs(_sigmas(ens, theory)) < 5)


def test_first_layer_jacobian_exact_at_finite_width():
    ens = sample_partial_jacobians("tanh", 1.5, 0.1, 1, 32, 2000, X16, seed=4)
    theory = partial_jacobians("tanh", 1.5, 0.1, 1, first_variance=1.6).apjn
    assert abs(_sigmas(ens, theory)[0]) < 5


def test_chunking_and_seed_determinism():
    a = sample_partial_jacobians("tanh", 1.5, 0.1, 3, 16, 20, X16, seed=9, chunk_size=3)
    b = sample_partial_jacobians("tanh", 1.5, 0.1, 3, 16, 20, X16, seed=9)
    assert np.array_equal(a.apjn_mean, b.apjn_mean) and np.array_equal(a.kernel_mean, b.kernel_mean)


@pytest.mark.parametrize("name, cw, cb, layernorm, l0", [
    ("tanh", 1.5, 0.1, None, 1),          # generic ordered point
    ("tanh", 1.0, 0.0, None, 2),          # the K*=0 critical point
    ("tanh", 1.5, 0.1, "pre", 1),
    ("tanh", 1.5, 0.1, "pre-residual", 1),
    ("relu", 1.2, 0.3, "pre", 1),
])
def test_apjn_against_monte_carlo_extrapolated(name, cw, cb, layernorm, l0):
    widths, networks = (32, 64, 128), (2000, 1000, 500)
    runs = [sample_partial_jacobians(name, cw, cb, 5, n, m, X16, l0=l0, layernorm=layernorm, seed=11)
            for n, m in zip(widths, networks)]
    fit = fit_inverse_width(widths, [r.apjn_mean[1:] for r in runs], [r.apjn_sem[1:] for r in runs])
    theory = partial_jacobians(name, cw, cb, 5, first_variance=cb + cw, l0=l0, layernorm=layernorm)
    z = (fit.intercept - theory.apjn[1:]) / fit.intercept_se
    assert np.all(np.abs(z) < 5), z
    # the infinite-width variances of the same networks: K^(l) (index l - 1)
    kfit = fit_inverse_width(widths, [r.kernel_mean for r in runs], [r.kernel_sem for r in runs])
    kz = (kfit.intercept[l0 - 1:] - theory.kernel) / kfit.intercept_se[l0 - 1:]
    assert np.all(np.abs(kz) < 5), kz
