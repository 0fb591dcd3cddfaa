"""Property-based checks (hypothesis): invariants that must hold for any valid input."""

import numpy as np
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldnet import DeepNetwork, gaussian_expectation, kernels
from fieldnet.numeric.quadrature import batched_expectation

Z = sp.symbols("z_a z_b", real=True)
A, B, C = sp.symbols("a b c", real=True)

variances = st.floats(0.05, 6.0)
correlations = st.floats(-0.999, 0.999)


def _closed_pair_function(phi):
    expr = gaussian_expectation(phi(Z[0]) * phi(Z[1]), Z, [[A, C], [C, B]])
    return sp.lambdify((A, B, C), expr, "scipy")


PAIRS = {
    "relu": (_closed_pair_function(lambda z: sp.Max(0, z)), lambda u, v: np.maximum(u, 0) * np.maximum(v, 0)),
    "erf": (_closed_pair_function(sp.erf), None),
    "sin": (_closed_pair_function(sp.sin), lambda u, v: np.sin(u) * np.sin(v)),
}


@settings(max_examples=40, deadline=None)
@given(a=variances, b=variances, rho=correlations)
def test_smooth_closed_forms_match_adaptive_quadrature(a, b, rho):
    """Closed form (symbolic engine) = whitened-trapezoid quadrature (numeric side), any covariance."""
    from scipy.special import erf

    c = rho * np.sqrt(a * b)
    cov = np.array([[[a, c], [c, b]]])
    for name, (closed, integrand) in PAIRS.items():
        if name == "relu":
            continue  # a kink: trapezoid converges only algebraically there (the closed form is checked vs mpmath)
        f = integrand or (lambda u, v: erf(u) * erf(v))
        assert np.isclose(closed(a, b, c), batched_expectation(f, cov)[0], rtol=1e-12, atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(a=variances, b=variances, rho=correlations)
def test_relu_kernel_bounds(a, b, rho):
    """0 <= <relu(u) relu(v)> <= sqrt(<relu^2><relu^2>) = sqrt(ab)/2 (Cauchy-Schwarz), increasing in rho."""
    c = rho * np.sqrt(a * b)
    value = PAIRS["relu"][0](a, b, c)
    assert -1e-15 <= value <= np.sqrt(a * b) / 2 * (1 + 1e-14)
    assert PAIRS["relu"][0](a, b, c * 0.9 + 0.1 * np.sqrt(a * b)) >= value - 1e-15


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 5), depth=st.integers(0, 4),
       activation=st.sampled_from(["relu", "erf", "sin", "gelu", "abs", "leaky_relu(0.2)"]),
       cw=st.floats(0.3, 2.5), cb=st.floats(0.0, 1.0))
def test_kernels_are_symmetric_psd_and_finite(seed, n, depth, activation, cw, cb):
    X = np.random.default_rng(seed).standard_normal((n, 3))
    res = kernels(DeepNetwork(depth, activation, weight_var=cw, bias_var=cb), X)
    for arr in (res.nngp, res.ntk):
        assert np.all(np.isfinite(arr))
        np.testing.assert_array_equal(arr, arr.transpose(0, 2, 1))
        for layer in arr:
            scale = max(1.0, float(np.max(np.abs(layer))))
            assert np.linalg.eigvalsh(layer)[0] >= -1e-11 * scale


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2 ** 31), perm_seed=st.integers(0, 2 ** 31))
def test_kernels_are_permutation_equivariant(seed, perm_seed):
    X = np.random.default_rng(seed).standard_normal((4, 3))
    perm = np.random.default_rng(perm_seed).permutation(4)
    net = DeepNetwork(2, "erf", weight_var=1.7, bias_var=0.2)
    a, b = kernels(net, X), kernels(net, X[perm])
    np.testing.assert_allclose(b.nngp, a.nngp[:, perm][:, :, perm], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(b.ntk, a.ntk[:, perm][:, :, perm], rtol=1e-13, atol=1e-15)
