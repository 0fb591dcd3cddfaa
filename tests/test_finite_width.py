"""Finite-width (1/n) predictions over a dataset: numerics vs theory, closed forms, asymptotics, API, CLI."""

import warnings

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import quad

import fieldnet as fn
from fieldnet.analysis.finite_width import _gaussian_average, _program, finite_width
from fieldnet.cli import main
from fieldnet.errors import ParameterError
from fieldnet.numeric.functions import numpy_function
from fieldnet.symbolic.asymptotics import kstar_zero_asymptotics, scale_invariant_solution

RNG = np.random.default_rng(7)
X3 = RNG.standard_normal((3, 6))


def _avg(f, K):
    """<f(z)>_K by adaptive quadrature (independent of fieldnet's integrators)."""
    s = np.sqrt(K)
    return quad(lambda x: f(s * x) * np.exp(-x * x / 2) / np.sqrt(2 * np.pi), -12, 12, epsabs=0, epsrel=1e-13, limit=200)[0]


def _theory_single_input(K1_, cw, cb, depth):
    """THEORY 4.1 and 5.2 typed in by hand, derivative-free derivatives (2.1), tanh, NTK parameterization."""
    phi, dphi = np.tanh, lambda z: 1 - np.tanh(z) ** 2
    K, T = K1_, K1_
    V = K1 = A = B = D = F = H1 = 0.0
    rows = [(K, T, V, K1, A, B, D, F, H1)]
    lw = cw
    for _ in range(depth):
        p2 = _avg(lambda z: phi(z) ** 2, K)
        p4 = _avg(lambda z: phi(z) ** 4, K)
        d2 = _avg(lambda z: dphi(z) ** 2, K)
        d4 = _avg(lambda z: dphi(z) ** 4, K)
        p2d2 = _avg(lambda z: phi(z) ** 2 * dphi(z) ** 2, K)
        dp2 = _avg(lambda z: phi(z) ** 2 * (z * z - K), K) / (2 * K * K)
        ddp2 = _avg(lambda z: phi(z) ** 2 * (z ** 4 - 6 * K * z * z + 3 * K * K), K) / (4 * K ** 4)
        dd2 = _avg(lambda z: dphi(z) ** 2 * (z * z - K), K) / (2 * K * K)
        ddd2 = _avg(lambda z: dphi(z) ** 2 * (z ** 4 - 6 * K * z * z + 3 * K * K), K) / (4 * K ** 4)
        chi_par, chi_perp = cw * dp2, cw * d2
        dT = lw * dp2 + cw * T * dd2
        covD = cw * (lw * p4 + cw * T * p2d2) - cw * p2 * (lw * p2 + cw * T * d2)
        varA = lw ** 2 * p4 + 2 * lw * cw * T * p2d2 + cw ** 2 * T ** 2 * d4 - (lw * p2 + cw * T * d2) ** 2
        V, K1, D, A, F, B, H1 = (
            cw ** 2 * (p4 - p2 ** 2) + chi_par ** 2 * V,
            chi_par * K1 + cw / 2 * ddp2 * V,
            covD + chi_par * (dT * V + chi_perp * D),
            varA + dT ** 2 * V + 2 * chi_perp * dT * D + chi_perp ** 2 * A,
            cw ** 2 * T * p2d2 + chi_par ** 2 * F,
            cw ** 2 * T ** 2 * d4 + chi_perp ** 2 * B,
            dT * K1 + 0.5 * (lw * ddp2 + cw * T * ddd2) * V + cw * dd2 * (D + 2 * F) + chi_perp * H1)
        K, T = cb + cw * p2, cb + lw * p2 + cw * d2 * T
        rows.append((K, T, V, K1, A, B, D, F, H1))
    return np.array(rows)


def test_single_input_tanh_matches_theory_4_1_and_5_2():
    net = fn.DeepNetwork(3, "tanh", weight_var=1.5, bias_var=0.05)
    x = X3[:1]
    res = finite_width(net, x, ntk=True)
    ref = _theory_single_input(0.05 + 1.5 * (x @ x.T).item() / x.shape[1], 1.5, 0.05, 3)
    got = np.stack([res.K0[:, 0, 0], res.Theta[:, 0, 0], res.V[:, 0, 0, 0, 0], res.K1[:, 0, 0], res.A[:, 0],
                    res.B[:, 0], res.D[:, 0], res.F[:, 0], res.H1[:, 0, 0]], 1)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["relu", "leaky_relu(0.2)", "linear"])
def test_scale_invariant_exact_solution_vs_numeric_recursion(name):
    """THEORY 4.5 / 5.4: the rsolve closed forms equal the numerically iterated recursions (several inputs)."""
    sol = scale_invariant_solution(name)
    cw = float(sol.critical_weight_var)
    res = finite_width(fn.DeepNetwork(5, name, weight_var=cw, bias_var=0.0), X3, ntk=True)
    idx = np.arange(3)
    k1 = res.K0[0, idx, idx]
    l = np.arange(1, 7)[:, None]
    ev = lambda e: sp.lambdify((sp.Symbol("l", integer=True, positive=True), sp.Symbol("K_1", positive=True),
                                sp.Symbol("lambda_W", positive=True)), e, "numpy")(l, k1[None, :], cw) + 0 * l * k1
    np.testing.assert_allclose(res.V[:, idx, idx, idx, idx], ev(sol["V"]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.K1[:, idx, idx], 0.0, atol=1e-12)
    np.testing.assert_allclose(res.Theta[:, idx, idx], ev(sol["Theta"]), rtol=1e-12)
    for q in "ABDF":
        np.testing.assert_allclose(getattr(res, q), ev(sol[q]), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(res.H1[:, idx, idx], 0.0, atol=1e-12)
    if name == "relu":  # K1 vanishes on the diagonal but not off it from l = 3 on (THEORY 4.2)
        assert np.all(res.K1[1, 0, 1:] == 0) and np.all(np.abs(res.K1[2:, 0, 1:]) > 1e-3)


def test_per_layer_widths_enter_through_r():
    """ReLU at criticality: V^(l)/n_{l-1} = 5 K^2 sum_{k<l} 1/n_k, the O(1/n) part of prod_k (1 + 5/n_k) (THEORY 4.4)."""
    widths = (20, 40, 10, 80)
    net = fn.DeepNetwork(4, "relu", weight_var=2.0, bias_var=0.0, widths=widths)
    res = finite_width(net, X3[:1])
    K = res.K0[0, 0, 0]
    fan_in = np.array((np.inf,) + widths)
    expected = 5 * K ** 2 * np.concatenate([[0], np.cumsum(1 / np.array(widths, float))])
    np.testing.assert_allclose(res.V[:, 0, 0, 0, 0] / fan_in, expected, rtol=1e-12)
    np.testing.assert_allclose(res.excess_kurtosis()[:, 0], 15 * res.effective_depth(), rtol=1e-12)
    with pytest.raises(ParameterError, match="^n:"):
        res.corrected_kernel(50)


def test_kstar_zero_asymptotics_vs_deep_recursion():
    """THEORY 4.5 / 5.6 for critical tanh, iterated to l = 201: K (-a1 l) -> 1, V/(K^2 l) -> 2/3, K1 -> 1/(3 a1),
    B/(Theta^2 l) -> 1/3, F/(K Theta l) -> 1/4."""
    asy = kstar_zero_asymptotics("tanh")
    res = finite_width(fn.DeepNetwork(200, "tanh", weight_var=1.0, bias_var=0.0), np.ones((1, 3)), ntk=True)
    l = 201
    K, V, T = res.K0[-1, 0, 0], res.V[-1, 0, 0, 0, 0], res.Theta[-1, 0, 0]
    assert K * l * float(-asy.a1) == pytest.approx(1, rel=0.02)
    assert V / (K ** 2 * l) == pytest.approx(2 / 3, rel=0.02)
    assert res.K1[-1, 0, 0] == pytest.approx(float(asy.K1), rel=0.03)
    assert res.B[-1, 0] / (T ** 2 * l) == pytest.approx(1 / 3, rel=0.02)
    assert res.F[-1, 0] / (K * T * l) == pytest.approx(1 / 4, rel=0.02)
    assert res.ntk_relative_variance(1.0)[-1, 0] / l == pytest.approx(2 / 3, rel=0.05)


def test_several_inputs_reduce_to_one_input_on_the_diagonal():
    net = fn.DeepNetwork(2, "erf", weight_var=1.8, bias_var=0.2)
    res = finite_width(net, X3, ntk=True)
    for a in range(3):
        one = finite_width(net, X3[a:a + 1], ntk=True)
        np.testing.assert_allclose(res.V[:, a, a, a, a], one.V[:, 0, 0, 0, 0], rtol=1e-12)
        np.testing.assert_allclose(res.K1[:, a, a], one.K1[:, 0, 0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(res.H1[:, a, a], one.H1[:, 0, 0], rtol=1e-12, atol=1e-15)
        for q in "ABDF":
            np.testing.assert_allclose(getattr(res, q)[:, a], getattr(one, q)[:, 0], rtol=1e-12)


def test_vertex_symmetries_and_zero_first_layer():
    res = finite_width(fn.DeepNetwork(2, "tanh", weight_var=1.2, bias_var=0.1), RNG.standard_normal((4, 5)))
    V = res.V
    for perm in ((0, 2, 1, 3, 4), (0, 1, 2, 4, 3), (0, 3, 4, 1, 2)):
        np.testing.assert_array_equal(V, V.transpose(perm))
    assert np.all(V[0] == 0) and np.all(res.K1[0] == 0)
    np.testing.assert_array_equal(res.K1, res.K1.transpose(0, 2, 1))
    four = res.four_point(100)
    np.testing.assert_allclose(four, four.transpose(0, 2, 1, 3, 4), rtol=1e-14)
    np.testing.assert_allclose(four, four.transpose(0, 4, 2, 3, 1), rtol=1e-14)


def test_linear_network_vertex_is_wick_exact():
    """phi = x: V' = C_W^2 (K_ac K_bd + K_ad K_bc) + C_W^2 V, four distinct inputs (closed form through Wick)."""
    X = RNG.standard_normal((4, 6))
    cw, cb = 1.3, 0.2
    res = finite_width(fn.DeepNetwork(3, "linear", weight_var=cw, bias_var=cb), X)
    K = cb + cw * X @ X.T / 6
    V = np.zeros((4,) * 4)
    for l in range(1, 4):
        V = cw ** 2 * (np.einsum("ac,bd->abcd", K, K) + np.einsum("ad,bc->abcd", K, K)) + cw ** 2 * V
        K = cb + cw * K
        np.testing.assert_allclose(res.V[l], V, rtol=1e-12)
    np.testing.assert_allclose(res.K1, 0, atol=1e-12)


@pytest.mark.parametrize("name, counts", [("sin", (1, 1, 1, 1)), ("sin", (2, 1, 1)), ("relu", (3, 1)), ("erf", (2, 2))])
def test_closed_form_four_point_averages_vs_quadrature(name, counts):
    prog = _program(fn.get_activation(name), False)
    k = len(counts)
    A = RNG.standard_normal((5, k, k + 2))
    cov = A @ A.transpose(0, 2, 1) / (k + 2)
    state = {"_shape": (5,)}
    for i, x in enumerate("abcd"[:k]):
        for j, y in enumerate("abcd"[:k]):
            if i <= j:
                state[f"K_{x}{y}"] = cov[:, i, j]
    lowered = prog.four[counts]
    closed = lowered(state, {})
    f = fn.get_activation(name)
    g = numpy_function([f.expr.free_symbols.pop()], f.expr)
    integrand = lambda *z: np.prod([g(zi) ** c for zi, c in zip(z, counts)], axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # relu: the trapezoid rule across the kink stops at ~1e-5
        num = _gaussian_average(integrand, cov)
    tol = 1e-4 if name == "relu" else (1e-12 if k <= 2 else 1e-9)
    np.testing.assert_allclose(closed, num, rtol=tol, atol=tol)


def test_duplicate_and_antiparallel_inputs_are_finite_and_consistent():
    x = RNG.standard_normal((1, 5))
    X = np.concatenate([x, x, -x, 2 * x])
    res = finite_width(fn.DeepNetwork(3, "relu", weight_var=2.0, bias_var=0.0), X, ntk=True)
    for arr in (res.K1, res.V, res.H1):
        assert np.all(np.isfinite(arr))
    np.testing.assert_allclose(res.K1[:, 0, 1], res.K1[:, 0, 0], atol=1e-12)
    np.testing.assert_allclose(res.V[:, 0, 1, 0, 1], res.V[:, 0, 0, 0, 0], rtol=1e-10)
    np.testing.assert_allclose(res.H1[:, 0, 1], res.H1[:, 0, 0], atol=1e-12)
    # parallel x, 2x (rho = 1, different norms): V scales as a 4-homogeneous function, K1 = 0 like the diagonal
    np.testing.assert_allclose(res.V[:, 0, 3, 0, 3], 4 * res.V[:, 0, 0, 0, 0], rtol=1e-5)


def test_corrected_kernel_and_predictions_api():
    net = fn.DeepNetwork(2, "erf", weight_var=2.0, bias_var=0.1)
    res = finite_width(net, X3, ntk=True)
    n = 64
    np.testing.assert_allclose(res.corrected_kernel(n)[1:], res.K0[1:] + res.K1[1:] / n)
    np.testing.assert_allclose(res.corrected_kernel(n)[0], res.K0[0])
    np.testing.assert_allclose(res.ntk_mean(n)[1:], res.Theta[1:] + res.H1[1:] / n)
    idx = np.arange(3)
    np.testing.assert_allclose(res.excess_kurtosis(n), 3 * res.V[:, idx, idx, idx, idx] / (n * res.K0[:, idx, idx] ** 2))
    np.testing.assert_allclose(res.ntk_relative_variance(n), (res.A + 2 * res.B) / (n * res.Theta[:, idx, idx] ** 2))
    np.testing.assert_allclose(res.effective_depth(n), np.arange(3) / n)
    assert res.A.shape == res.B.shape == res.D.shape == res.F.shape == (3, 3)
    bare = finite_width(net, X3)
    assert bare.Theta is None and bare.H1 is None
    with pytest.raises(ParameterError, match="^ntk:"):
        bare.ntk_relative_variance(10)
    with pytest.raises(ParameterError, match="^n:"):
        res.corrected_kernel(-3)
    with pytest.raises(ParameterError, match="^n:"):
        res.corrected_kernel()
    with pytest.raises(ParameterError, match="^network:"):
        finite_width("relu", X3)
    with pytest.raises(ParameterError, match="^X:"):
        finite_width(net, np.array([[1.0, np.nan]]))


def test_cli_finite_width(tmp_path, capsys):
    path = tmp_path / "X.npy"
    np.save(path, X3)
    out = tmp_path / "fw.npz"
    assert main(["finite-width", "--inputs", str(path), "--activation", "relu", "--depth", "2", "--weight-var", "2",
                 "--bias-var", "0", "--ntk", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    data = np.load(out)
    assert set(data) == {"K0", "K1", "V", "Theta", "H1", "A", "B", "D", "F"}
    assert data["V"].shape == (3, 3, 3, 3, 3) and data["V"].dtype == np.float64 and data["A"].shape == (3, 3)
    ref = finite_width(fn.DeepNetwork(2, "relu", weight_var=2.0, bias_var=0.0), X3, ntk=True)
    np.testing.assert_array_equal(data["V"], ref.V)
    np.testing.assert_array_equal(data["K1"], ref.K1)
    assert main(["finite-width", "--inputs", str(path), "--activation", "relu", "--depth", "2", "--bias-var", "-1",
                 "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "fieldnet: error: --bias-var: must be >= 0, got -1.0"
    assert main(["finite-width", "--inputs", str(tmp_path / "none.npy"), "--activation", "relu", "--depth", "2",
                 "--out", str(out)]) == 2
