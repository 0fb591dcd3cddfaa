"""Batched averages of products of single-variable factors (fieldnet.numeric.products).

References, each independent of the nested integrator under test:
* Wick's theorem for monomials; the Gaussian characteristic function E exp(i s.z) = exp(-s^T C s / 2) for
  products of sin / cos / exp (exact in any dimension);
* arc-cosine kernels (Cho & Saul 2009): E[relu(u)^n relu(v)^n] = s_u^n s_v^n J_n(theta) / (2 pi) with
  J_1 = sin t + (pi - t) cos t, J_2 = 3 sin t cos t + (pi - t)(1 + 2 cos^2 t); orthant probabilities
  P(z_1, z_2, z_3 > 0) = 1/8 + (asin r_12 + asin r_13 + asin r_23) / (4 pi) (Sheppard);
  block-diagonal covariances factorise into these;
* tanh: mpmath.quad in one and two variables, and in four variables a brute-force tensor trapezoid rule in
  eigen-whitened coordinates (step 0.2, |x_i| <= 8, mean of two grids shifted by half a step), computed here.
"""

import itertools
import math
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp

from fieldnet.errors import ParameterError
from fieldnet.numeric.products import product_module, product_source, split_product

x = sp.Symbol("x", real=True)
FACTORS = (x, x ** 2, x ** 3, sp.sin(x), sp.cos(x), sp.exp(x), sp.tanh(x), sp.tanh(x) ** 2,
           sp.Max(0, x), sp.Max(0, x) ** 2, sp.Heaviside(x), sp.erf(x))
X1, X2, X3, SIN, COS, EXP, TANH, TANH2, RELU, RELU2, STEP, ERF = range(len(FACTORS))
RNG = np.random.default_rng(20261124)
TOL = 1e-10


@pytest.fixture(scope="module")
def mod():
    return product_module(FACTORS)  # one module (one numba compile) for every test here


def random_covs(n, k, scale=1.0, rng=RNG):
    A = rng.standard_normal((n, k, k + 1))
    C = A @ A.transpose(0, 2, 1) / (k + 1)
    d = np.sqrt(np.diagonal(C, axis1=1, axis2=2))
    corr = C / d[:, :, None] / d[:, None, :]
    var = rng.uniform(0.3, 1.0, size=(n, k)) * scale
    return corr * np.sqrt(var[:, :, None] * var[:, None, :])


def arccos_kernel(n, cov):
    su, sv = np.sqrt(cov[..., 0, 0]), np.sqrt(cov[..., 1, 1])
    rho = np.clip(cov[..., 0, 1] / (su * sv), -1, 1)
    t = np.arccos(rho)
    J = np.sin(t) + (np.pi - t) * np.cos(t) if n == 1 else 3 * np.sin(t) * np.cos(t) + (np.pi - t) * (1 + 2 * np.cos(t) ** 2)
    return (su * sv) ** n * J / (2 * np.pi)


def block(c1, c2):
    out = np.zeros((c1.shape[0], 4, 4))
    out[:, :2, :2] = c1
    out[:, 2:, 2:] = c2
    return out


# ---------------------------------------------------------------- smooth factors: exact references

def test_wick_monomials(mod):
    C = random_covs(12, 4, scale=4.0)
    got = mod.average([X1, X1, X1, X1], C, tol=TOL)
    wick = C[:, 0, 1] * C[:, 2, 3] + C[:, 0, 2] * C[:, 1, 3] + C[:, 0, 3] * C[:, 1, 2]
    scale = np.sqrt(np.prod(np.diagonal(C, axis1=1, axis2=2), axis=1))  # E|z1 z2 z3 z4| is of this order
    np.testing.assert_allclose(got, wick, rtol=0, atol=1e-10 * scale.max())
    C3 = C[:, :3, :3]
    got = mod.average([X2, X1, X1], C3, tol=TOL)  # E z1^2 z2 z3 = C11 C23 + 2 C12 C13
    np.testing.assert_allclose(got, C3[:, 0, 0] * C3[:, 1, 2] + 2 * C3[:, 0, 1] * C3[:, 0, 2], rtol=1e-10, atol=1e-12)
    got = mod.average([X3, X1], C[:, :2, :2], tol=TOL)  # E z1^3 z2 = 3 C11 C12
    np.testing.assert_allclose(got, 3 * C[:, 0, 0] * C[:, 0, 1], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("pattern", [(COS, COS, COS, COS), (SIN, SIN, COS, COS), (SIN, SIN, SIN, SIN), (SIN, COS, SIN),
                                     (COS, COS), (SIN,), (COS,)])
def test_sin_cos_characteristic_function(mod, pattern):
    k = len(pattern)
    C = random_covs(8, k, scale=4.0)
    got = mod.average(list(pattern), C, tol=TOL)
    ref = np.zeros(len(C), dtype=complex)
    for sigma in itertools.product((1, -1), repeat=k):
        s = np.array(sigma, dtype=float)
        coef = np.prod([0.5 if f == COS else si / 2j for f, si in zip(pattern, s)])
        ref += coef * np.exp(-0.5 * np.einsum("i,pij,j->p", s, C, s))
    np.testing.assert_allclose(got, ref.real, rtol=1e-9, atol=1e-11)


def test_exp_products(mod):
    C = random_covs(10, 4, scale=0.5)  # exp(z) shifts the Gaussian by L^T a; nodes beyond |u| = 9 are dropped
    got = mod.average([EXP] * 4, C, tol=TOL)
    a = np.full(4, 1.0)
    np.testing.assert_allclose(got, np.exp(0.5 * np.einsum("i,pij,j->p", a, C, a)), rtol=1e-9)


# ---------------------------------------------------------------- tanh: mpmath and a brute-force reference

def _mp_tanh_pair(c):
    s1 = mpmath.sqrt(c[0, 0])
    r = c[0, 1] / s1
    s2 = mpmath.sqrt(c[1, 1] - r * r)
    g = lambda a, b: mpmath.tanh(s1 * a) * mpmath.tanh(r * a + s2 * b) * mpmath.npdf(a) * mpmath.npdf(b)
    return float(mpmath.quad(g, [-mpmath.inf, 0, mpmath.inf], [-mpmath.inf, 0, mpmath.inf]))


def test_tanh_one_and_two_variables_vs_mpmath(mod):
    mpmath.mp.dps = 20
    for v in (0.3, 1.0, 4.0):
        ref = float(mpmath.quad(lambda a: mpmath.tanh(mpmath.sqrt(v) * a) ** 2 * mpmath.npdf(a), [-mpmath.inf, 0, mpmath.inf]))
        got = mod.average([TANH2], np.array([[[v]]]), tol=TOL)[0]
        assert abs(got - ref) <= 2e-9 * ref  # measured: 8.6e-10 relative at v = 1 (not yet understood)
    C = random_covs(3, 2, scale=4.0, rng=np.random.default_rng(7))
    got = mod.average([TANH, TANH], C, tol=TOL)
    ref = np.array([_mp_tanh_pair(c) for c in C])
    np.testing.assert_allclose(got, ref, rtol=1e-9)


def brute_force(f, cov, h=0.2, radius=8.0):
    """E prod_i f(z_i), z = Q sqrt(lambda) x: tensor trapezoid on the x grid and its half-shifted copy."""
    vals, vecs = np.linalg.eigh(cov)
    L = vecs * np.sqrt(np.maximum(vals, 0))
    total = 0.0
    for shift in (0.0, 0.5):
        g = (np.arange(-int(radius / h) - 1, int(radius / h) + 2) + shift) * h
        g = g[np.abs(g) <= radius]
        w = h * np.exp(-g ** 2 / 2) / math.sqrt(2 * math.pi)
        grid = np.stack(np.meshgrid(*([g] * 3), indexing="ij"), -1).reshape(-1, 3)
        wg = np.prod(np.stack(np.meshgrid(*([w] * 3), indexing="ij"), -1).reshape(-1, 3), axis=1)
        for x4, w4 in zip(g, w):
            pts = np.concatenate([grid, np.full((len(grid), 1), x4)], 1)
            z = pts @ L.T
            total += 0.5 * w4 * np.sum(wg * np.prod(f(z), axis=1))
    return total


def test_tanh_four_variables_vs_brute_force(mod):
    covs = random_covs(2, 4, scale=4.0, rng=np.random.default_rng(11))
    got, err = mod.average([TANH] * 4, covs, tol=TOL, with_error=True)
    for g, c in zip(got, covs):
        ref = brute_force(np.tanh, c)
        scale = brute_force(lambda z: np.abs(np.tanh(z)), c)
        assert abs(g - ref) <= 1e-9 * scale, (g, ref, scale)


def test_tanh_block_diagonal_factorises(mod):
    c1, c2 = random_covs(3, 2, scale=4.0), random_covs(3, 2, scale=4.0)
    pair1 = mod.average([TANH2, TANH], c1, tol=TOL)
    pair2 = mod.average([TANH, TANH2], c2, tol=TOL)
    got = mod.average([TANH2, TANH, TANH, TANH2], block(c1, c2), tol=TOL)
    np.testing.assert_allclose(got, pair1 * pair2, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- relu: arc-cosine and orthant references

def test_relu_pairs_vs_arccos_kernels(mod):
    C = random_covs(20, 2, scale=4.0, rng=np.random.default_rng(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few pairs stop at ~1e-9 after the last round
        np.testing.assert_allclose(mod.average([RELU, RELU], C, tol=TOL), arccos_kernel(1, C), rtol=1e-8)
        np.testing.assert_allclose(mod.average([RELU2, RELU2], C, tol=TOL), arccos_kernel(2, C), rtol=1e-8)


def test_orthant_probability_three_variables(mod):
    C = random_covs(12, 3)
    d = np.sqrt(np.diagonal(C, axis1=1, axis2=2))
    r = C / d[:, :, None] / d[:, None, :]
    ref = 1 / 8 + (np.arcsin(r[:, 0, 1]) + np.arcsin(r[:, 0, 2]) + np.arcsin(r[:, 1, 2])) / (4 * np.pi)
    np.testing.assert_allclose(mod.average([STEP] * 3, C, tol=TOL), ref, rtol=1e-8)


def test_relu_four_variables_block_diagonal(mod):
    """Measured accuracy of the kinked path in 4-D: products of two arc-cosine kernels."""
    c1, c2 = random_covs(6, 2, scale=2.0), random_covs(6, 2, scale=2.0)
    got = mod.average([RELU] * 4, block(c1, c2), tol=TOL)
    np.testing.assert_allclose(got, arccos_kernel(1, c1) * arccos_kernel(1, c2), rtol=1e-8)


# ---------------------------------------------------------------- singular and near-singular covariances

def test_exactly_singular_duplicates_are_exact(mod):
    c = random_covs(4, 2, scale=2.0)
    dup = np.zeros((4, 4, 4))  # z3 = z1, z4 = z2: E relu(z1)^2 relu(z2)^2
    idx = [0, 1, 0, 1]
    dup[:] = c[:, idx][:, :, idx]
    np.testing.assert_allclose(mod.average([RELU] * 4, dup, tol=TOL), arccos_kernel(2, c), rtol=1e-8)
    got = mod.average([COS] * 4, dup, tol=TOL)  # E cos^2 z1 cos^2 z2, via cos^2 = (1 + cos 2z) / 2
    e = lambda a: np.exp(-0.5 * np.einsum("i,pij,j->p", a, c, a))
    ref = 0.25 * (1 + e(np.array([2.0, 0])) + e(np.array([0, 2.0])) + 0.5 * (e(np.array([2.0, 2])) + e(np.array([2.0, -2]))))
    np.testing.assert_allclose(got, ref, rtol=1e-9)


@pytest.mark.parametrize("rho", [1.0, -1.0, 1 - 1e-10, -1 + 1e-10, 1 - 1e-6, 0.999])
def test_correlations_near_plus_minus_one(mod, rho):
    c = np.array([[[1.3, rho * math.sqrt(1.3 * 0.7)], [rho * math.sqrt(1.3 * 0.7), 0.7]]])
    np.testing.assert_allclose(mod.average([RELU, RELU], c, tol=TOL), arccos_kernel(1, c), rtol=2e-8, atol=1e-12)
    np.testing.assert_allclose(mod.average([X1, X1], c, tol=TOL), c[:, 0, 1], rtol=1e-10)
    s = np.array([1.0, 1.0])
    np.testing.assert_allclose(mod.average([COS, COS], c, tol=TOL),
                               0.5 * (np.exp(-0.5 * s @ c[0] @ s) + np.exp(-0.5 * (c[0, 0, 0] + c[0, 1, 1] - 2 * c[0, 0, 1]))),
                               rtol=1e-10)


def test_near_singular_four_variables(mod):
    base = random_covs(3, 3, scale=2.0)
    eps = 1e-9
    C = np.zeros((3, 4, 4))
    idx = [0, 1, 2, 0]
    C[:] = base[:, idx][:, :, idx]
    C[:, 3, 3] += eps  # z4 = z1 + a tiny independent part
    got = mod.average([X1, X1, X1, X1], C, tol=TOL)
    wick = C[:, 0, 1] * C[:, 2, 3] + C[:, 0, 2] * C[:, 1, 3] + C[:, 0, 3] * C[:, 1, 2]
    np.testing.assert_allclose(got, wick, rtol=1e-9, atol=1e-12)
    got = mod.average([COS, COS, COS, COS], C, tol=TOL)
    ref = sum(np.prod([0.5] * 4) * np.exp(-0.5 * np.einsum("i,pij,j->p", np.array(s, float), C, np.array(s, float)))
              for s in itertools.product((1, -1), repeat=4))
    np.testing.assert_allclose(got, ref, rtol=1e-9)


# ---------------------------------------------------------------- errors, source, splitting

def test_invalid_covariances_raise(mod):
    bad = np.eye(3)[None].copy()
    bad[0, 0, 1] = bad[0, 1, 0] = 2.0
    with pytest.raises(ParameterError, match="positive semi-definite"):
        mod.average([X1, X1, X1], bad)
    nan = np.eye(2)[None].copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ParameterError, match="NaN"):
        mod.average([X1, X1], nan)
    asym = np.eye(2)[None].copy()
    asym[0, 0, 1] = 0.5
    with pytest.raises(ParameterError, match="symmetric"):
        mod.average([X1, X1], asym)
    with pytest.raises(ParameterError, match="fids"):
        mod.average([X1, 99], np.eye(2)[None])
    with pytest.raises(ParameterError, match="covs"):
        mod.average([X1] * 5, np.eye(5)[None])
    with pytest.raises(ParameterError, match="tol"):
        mod.average([X1], np.eye(1)[None], tol=0.0)


def test_overflowing_factor_raises_not_nan(mod):
    """exp(z) at variance 1e4 overflows float64 on the rule's nodes (|z| up to 900): a clear error, not inf/NaN
    (the same check catches a factor undefined on part of the axis; sqrt would need a module of its own)."""
    with pytest.raises(ParameterError, match=r"covs\[1\]: the average of factors \(5, 5\) is not finite"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod.average([EXP, EXP], np.array([np.eye(2), [[1e4, 0.0], [0.0, 1.0]]]))


def test_source_is_printable_and_cached(mod):
    src = product_source(FACTORS)
    assert "def factor_value(fid, x, ft):" in src and "math.tanh(x)" in src and "max(0.0, x)" in src
    assert "@njit(cache=True, parallel=True)" in src and "def level_4(" in src
    assert mod.source == src and mod.path.is_file()
    assert product_module(FACTORS) is mod


def test_split_product():
    a, b, c = sp.symbols("z_a z_b z_c", real=True)
    expr = 4 * (sp.tanh(a) ** 2 - 1) * sp.tanh(b) * sp.tanh(c) ** 3
    terms = split_product(expr, (a, b, c))
    assert len(terms) == 1 and set(terms[0][1]) == {a, b, c}
    assert all(not f.has(*({a, b, c} - {v})) for v, f in terms[0][1].items())
    assert sp.simplify(terms[0][0] * sp.Mul(*terms[0][1].values()) - expr) == 0
    assert split_product(sp.tanh(a + b), (a, b)) is None
    summed = split_product(sp.tanh(a) * sp.tanh(b) + sp.tanh(a) ** 2, (a, b))
    assert len(summed) == 2
    assert split_product(sp.Symbol("K") * sp.tanh(a), (a,)) is None  # non-numeric coefficient
