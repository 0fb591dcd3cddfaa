"""The numba lowering: printed source, integrators, and the accuracy contract against mpmath.

Reference numbers: tests/data/lowering_reference.json, made by
tests/reference/make_lowering_reference.py (mpmath, 18 digits, nested tanh-sinh quadrature split
at the kinks; independent of fieldnet's code).
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import fieldnet as fn
from fieldnet.errors import ParameterError
from fieldnet.numeric.codegen import LoweringError, breakpoints, numba_source, split_factors
from fieldnet.numeric.expectations import gaussian_expectations
from fieldnet.numeric.integrators import mehler_sum, pair_index
from fieldnet.numeric.lowering import lower_mean_field, lowered_source
from fieldnet.numeric.numba_backend import NumbaBackend
from fieldnet.numeric.numpy_backend import NumpyBackend

x = sp.Symbol("x", real=True)
REFERENCE = json.loads((Path(__file__).parent / "data" / "lowering_reference.json").read_text())["rows"]
CONTRACT = 1e-10  # README: kernel entries of smooth activations vs mpmath, |c| up to 0.9999


def _inputs_with_gram(a, b, c):
    """Two inputs in n_0 = 2 dimensions with x_a.x_b / n_0 = [[a, c], [c, b]] exactly (up to rounding)."""
    L = np.linalg.cholesky(np.array([[a, c], [c, b]]))
    return L * np.sqrt(2.0)


@pytest.mark.parametrize("row", REFERENCE, ids=lambda r: f"{r['activation']}-{r['a']}-{r['b']}-{r['rho']}")
def test_pair_averages_match_mpmath(row):
    """depth 1, C_W = 1, C_b = 0: K^(2)_ab = <phi phi>_{K^(1)} and Theta^(2)_ab = K^(2)_ab + <phi' phi'> K^(1)_ab."""
    X = _inputs_with_gram(row["a"], row["b"], row["c"])
    net = fn.DeepNetwork(depth=1, activation=row["activation"], weight_var=1.0, bias_var=0.0)
    res = fn.kernels(net, X)
    gram = X @ X.T / 2
    k_ref = float(row["phi_phi"])
    t_ref = k_ref + float(row["dphi_dphi"]) * gram[0, 1]
    assert res.nngp[1, 0, 1] == pytest.approx(k_ref, rel=CONTRACT, abs=1e-15)
    assert res.ntk[1, 0, 1] == pytest.approx(t_ref, rel=CONTRACT, abs=1e-15)


def test_reference_covers_the_contract():
    acts = {r["activation"] for r in REFERENCE}
    assert {"tanh", "gelu", "silu", "softplus", "sigmoid", "erf", "sin"} <= acts
    assert max(abs(r["rho"]) for r in REFERENCE) >= 0.9999


# --- printed source ---------------------------------------------------------------------------

@pytest.mark.parametrize("expr", [
    sp.tanh(x), 1 / (sp.exp(x) + 1) ** 2, sp.exp(2 * x) / (sp.exp(x) + 1) ** 2, x ** 3 - x / 3,
    sp.Heaviside(x - 1), sp.Max(x, -1) * sp.Min(x, 2), sp.Abs(x - sp.Rational(1, 2)), sp.sign(x) * x ** 2,
    sp.erf(x / sp.sqrt(2)) * x, sp.Piecewise((x, x > 0), (x / 10, True)), sp.sqrt(1 + x ** 2) ** 3,
    sp.log(1 + sp.exp(x)), x ** -2 + 1])
def test_printer_matches_sympy(expr):
    code = numba_source(expr)
    f = eval(f"lambda x: {code}", {"math": math})
    for v in (-2.3, -1.0, -0.4, 0.7, 1.0, 3.1):
        expected = float(expr.subs(x, v).evalf(30))
        assert f(v) == pytest.approx(expected, rel=1e-13, abs=1e-15), (code, v)


def test_printer_refuses_what_numba_lacks():
    with pytest.raises(LoweringError, match="besselj"):
        numba_source(sp.besselj(0, x))


def test_breakpoints_found_by_sympy():
    assert breakpoints(sp.Max(x, -1), x) == [-1.0]
    assert breakpoints(sp.Piecewise((0, x < 2), (x, True)), x) == [2.0]
    assert breakpoints(sp.Abs(x - sp.Rational(1, 2)) + sp.Heaviside(x + 3), x) == [-3.0, 0.5]
    assert breakpoints(sp.tanh(x), x) == []


def test_split_factors():
    za, zb = sp.symbols("za zb", real=True)
    assert split_factors(2 * sp.tanh(za) * sp.tanh(zb) ** 2, za, zb) == (2 * sp.tanh(za), sp.tanh(zb) ** 2)
    assert split_factors(sp.tanh(za + zb), za, zb) is None


def test_generated_source_is_readable():
    src = lowered_source("tanh")
    for piece in ("def update_pairs", "prange", "math.tanh", "def average_p0", "mehler", "RHO_SERIES"):
        assert piece in src
    compile(src, "<lowered>", "exec")


# --- integrator pieces ------------------------------------------------------------------------

def test_pair_index_enumerates_the_upper_triangle():
    for n in (2, 3, 7, 50):
        pairs = [pair_index(p, n) for p in range(n * (n - 1) // 2)]
        assert pairs == [(a, b) for a in range(n) for b in range(a + 1, n)]


def test_mehler_series_agrees_with_the_panel_rule():
    """The two pair paths of the generated module give the same numbers where both apply."""
    mod = lower_mean_field("tanh").module
    rng = np.random.default_rng(3)
    from fieldnet.numeric.integrators import coefficient_nodes, hermite_tables

    for _ in range(20):
        va, vb = rng.uniform(0.1, 6.0, size=2)
        rho = rng.uniform(-0.9, 0.9)
        kd = np.array([va, vb])
        zs, xs, ws, off = coefficient_nodes(kd, mod.BREAKS_F0, 300)
        alpha, tails, energy = np.empty((2, 300)), np.empty((2, 300)), np.empty(2)
        hermite_tables(mod.values_0(zs), xs, ws, off, 300, alpha, tails, energy)
        series, ok = mehler_sum(alpha[0], alpha[1], tails[0], tails[1], rho, 1e-14)
        panel = mod.average_p0(va, rho * math.sqrt(va * vb), vb, 1e-13)
        assert ok
        assert series == pytest.approx(panel, abs=1e-13)


def test_kinked_user_activation_is_split_at_its_breakpoint():
    """max(x, -1) has its kink at -1, where no closed form applies: the diagonal average matches mpmath."""
    import mpmath as mp

    mod = lower_mean_field("Max(x, -1)").module
    for v in (0.3, 2.0, 7.0):
        s = mp.sqrt(v)
        ref = mp.quad(lambda t: (s * t if s * t > -1 else mp.mpf(-1)) ** 2 * mp.npdf(t), [-mp.inf, -1 / s, 0, mp.inf])
        assert mod.average_d0(v, 1e-13) == pytest.approx(float(ref), rel=1e-12)


# --- the backend over a dataset ---------------------------------------------------------------

@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 5))
    X[3] = X[1]          # a duplicate: rho = 1 exactly
    X[4] = -2.0 * X[2]   # antiparallel
    return X


@pytest.mark.parametrize("activation", ["tanh", "relu", "erf", "x*erf(x)"])
def test_numba_agrees_with_numpy_reference(activation, data):
    net = fn.DeepNetwork(depth=3, activation=activation, weight_var=1.6, bias_var=0.1)
    a = fn.kernels(net, data)
    b = fn.kernels(net, data, backend=NumpyBackend())
    scale = np.abs(b.nngp).max(axis=(1, 2), keepdims=True)
    assert np.max(np.abs(a.nngp - b.nngp) / scale) < 1e-11
    assert np.max(np.abs(a.ntk - b.ntk) / np.abs(b.ntk).max(axis=(1, 2), keepdims=True)) < 1e-11


def test_exact_symmetry_and_duplicates(data):
    res = fn.kernels(fn.DeepNetwork(depth=4, activation="tanh", weight_var=1.5, bias_var=0.05), data)
    for arr in (res.nngp, res.ntk):
        assert np.array_equal(arr, np.swapaxes(arr, 1, 2))
    assert np.array_equal(res.nngp[:, 1, 3], res.nngp[:, 1, 1])  # duplicate inputs: K_ab = K_aa exactly


def test_last_only_and_float32(data):
    net = fn.DeepNetwork(depth=3, activation="tanh", weight_var=1.5, bias_var=0.05)
    full = fn.kernels(net, data)
    last = fn.kernels(net, data, last_only=True)
    assert last.nngp.shape == (12, 12) and last.ntk.shape == (12, 12)
    assert np.array_equal(last.nngp, full.nngp[-1])
    single = fn.kernels(net, data, dtype=np.float32)
    assert single.nngp.dtype == np.float32 and single.ntk.dtype == np.float32
    assert np.allclose(single.nngp, full.nngp, rtol=1e-6, atol=0)
    with pytest.raises(ParameterError, match="dtype"):
        fn.kernels(net, data, dtype=np.int32)


def test_divergence_is_reported_not_nan():
    net = fn.DeepNetwork(depth=30, activation="exp", weight_var=3.0, bias_var=1.0)
    with pytest.raises(fn.DivergenceError, match="not finite at layer"):
        fn.kernels(net, np.ones((2, 3)))


def test_second_process_reuses_the_generated_module(tmp_path):
    """The generated module is written once under FIELDNET_CACHE_DIR; a second process imports it
    (no sympy derivation, numba's cache next to it) and gets the same numbers."""
    code = ("import numpy as np, fieldnet as fn;"
            "from fieldnet.numeric.lowering import lower_mean_field;"
            "net = fn.DeepNetwork(depth=2, activation='sin', weight_var=1.2, bias_var=0.1);"
            "r = fn.kernels(net, np.eye(3) + 0.5);"
            "print(lower_mean_field('sin', 'ntk', ('K', 'Theta')).path); print(repr(float(r.ntk[-1, 0, 1])))")
    env = {"FIELDNET_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    path = Path(first.stdout.splitlines()[0])
    mtime = path.stat().st_mtime_ns
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert path.parent.parent == tmp_path and path.stat().st_mtime_ns == mtime
    assert first.stdout == second.stdout
    assert any(p.suffix in (".nbi", ".nbc") for p in path.parent.rglob("*"))


def test_cached_builtin_activation_needs_no_sympy(tmp_path):
    """With the module cached, a built-in activation's kernels are computed without importing
    sympy (the cache key is the activation's name): the start-up cost of a second process."""
    code = ("import sys, numpy as np, fieldnet as fn;"
            "net = fn.DeepNetwork(depth=2, activation='relu', weight_var=2.0, bias_var=0.1);"
            "r = fn.kernels(net, np.eye(3) + 0.5);"
            "print('sympy' in sys.modules, repr(float(r.ntk[-1, 0, 1])))")
    import os

    env = {**os.environ, "FIELDNET_CACHE_DIR": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert first.stdout.split()[0] == "True"  # generating the module needs sympy
    assert second.stdout.split() == ["False", first.stdout.split()[1]]


def test_cache_key_of_a_builtin_is_its_name_only_for_builtins():
    """The name-only cache key applies to activations made from a built-in name; an expression
    that is merely called "relu" is keyed by its expression (else it would load relu's module)."""
    from fieldnet.numeric.lowering import _cache_key
    from fieldnet.symbolic.activations import Activation

    relu = fn.get_activation("relu")
    impostor = Activation.from_expr(sp.tanh(x), name="relu")
    assert relu.builtin == "relu" and impostor.builtin is None and relu != impostor
    assert _cache_key(relu, "ntk", ("K",)) != _cache_key(impostor, "ntk", ("K",))
    assert relu == Activation.from_expr(sp.Max(0, x), name="relu")  # same name, same expression


# --- batched k-dimensional expectations ------------------------------------------------------

def _random_covs(rng, n, k, scale=1.0):
    A = rng.standard_normal((n, k, k))
    return scale * A @ np.swapaxes(A, 1, 2) / k


def test_four_dimensional_hermite_is_exact_for_polynomials():
    z = sp.symbols("z0:4", real=True)
    covs = _random_covs(np.random.default_rng(1), 30, 4)
    v = gaussian_expectations(z[0] * z[1] * z[2] * z[3] + z[0] ** 2, z, covs)
    wick = covs[:, 0, 1] * covs[:, 2, 3] + covs[:, 0, 2] * covs[:, 1, 3] + covs[:, 0, 3] * covs[:, 1, 2] + covs[:, 0, 0]
    assert np.allclose(v, wick, rtol=1e-12, atol=1e-13)


def test_four_dimensional_tanh_factorises_over_independent_blocks():
    """Block-diagonal covariance: E[t(z0)t(z1)t(z2)t(z3)] = <t t>_block1 <t t>_block2 (2-D panel rule)."""
    z = sp.symbols("z0:4", real=True)
    rng = np.random.default_rng(2)
    blocks = _random_covs(rng, 16, 2, scale=0.2)  # variances <= 0.7; measured 1.7e-8 (3e-6 at ~1.7)
    covs = np.zeros((8, 4, 4))
    covs[:, :2, :2], covs[:, 2:, 2:] = blocks[:8], blocks[8:]
    four = gaussian_expectations(sp.prod([sp.tanh(v) for v in z]), z, covs, tol=1e-9)
    pair = gaussian_expectations(sp.tanh(z[0]) * sp.tanh(z[1]), z[:2], blocks)
    assert np.allclose(four, pair[:8] * pair[8:], rtol=0, atol=5e-8)


def test_expectations_validate_covariances():
    z = sp.symbols("z0:2", real=True)
    with pytest.raises(ParameterError, match="covs"):
        gaussian_expectations(z[0] * z[1], z, np.ones((3, 3, 3)))
    with pytest.raises(ParameterError, match="covs"):
        gaussian_expectations(z[0] * z[1], z, np.full((1, 2, 2), np.nan))
    with pytest.raises(ParameterError, match="not integration variables"):
        gaussian_expectations(z[0] * sp.Symbol("q"), z, np.eye(2)[None])


# --- per-layer pieces of the numba backend ----------------------------------------------------

def test_series_length_reads_the_upper_triangle():
    """largest_correlation skips |rho| above the limit and the diagonal, and ignores the lower
    triangle (the drivers leave it stale until they mirror)."""
    from fieldnet.numeric.integrators import largest_correlation, mirror_upper

    k = np.array([[4.0, 1.0, -3.0], [99.0, 1.0, 0.45], [99.0, 99.0, 2.5]])
    # rho_01 = 1/2, rho_02 = -3/sqrt(10) = -0.949, rho_12 = 0.45/sqrt(2.5) = 0.285
    assert largest_correlation(k, 0.9) == 0.5
    assert largest_correlation(k, 0.99) == pytest.approx(3 / math.sqrt(10), rel=1e-15)
    assert largest_correlation(k, 0.2) == 0.0
    state = np.stack([k, 2 * k])
    mirror_upper(state)
    assert np.array_equal(state[1], 2 * state[0]) and np.array_equal(state[0], state[0].T)
    assert state[0, 2, 1] == 0.45


def test_closed_forms_share_subexpressions():
    """relu's pair update computes acos and sqrt(K_aa) once (sympy cse; named temporaries)."""
    src = lowered_source("relu")
    pairs = src[src.index("def update_pairs"):]
    pairs = pairs[:pairs.index("return nonfinite")]
    assert pairs.count("math.acos(") == 1 and pairs.count("math.sqrt(K_aa)") == 1
    assert "Theta_new_ab = " in pairs and "+ K_new_ab" in pairs
