"""Exact relu-family Gaussian averages (fieldnet.numeric.orthant).

References, each independent of the Stein / Plackett code under test:
* one-factor correlations r_ij = l_i l_j: P(z > 0) = int phi(w) prod_i Phi(l_i w / sqrt(1 - l_i^2)) dw, a
  1-D integral done by mpmath at 30 digits (any dimension); closed forms P = 1/16 (independent), 1/5
  (four exchangeable variables at r = 1/2: 1/(k + 1)), P_2 P_2 (block diagonal), 1/8 for the rank-2
  (u1, u2, u1 + u2, u1 - u2) = P(u1 > 0, u2 > 0, u1 > u2); Sheppard's 2-/3-variable forms in mpmath;
* arc-cosine kernels (Cho & Saul 2009) J_1, J_2; Wick / Isserlis for polynomials; the 1-D half moments
  E[z^n Theta(z)];
* the nested-quadrature integrator fieldnet.numeric.products (relu, step, x, relu^2 factors, tol 1e-10).
"""

import itertools
import math

import mpmath
import numpy as np
import pytest
import sympy as sp

from fieldnet.errors import DivergenceError, ParameterError
from fieldnet.numeric.orthant import moment_tables, moments, relu_family_average, relu_family_terms

x = sp.Symbol("x", real=True)
RNG = np.random.default_rng(20261124)
PRODUCT_FACTORS = (sp.Max(0, x), sp.Heaviside(x), x, sp.Max(0, x) ** 2)
AS_MONOMIAL = {0: (1, 1), 1: (0, 1), 2: (1, 0), 3: (2, 1)}    # factor index -> (a, s)


@pytest.fixture(scope="module")
def product_average():
    from fieldnet.numeric.products import product_module

    module = product_module(PRODUCT_FACTORS)
    return lambda fids, covs: module.average(np.asarray(fids), covs, tol=1e-10)


def one_factor_orthant(loadings) -> float:
    """P(z_i > 0 for all i), corr(z_i, z_j) = l_i l_j, by a 1-D mpmath integral."""
    mpmath.mp.dps = 30
    loadings = [mpmath.mpf(float(v)) for v in loadings]

    def integrand(w):
        return mpmath.npdf(w) * mpmath.fprod(mpmath.ncdf(v * w / mpmath.sqrt(1 - v * v)) for v in loadings)

    return float(mpmath.quad(integrand, [-mpmath.inf, -4, -1, 0, 1, 4, mpmath.inf]))


def one_factor_correlation(loadings) -> np.ndarray:
    loadings = np.asarray(loadings, dtype=float)
    corr = np.outer(loadings, loadings)
    np.fill_diagonal(corr, 1.0)
    return corr


def half_moment(n: int, var: float) -> float:
    """E[z^n Theta(z)], z ~ N(0, var)."""
    if n % 2 == 0:
        return var ** (n / 2) * math.prod(range(n - 1, 0, -2)) / 2
    return var ** (n / 2) * 2 ** ((n - 1) / 2) * math.factorial((n - 1) // 2) / math.sqrt(2 * math.pi)


def wick(indices: list, cov: np.ndarray) -> float:
    """E prod_{i in indices} z_i by Isserlis' theorem (sum over pairings)."""
    if not indices:
        return 1.0
    if len(indices) % 2:
        return 0.0
    first, rest = indices[0], indices[1:]
    return sum(cov[first, rest[n]] * wick(rest[:n] + rest[n + 1:], cov) for n in range(len(rest)))


def random_covariance(k: int, spread: float = 0.6) -> np.ndarray:
    """A well-conditioned covariance (the nested integrator is slow on nearly singular ones)."""
    g = RNG.normal(size=(k, k))
    corr = g @ g.T
    d = np.sqrt(np.diag(corr))
    corr = (1 - spread) * np.eye(k) + spread * corr / np.outer(d, d)
    scale = np.sqrt(RNG.uniform(0.5, 2.0, size=k))
    return corr * np.outer(scale, scale)


def arccos_kernel(cov: np.ndarray, n: int) -> float:
    """E[relu(z1)^n relu(z2)^n] (Cho & Saul 2009), n = 1, 2."""
    s1, s2 = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
    theta = math.acos(cov[0, 1] / (s1 * s2))
    if n == 1:
        j = math.sin(theta) + (math.pi - theta) * math.cos(theta)
    else:
        j = 3 * math.sin(theta) * math.cos(theta) + (math.pi - theta) * (1 + 2 * math.cos(theta) ** 2)
    return (s1 * s2) ** n * j / (2 * math.pi)


# ---------------------------------------------------------------- orthant probabilities

def test_two_and_three_variable_orthants_match_sheppard_in_mpmath():
    mpmath.mp.dps = 30
    for _ in range(20):
        cov = random_covariance(3, spread=0.95)
        r = [[mpmath.mpf(cov[i, j]) / mpmath.sqrt(mpmath.mpf(cov[i, i]) * cov[j, j]) for j in range(3)]
             for i in range(3)]
        p2 = mpmath.mpf(1) / 4 + mpmath.asin(r[0][1]) / (2 * mpmath.pi)
        p3 = mpmath.mpf(1) / 8 + (mpmath.asin(r[0][1]) + mpmath.asin(r[0][2]) + mpmath.asin(r[1][2])) / (4 * mpmath.pi)
        assert moments([0, 0], [1, 1], cov[:2, :2])[0] == pytest.approx(float(p2), rel=1e-13)
        assert moments([0, 0, 0], [1, 1, 1], cov)[0] == pytest.approx(float(p3), rel=1e-13)
        assert moments([0, 0, 0], [1, 0, 1], cov)[0] == pytest.approx(
            float(mpmath.mpf(1) / 4 + mpmath.asin(r[0][2]) / (2 * mpmath.pi)), rel=1e-13)


@pytest.mark.parametrize("loadings", [(0.3, 0.5, 0.7, 0.2), (0.9, -0.8, 0.6, 0.95), (-0.5, 0.5, -0.5, 0.5),
                                      (0.99, 0.98, 0.97, 0.96), (0.999999, 0.999999, 0.5, -0.3),
                                      (0.9999999, 0.9999999, 0.9999999, 0.9999999), (0.1, -0.05, 0.02, 0.3)])
def test_four_variable_orthant_matches_one_factor_integral(loadings):
    corr = one_factor_correlation(loadings)
    scale = np.array([1.0, 3.0, 0.2, 7.0])
    value = moments([0] * 4, [1] * 4, corr * np.outer(scale, scale))[0]
    assert value == pytest.approx(one_factor_orthant(loadings), rel=1e-12, abs=1e-15)


def test_four_variable_orthant_special_cases():
    assert moments([0] * 4, [1] * 4, np.eye(4))[0] == pytest.approx(1 / 16, rel=1e-14)
    exchangeable = np.full((4, 4), 0.5) + 0.5 * np.eye(4)
    assert moments([0] * 4, [1] * 4, exchangeable)[0] == pytest.approx(1 / 5, rel=1e-13)
    block = np.eye(4)
    block[0, 1] = block[1, 0] = 0.3
    block[2, 3] = block[3, 2] = -0.8
    expected = (0.25 + math.asin(0.3) / (2 * math.pi)) * (0.25 + math.asin(-0.8) / (2 * math.pi))
    assert moments([0] * 4, [1] * 4, block)[0] == pytest.approx(expected, rel=1e-13)
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]])   # rank 2, no two parallel
    assert moments([0] * 4, [1] * 4, rows @ rows.T)[0] == pytest.approx(1 / 8, rel=1e-13)


def test_four_variable_orthant_matches_product_integrator(product_average):
    covs = np.array([random_covariance(4, spread=0.7) for _ in range(2)])
    reference = product_average([1, 1, 1, 1], covs)
    np.testing.assert_allclose(moments([0] * 4, [1] * 4, covs), reference, rtol=1e-9)


# ---------------------------------------------------------------- relu-family moments

@pytest.mark.parametrize("k", [2, 3, 4])
def test_moments_match_product_integrator(product_average, k):
    """relu, step, x, relu^2 factors in every variable: agreement to 1e-9 of the scale prod C_ii^{a_i / 2}."""
    for _ in range(4 if k < 4 else 3):
        cov = random_covariance(k)
        fids = RNG.integers(0, 4, size=k)
        a = [AS_MONOMIAL[f][0] for f in fids]
        s = [AS_MONOMIAL[f][1] for f in fids]
        reference = product_average(fids, cov[None])[0]
        scale = np.prod(np.diag(cov) ** (np.array(a) / 2))
        assert abs(moments(a, s, cov)[0] - reference) <= 1e-9 * scale, (fids, cov)


def test_arc_cosine_kernels_and_half_moments():
    for _ in range(10):
        cov = random_covariance(2, spread=0.99)
        assert moments([1, 1], [1, 1], cov)[0] == pytest.approx(arccos_kernel(cov, 1), rel=1e-13)
        assert moments([2, 2], [1, 1], cov)[0] == pytest.approx(arccos_kernel(cov, 2), rel=1e-13)
    for n in range(7):
        for var in (0.3, 1.0, 4.0):
            assert moments([n], [1], [[var]])[0] == pytest.approx(half_moment(n, var), rel=1e-14)
    assert moments([2], [1], [[2.5]])[0] == pytest.approx(1.25, rel=1e-15)      # E[z^2 Theta(z)] = C / 2


def test_polynomial_moments_match_wick():
    for k in (1, 2, 3, 4):
        cov = random_covariance(k)
        for a in itertools.product(range(4), repeat=k):
            if sum(a) > 8:
                continue
            indices = [i for i in range(k) for _ in range(a[i])]
            assert moments(a, [0] * k, cov)[0] == pytest.approx(wick(indices, cov), rel=1e-12, abs=1e-13)


def test_tables_hold_every_lower_moment():
    cov = random_covariance(3)
    bounds = np.array([2, 1, 3])
    table = moment_tables([1, 0, 1], bounds, np.stack([cov, 2 * cov]))
    assert table.shape == (2, 3 * 2 * 4)
    for a in itertools.product(*(range(b + 1) for b in bounds)):
        code = a[0] + 3 * a[1] + 6 * a[2]
        assert table[0, code] == pytest.approx(moments(a, [1, 0, 1], cov)[0], rel=1e-14, abs=1e-15)
        assert table[1, code] == pytest.approx(2 ** (sum(a) / 2) * table[0, code], rel=1e-13, abs=1e-15)


def test_batch_with_per_row_exponents():
    covs = np.array([random_covariance(3) for _ in range(5)])
    a = RNG.integers(0, 4, size=(5, 3))
    s = RNG.integers(0, 2, size=(5, 3))
    batched = moments(a, s, covs)
    assert batched.shape == (5,)
    for p in range(5):
        assert batched[p] == moments(a[p], s[p], covs[p])[0]


# ---------------------------------------------------------------- degenerate covariances

@pytest.mark.parametrize("c", [2.0, 0.5, -1.0, -3.0])
def test_proportional_pair_equals_one_variable_result(c):
    var = 1.7
    cov = var * np.array([[1.0, c], [c, c * c]])
    for a1, a2, s1, s2 in itertools.product(range(4), range(4), (0, 1), (0, 1)):
        n = a1 + a2
        # z2 = c z1: z1^a1 z2^a2 = c^a2 z1^n; Theta(c z1) = Theta(z1) for c > 0, Theta(-z1) for c < 0
        if s2 and c < 0:
            expected = 0.0 if s1 else (-1) ** n * half_moment(n, var)
        elif s1 or s2:
            expected = half_moment(n, var)
        else:
            expected = wick([0] * n, np.array([[var]]))
        value = moments([a1, a2], [s1, s2], cov)[0]
        assert np.isfinite(value)
        assert value == pytest.approx(c ** a2 * expected, rel=1e-12, abs=1e-14), (a1, a2, s1, s2)


def test_zero_variance_variable_drops_out():
    cov3 = random_covariance(3)
    cov4 = np.zeros((4, 4))
    cov4[np.ix_([0, 1, 3], [0, 1, 3])] = cov3
    for a in itertools.product(range(3), repeat=4):
        for s in itertools.product((0, 1), repeat=4):
            value = moments(a, s, cov4)[0]
            expected = 0.0 if a[2] else 0.5 ** s[2] * moments([a[0], a[1], a[3]], [s[0], s[1], s[3]], cov3)[0]
            assert value == pytest.approx(expected, rel=1e-13, abs=1e-15)
    assert moments([0], [1], [[0.0]])[0] == 0.5 and moments([1], [1], [[0.0]])[0] == 0.0


def test_duplicated_variables_equal_reduced_dimension():
    """(z1, z2, z1, z2): relu(z1) relu(z2) step(z1) relu(z2) = z1 Theta(z1) z2^2 Theta(z2)."""
    cov2 = random_covariance(2)
    cov4 = cov2[np.ix_([0, 1, 0, 1], [0, 1, 0, 1])]
    assert moments([1, 1, 0, 1], [1, 1, 1, 1], cov4)[0] == pytest.approx(
        moments([1, 2], [1, 1], cov2)[0], rel=1e-13)
    cov3 = random_covariance(3)
    cov4 = cov3[np.ix_([0, 1, 2, 1], [0, 1, 2, 1])] * np.outer([1, 1, 1, -2], [1, 1, 1, -2])   # z4 = -2 z2
    assert moments([1, 2, 1, 1], [1, 0, 1, 1], cov4)[0] == pytest.approx(
        -2 * (moments([1, 3, 1], [1, 0, 1], cov3)[0] - moments([1, 3, 1], [1, 1, 1], cov3)[0]), rel=1e-12)


def test_rank_two_four_variable_covariances_match_product_integrator(product_average):
    for _ in range(2):
        rows = RNG.normal(size=(4, 2))
        cov = rows @ rows.T
        for fids in ([0, 1, 0, 1], [3, 0, 2, 1]):
            a = [AS_MONOMIAL[f][0] for f in fids]
            s = [AS_MONOMIAL[f][1] for f in fids]
            value = moments(a, s, cov)[0]
            scale = np.prod(np.diag(cov) ** (np.array(a) / 2))
            assert np.isfinite(value)
            assert abs(value - product_average(fids, cov[None])[0]) <= 1e-9 * scale


def test_linear_dependence_without_parallel_pairs_is_continuous():
    """z4 = z1 + z2 - z3 (rank 3): the exact value and that of a slightly regularised covariance agree."""
    rows = np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [0.2, -0.4, 1.0]])
    rows = np.vstack([rows, rows[0] + rows[1] - rows[2]])
    cov = rows @ rows.T
    for a, s in (([0] * 4, [1] * 4), ([1, 1, 1, 1], [1, 1, 1, 1]), ([2, 0, 1, 1], [1, 1, 0, 1])):
        exact = moments(a, s, cov)[0]
        near = moments(a, s, cov + 1e-10 * np.eye(4))[0]
        assert np.isfinite(exact) and exact == pytest.approx(near, abs=1e-4)


@pytest.mark.parametrize("gap", [1e-12, 1e-9])
def test_nearly_parallel_pairs_keep_their_digits(gap):
    """Correlation 1 - gap: the arc-cosine kernel at the angle of the given (rounded) entries, in mpmath."""
    mpmath.mp.dps = 40
    cov = np.array([[1.3, 0.0], [0.0, 0.8]])
    cov[0, 1] = cov[1, 0] = (1 - gap) * math.sqrt(1.3 * 0.8)
    theta = mpmath.acos(mpmath.mpf(cov[0, 1]) / mpmath.sqrt(mpmath.mpf(1.3) * mpmath.mpf(0.8)))
    s12 = mpmath.sqrt(mpmath.mpf(1.3) * mpmath.mpf(0.8))
    relu_relu = s12 * (mpmath.sin(theta) + (mpmath.pi - theta) * mpmath.cos(theta)) / (2 * mpmath.pi)
    orthant = (mpmath.pi - theta) / (2 * mpmath.pi)
    assert moments([1, 1], [1, 1], cov)[0] == pytest.approx(float(relu_relu), rel=1e-12)
    assert moments([0, 0], [1, 1], cov)[0] == pytest.approx(float(orthant), rel=1e-12)
    # four variables at correlations 1 - gap: close to the merged limit P = 1/2
    corr = np.full((4, 4), 1 - gap) + gap * np.eye(4)
    for a in ([0] * 4, [1, 0, 1, 0], [2, 1, 1, 0]):
        value = moments(a, [1] * 4, corr)[0]
        limit = half_moment(sum(a), 1.0)
        assert np.isfinite(value) and value == pytest.approx(limit, abs=50 * math.sqrt(gap))


def test_correlation_within_1e_14_of_one_is_merged():
    corr = np.full((3, 3), 1 - 1e-15) + 1e-15 * np.eye(3)
    assert moments([1, 1, 1], [1, 1, 1], corr)[0] == pytest.approx(half_moment(3, 1.0), rel=1e-12)


# ---------------------------------------------------------------- relu-family factors

def test_relu_family_terms():
    assert relu_family_terms(sp.Max(0, x) ** 2) == ([], [0, 0, 1])
    assert relu_family_terms(sp.Heaviside(x)) == ([], [1])
    assert relu_family_terms(x * sp.Heaviside(x)) == ([], [0, 1])
    assert relu_family_terms(2 * sp.Max(0, x) - x) == ([0, -1], [0, 2])
    assert relu_family_terms(sp.Abs(x)) == ([0, -1], [0, 2])
    assert relu_family_terms(sp.Rational(1, 100) * x + sp.Rational(99, 100) * sp.Max(0, x)) == (
        [0, sp.Rational(1, 100)], [0, sp.Rational(99, 100)])
    assert relu_family_terms(3 + x ** 2) == ([3, 0, 1], [])
    assert relu_family_terms(sp.Heaviside(x) ** 3 * sp.Max(0, x)) == ([], [0, 1])
    for other in (sp.tanh(x), sp.Max(0, 2 * x), sp.Heaviside(x - 1), sp.Max(0, x) ** 7, sp.sqrt(sp.Max(0, x)),
                  sp.DiracDelta(x), 1 / (1 + x ** 2)):
        assert relu_family_terms(other) is None, other
    y = sp.Symbol("y")
    assert relu_family_terms(sp.Max(0, y) * y) == ([], [0, 0, 1])
    with pytest.raises(ParameterError, match="factor"):
        relu_family_terms(sp.Max(0, x) * y)


def test_relu_family_average_matches_product_integrator():
    from fieldnet.numeric.products import product_module

    factors = (2 * sp.Max(0, x) - x, sp.Heaviside(x), sp.Max(0, x) ** 2 + 3 * x, x * sp.Heaviside(x) - 1)
    module = product_module(factors)    # same primitives as the fixture's: no new compile
    for k in (2, 4):
        covs = np.array([random_covariance(k) for _ in range(2)])
        reference = module.average(np.arange(k), covs, tol=1e-10)
        scale = np.prod(np.diag(covs[0])) + 1
        np.testing.assert_allclose(relu_family_average(factors[:k], covs), reference, rtol=0, atol=1e-9 * scale)


def test_relu_family_average_checks_its_factors():
    with pytest.raises(ParameterError, match=r"factors\[1\]"):
        relu_family_average((sp.Max(0, x), sp.tanh(x)), np.eye(2))
    with pytest.raises(ParameterError, match="covs"):
        relu_family_average((sp.Max(0, x), x), np.eye(3))


# ---------------------------------------------------------------- input validation

@pytest.mark.parametrize("a, s, covs, name", [
    ([0, 0], [1, 1], [[1.0, np.nan], [np.nan, 1.0]], "covs"),
    ([0, 0], [1, 1], [[1.0, np.inf], [np.inf, 1.0]], "covs"),
    ([0, 0], [1, 1], [[1.0, 2.0], [2.0, 1.0]], "covs"),             # not PSD
    ([0, 0], [1, 1], [[1.0, 0.1], [0.2, 1.0]], "covs"),             # not symmetric
    ([0, 0], [1, 1], np.ones((2, 3)), "covs"),
    ([0] * 5, [1] * 5, np.eye(5), "covs"),                          # k > 4
    ([0, -1], [1, 1], np.eye(2), "a"),
    ([0, 7], [1, 1], np.eye(2), "a"),
    ([0, 1.5], [1, 1], np.eye(2), "a"),
    ([0, 0, 0], [1, 1], np.eye(2), "a"),
    ([0, 0], [1, 2], np.eye(2), "s"),
    ([0, 0], [[1, 1]] * 3, np.stack([np.eye(2)] * 2), "s"),
])
def test_bad_input_names_the_parameter(a, s, covs, name):
    with pytest.raises(ParameterError, match=rf"^{name}\b"):
        moments(a, s, covs)


def test_bad_table_bounds():
    with pytest.raises(ParameterError, match="bounds"):
        moment_tables([1, 1], [0, 9], np.eye(2))


def test_overflow_raises_divergence_error():
    with pytest.raises(DivergenceError, match="covs"):
        moments([6, 6], [1, 1], 1e200 * np.eye(2))
