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
    got = np.stack([res.K0[:, 0, 0], res.Theta[:, 0, 0], res.V[:, 0, 0, 0, 0], res.K1[:, 0, 0], res.A[:, 0, 0, 0, 0],
                    res.B[:, 0, 0, 0, 0], res.D[:, 0, 0, 0, 0], res.F[:, 0, 0, 0, 0], res.H1[:, 0, 0]], 1)
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
        np.testing.assert_allclose(res.per_input(q), ev(sol[q]), rtol=1e-11, atol=1e-12)
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
    assert res.B[-1, 0, 0, 0, 0] / (T ** 2 * l) == pytest.approx(1 / 3, rel=0.02)
    assert res.F[-1, 0, 0, 0, 0] / (K * T * l) == pytest.approx(1 / 4, rel=0.02)
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
            np.testing.assert_allclose(res.per_input(q)[:, a], getattr(one, q)[:, 0, 0, 0, 0], rtol=1e-12)


def _patterns(k):
    """One index tuple per equality pattern of k positions (restricted growth strings: 15 for k = 4)."""
    out = [(0,)]
    for _ in range(k - 1):
        out = [s + (j,) for s in out for j in range(max(s) + 2)]
    return out


def _lowered_state(lowered, res, l, params, inputs):
    """The named layer-l state (array index l - 1) that a lowered update reads, letters a, b, c, d -> ``inputs``."""
    arrays = {"K": res.K0, "Theta": res.Theta, "K1": res.K1, "H1": res.H1, "V": res.V, "A": res.A, "B": res.B,
              "D": res.D, "F": res.F}
    state = {"_shape": (1,)}
    for name in lowered.args:
        if name in params:
            state[name] = params[name]
        else:
            q, idx = name.split("_", 1)
            state[name] = np.array([arrays[q][l - 1][tuple(inputs["abcd".index(c)] for c in idx)]])
    return state


def _step_params(net, l, n0):
    lw, lb = net.ntk_rates(n0)
    return {"C_W": net.weight_var[l], "C_b": net.bias_var[l], "lambda_W": lw[l], "lambda_b": lb[l], "r": 1.0}


def test_ntk_tensors_equal_the_engine_updates_entry_by_entry():
    """The matrix-form propagation of A, D (over pairs) and B, F (elementwise) in fieldnet.analysis.ntk_fluctuations
    equals the engine's derived updates a_update, d_update, b_update, f_update, lowered one entry at a time, for
    every index-coincidence pattern (15 each; four distinct inputs included), layer 2 -> 3 (all state nonzero).
    sin: every average has a closed form, so both sides are exact and must agree to rounding."""
    from fieldnet.analysis.finite_width import _Lowered
    from fieldnet.symbolic import finite_width as fw

    X = RNG.standard_normal((4, 5))
    net = fn.DeepNetwork(2, "sin", weight_var=1.5, bias_var=0.05)
    res = finite_width(net, X, ntk=True)
    act, l, inputs = fn.get_activation("sin"), 2, (3, 1, 0, 2)
    params = _step_params(net, l, X.shape[1])
    s = fw.symbols(*"abcd")
    updates = {"B": lambda p: fw.b_update(act, *p), "F": lambda p: fw.f_update(act, *p),
               "D": lambda p: fw.d_update(act, p[:2], p[2:]), "A": lambda p: fw.a_update(act, p[:2], p[2:])}
    checked = 0
    for q, build in updates.items():
        for pattern in _patterns(4):
            low = _Lowered(build([s[i] for i in pattern]), f"{q} {pattern}")
            got = low(_lowered_state(low, res, l, params, inputs), {})[0]
            want = getattr(res, q)[l][tuple(inputs[i] for i in pattern)]
            assert got == pytest.approx(want, rel=1e-10, abs=1e-13), (q, pattern)
            checked += 1
    assert checked == 60 and np.all(np.abs(res.F[l]) > 0) and np.abs(res.D[l]).min() > 0


@pytest.mark.parametrize("name, cw, cb", [("relu", 2.0, 0.1), ("erf", 1.8, 0.2)])
def test_ntk_tensors_diagonal_and_pair_system(name, cw, cb):
    """Per input, the full tensors follow the one-input recursion (THEORY 5.2) and, per pair, the closed two-input
    system behind H1_ab (D_{(ab),R}, F_{a.b.}, H1_ab: fw.pair_ntk_targets), both lowered from the engine and
    iterated here on their own from the driver's K, Theta, K1, V: to rounding."""
    from fieldnet.analysis.finite_width import _Lowered
    from fieldnet.symbolic import finite_width as fw

    net = fn.DeepNetwork(3, name, weight_var=cw, bias_var=cb)
    res = finite_width(net, X3, ntk=True)
    act = fn.get_activation(name)
    a, b = fw.symbols("a", "b")
    single = {q: _Lowered(build, q) for q, build in (("D_aaaa", fw.d_update(act, (a, a), (a, a))),
                                                      ("A_aaaa", fw.a_update(act, (a, a), (a, a))),
                                                      ("B_aaaa", fw.b_update(act, a, a, a, a)),
                                                      ("F_aaaa", fw.f_update(act, a, a, a, a)))}
    pair = {}
    for key, build in fw.pair_ntk_targets(a, b).items():
        label = key[0] + "_" + "".join(str(x) for part in key[1:] for x in (part if isinstance(part, tuple) else (part,)))
        pair[label] = _Lowered(build(act), label)
    assert set(pair) == {"D_abaa", "D_abab", "D_abbb", "F_aaba", "F_aabb", "F_abba", "F_abbb", "H1_ab"}
    N = X3.shape[0]
    own = {q: np.zeros(N) for q in single}
    two = {q: np.zeros((N, N)) for q in pair}
    for l in range(1, net.depth + 1):                  # layer l -> l + 1
        params = _step_params(net, l, X3.shape[1])
        new1 = {q: np.empty(N) for q in single}
        new2 = {q: np.zeros((N, N)) for q in pair}
        for i in range(N):
            state = dict(params, _shape=(1,), K_aa=res.K0[l - 1, i, i], Theta_aa=res.Theta[l - 1, i, i],
                         V_aaaa=res.V[l - 1, i, i, i, i], **{q: own[q][i] for q in single})
            for q, low in single.items():
                new1[q][i] = low(state, {})[0]
            for j in range(i + 1, N):
                ix = {"a": i, "b": j}
                state = dict(params, _shape=(1,))
                for argname in set().union(*(low.args for low in pair.values())):
                    q, idx = argname.split("_", 1) if "_" in argname and argname not in params else (argname, "")
                    if argname in params:
                        state[argname] = params[argname]
                    elif q in ("D", "F") or argname == "H1_ab":
                        state[argname] = two[argname][i, j]
                    else:
                        src = {"K": res.K0, "Theta": res.Theta, "K1": res.K1, "V": res.V, "H1": res.H1}[q][l - 1]
                        state[argname] = src[tuple(ix[c] for c in idx)]
                for q, low in pair.items():
                    new2[q][i, j] = low(state, {})[0]
        own, two = new1, new2
        k = l                                          # array index of layer l + 1
        for q in single:
            np.testing.assert_allclose(res.per_input(q[0])[k], own[q], rtol=1e-11, atol=1e-14, err_msg=f"{q} layer {k + 1}")
        for i in range(N):
            for j in range(i + 1, N):
                np.testing.assert_allclose(res.H1[k, i, j], two["H1_ab"][i, j], rtol=1e-11, atol=1e-14)
                for q, val in two.items():
                    if q != "H1_ab":
                        c = {"a": i, "b": j}
                        want = getattr(res, q[0])[k][tuple(c[x] for x in q[2:])]
                        np.testing.assert_allclose(want, val[i, j], rtol=1e-11, atol=1e-14, err_msg=f"{q} layer {k + 1}")


def test_ntk_tensor_symmetries():
    """A_(ab)(cd) symmetric within and between the pairs, D_(ab),(cd) within each pair only; B and F are invariant
    under exchanging the two neurons (H_ik;ab = H_ki;ba): X[a1, a3, a2, a4] = X[a2, a4, a1, a3]; and B under
    exchanging the two NTK factors, B[a1, a3, a2, a4] = B[a3, a1, a4, a2]. Layer 1: all zero."""
    res = finite_width(fn.DeepNetwork(2, "tanh", weight_var=1.2, bias_var=0.1), RNG.standard_normal((3, 5)), ntk=True)
    close = lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-15)
    for perm in ((0, 2, 1, 3, 4), (0, 1, 2, 4, 3), (0, 3, 4, 1, 2)):
        close(res.A, res.A.transpose(perm))
    for perm in ((0, 2, 1, 3, 4), (0, 1, 2, 4, 3)):
        close(res.D, res.D.transpose(perm))
    assert np.abs(res.D - res.D.transpose(0, 3, 4, 1, 2)).max() > 1e-3
    close(res.B, res.B.transpose(0, 3, 4, 1, 2))
    close(res.F, res.F.transpose(0, 3, 4, 1, 2))
    close(res.B, res.B.transpose(0, 2, 1, 4, 3))
    assert np.abs(res.F - res.F.transpose(0, 2, 1, 4, 3)).max() > 1e-3
    for q in "ABDF":
        assert np.all(getattr(res, q)[0] == 0) and np.all(np.isfinite(getattr(res, q)))


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
        np.testing.assert_allclose(res.V[l], V, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.K1, 0, atol=1e-12)


@pytest.mark.parametrize("name, counts", [("sin", (1, 1, 1, 1)), ("sin", (2, 1, 1)), ("relu", (3, 1)), ("erf", (2, 2))])
def test_closed_form_four_point_averages_vs_quadrature(name, counts):
    prog = _program(fn.get_activation(name), False)
    k = len(counts)
    A = np.random.default_rng(11).standard_normal((5, k, k + 2))  # own seed: the module RNG's state depends on test order
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
    product = None
    if k >= 3:  # the kink-aware numba product integrator (1e-9 relative; tensor Gauss-Hermite is ~1e-8 for sin here)
        from fieldnet.analysis.finite_width import _ProductAverage
        from fieldnet.numeric.products import split_product

        zs = sp.symbols(f"z0:{k}", real=True)
        x = f.expr.free_symbols.pop()
        expr = sp.Mul(*[f.expr.subs(x, z) ** c for z, c in zip(zs, counts)])
        product = _ProductAverage(split_product(expr, zs), list(zs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # relu: the trapezoid rule across the kink stops at ~1e-5
        num = _gaussian_average(integrand, cov, product)
    tol = 1e-4 if name == "relu" else (1e-12 if k <= 2 else 1e-8)
    np.testing.assert_allclose(closed, num, rtol=tol, atol=tol)


@pytest.mark.parametrize("seed", [9, 13, 7])  # seed 9: 1 - 2 rho^2 + rho^4 rounded below 0 at rho = 1 - 1e-12 -> NaN (CI)
def test_duplicate_and_antiparallel_inputs_are_finite_and_consistent(seed):
    x = np.random.default_rng(seed).standard_normal((1, 5))
    X = np.concatenate([x, x, -x, 2 * x])
    res = finite_width(fn.DeepNetwork(3, "relu", weight_var=2.0, bias_var=0.0), X, ntk=True)
    for arr in (res.K1, res.V, res.H1):
        assert np.all(np.isfinite(arr))
    np.testing.assert_allclose(res.K1[:, 0, 1], res.K1[:, 0, 0], atol=1e-12)
    np.testing.assert_allclose(res.V[:, 0, 1, 0, 1], res.V[:, 0, 0, 0, 0], rtol=1e-10)
    np.testing.assert_allclose(res.H1[:, 0, 1], res.H1[:, 0, 0], atol=1e-12)
    for q in "ABDF":        # the NTK tensors on the duplicate pair copy the diagonal as well
        t = getattr(res, q)
        assert np.all(np.isfinite(t))
        for idx in ((0, 1, 0, 1), (0, 1, 1, 0), (1, 0, 0, 1)):
            np.testing.assert_allclose(t[(slice(None),) + idx], t[:, 0, 0, 0, 0], rtol=1e-12, atol=1e-15 * np.abs(t).max())
    # parallel x, 2x (rho = 1, different norms): relu without bias is positively homogeneous, z(2x) = 2 z(x) at
    # every width, so each index on input 3 is a factor 2 on input 0 (was: H1 = 2048 from the singular arc-cosine
    # derivatives' cancellation, against 0 on the diagonal)
    np.testing.assert_allclose(res.V[:, 0, 3, 0, 3], 4 * res.V[:, 0, 0, 0, 0], rtol=1e-12)
    np.testing.assert_allclose(res.K1[:, 0, 3], 2 * res.K1[:, 0, 0], atol=1e-12)
    np.testing.assert_allclose(res.H1[:, 0, 3], 2 * res.H1[:, 0, 0], atol=1e-12)
    for q in "ABDF":
        t = getattr(res, q)
        np.testing.assert_allclose(t[:, 3, 0, 3, 3], 8 * t[:, 0, 0, 0, 0], rtol=1e-12)
        np.testing.assert_allclose(t[:, 2, 3, 1, 0], 2 * t[:, 2, 0, 0, 0], rtol=1e-12, atol=1e-12 * np.abs(t).max())


def test_parallel_inputs_whose_gradients_are_not_parallel_raise_for_kinked_activations():
    """parameterization='standard' keeps lambda_b = eta with C_b = 0: the bias gradients of x and 2x are equal,
    not in the ratio 2, so H_(x,2x) is no copy and the pair formula is singular at rho = 1: a clear error."""
    x = np.random.default_rng(3).standard_normal((1, 5))
    net = fn.DeepNetwork(3, "relu", weight_var=2.0, bias_var=0.0, input_dim=5, widths=[8, 8, 8], parameterization="standard")
    finite_width(net, np.concatenate([x, 2 * x]))   # K1, V alone: exact copies
    with pytest.raises(fn.DivergenceError, match="X: inputs 0 and 1 are exactly parallel"):
        finite_width(net, np.concatenate([x, 2 * x]), ntk=True)
    smooth = fn.DeepNetwork(3, "tanh", weight_var=2.0, bias_var=0.0, input_dim=5, widths=[8, 8, 8], parameterization="standard")
    assert np.all(np.isfinite(finite_width(smooth, np.concatenate([x, 2 * x]), ntk=True).H1))


def test_corrected_kernel_and_predictions_api():
    net = fn.DeepNetwork(2, "erf", weight_var=2.0, bias_var=0.1)
    res = finite_width(net, X3, ntk=True)
    n = 64
    np.testing.assert_allclose(res.corrected_kernel(n)[1:], res.K0[1:] + res.K1[1:] / n)
    np.testing.assert_allclose(res.corrected_kernel(n)[0], res.K0[0])
    np.testing.assert_allclose(res.ntk_mean(n)[1:], res.Theta[1:] + res.H1[1:] / n)
    idx = np.arange(3)
    np.testing.assert_allclose(res.excess_kurtosis(n), 3 * res.V[:, idx, idx, idx, idx] / (n * res.K0[:, idx, idx] ** 2))
    diag = lambda t: t[:, idx, idx, idx, idx]
    np.testing.assert_allclose(res.ntk_relative_variance(n), (diag(res.A) + 2 * diag(res.B)) / (n * res.Theta[:, idx, idx] ** 2))
    np.testing.assert_array_equal(res.per_input("F"), diag(res.F))
    cov = res.ntk_covariance(n)                 # Cov(H_ii;ab, H_ii;cd) = (A_(ab)(cd) + B_acbd + B_adbc)/n
    np.testing.assert_allclose(cov[2, 0, 1, 2, 1], (res.A[2, 0, 1, 2, 1] + res.B[2, 0, 2, 1, 1] + res.B[2, 0, 1, 1, 2]) / n)
    np.testing.assert_allclose(n * diag(cov), diag(res.A) + 2 * diag(res.B), rtol=1e-14)
    for perm in ((0, 2, 1, 3, 4), (0, 1, 2, 4, 3), (0, 3, 4, 1, 2)):   # H_ii;ab = H_ii;ba, and Cov is symmetric
        np.testing.assert_allclose(cov, cov.transpose(perm), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(res.effective_depth(n), np.arange(3) / n)
    assert res.A.shape == res.B.shape == res.D.shape == res.F.shape == (3, 3, 3, 3, 3)
    with pytest.raises(ParameterError, match="^name:"):
        res.per_input("H1")
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
    assert data["V"].shape == (3, 3, 3, 3, 3) and data["V"].dtype == np.float64 and data["A"].shape == (3, 3, 3, 3, 3)
    ref = finite_width(fn.DeepNetwork(2, "relu", weight_var=2.0, bias_var=0.0), X3, ntk=True)
    for q in ("Theta", "H1", "A", "B", "D", "F"):
        np.testing.assert_array_equal(data[q], getattr(ref, q))
    np.testing.assert_array_equal(data["V"], ref.V)
    np.testing.assert_array_equal(data["K1"], ref.K1)
    assert main(["finite-width", "--inputs", str(path), "--activation", "relu", "--depth", "2", "--bias-var", "-1",
                 "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "fieldnet: error: --bias-var: must be >= 0, got -1.0"
    assert main(["finite-width", "--inputs", str(tmp_path / "none.npy"), "--activation", "relu", "--depth", "2",
                 "--out", str(out)]) == 2


def test_step_function_averages_warn_on_three_distinct_inputs_only_without_the_product_integrator(monkeypatch):
    """relu's phi' is a step: on >= 3 distinct inputs the Gauss-Hermite fallback for B, F is ~10 % off (orthant
    probability, tests/test_finite_width_montecarlo.py), so with the product integrator switched off the driver
    must say so; with it (the default) relu is exact and silent, and tanh never warns."""
    import fieldnet.analysis.finite_width as fwmod
    from fieldnet.numeric.quadrature import QuadratureWarning

    X = np.random.default_rng(0).normal(size=(3, 4))
    relu = fn.DeepNetwork(depth=1, activation="relu", weight_var=2.0, bias_var=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuadratureWarning)
        finite_width(relu, X, ntk=True)
        fwmod._warn_step_averages(fn.get_activation("tanh"), X)
    monkeypatch.setattr(fwmod, "_USE_PRODUCTS", False)
    with pytest.warns(QuadratureWarning, match="B and F"):
        fwmod._warn_step_averages(fn.get_activation("relu"), X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuadratureWarning)
        fwmod._warn_step_averages(fn.get_activation("relu"), X[:2])
        fwmod._warn_step_averages(fn.get_activation("tanh"), X)


@pytest.mark.parametrize("name", ["relu", "abs"])
def test_exact_relu_family_route_equals_the_product_integrator_through_the_recursion(name, monkeypatch):
    """Four distinct inputs, every 3-/4-variable average of V, K1 and the NTK tensors: fieldnet.numeric.orthant's
    exact moments (the default for relu-family factors) against the product integrator (1e-9), depth 2."""
    import fieldnet.analysis.finite_width as fwmod
    import fieldnet.analysis.ntk_fluctuations as nf
    import fieldnet.numeric.orthant as orthant

    X = np.random.default_rng(21).standard_normal((4, 5))
    net = fn.DeepNetwork(2, name, weight_var=1.7, bias_var=0.1)
    exact = finite_width(net, X, ntk=True)
    plan = fwmod._program(net.activation, True).four[(1, 1, 1, 1)].nodes[0][3]   # <phi phi phi phi>, 4 variables
    assert plan.module is False and all(plan.exact)                              # took the exact route only
    for cache in (fwmod._program, nf.ntk_program):
        cache.cache_clear()
    monkeypatch.setattr(orthant, "relu_family_terms", lambda factor, x=None: None)  # every term to products.py
    try:
        numeric = finite_width(net, X, ntk=True)
    finally:
        for cache in (fwmod._program, nf.ntk_program):
            cache.cache_clear()
    for q in ("K1", "V", "H1", "A", "B", "D", "F"):
        a, b = getattr(exact, q), getattr(numeric, q)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7 * np.abs(b).max(), err_msg=q)
