"""The numeric driver: shapes, symmetry, options, learning-rate and per-layer conventions."""

import numpy as np
import pytest

from fieldnet import DeepNetwork, DivergenceError, ParameterError, kernels


@pytest.fixture
def X():
    return np.random.default_rng(7).standard_normal((5, 4))


def _relu_pair(a, b, c):
    """Cho–Saul arc-cosine kernels (THEORY.md 2.2), written independently of the engine."""
    rho = np.clip(c / np.sqrt(a * b), -1, 1)
    theta = np.arccos(rho)
    return (np.sqrt(a * b) * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi),
            (np.pi - theta) / (2 * np.pi))


def test_shapes_symmetry_and_layer_one(X):
    res = kernels(DeepNetwork(3, "tanh", weight_var=1.2, bias_var=0.2), X)
    assert res.nngp.shape == res.ntk.shape == (4, 5, 5)
    np.testing.assert_array_equal(res.nngp, res.nngp.transpose(0, 2, 1))
    np.testing.assert_array_equal(res.ntk, res.ntk.transpose(0, 2, 1))
    k1 = 0.2 + 1.2 * X @ X.T / 4
    np.testing.assert_allclose(res.nngp[0], k1, rtol=1e-14, atol=1e-15)  # rounding of the Gram product
    np.testing.assert_allclose(res.ntk[0], k1, rtol=1e-14, atol=1e-15)
    for l in range(4):
        assert np.linalg.eigvalsh(res.nngp[l])[0] > -1e-12  # a kernel stays PSD


def test_per_layer_variances_against_independent_relu_recursion(X):
    cw, cb = [1.0, 2.5, 1.7, 2.0], [0.0, 0.3, 0.1, 0.05]
    res = kernels(DeepNetwork(3, "relu", weight_var=cw, bias_var=cb), X)
    K = cb[0] + cw[0] * X @ X.T / X.shape[1]
    T = K.copy()
    for l in range(1, 4):
        d = np.diag(K)
        pair, slope = _relu_pair(d[:, None], d[None, :], K)
        K = cb[l] + cw[l] * pair
        T = K + cw[l] * slope * T
        np.testing.assert_allclose(res.nngp[l], K, rtol=1e-12)
        np.testing.assert_allclose(res.ntk[l], T, rtol=1e-12)


def test_learning_rate_scales_the_ntk_only(X):
    a = kernels(DeepNetwork(2, "erf", weight_var=1.5), X)
    b = kernels(DeepNetwork(2, "erf", weight_var=1.5, learning_rate=0.25), X)
    np.testing.assert_array_equal(a.nngp, b.nngp)
    np.testing.assert_allclose(b.ntk, 0.25 * a.ntk, rtol=1e-15)


def test_standard_parameterization_relation(X):
    # THEORY.md 0: standard parameterization has lambda_W^(l) = n_{l-1}, lambda_b = 1
    net = DeepNetwork(2, "relu", weight_var=2.0, bias_var=0.1, widths=(30, 50), parameterization="standard")
    res = kernels(net, X)
    K = res.nngp
    d = [np.diag(K[l]) for l in range(3)]
    theta = 1 + X @ X.T
    np.testing.assert_allclose(res.ntk[0], theta, rtol=1e-14)
    for l, n in ((1, 30), (2, 50)):
        pair, slope = _relu_pair(d[l - 1][:, None], d[l - 1][None, :], K[l - 1])
        theta = 1 + n * pair + 2.0 * slope * theta
        np.testing.assert_allclose(res.ntk[l], theta, rtol=1e-12)


def test_last_only_and_nngp_only(X):
    net = DeepNetwork(3, "gelu", weight_var=1.3, bias_var=0.1)
    full = kernels(net, X)
    last = kernels(net, X, last_only=True)
    np.testing.assert_array_equal(last.nngp, full.nngp[-1])
    np.testing.assert_array_equal(last.ntk, full.ntk[-1])
    assert kernels(net, X, ntk=False).ntk is None
    with pytest.raises(ParameterError, match="^layer:"):
        last.layer(1)


def test_user_activation_and_single_input(X):
    res = kernels(DeepNetwork(2, "x*erf(x)", weight_var=1.0), X[:1])
    assert res.nngp.shape == (3, 1, 1) and np.all(np.isfinite(res.nngp))


def test_zero_input_with_zero_bias_is_finite():
    X = np.array([[0.0, 0.0], [1.0, -1.0]])
    res = kernels(DeepNetwork(3, "relu", weight_var=2.0, bias_var=0.0), X)
    assert np.all(np.isfinite(res.nngp)) and res.nngp[-1, 0, 0] == 0.0


def test_parallel_inputs_give_rho_exactly_one():
    # with C_b = 0, x and 3x have rho = 1 at layer 1, and relu is homogeneous, so rho stays 1
    x = np.array([[1.0, 2.0, -0.5]])
    res = kernels(DeepNetwork(4, "relu", weight_var=1.8, bias_var=0.0), np.vstack([x, 3 * x, -x, x]))
    for l in range(5):
        K, T = res.nngp[l], res.ntk[l]
        assert K[0, 1] / np.sqrt(K[0, 0] * K[1, 1]) == pytest.approx(1.0, abs=1e-14)
        assert T[0, 1] / np.sqrt(T[0, 0] * T[1, 1]) == pytest.approx(1.0, abs=1e-14)  # theta = 0, not sqrt(eps)
        assert T[0, 3] == pytest.approx(T[0, 0], rel=1e-14) and K[0, 3] == pytest.approx(K[0, 0], rel=1e-14)
    assert res.nngp[1, 0, 2] == pytest.approx(0.0, abs=1e-15)  # rho = -1 -> relu(u) relu(-u) = 0


@pytest.mark.parametrize("bad, words", [
    (np.ones(3), "shape (N, n_0)"), (np.ones((2, 2, 2)), "shape (N, n_0)"), (np.zeros((0, 3)), "at least one"),
    (np.array([[1.0, np.inf]]), "NaN or infinite"), ([["a", "b"]], "numeric"),
])
def test_bad_inputs(bad, words):
    with pytest.raises(ParameterError, match="^X:") as info:
        kernels(DeepNetwork(1, "relu"), bad)
    assert words in str(info.value)


def test_input_dim_mismatch():
    with pytest.raises(ParameterError, match="input_dim is 3"):
        kernels(DeepNetwork(1, "relu", input_dim=3), np.ones((2, 4)))


def test_overflow_raises_instead_of_nan():
    with pytest.raises(DivergenceError, match="not finite at layer"):
        kernels(DeepNetwork(12, "exp", weight_var=4.0), np.ones((2, 3)))


def test_divergent_gaussian_integral_is_reported():
    # E[exp(z^2)] with Var z >= 1/2 diverges: the completed square has det(1 - 2K) <= 0
    with pytest.raises(DivergenceError):
        kernels(DeepNetwork(2, "exp(x**2)", weight_var=1.0), np.ones((2, 3)))
