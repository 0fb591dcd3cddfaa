"""Recurrent networks vs deep networks (THEORY.md section 7): spec, two-time mean field, one-loop C1.

Time index 0 is h^0 = U x^(0) + b (THEORY.md counts from 1). Monte Carlo checks are in test_recurrent_mc.py.
"""

import numpy as np
import pytest
import sympy as sp
from scipy.special import erf

import fieldnet as fn
from fieldnet.analysis.recurrent import recurrent_finite_width, recurrent_kernel
from fieldnet.errors import DivergenceError, ParameterError
from fieldnet.spec import RecurrentNetwork
from fieldnet.symbolic.recurrent import (TwoTimeKernel, recurrent_mean_field_recursion, response_entries)

X1 = np.array([[1.0, 0.5, -0.3]])
X2 = np.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.4]])
RELU_DEEP_RTOL = 1e-12          # measured 1.4e-16 absolute (closed forms on both sides)


def _pair(net_kw, X=X1):
    rnn = RecurrentNetwork(**net_kw)
    return recurrent_kernel(rnn, X).C0, recurrent_kernel(rnn.with_architecture("deep"), X).C0


# ---------------------------------------------------------------- spec

@pytest.mark.parametrize("kw, name", [(dict(steps=0), "steps"), (dict(steps=2.5), "steps"),
                                      (dict(weight_var=0.0), "weight_var"), (dict(bias_var=-0.1), "bias_var"),
                                      (dict(input_var=float("inf")), "input_var"), (dict(input_mode="last"), "input_mode"),
                                      (dict(architecture="lstm"), "architecture"), (dict(activation="nope("), "activation")])
def test_spec_rejects_bad_values_naming_the_parameter(kw, name):
    with pytest.raises(fn.FieldnetError, match=name):
        RecurrentNetwork(**kw)


def test_spec_deep_equivalent():
    net = RecurrentNetwork("tanh", 3, 1.5, 0.1, 2.0)
    deep = net.deep_equivalent()
    assert deep.depth == 3 and deep.weight_var == (2.0, 1.5, 1.5, 1.5) and deep.bias_var == (0.1,) * 4
    with pytest.raises(ParameterError, match="input_mode"):
        RecurrentNetwork("tanh", 3, input_mode="every").deep_equivalent()


def test_inputs_are_validated():
    net = RecurrentNetwork("tanh", 2, input_mode="every")
    with pytest.raises(ParameterError, match=r"X: input_mode='every' needs shape \(N, T\+1, n_0\)"):
        recurrent_kernel(net, X2)
    with pytest.raises(ParameterError, match="X: contains NaN"):
        recurrent_kernel(net, np.full((1, 3, 2), np.nan))
    with pytest.raises(ParameterError, match="X"):
        recurrent_kernel(RecurrentNetwork("tanh", 2), np.ones(3))


# ---------------------------------------------------------------- symbolic

def test_two_time_kernel_symmetry_is_joint():
    s, t = sp.symbols("s t")
    assert TwoTimeKernel(s, t, "a", "b") == TwoTimeKernel(t, s, "b", "a")
    assert TwoTimeKernel(s, t, "a", "b") != TwoTimeKernel(s, t, "b", "a")


def test_recursion_prints_and_exports_latex():
    rec = recurrent_mean_field_recursion("erf", "recurrent", "every")
    text = str(rec)
    assert "asin" in text and "C_U*(xa[s + 1].xb[t + 1]/n0)" in text and "Cab[0,t + 1] = C_U*(xa[0].xb[t + 1]/n0) + C_b" in text
    tex = fn.latex(rec.update[TwoTimeKernel(sp.Symbol("s", integer=True, nonnegative=True) + 1,
                                            sp.Symbol("t", integer=True, nonnegative=True) + 1)])
    assert r"C^{(s,s)}_{aa}" in tex and r"x^{(s + 1)}_{a} \cdot x^{(t + 1)}_{b}" in tex
    generic = recurrent_mean_field_recursion(None).latex()
    assert r"\left\langle \phi{\left(z_{a} \right)} \phi{\left(z_{b} \right)} \right\rangle" in generic
    deep = recurrent_mean_field_recursion("relu", "deep")
    assert str(deep).count("= 0") == 2        # no cross-time entries at all in the deep net


def test_response_is_price_theorem():
    """dC^{(s+1,t+1)}_ab / dC^{(s,t)}_ab = C_W <phi'_a phi'_b>: for erf, 4 C_W / (pi sqrt((1+2A)(1+2B) - 4c^2))."""
    J = response_entries("erf")
    s, t = sp.symbols("s t", integer=True, nonnegative=True)
    off = J[TwoTimeKernel(s, t)]
    A, B, c, cw = sp.symbols("A B c C_W", positive=True)
    value = off.xreplace({TwoTimeKernel(s, s, "a", "a"): A, TwoTimeKernel(t, t, "b", "b"): B, TwoTimeKernel(s, t): c,
                          sp.Symbol("C_W", positive=True): cw})
    expected = 4 * cw / (sp.pi * sp.sqrt((1 + 2 * A) * (1 + 2 * B) - 4 * c ** 2))
    point = {A: 0.7, B: 1.3, c: 0.4, cw: 1.7}
    assert float(value.subs(point)) == pytest.approx(float(expected.subs(point)), rel=1e-12)


# ---------------------------------------------------------------- mean field

@pytest.mark.parametrize("kw", [dict(activation="tanh", bias_var=0.3), dict(activation="relu", weight_var=2.0),
                                dict(activation="erf", input_mode="every")])
def test_equal_time_kernels_coincide(kw):
    kw = dict(dict(steps=4, weight_var=1.4, bias_var=0.0, input_var=1.0), **kw)
    X = X2 if kw.get("input_mode") != "every" else np.random.default_rng(0).normal(size=(2, 5, 3))
    rnn, dnn = _pair(kw, X)
    for t in range(5):
        np.testing.assert_allclose(rnn[t, t], dnn[t, t], rtol=1e-13, atol=1e-14)
    cross = rnn[1:, 1:][~np.eye(4, dtype=bool)]
    assert np.abs(cross).min() > 1e-3           # cross-time correlations exist in the RNN (times >= 1)
    assert np.all(dnn[~np.eye(5, dtype=bool)] == 0)


def test_equal_time_kernel_matches_deep_kernels():
    net = RecurrentNetwork("tanh", 3, 1.7, 0.2, 1.3)
    C0 = recurrent_kernel(net, X2).C0
    K = fn.kernels(net.deep_equivalent(), X2, ntk=False).nngp
    for t in range(4):
        np.testing.assert_allclose(C0[t, t], K[t], rtol=1e-12)


def test_cross_time_relu_closed_form():
    """C0[1,2] = C_b + C_W <relu(u) relu(v)> over the block (C0[0,0], C0[0,1], C0[1,1]) (arc-cosine kernel)."""
    cw, cb = 1.8, 0.25
    C0 = recurrent_kernel(RecurrentNetwork("relu", 3, cw, cb, 1.0), X1).C0[:, :, 0, 0]
    A, c, B = C0[0, 0], C0[0, 1], C0[1, 1]
    assert c == pytest.approx(cb)
    theta = np.arccos(c / np.sqrt(A * B))
    expected = cb + cw * np.sqrt(A * B) * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)
    assert C0[1, 2] == pytest.approx(expected, rel=1e-10)


def test_odd_unbiased_first_input_is_diagonal_in_time():
    rnn, dnn = _pair(dict(activation="erf", steps=4, weight_var=2.0, bias_var=0.0, input_var=1.0), X2)
    off = ~np.eye(5, dtype=bool)
    assert np.abs(rnn[off]).max() < 1e-14
    np.testing.assert_allclose(rnn, dnn, atol=1e-14)
    # a shared bias makes them differ again
    rnn_b, _ = _pair(dict(activation="erf", steps=4, weight_var=2.0, bias_var=0.05, input_var=1.0), X2)
    assert np.abs(rnn_b[off]).min() > 0.04


# ---------------------------------------------------------------- 1/n corrections

@pytest.mark.parametrize("cw, cb", [(0.7, 0.3), (1.5, 1.0)])
def test_linear_rnn_shared_bias_exact(cw, cb):
    """THEORY.md 7.7 (its t = 3, 4 are our t = 2, 3): c1 = 2 C_W C_b and C_b (2 C_W + 4 C_W^2); linear DNN c1 = 0."""
    net = RecurrentNetwork("linear", 3, cw, cb, 1.0)
    C1 = recurrent_finite_width(net, X1).C1[:, :, 0, 0]
    assert C1[2, 2] == pytest.approx(2 * cw * cb, rel=1e-12)
    assert C1[3, 3] == pytest.approx(cb * (2 * cw + 4 * cw ** 2), rel=1e-12)
    assert C1[0, 0] == 0 and C1[1, 1] == 0
    deep = recurrent_finite_width(net.with_architecture("deep"), X1).C1
    assert np.abs(deep).max() < 1e-14


def test_deep_c1_equals_finite_width_k1():
    """The deep architecture's C1 is fn.finite_width's K1 at equal widths (two inputs, bias, tanh)."""
    net = RecurrentNetwork("tanh", 3, 1.5, 0.2, 1.2, architecture="deep")
    res = recurrent_finite_width(net, X2)
    ref = fn.finite_width(net.deep_equivalent(), X2)
    for t in range(4):
        np.testing.assert_allclose(res.C1[t, t], ref.K1[t], rtol=1e-11, atol=1e-13)     # measured 5e-14 relative
    assert np.all(res.C1[~np.eye(4, dtype=bool)] == 0)
    np.testing.assert_array_equal(res.C1, res.Caux1)          # no conditional-mean gap in the deep net


def test_symmetric_case_single_time_c1_coincides():
    """Odd phi, C_b = 0, input at the first step: equal-time C1 identical in both nets (THEORY.md 7.6); the RNN's
    off-diagonal auxiliary mean is C_W^2 <phi^2>_{K0} <phi'>_{K1} <phi'>_{K2} at (1, 3) (THEORY's (2, 4))."""
    cw = 1.3
    net = RecurrentNetwork("erf", 3, cw, 0.0, 1.0)
    r, d = recurrent_finite_width(net, X2), recurrent_finite_width(net.with_architecture("deep"), X2)
    for t in range(4):
        np.testing.assert_allclose(r.C1[t, t], d.C1[t, t], rtol=1e-11, atol=1e-13)    # measured 3e-17
    assert abs(d.C1[3, 3, 0, 0]) > 0.05
    K = np.diag(r.C0[:, :, 0, 0])
    phi2 = 2 / np.pi * np.arcsin(2 * K[0] / (1 + 2 * K[0]))
    dphi = lambda k: 2 / np.sqrt(np.pi * (1 + 2 * k))
    assert r.Caux1[1, 3, 0, 0] == pytest.approx(cw ** 2 * phi2 * dphi(K[1]) * dphi(K[2]), rel=1e-11)   # measured 1e-14


@pytest.mark.parametrize("kw", [dict(activation="tanh", bias_var=0.2), dict(activation="erf", bias_var=0.0,
                                                                            input_mode="every")])
def test_shared_bias_or_repeated_input_makes_c1_differ(kw):
    net = RecurrentNetwork(steps=3, weight_var=1.5, input_var=1.0, **kw)
    X = X1 if net.input_mode == "first" else np.random.default_rng(1).normal(size=(1, 4, 3))
    r, d = recurrent_finite_width(net, X), recurrent_finite_width(net.with_architecture("deep"), X)
    np.testing.assert_allclose(r.C0[3, 3], d.C0[3, 3], rtol=1e-12)
    assert abs(r.C1[3, 3, 0, 0] - d.C1[3, 3, 0, 0]) > 0.05
    assert np.abs(r.C1 - r.Caux1).max() > 0.05                # (1/n)|h_t|^2 and C_tt differ at O(1/n)


def test_c1_shape_and_symmetry():
    net = RecurrentNetwork("tanh", 2, 1.2, 0.1, 1.0)
    res = recurrent_finite_width(net, X2)
    assert res.C0.shape == res.C1.shape == (3, 3, 2, 2)
    np.testing.assert_allclose(res.C1, res.C1.transpose(1, 0, 3, 2), atol=1e-12)
    np.testing.assert_allclose(res.corrected(10.0), res.C0 + res.C1 / 10)


def _relu_cov3():
    """A 3 x 3 covariance over (z_a, z_b, z_c) with all correlations non-zero."""
    L = np.array([[1.1, 0.0, 0.0], [0.4, 0.9, 0.0], [-0.3, 0.5, 0.8]])
    return L @ L.T


def test_delta_conditioning_against_closed_form_and_price():
    """E[delta(z_b) relu(z_a) relu(z_c)^2] (a dPi/dC_bb integrand of the relu RNN) by conditioning on z_b = 0 against
    (i) N(0; 0, C_bb) times the arc-cosine closed form <relu(u)^2 relu(v)> = A sqrt(B) (1 + cos t)^2 / (2 sqrt(2 pi))
    (THEORY.md 2.3) at the Schur-complement covariance, and (ii) Price's theorem, 2 d/dC_bb E[relu_a relu_b relu_c^2]
    by central differences of the product integrator."""
    from fieldnet.analysis.recurrent import _delta_plan
    from fieldnet.numeric.products import product_module

    za, zb, zc = sp.symbols("z_a z_b z_c", real=True)
    relu = lambda z: sp.Max(0, z)
    C = _relu_cov3()
    value = _delta_plan(sp.DiracDelta(zb) * relu(za) * relu(zc) ** 2, (za, zb, zc))(C[None])[0]
    S = C[np.ix_([0, 2], [0, 2])] - np.outer(C[[0, 2], 1], C[[0, 2], 1]) / C[1, 1]   # (z_a, z_c) | z_b = 0
    A, B = S[1, 1], S[0, 0]                                                           # u = z_c (squared), v = z_a
    cos = S[0, 1] / np.sqrt(A * B)
    closed = A * np.sqrt(B) * (1 + cos) ** 2 / (2 * np.sqrt(2 * np.pi)) / np.sqrt(2 * np.pi * C[1, 1])
    assert value == pytest.approx(closed, rel=1e-10)        # measured 8e-13
    mod = product_module([relu(za), relu(za) ** 2])
    h = 1e-3
    plus, minus = C.copy(), C.copy()
    plus[1, 1] += h
    minus[1, 1] -= h
    avg = mod.average(np.array([0, 0, 1]), np.stack([plus, minus]), tol=1e-12)
    assert value == pytest.approx(2 * (avg[0] - avg[1]) / (2 * h), rel=2e-6)   # measured 4e-7 (O(h^2): 4e-5 at h = 1e-2)
    # Heaviside(0) = 1/2 (the project's convention): H(z_b) delta(z_b) = delta(z_b) / 2
    half = _delta_plan(sp.DiracDelta(zb) * sp.Heaviside(zb) * relu(za), (za, zb))(C[:2, :2][None])[0]
    cond = C[0, 0] - C[0, 1] ** 2 / C[1, 1]
    assert half == pytest.approx(0.5 * np.sqrt(cond / (2 * np.pi)) / np.sqrt(2 * np.pi * C[1, 1]), rel=1e-8)


def test_delta_functions_the_conditioning_cannot_take_raise():
    """Deltas away from 0 (a non-zero conditional mean), delta derivatives and squared deltas: a clear error."""
    from fieldnet.analysis.recurrent import _delta_plan

    za, zb = sp.symbols("z_a z_b", real=True)
    with pytest.raises(DivergenceError, match="only delta functions at 0"):
        _delta_plan(sp.DiracDelta(zb - 1) * sp.Max(0, za), (za, zb))
    with pytest.raises(DivergenceError, match="only delta functions at 0"):
        _delta_plan(sp.DiracDelta(zb, 1) * sp.Max(0, za), (za, zb))
    with pytest.raises(DivergenceError, match="same variable"):
        _delta_plan(sp.DiracDelta(zb) ** 2 * sp.Max(0, za), (za, zb))
    with pytest.raises(DivergenceError, match="zero variance"):
        _delta_plan(sp.DiracDelta(zb) * sp.Max(0, za), (za, zb))(np.array([[[1.0, 0.0], [0.0, 0.0]]]))


def test_relu_deep_c1_equals_finite_width_k1():
    """ReLU at 1/n (delta functions conditioned out): the deep architecture's C1 is fn.finite_width's K1 (closed forms
    there), two inputs, T = 4."""
    net = RecurrentNetwork("relu", 4, 1.8, 0.1, 1.2, architecture="deep")
    res = recurrent_finite_width(net, X2)
    ref = fn.finite_width(net.deep_equivalent(), X2)
    for t in range(5):
        np.testing.assert_allclose(res.C1[t, t], ref.K1[t], rtol=RELU_DEEP_RTOL, atol=1e-12)
    assert abs(ref.K1[4, 0, 1]) > 0.1          # the diagonal is 0: relu's one-input map is linear in K


def test_relu_rnn_c1_finite_and_causal():
    """ReLU RNN from T = 3 on (one input; was DivergenceError before the delta conditioning): C1 at times <= t does not
    depend on later steps, and the shared bias makes it differ from the deep net's (zero for one relu input)."""
    r3 = recurrent_finite_width(RecurrentNetwork("relu", 3, 1.8, 0.1, 1.0), X1)
    r5 = recurrent_finite_width(RecurrentNetwork("relu", 5, 1.8, 0.1, 1.0), X1)
    np.testing.assert_allclose(r5.C1[:4, :4], r3.C1, rtol=1e-9, atol=1e-12)
    assert np.all(np.isfinite(r5.C1)) and abs(r5.C1[5, 5, 0, 0]) > 0.1


# ---------------------------------------------------------------- CLI

def test_cli_writes_the_api_arrays(tmp_path, capsys):
    from fieldnet.cli import main

    np.save(tmp_path / "X.npy", X2)
    out = tmp_path / "C.npz"
    assert main(["recurrent", "--inputs", str(tmp_path / "X.npy"), "--activation", "tanh", "--steps", "2",
                 "--weight-var", "1.5", "--bias-var", "0.1", "--input-var", "1.2", "--out", str(out)]) == 0
    assert "C0 + C1/n" in capsys.readouterr().out
    data = np.load(out)
    ref = recurrent_finite_width(RecurrentNetwork("tanh", 2, 1.5, 0.1, 1.2), X2)
    assert data["C0"].dtype == np.float64 and data["C1"].shape == (3, 3, 2, 2)
    np.testing.assert_array_equal(data["C0"], ref.C0)
    np.testing.assert_allclose(data["C1"], ref.C1, rtol=1e-12, atol=1e-15)


def test_cli_every_step_input_and_errors(tmp_path, capsys):
    from fieldnet.cli import main

    Xe = np.random.default_rng(0).normal(size=(2, 3, 4))
    np.save(tmp_path / "Xe.npy", Xe)
    out = tmp_path / "C.npz"
    args = ["recurrent", "--inputs", str(tmp_path / "Xe.npy"), "--activation", "relu", "--steps", "2",
            "--weight-var", "2", "--architecture", "deep", "--input-mode", "every", "--mean-field-only", "--out", str(out)]
    assert main(args) == 0
    data = np.load(out)
    assert set(data.files) == {"C0"}
    np.testing.assert_array_equal(data["C0"], recurrent_kernel(
        RecurrentNetwork("relu", 2, 2.0, 0.0, 1.0, "every", "deep"), Xe).C0)
    capsys.readouterr()
    assert main(args[:-5] + ["--input-mode", "first", "--out", str(out)]) == 2       # a 3-D X with input first
    assert "--inputs" in capsys.readouterr().err
    bad = args.copy()
    bad[bad.index("--steps") + 1] = "0"
    assert main(bad) == 2
    assert "--steps: must be >= 1" in capsys.readouterr().err


# ---------------------------------------------------------------- deep vs recurrent convergence

def test_convergence_comparison_ratios():
    """Shared bias: the RNN's n Var((1/n)|h_t|^2) exceeds the DNN's and the excess grows with t; odd phi, no bias,
    first-step input: every ratio is 1 (THEORY.md 7.6)."""
    biased = fn.convergence_comparison("tanh", [1.0], 3, bias_var=0.1)
    assert np.all(np.diff(biased.qvar_ratio[0]) > 0) and biased.qvar_ratio[0, -1] > 1.2
    assert biased.c1_recurrent[0, -1] > 0 > biased.c1_deep[0, -1]
    np.testing.assert_allclose(biased.C0[0], [recurrent_kernel(RecurrentNetwork("tanh", 3, 1.0, 0.1), X1).C0[t, t, 0, 0]
                                              for t in (1, 2, 3)])
    odd = fn.convergence_comparison("erf", [1.5], 3, bias_var=0.0)
    np.testing.assert_allclose(odd.qvar_ratio, 1.0, rtol=1e-9)
    np.testing.assert_allclose(odd.c1_recurrent, odd.c1_deep, rtol=1e-9, atol=1e-12)


def test_latex_document_compiles(tmp_path, capsys):
    import shutil
    import subprocess

    from fieldnet.cli import main
    from fieldnet.symbolic.recurrent import recurrent_latex_document

    doc = recurrent_latex_document("erf")
    assert r"R = (1-J)^{-1}" in doc and r"\arcsin" in doc and "{C^{(s,t)}_{ab}}^{2}" in doc
    np.save(tmp_path / "X.npy", X1)
    assert main(["recurrent", "--inputs", str(tmp_path / "X.npy"), "--activation", "tanh", "--steps", "2",
                 "--architecture", "deep", "--mean-field-only", "--latex", str(tmp_path / "rnn.tex"),
                 "--out", str(tmp_path / "C.npz")]) == 0
    assert "deep network, two-time kernel" in (tmp_path / "rnn.tex").read_text()
    exe = shutil.which("pdflatex")
    if exe is None:
        pytest.skip("pdflatex not installed")
    (tmp_path / "erf.tex").write_text(doc)
    for name in ("erf.tex", "rnn.tex"):
        run = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", name], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout[-2000:]


def test_two_time_kernel_against_an_independent_erf_recursion():
    """Input at every step, two inputs: C0 from an independent loop over (s, t) with erf's arcsine kernel
    C' = C_b + C_W (2/pi) asin(2 c / sqrt((1 + 2 A)(1 + 2 B))) + C_U x_s.x_t / n_0 (Williams)."""
    cw, cb, cu = 1.7, 0.2, 0.9
    X = np.random.default_rng(5).normal(size=(2, 4, 3))
    T1, N = 4, 2
    G = np.einsum("asi,bti->stab", X, X) / 3
    C = np.zeros((T1, T1, N, N))
    for s in range(T1):
        for t in range(T1):
            for a in range(N):
                for b in range(N):
                    if s == 0 or t == 0:
                        C[s, t, a, b] = cb + cu * G[s, t, a, b]
    for k in range(1, T1):                      # fill times <= k from times <= k - 1
        for s in range(1, k + 1):
            for t in range(1, k + 1):
                for a in range(N):
                    for b in range(N):
                        A, B, c = C[s - 1, s - 1, a, a], C[t - 1, t - 1, b, b], C[s - 1, t - 1, a, b]
                        C[s, t, a, b] = (cb + cw * 2 / np.pi * np.arcsin(2 * c / np.sqrt((1 + 2 * A) * (1 + 2 * B)))
                                         + cu * G[s, t, a, b])
    C0 = recurrent_kernel(RecurrentNetwork("erf", 3, cw, cb, cu, input_mode="every"), X).C0
    np.testing.assert_allclose(C0, C, rtol=1e-12, atol=1e-14)


def test_readout_two_point_function():
    """P1[s, t] = Caux1[s+1, t+1] / C_W (phi_s phi_t is psi^{(s+1, t+1)} up to C_b, C_W); the deep net's cross-time
    readout vanishes for odd phi (h^t -> -h^t under W^t, b^t -> -W^t, -b^t); readout_kernel = C_v (P0 + P1/n) + C_bv."""
    cw, cb = 1.5, 0.2
    for arch in ("recurrent", "deep"):
        res = recurrent_finite_width(RecurrentNetwork("tanh", 3, cw, cb, 1.2, architecture=arch), X1, readout=True)
        if arch == "recurrent":
            np.testing.assert_allclose(res.P1[:3, :3], res.Caux1[1:, 1:] / cw, atol=1e-12)
            np.testing.assert_allclose(res.P0[:3, :3], (res.C0[1:, 1:] - cb) / cw, atol=1e-12)
            assert np.abs(res.P1[:, 3]).min() > 1e-3                  # t = T: one step beyond the kernel
        else:
            for t in range(3):
                np.testing.assert_allclose(res.P1[t, t], res.Caux1[t + 1, t + 1] / cw, atol=1e-12)
            assert np.abs(res.P1[~np.eye(4, dtype=bool)]).max() < 1e-12
        np.testing.assert_allclose(res.readout_kernel(32, 2.0, 0.3), 2.0 * (res.P0 + res.P1 / 32) + 0.3)
    with pytest.raises(ParameterError, match="readout_var"):
        res.readout_kernel(32, -1.0)
    bare = recurrent_finite_width(RecurrentNetwork("linear", 2, 1.0, 0.1), X1)
    assert bare.P1 is None
    with pytest.raises(ParameterError, match="readout=True"):
        bare.readout_kernel()


def test_symmetric_case_tanh_no_fake_difference():
    """THEORY.md 7.8: quadrature must not fake an RNN != DNN difference. tanh, C_b = 0, first-step input, 2 inputs:
    equal-time C1 agree to quadrature accuracy (measured 2.8e-14 against |C1| ~ 0.2 with the numba product integrator;
    4e-8 with the former tensor Gauss-Hermite), n Var to rounding."""
    net = RecurrentNetwork("tanh", 3, 2.0, 0.0, 1.0)
    r, d = recurrent_finite_width(net, X2), recurrent_finite_width(net.with_architecture("deep"), X2)
    for t in range(4):
        np.testing.assert_allclose(r.C1[t, t], d.C1[t, t], atol=1e-11)
    assert np.abs(d.C1[3, 3]).min() > 0.05
    np.testing.assert_allclose(r.Q_var, d.Q_var, rtol=1e-12)
