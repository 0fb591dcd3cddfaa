"""Finite-width Monte Carlo estimators (fieldnet.montecarlo.finite_width) against EXACT finite-width results.

Tolerances: |estimate - exact| <= Z_MAX standard errors, the standard errors being the samples' own (across
networks); seeds fixed. The references hold at any width and need no theory module (THEORY.md sec. 0, 4, 5):

* layer 1 is exactly Gaussian: hat G^(1) = K^(1), V^(1) = 0, kurtosis 0, H^(1)_ij = delta_ij Theta^(1);
* layer 2: z^(1) is exactly N(0, K^(1)), so E hat G^(2) = K^(2) (K1^(2) = 0),
  V^(2)_{(ab)(cd)} = C_W^2 Cov_{K^(1)}(phi_a phi_b, phi_c phi_d) (sec. 4.1 with V^(1) = 0), and the NTK
  coefficients of sec. 5.2 with A = B = D = F = 0 at layer 1 are exact at layer 2:
  A = Var(lambda_W phi^2 + C_W Theta phi'^2), B = C_W^2 Theta^2 <phi'^4>, F = C_W^2 Theta <phi^2 phi'^2>,
  D = C_W Cov(phi^2, lambda_W phi^2 + C_W Theta phi'^2), n_1 Var(H^(2)_ii) = A + 2B (1-D quadrature);
* scale-invariant phi (sec. 4.4; relu c = 5, linear c = 2, leaky relu): E[hat G^(l)_aa] and E[H^(l)_ii;aa] obey the
  infinite-width recursions exactly (they are linear in the single-input kernel; the NTK by the sign symmetry
  (W_j, b_j) -> -(W_j, b_j)), and with C_b = 0, E[hat G^2] / E[hat G]^2 = prod_{k<l} (1 + c/n_k), i.e.
  excess kurtosis 3[prod - 1] and V = n_{l-1} G^2 (prod - 1), at any (unequal) widths;
* ReLU NTK (sec. 5.4, [D] from the sec. 5.2 recursions): at leading order A, B, D, F and
  Var(H)/E[H]^2 = (l-1)(11l-4)/(3 n l), compared with a 1/n extrapolation over several widths (slow);
* smooth activations at leading order (slow): the single-input recursions of sec. 4.1 (V, K1) and 5.2 (Theta,
  H1, A, B, D, F), iterated here with 1-D quadrature (an implementation independent of fieldnet.analysis),
  against the intercepts and 1/n slopes of fits over widths 8 .. 32.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import fieldnet as fn
from fieldnet.errors import ParameterError
from fieldnet.montecarlo import sample_ensemble
from fieldnet.montecarlo.finite_width import (FiniteWidthScan, finite_width_scan, sample_finite_width)
from fieldnet.montecarlo.deep import activation_functions
from fieldnet.montecarlo.stats import deviation_in_sigmas
from fieldnet.numeric.quadrature import expectation

Z_MAX = 5.0


def _inputs(n_inputs: int = 2, n0: int = 5, seed: int = 1) -> np.ndarray:
    X = np.random.default_rng(seed).normal(size=(n_inputs, n0))
    if n_inputs > 1:
        X[-1] = 0.8 * X[0] + 0.6 * X[-1]
    return X


def _within(estimate, se, reference, what: str) -> float:
    """Every entry within Z_MAX se (se = 0 demands equality to 1e-12 relative); returns the worst z-score."""
    est, se, ref = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float)) for v in (estimate, se, reference)))
    exact = se == 0
    np.testing.assert_allclose(est[exact], ref[exact], rtol=1e-12, atol=1e-14, err_msg=what)
    dev = deviation_in_sigmas(est[~exact], ref[~exact], se[~exact])
    worst = float(dev.max()) if dev.size else 0.0
    assert worst <= Z_MAX, f"{what}: {worst:.2f} sigma\nMC {est}\nse {se}\nexact {ref}"
    return worst


def _diag(a):
    return np.diagonal(a, axis1=-2, axis2=-1)


def _vdiag(V):
    """V_(aa)(aa): (L+1, N)."""
    N = V.shape[-1]
    i = np.arange(N)
    return V[:, i, i, i, i]


# ---------------------------------------------------------------------------------------------------------------
# bookkeeping: the same networks as sample_ensemble, chunking, bad input


def test_same_networks_as_sample_ensemble_and_chunking():
    """G_direct and Theta are sample_ensemble's NNGP and NTK diagonal (same seeds, P = ntk_neurons neurons);
    results do not depend on chunk_size."""
    X = _inputs(3)
    net = fn.DeepNetwork(2, "tanh", 1.5, 0.1, widths=(6, 9))
    a = sample_finite_width(net, X, 30, output_width=5, ntk_neurons=3, seed=4)
    b = sample_finite_width(net, X, 30, output_width=5, ntk_neurons=3, seed=4, chunk_size=7)
    e = sample_ensemble(net, X, 30, output_width=5, ntk_neurons=3, seed=4)
    np.testing.assert_allclose(a.G_direct, e.nngp_mean, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(a.Theta, e.ntk_mean, rtol=1e-13, atol=1e-15)
    for name in ("G", "V", "V_cross", "kurtosis", "Theta", "A", "B", "D", "F", "ntk_covariance",
                 "ntk_relative_variance"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-10, atol=1e-13, err_msg=name)
    assert a.widths == (5, 6, 9, 5) and a.fan_in == (5, 6, 9) and a.ntk_neurons == (3, 3, 3)
    assert a.V.shape == (3, 3, 3, 3, 3) and a.G.shape == (3, 3, 3) and a.A.shape == (3,) * 5
    assert a.B.shape == a.D.shape == a.F.shape == a.ntk_covariance.shape == (3,) * 5 and a.Theta.shape == (3, 3, 3)
    np.testing.assert_allclose(a.V, np.transpose(a.V, (0, 3, 4, 1, 2)))      # V_PQ = V_QP
    np.testing.assert_allclose(a.V, np.transpose(a.V, (0, 2, 1, 3, 4)))      # symmetric pairs


def test_ntk_block_matches_finite_differences():
    """The P x P NTK block (off-diagonal H_ij included) of one explicit network equals
    sum_mu lambda_mu dz_i/dtheta_mu dz_j/dtheta_mu from central finite differences (THEORY.md sec. 0)."""
    X = _inputs(2, n0=3)
    net = fn.DeepNetwork(2, "tanh", [1.3, 1.6, 0.9], [0.1, 0.2, 0.3], widths=(4, 5), learning_rate=0.7)
    seed, m, out = 21, 3, 3
    res = sample_finite_width(net, X, m, output_width=out, ntk_neurons=3, seed=seed, keep_samples=True)
    sizes = (3, 4, 5, out)
    lam_w, lam_b = net.ntk_rates(3)
    rates = [r for lw, lb, n in zip(lam_w, lam_b, sizes) for r in (lw / n, lb)]
    for k in range(m):
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(m)[k])
        params = []
        for fan_in, width, cw, cb in zip(sizes[:-1], sizes[1:], net.weight_var, net.bias_var):
            w, b = rng.standard_normal((width, fan_in)), rng.standard_normal(width)
            params += [w * np.sqrt(cw / fan_in), b * np.sqrt(cb)]

        def preactivations(ps):
            h, zs = X, []
            for w, b in zip(ps[::2], ps[1::2]):
                zs.append(h @ w.T + b)
                h = np.tanh(zs[-1])
            return zs

        zs = preactivations(params)
        for l in range(1, net.depth + 2):
            P = 3
            N = X.shape[0]
            H = np.zeros((P, P, N, N))
            for p, rate in zip(range(2 * l), rates):
                for idx in np.ndindex(params[p].shape):
                    shifted = []
                    for sign in (1, -1):
                        ps = [q.copy() for q in params]
                        ps[p][idx] += sign * 1e-6
                        shifted.append(preactivations(ps)[l - 1][:, :P])
                    d = (shifted[0] - shifted[1]) / 2e-6                    # (N, P)
                    H += rate * d.T[:, None, :, None] * d.T[None, :, None, :]   # H_pq;ab
            iu = np.triu_indices(N)
            hd = H[np.arange(P), np.arange(P)][:, iu[0], iu[1]]            # (P, pairs): H_ii;P
            s = res.samples
            np.testing.assert_allclose(s["t1"][k, l - 1], hd.mean(0), rtol=1e-7)
            np.testing.assert_allclose(s["t2"][k, l - 1], hd.T @ hd / P, rtol=1e-7)
            off = ~np.eye(P, dtype=bool)
            np.testing.assert_allclose(s["b"][k, l - 1], np.einsum("ixy,iuw->xyuw", H[off], H[off]) / off.sum(),
                                       rtol=1e-6, atol=1e-12)
            zp = zs[l - 1][:, :P].T                                        # (P, N)
            Hz = H[:, :, :, :, None, None] * zp[:, None, None, None, :, None] * zp[None, :, None, None, None, :]
            np.testing.assert_allclose(s["f"][k, l - 1], Hz[off].mean(0), rtol=1e-6, atol=1e-12)
            np.testing.assert_allclose(s["c"][k, l - 1], (hd[:, None, :, None] * hd[None, :, None, :])[off].mean(0),
                                       rtol=1e-7)


@pytest.mark.parametrize("kwargs,parameter", [
    ({"n_networks": 2}, "n_networks"),
    ({"ntk_neurons": 1}, "ntk_neurons"),
    ({"output_width": 1}, "output_width"),
    ({"chunk_size": 0}, "chunk_size"),
    ({"seed": -3}, "seed"),
])
def test_bad_arguments_raise(kwargs, parameter):
    net = fn.DeepNetwork(1, "relu", 2.0, 0.0, widths=4)
    with pytest.raises(ParameterError, match=parameter):
        sample_finite_width(net, _inputs(), **{"n_networks": 10, **kwargs})


def test_bad_network_scan_and_fit_raise():
    X = _inputs()
    with pytest.raises(ParameterError, match="widths"):
        sample_finite_width(fn.DeepNetwork(1, "relu", widths=1), X, 10)
    with pytest.raises(ParameterError, match="widths"):
        sample_finite_width(fn.DeepNetwork(2, "relu"), X, 10)
    with pytest.raises(ParameterError, match="network"):
        sample_finite_width("relu", X, 10)
    with pytest.raises(ParameterError, match="network"):
        finite_width_scan(None, X, [4, 8], 10)
    with pytest.raises(ParameterError, match="n_networks"):
        finite_width_scan(fn.DeepNetwork(1, "relu"), X, [4, 8], [10])
    with pytest.raises(ParameterError, match="cross_check"):     # memory guard, raised before sampling
        sample_finite_width(fn.DeepNetwork(1, "relu", widths=4), np.ones((16, 3)), 50000)
    scan = finite_width_scan(fn.DeepNetwork(1, "relu", 2.0), X, [4, 8], 10, ntk=False)
    with pytest.raises(ParameterError, match="quantity"):
        scan.fit("K2")
    with pytest.raises(ParameterError, match="quantity"):
        scan.fit("A")


def test_fit_inverse_powers():
    """Order 2 recovers an exact quadratic in 1/n and its textbook WLS errors; order 1 is fit_inverse_width."""
    from fieldnet.montecarlo.stats import fit_inverse_powers, fit_inverse_width
    n = np.array([8.0, 12.0, 16.0, 32.0])
    y = np.stack([1.5 - 2.0 / n + 7.0 / n ** 2, 0.5 + 1.0 / n - 3.0 / n ** 2], axis=1)
    se = np.full_like(y, 0.01)
    fit = fit_inverse_powers(n, y, se, order=2)
    np.testing.assert_allclose(fit.intercept, [1.5, 0.5], rtol=1e-10)
    np.testing.assert_allclose(fit.slope, [-2.0, 1.0], rtol=1e-9)
    X = np.stack([np.ones(4), 1 / n, 1 / n ** 2], axis=1)
    cov = 1e-4 * np.linalg.inv(X.T @ X)
    np.testing.assert_allclose(fit.intercept_se ** 2, cov[0, 0], rtol=1e-9)
    np.testing.assert_allclose(fit.covariance, cov[0, 1], rtol=1e-9)
    assert fit.dof == 1 and np.all(fit.chi2 < 1e-12)
    lin = fit_inverse_powers(n, y, se, order=1)
    np.testing.assert_allclose(lin.slope, fit_inverse_width(n, y, se).slope)
    with pytest.raises(ParameterError, match="order"):
        fit_inverse_powers(n, y, se, order=0)
    with pytest.raises(ParameterError, match="widths"):
        fit_inverse_powers(n[:2], y[:2], se[:2], order=2)


# ---------------------------------------------------------------------------------------------------------------
# exact at any width (fast)


@pytest.mark.parametrize("activation,cw,cb", [("relu", 2.0, 0.0), ("tanh", 1.5, 0.05), ("erf", 2.0, 0.1)])
def test_layer_one_is_exactly_gaussian(activation, cw, cb):
    """hat G^(1) = K^(1) for every network: V^(1) = 0, kurtosis 0 and NTK fluctuations 0 exactly (se 0), and
    the neuron-level estimators (which do fluctuate) agree with 0 within Z_MAX se (THEORY.md sec. 0)."""
    X = _inputs(3)
    net = fn.DeepNetwork(1, activation, cw, cb, widths=6)
    k = fn.kernels(net, X)
    res = sample_finite_width(net, X, 400, output_width=5, seed=2)
    np.testing.assert_allclose(res.G[0], k.nngp[0], rtol=1e-13)
    assert np.all(res.G_se[0] == 0) and np.all(res.V[0] == 0) and np.all(res.V_se[0] == 0)
    assert np.all(res.kurtosis[0] == 0)
    for name in ("A", "B", "D", "F", "ntk_covariance", "ntk_variance"):
        assert np.all(getattr(res, name)[0] == 0) and np.all(getattr(res, name + "_se")[0] == 0)
    np.testing.assert_allclose(res.Theta[0], k.ntk[0], rtol=1e-13)
    _within(res.V_cross[0], res.V_cross_se[0], 0.0, "V_cross^(1)")
    _within(res.kurtosis_direct[0], res.kurtosis_direct_se[0], 0.0, "direct kurtosis^(1)")
    _within(res.G_direct[0], res.G_direct_se[0], k.nngp[0], "G_direct^(1)")


def _relu_moments(K):
    """Closed forms for z ~ N(0, K): <phi^2>, <phi^4>, <phi'^2> = <phi'^4>, <phi^2 phi'^2> for ReLU."""
    return {"p2": K / 2, "p4": 3 * K * K / 2, "d2": 0.5, "d4": 0.5, "p2d2": K / 2, "p2d2_cross": K / 2}


def _layer_two_reference(activation, cw, cb, K, theta1, lam_w):
    """Exact layer-2 V, A, B, D, F for one input with K^(1) = K, Theta^(1) = theta1 (THEORY.md 4.1, 5.2)."""
    if activation == "relu":
        m = _relu_moments(K)
        e = {"p2": m["p2"], "p4": m["p4"], "d2": m["d2"], "d4": m["d4"], "p2d2": m["p2d2"]}
    else:
        phi, dphi = activation_functions(fn.get_activation(activation))
        cov = [[K]]
        e = {"p2": expectation(lambda z: phi(z) ** 2, cov), "p4": expectation(lambda z: phi(z) ** 4, cov),
             "d2": expectation(lambda z: dphi(z) ** 2, cov), "d4": expectation(lambda z: dphi(z) ** 4, cov),
             "p2d2": expectation(lambda z: phi(z) ** 2 * dphi(z) ** 2, cov)}
    V = cw ** 2 * (e["p4"] - e["p2"] ** 2)
    # s = lam_w phi^2 + cw theta1 phi'^2
    s2 = lam_w ** 2 * e["p4"] + 2 * lam_w * cw * theta1 * e["p2d2"] + (cw * theta1) ** 2 * e["d4"]
    s1 = lam_w * e["p2"] + cw * theta1 * e["d2"]
    A = s2 - s1 ** 2
    D = cw * (lam_w * e["p4"] + cw * theta1 * e["p2d2"] - e["p2"] * s1)
    B = cw ** 2 * theta1 ** 2 * e["d4"]
    F = cw ** 2 * theta1 * e["p2d2"]
    return {"V": V, "A": A, "B": B, "D": D, "F": F, "ntk_variance": A + 2 * B}


@pytest.mark.parametrize("activation,cw,cb", [("relu", 2.0, 0.0), ("tanh", 1.5, 0.05), ("erf", 2.0, 0.1)])
def test_layer_two_is_exact_at_any_width(activation, cw, cb):
    """Layer 2 (fan-in n_1 = 7, small on purpose): G = K^(2), V^(2) = C_W^2 Var_{K^(1)}(phi^2) (both estimators),
    kurtosis = 3 V^(2) / (n_1 K^(2)^2), E H = Theta^(2), and A, B, D, F, n_1 Var(H) = A + 2B exactly
    (1-D quadrature, or ReLU's closed forms)."""
    X = _inputs(2)
    n1 = 7
    net = fn.DeepNetwork(1, activation, cw, cb, widths=n1)
    k = fn.kernels(net, X)
    res = sample_finite_width(net, X, 12000, output_width=6, seed=7)
    lam_w = net.ntk_rates(X.shape[1])[0][1]
    worst = 0.0
    for a in range(X.shape[0]):
        K, theta1 = k.nngp[0, a, a], k.ntk[0, a, a]
        ref = _layer_two_reference(activation, cw, cb, K, theta1, lam_w)
        worst = max(worst, _within(res.V[1, a, a, a, a], res.V_se[1, a, a, a, a], ref["V"], "V^(2)"))
        worst = max(worst, _within(res.V_cross[1, a, a, a, a], res.V_cross_se[1, a, a, a, a], ref["V"],
                                   "V_cross^(2)"))
        K2 = k.nngp[1, a, a]
        worst = max(worst, _within(res.kurtosis[1, a], res.kurtosis_se[1, a], 3 * ref["V"] / (n1 * K2 ** 2),
                                   "kurtosis^(2)"))
        for name in ("A", "B", "D", "F"):
            worst = max(worst, _within(getattr(res, name)[1, a, a, a, a], getattr(res, name + "_se")[1, a, a, a, a],
                                       ref[name], f"{name}^(2)"))
        worst = max(worst, _within(res.ntk_variance[1, a], res.ntk_variance_se[1, a], ref["ntk_variance"],
                                   "ntk_variance^(2)"))
    worst = max(worst, _within(res.G[1], res.G_se[1], k.nngp[1], "G^(2)"))
    worst = max(worst, _within(res.Theta[1], res.Theta_se[1], k.ntk[1], "Theta^(2)"))
    print(f"{activation}: layer-2 exact checks, worst {worst:.2f} sigma")


def relu_step_average_error() -> float:
    """Relative error of the finite-width integrator on relu's <phi'_a^2 phi'_b phi'_c> = P(z_a, z_b, z_c > 0)
    (a 3-D average of step functions, three correlated inputs) against the orthant formula
    1/8 + (asin rho_ab + asin rho_ac + asin rho_bc) / (4 pi). Tensor Gauss-Hermite (24^3) is 12% off here."""
    from fieldnet.analysis.ntk_fluctuations import ntk_program

    K = np.array([[1.0, 0.5, -0.3], [0.5, 1.2, 0.4], [-0.3, 0.4, 0.9]])
    s = np.sqrt(np.diag(K))
    rho = K / np.outer(s, s)
    exact = 1 / 8 + (np.arcsin(rho[0, 1]) + np.arcsin(rho[0, 2]) + np.arcsin(rho[1, 2])) / (4 * np.pi)
    state = {"_shape": (1,), **{f"K_{'abc'[i]}{'abc'[j]}": np.array([K[i, j]]) for i in range(3) for j in range(i, 3)}}
    got = ntk_program(fn.get_activation("relu")).quad[(2, 1, 1)](state, {})[0]
    return abs(got / exact - 1)


RELU_STEP_TOL = 1e-4


@pytest.mark.parametrize("activation,cw,cb,n_inputs,seed", [
    ("relu", 2.0, 0.0, 2, 31), ("tanh", 1.5, 0.05, 3, 32), ("erf", 2.0, 0.1, 3, 33), ("relu", 2.0, 0.0, 3, 31)])
def test_layer_two_ntk_tensors_for_several_inputs(activation, cw, cb, n_inputs, seed):
    """Layer 2 is exact at any width (z^(1) is exactly Gaussian and layer 1 does not fluctuate, so THEORY.md 5.3's
    sources are the whole answer): every entry of the multi-input tensors A_(ab)(cd), D_(ab),(cd), B_{a1a3a2a4},
    F_{a1a3a2a4} and n_1 Cov(H_ii;ab, H_ii;cd) = A_(ab)(cd) + B_acbd + B_adbc of fieldnet.analysis.finite_width
    against the Monte Carlo at fan-in n_1 = 7, within Z_MAX se. Two inputs: every average is 1-D/2-D (relu: closed
    forms); three: 3-D averages. relu on three inputs needs 3-D averages of the step phi': with an integrator that
    gets them wrong (tensor Gauss-Hermite: 12%, and B^(2) 7 sigma off) the case is an expected failure."""
    from fieldnet.analysis.finite_width import finite_width

    if activation == "relu" and n_inputs >= 3 and relu_step_average_error() > RELU_STEP_TOL:
        pytest.xfail(f"3-D averages of relu' = step are {relu_step_average_error():.1%} off (orthant probability)")

    X = _inputs(n_inputs)
    n1 = 7
    net = fn.DeepNetwork(1, activation, cw, cb, widths=n1)
    th = finite_width(net, X, ntk=True)
    res = sample_finite_width(net, X, 12000, output_width=6, seed=seed, cross_check=False)
    worst = {}
    for name, ref in (("A", th.A[1]), ("D", th.D[1]), ("F", th.F[1]),
                      ("ntk_covariance", n1 * th.ntk_covariance(n1)[1]), ("B", th.B[1])):
        worst[name] = round(_within(getattr(res, name)[1], getattr(res, name + "_se")[1], ref, f"{name}^(2)"), 2)
    assert np.abs(th.F[1] - th.F[1].transpose(1, 0, 3, 2)).max() > 1e-3      # F has no a1 <-> a3 symmetry
    print(f"{activation}: layer-2 NTK tensors, {n_inputs} inputs, worst sigma {worst}")


def test_layer_two_vertex_for_two_inputs():
    """V^(2)_{(a1a2)(a3a4)} = C_W^2 [<phi_a1 phi_a2 phi_a3 phi_a4> - <phi_a1 phi_a2><phi_a3 phi_a4>]_{K^(1)} for all
    16 index combinations of two inputs (2-D whitened quadrature), both estimators."""
    X = _inputs(2)
    cw, cb = 1.5, 0.05
    net = fn.DeepNetwork(1, "tanh", cw, cb, widths=7)
    k1 = fn.kernels(net, X).nngp[0]
    res = sample_finite_width(net, X, 12000, output_width=6, seed=8, ntk=False)
    phi, _ = activation_functions(fn.get_activation("tanh"), False)
    ref = np.zeros((2,) * 4)
    pair = {}
    for a, b in np.ndindex(2, 2):
        pair[a, b] = expectation(lambda u, v: phi((u, v)[a]) * phi((u, v)[b]), k1)
    for idx in np.ndindex(2, 2, 2, 2):
        four = expectation(lambda u, v: np.prod([phi((u, v)[i]) for i in idx], axis=0), k1)
        ref[idx] = cw ** 2 * (four - pair[idx[:2]] * pair[idx[2:]])
    _within(res.V[1], res.V_se[1], ref, "V^(2) two inputs")
    _within(res.V_cross[1], res.V_cross_se[1], ref, "V_cross^(2) two inputs")


SCALE_INVARIANT = [("relu", 2.0, 5.0), ("linear", 1.0, 2.0), ("leaky_relu(0.5)", 1.6, None)]


def _c_of(activation, c):
    """c = 3 rho4 - 1 with rho4 = A4 / A2^2 (THEORY.md 3.2a); leaky relu alpha = 0.5."""
    if c is not None:
        return c
    alpha = 0.5
    A2, A4 = (1 + alpha ** 2) / 2, (1 + alpha ** 4) / 2
    return 3 * A4 / A2 ** 2 - 1


@pytest.mark.parametrize("activation,cw,c", SCALE_INVARIANT)
def test_scale_invariant_moments_are_exact(activation, cw, c):
    """THEORY.md 4.4, C_b = 0, unequal small widths (n_1, n_2, n_3) = (6, 9, 5): E hat G^(l)_aa = K^(l)_aa,
    kurtosis^(l) = 3[prod_{k<l}(1 + c/n_k) - 1] (both estimators), V^(l)_aaaa = n_{l-1} K^2 [prod - 1], and
    E H^(l)_ii = Theta^(l) (fieldnet.kernels) for every layer."""
    X = _inputs(2)
    widths = (6, 9, 5)
    net = fn.DeepNetwork(3, activation, cw, 0.0, widths=widths)
    k = fn.kernels(net, X)
    res = sample_finite_width(net, X, 12000, output_width=4, seed=9, cross_check=False)
    c = _c_of(activation, c)
    prod = np.cumprod((1.0,) + tuple(1 + c / n for n in widths))            # index l - 1: prod_{k<l}
    K = _diag(k.nngp)                                                       # (L+1, N)
    fan_in = np.array(res.fan_in, dtype=float)[:, None]
    worst = max(
        _within(_diag(res.G), _diag(res.G_se), K, "E hat G_aa"),
        _within(res.kurtosis, res.kurtosis_se, np.broadcast_to(3 * (prod - 1)[:, None], K.shape), "kurtosis"),
        _within(res.kurtosis_direct, res.kurtosis_direct_se, np.broadcast_to(3 * (prod - 1)[:, None], K.shape),
                "direct kurtosis"),
        _within(_vdiag(res.V), _vdiag(res.V_se), fan_in * K ** 2 * (prod - 1)[:, None], "V_aaaa"),
        _within(_diag(res.Theta), _diag(res.Theta_se), _diag(k.ntk), "E H_ii"))
    print(f"{activation}: scale-invariant exact checks, worst {worst:.2f} sigma")


def test_scale_invariant_means_exact_with_bias():
    """For scale-invariant phi the single-input mean recursions are linear, so E hat G_aa = K_aa and E H_ii = Theta
    exactly at finite width also for C_b > 0 (the product formula for the second moment needs C_b = 0)."""
    X = _inputs(2)
    net = fn.DeepNetwork(3, "relu", 1.8, 0.3, widths=(5, 8, 6))
    k = fn.kernels(net, X)
    res = sample_finite_width(net, X, 12000, output_width=4, seed=10, cross_check=False)
    _within(_diag(res.G), _diag(res.G_se), _diag(k.nngp), "E hat G_aa")
    _within(_diag(res.Theta), _diag(res.Theta_se), _diag(k.ntk), "E H_ii")


def test_fit_recovers_exact_relu_coefficients():
    """ReLU, C_b = 0, equal widths n: V^(3)(n) = n K^2((1 + 5/n)^2 - 1) = K^2 (10 + 25/n) exactly, so the fit
    a + b/n is exact at layer 3: intercept 10 K^2 (= 5 (l-1) K^2, THEORY.md 4.5), slope 25 K^2; n * kurtosis^(3) =
    30 + 75/n; K1 = 0 on the diagonal (G_aa is exact), and layer 1 is returned exactly (slope 0, se 0)."""
    X = _inputs(2)
    net = fn.DeepNetwork(2, "relu", 2.0, 0.0)
    widths = (8, 16, 32)
    scan = finite_width_scan(net, X, widths, (8000, 6000, 4000), seed=11, ntk=False, cross_check=False)
    assert isinstance(scan, FiniteWidthScan) and scan.fan_in.shape == (3, 3)
    K = 2.0 * np.sum(X * X, axis=1) / X.shape[1]
    v = scan.fit("V")
    _within(_vdiag(v.intercept)[2], _vdiag(v.intercept_se)[2], 10 * K ** 2, "V^(3) at n = inf")
    _within(_vdiag(v.slope)[2], _vdiag(v.slope_se)[2], 25 * K ** 2, "V^(3) 1/n coefficient")
    kurt = scan.fit("kurtosis", scaled=True)
    _within(kurt.intercept[2], kurt.intercept_se[2], 30.0, "n kurtosis^(3) at n = inf")
    _within(kurt.slope[2], kurt.slope_se[2], 75.0, "n kurtosis^(3) 1/n coefficient")
    g = scan.fit("G")
    _within(_diag(g.slope)[1:], _diag(g.slope_se)[1:], 0.0, "K1 diagonal")
    assert np.all(g.slope[0] == 0) and np.all(g.slope_se[0] == 0) and np.all(g.intercept_se[0] == 0)
    np.testing.assert_allclose(g.intercept[0], fn.kernels(net, X).nngp[0], rtol=1e-13)
    assert v.dof == 1


# ---------------------------------------------------------------------------------------------------------------
# leading order, extrapolated in 1/n (slow)


def single_input_reference(activation, cw, cb, K1, depth, lam_w=None, lam_b=None):
    """THEORY.md 4.1 and 5.2 iterated at equal widths (r = 1) for one input, NTK parameterization at unit rate
    (lambda = C) unless given: dict of arrays over layers l = 1 .. L+1 (K, K1, V, Theta, H1, A, B, D, F).
    Derivatives in K use the derivative-free forms of sec. 2.1 (1-D whitened quadrature)."""
    phi, dphi = activation_functions(fn.get_activation(activation))
    lam_w = cw if lam_w is None else lam_w
    lam_b = cb if lam_b is None else lam_b
    K, Th = K1, lam_b + lam_w * (K1 - cb) / cw
    V = K1c = A = B = D = F = H1 = 0.0
    out = {k: [] for k in ("K", "K1", "V", "Theta", "H1", "A", "B", "D", "F")}
    for l in range(1, depth + 2):
        for k, v in zip(out, (K, K1c, V, Th, H1, A, B, D, F)):
            out[k].append(v)
        E = lambda f: expectation(f, [[K]])
        p2, p4 = E(lambda z: phi(z) ** 2), E(lambda z: phi(z) ** 4)
        d2, d4 = E(lambda z: dphi(z) ** 2), E(lambda z: dphi(z) ** 4)
        p2d2 = E(lambda z: phi(z) ** 2 * dphi(z) ** 2)
        dp2 = E(lambda z: phi(z) ** 2 * (z * z - K)) / (2 * K * K)          # d<phi^2>/dK
        ddp2 = E(lambda z: phi(z) ** 2 * (z ** 4 - 6 * K * z * z + 3 * K * K)) / (4 * K ** 4)
        dd2 = E(lambda z: dphi(z) ** 2 * (z * z - K)) / (2 * K * K)         # d<phi'^2>/dK
        ddd2 = E(lambda z: dphi(z) ** 2 * (z ** 4 - 6 * K * z * z + 3 * K * K)) / (4 * K ** 4)
        chi_par, chi_perp = cw * dp2, cw * d2
        dTh = lam_w * dp2 + cw * Th * dd2
        s1 = lam_w * p2 + cw * Th * d2
        var_s = lam_w ** 2 * p4 + 2 * lam_w * cw * Th * p2d2 + (cw * Th) ** 2 * d4 - s1 ** 2
        cov_ps = cw * (lam_w * p4 + cw * Th * p2d2 - p2 * s1)
        nV = cw ** 2 * (p4 - p2 ** 2) + chi_par ** 2 * V
        nK1 = chi_par * K1c + 0.5 * cw * ddp2 * V
        nD = cov_ps + chi_par * (dTh * V + chi_perp * D)
        nA = var_s + dTh ** 2 * V + 2 * chi_perp * dTh * D + chi_perp ** 2 * A
        nF = cw ** 2 * Th * p2d2 + chi_par ** 2 * F
        nB = cw ** 2 * Th ** 2 * d4 + chi_perp ** 2 * B
        nH1 = (dTh * K1c + 0.5 * (lam_w * ddp2 + cw * Th * ddd2) * V + cw * dd2 * (D + 2 * F) + chi_perp * H1)
        K, Th = cb + cw * p2, lam_b + lam_w * p2 + cw * d2 * Th
        V, K1c, D, A, F, B, H1 = nV, nK1, nD, nA, nF, nB, nH1
    return {k: np.array(v) for k, v in out.items()}


#: (activation, C_W, C_b, depth): critical tanh (K* = 0 class), off-critical tanh and erf
SMOOTH_CASES = [("tanh", 1.0, 0.0, 3), ("tanh", 1.5, 0.05, 3), ("erf", 2.0, 0.1, 3)]
SMALL_WIDTHS, SMALL_COUNTS = (8, 12, 16, 24, 32), (16000, 12000, 8000, 6000, 4000)


@pytest.mark.slow
@pytest.mark.parametrize("activation,cw,cb,depth", SMOOTH_CASES)
def test_leading_order_recursions_smooth(activation, cw, cb, depth):
    """Fits a + b/n over widths 8 .. 32 (one input): G -> K (a) and K1 (b), V -> V, E H -> Theta and H1,
    A, B, D, F and n Var(H) -> A + 2B, against the sec. 4.1 / 5.2 recursions, within Z_MAX se of the fit."""
    X = _inputs(1, n0=4)
    net = fn.DeepNetwork(depth, activation, cw, cb)
    K1 = cb + cw * float(np.sum(X * X)) / X.shape[1]
    ref = single_input_reference(activation, cw, cb, K1, depth)
    ref["ntk_variance"] = ref["A"] + 2 * ref["B"]
    t0 = time.perf_counter()
    scan = finite_width_scan(net, X, SMALL_WIDTHS, SMALL_COUNTS, seed=(13, depth), cross_check=False)
    elapsed = time.perf_counter() - t0
    report = []
    for name, key, part in (("G", "K", "intercept"), ("G", "K1", "slope"), ("V", "V", "intercept"),
                            ("Theta", "Theta", "intercept"), ("Theta", "H1", "slope"), ("A", "A", "intercept"),
                            ("B", "B", "intercept"), ("D", "D", "intercept"), ("F", "F", "intercept"),
                            ("ntk_variance", "ntk_variance", "intercept")):
        fit = scan.fit(name)
        est = getattr(fit, part).reshape(depth + 1, -1)[:, 0]
        se = getattr(fit, part + "_se").reshape(depth + 1, -1)[:, 0]
        worst = _within(est, se, ref[key], f"{activation} C_W={cw} C_b={cb}: {key}")
        report.append(f"{key} {worst:.1f}")
    print(f"{activation} C_W={cw} C_b={cb} depth {depth} ({elapsed:.1f} s): worst sigma " + ", ".join(report))


def _relu_ntk_leading(l, K, lam_w=2.0):
    """THEORY.md 5.4 for ReLU (rho4 = 2, A2 = 1/2, C_b = lambda_b = 0)."""
    c = lam_w * 0.5 * K ** 2                    # lambda_W A2 K^2
    cc = (lam_w * 0.5 * K) ** 2                 # lambda_W^2 A2^2 K^2
    return {"Theta": l * lam_w * 0.5 * K,
            "A": cc * (7 * (l - 1) * l * (2 * l - 1) / 6 + l * (l - 1) / 2),
            "B": 2 * cc * (l - 1) * l * (2 * l - 1) / 6,
            "D": 3 * c * l * (l - 1), "F": 2 * c * l * (l - 1) / 2,
            "ratio": (l - 1) * (11 * l - 4) / (3 * l)}


@pytest.mark.slow
def test_relu_ntk_fluctuations_leading_order():
    """ReLU, C_W = 2, C_b = 0, depth 3 (layers up to 4): A, B, D, F and n Var(H)/E[H]^2 extrapolated to n = inf
    from widths 24, 48, 96 agree with THEORY.md 5.4 ((l-1)(11l-4)/(3l) for the ratio) within Z_MAX se."""
    X = _inputs(1, n0=4)
    K = 2.0 * float(np.sum(X * X)) / X.shape[1]
    net = fn.DeepNetwork(3, "relu", 2.0, 0.0)
    t0 = time.perf_counter()
    scan = finite_width_scan(net, X, (24, 48, 96), (6000, 3000, 1500), seed=12, cross_check=False)
    elapsed = time.perf_counter() - t0
    layers = np.arange(1, 5)
    ref = [_relu_ntk_leading(l, K) for l in layers]
    report = []
    for name, key, scaled in (("A", "A", False), ("B", "B", False), ("D", "D", False), ("F", "F", False),
                              ("ntk_relative_variance", "ratio", True)):
        fit = scan.fit(name, scaled=scaled)
        est, se = fit.intercept.reshape(len(layers), -1)[:, 0], fit.intercept_se.reshape(len(layers), -1)[:, 0]
        worst = _within(est, se, [r[key] for r in ref], f"ReLU {name}")
        report.append(f"{name} {worst:.2f}")
    print(f"ReLU NTK leading order (depth 3, widths 24/48/96, {elapsed:.1f} s): worst sigma " + ", ".join(report))


# ---------------------------------------------------------------------------------------------------------------
# the theory module (fieldnet.analysis.finite_width) against the Monte Carlo (slow)

THEORY_CASES = [("relu", 2.0, 0.0, 1), ("tanh", 1.0, 0.0, 2), ("erf", 2.0, 0.1, 3)]   # last: seed
THEORY_WIDTHS, THEORY_COUNTS = (16, 24, 32, 48, 64), (8000, 6000, 4000, 3000, 2000)


@pytest.mark.slow
@pytest.mark.parametrize("activation,cw,cb,seed", THEORY_CASES)
def test_theory_matches_monte_carlo(activation, cw, cb, seed):
    """fieldnet.analysis.finite_width (engine-derived recursions) against fits a + b/n over widths 16 .. 64 of a
    depth-3 network (layers l = 2, 3, 4), two correlated inputs: K1 and H1 (all pairs, the slopes of G and E H_ii),
    V, the NTK tensors A, B, D, F and n Cov(H_ii;ab, H_ii;cd) (all 16 index combinations each, THEORY.md 5.3; the
    intercepts) and A + 2B per input, within Z_MAX se. Its single-input coefficients must also equal this file's
    independent recursion (1e-9)."""
    theory = pytest.importorskip("fieldnet.analysis.finite_width")
    X = _inputs(2, n0=4)
    net = fn.DeepNetwork(3, activation, cw, cb)
    t0 = time.perf_counter()
    th = theory.finite_width(net, X, ntk=True)
    t_theory = time.perf_counter() - t0
    if activation != "relu":       # kinked phi: the 1-D reference quadrature would not converge
        for a in range(X.shape[0]):
            ref = single_input_reference(activation, cw, cb, fn.kernels(net, X).nngp[0, a, a], net.depth)
            for key, val in (("K1", th.K1[:, a, a]), ("V", th.V[:, a, a, a, a]), ("H1", th.H1[:, a, a]),
                             ("A", th.A[:, a, a, a, a]), ("B", th.B[:, a, a, a, a]), ("D", th.D[:, a, a, a, a]),
                             ("F", th.F[:, a, a, a, a])):
                np.testing.assert_allclose(val, ref[key], rtol=1e-9, atol=1e-12, err_msg=f"theory {key}")
    t0 = time.perf_counter()
    scan = finite_width_scan(net, X, THEORY_WIDTHS, THEORY_COUNTS, seed=(15, seed), cross_check=False)
    t_mc = time.perf_counter() - t0
    iu = np.triu_indices(X.shape[0])
    pairs = lambda a: a[..., iu[0], iu[1]]
    flat = lambda a: a.reshape(a.shape[0], -1)
    checks = [("K1", "G", "slope", pairs, pairs(th.K1)), ("V", "V", "intercept", flat, flat(th.V)),
              ("H1", "Theta", "slope", pairs, pairs(th.H1)),
              ("A+2B", "ntk_variance", "intercept", None, th.per_input("A") + 2 * th.per_input("B")),
              ("Cov(H)", "ntk_covariance", "intercept", flat, flat(th.ntk_covariance(1.0)))]
    checks += [(q, q, "intercept", flat, flat(getattr(th, q))) for q in "ABDF"]
    report = []
    for label, quantity, part, pick, reference in checks:
        fit = scan.fit(quantity)
        pick = pick or (lambda a: a)
        est, se = pick(getattr(fit, part))[1:], pick(getattr(fit, part + "_se"))[1:]
        worst = [_within(est[k], se[k], reference[1:][k], f"{activation} {label} layer {k + 2}") for k in range(3)]
        report.append(f"{label} " + "/".join(f"{w:.1f}" for w in worst))
    print(f"{activation} C_W={cw} C_b={cb}, layers 2/3/4 (theory {t_theory:.1f} s, MC {t_mc:.1f} s): worst sigma "
          + ", ".join(report))
