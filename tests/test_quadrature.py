"""Numeric Gaussian averages: the adaptive trapezoid rule, its warning on kinks, covariance checks."""

import warnings

import numpy as np
import pytest
from scipy.special import erf

from fieldnet import DeepNetwork, ParameterError, kernels
from fieldnet.numeric.quadrature import QuadratureWarning, batched_expectation, expectation


def test_gaussian_moments_are_exact():
    cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    assert expectation(lambda u, v: u ** 2 * v ** 2, cov) == pytest.approx(2.0 * 0.5 + 2 * 0.6 ** 2, rel=1e-14)
    assert expectation(lambda u: u ** 4, [[1.5]]) == pytest.approx(3 * 1.5 ** 2, rel=1e-14)


def test_singular_covariance_is_allowed():
    # u = v exactly: E[erf(u) erf(v)] = E[erf(u)^2] = (2/pi) arcsin(2K/(1+2K)) (Williams, THEORY.md 2.2)
    K = 1.3
    value = expectation(lambda u, v: erf(u) * erf(v), [[K, K], [K, K]])
    assert value == pytest.approx(2 / np.pi * np.arcsin(2 * K / (1 + 2 * K)), rel=1e-13)


@pytest.mark.parametrize("cov, words", [
    ([[1.0, 2.0], [2.0, 1.0]], "positive semi-definite"), ([[1.0, np.nan], [np.nan, 1.0]], "NaN"),
    ([[1.0, 0.2], [0.3, 1.0]], "symmetric"), ([[1.0, 0.0, 0.0]], "square"),
])
def test_bad_covariances_raise(cov, words):
    with pytest.raises(ParameterError, match="^cov:") as info:
        expectation(lambda *z: z[0], cov)
    assert words in str(info.value)


def test_kink_without_closed_form_warns_and_stays_close():
    # relu shifted to a breakpoint at 1 is outside the arc-cosine family (kink at 0): quadrature across a kink
    # converges only like h^2, so the rule stops at its finest step and says so.
    # Reference: E[relu(z - 1)] for z ~ N(0, K) = sqrt(K) pdf(1/sqrt K) - (1 - Phi(1/sqrt K)) (1D closed form).
    from scipy.stats import norm

    K = 2.0
    with pytest.warns(QuadratureWarning, match="not converged"):
        value = batched_expectation(lambda z: np.maximum(z - 1, 0), np.array([[[K]]]))[0]
    s = np.sqrt(K)
    exact = s * norm.pdf(1 / s) - (1 - norm.cdf(1 / s))
    assert value == pytest.approx(exact, rel=1e-4)


def test_smooth_activation_gives_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuadratureWarning)
        kernels(DeepNetwork(2, "tanh", weight_var=2.0, bias_var=0.1), np.random.default_rng(1).standard_normal((3, 4)))
