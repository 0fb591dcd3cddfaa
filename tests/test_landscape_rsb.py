"""One-step RSB saddle of the finite-alpha replica action (fieldnet.landscape.finite_alpha_rsb).

References: the exact linear-network energy u = -(sqrt(1 + 4 beta^2 c) - 1) / (2 beta), c = C_W^L C_v (no RSB for a
linear map: the field is a 1-spin model); the RS saddle of fieldnet.landscape.finite_alpha (the 1RSB action at
q1 = q0 is the RS action); the alpha -> infinity spherical 1RSB optimum (Crisanti–Sommers functional,
fieldnet.landscape.spherical); finite differences of the action itself for the stationarity conditions.
"""

import math

import numpy as np
import pytest

from fieldnet.errors import DivergenceError, ParameterError
from fieldnet.landscape import finite_alpha_rsb as R
from fieldnet.landscape.finite_alpha import FiniteAlphaLandscape
from fieldnet.landscape.tilted import N_RESULTS, hermite_rule, tilted_module

SIN = dict(activation="sin", depth=1, weight_var=2.0, bias_var=0.0)
BETA = 3.0


def _state(solver, s):
    return solver.state.pack(s.q1, s.q0, s.m, s.d, s.q1_layers, s.q0_layers, s.dh, s.qh1, s.qh0)


@pytest.fixture(scope="module")
def sin4():
    land = FiniteAlphaLandscape(**SIN, alpha=4.0)
    rs = land.rs(BETA)
    return land, rs, R.rsb1(land, BETA, start=rs, grid_nodes=16, grid_step=0.05)


# ------------------------------------------------------------------------------------------------ building blocks
def test_input_overlaps_solve_the_input_equations():
    rng = np.random.default_rng(0)
    for _ in range(20):
        g0 = rng.uniform(0, 3)
        g1 = g0 + rng.uniform(0, 3)
        m = rng.uniform(0.05, 1.0)
        q1, q0 = R.input_overlaps(g1, g0, m)
        assert 0 <= q0 <= q1 < 1
        d1, d0, _, _ = R.p0_derivatives(q1, q0, m)
        # dP0/dq1 = (1 - m) g1 / 2, dP0/dq0 = m g0 / 2
        assert d1 == pytest.approx((1 - m) * g1 / 2, rel=1e-10, abs=1e-13)
        assert d0 == pytest.approx(m * g0 / 2, rel=1e-10, abs=1e-13)
    for g in (0.1, 1.0, 7.0):                                       # RS: q / (1 - q)^2 = g
        q1, q0 = R.input_overlaps(g, g, 0.4)
        assert q1 == pytest.approx(q0, abs=1e-12) and q0 / (1 - q0) ** 2 == pytest.approx(g, rel=1e-10)


def test_input_part_derivatives_match_finite_differences():
    h = 1e-6
    for q1, q0, m in ((0.6, 0.3, 0.4), (0.9, 0.1, 0.8), (0.5, 0.5, 0.3)):
        d1, d0, dm, dmm = R.p0_derivatives(q1, q0, m)
        assert d1 == pytest.approx((R.p0(q1 + h, q0, m) - R.p0(q1 - h, q0, m)) / (2 * h), abs=1e-8)
        assert d0 == pytest.approx((R.p0(q1, q0 + h, m) - R.p0(q1, q0 - h, m)) / (2 * h), abs=1e-8)
        assert dm == pytest.approx((R.p0(q1, q0, m + h) - R.p0(q1, q0, m - h)) / (2 * h), abs=1e-8)
        assert dmm == pytest.approx((R.p0_derivatives(q1, q0, m + h)[2] - R.p0_derivatives(q1, q0, m - h)[2]) / (2 * h),
                                    abs=1e-7)
    # P0 at q1 = q0 is the RS input term for every m
    for m in (0.2, 1.0):
        assert R.p0(0.4, 0.4, m) == pytest.approx(0.5 * (math.log(0.6) + 0.4 / 0.6), rel=1e-14)


def test_tables_reproduce_rsb1_layer_and_exact_m_derivatives():
    land = FiniteAlphaLandscape("tanh", 1, 1.5, 0.1, 1.0)
    module, table_module = tilted_module(land.covariance.activation), R._table_module(land.covariance.activation)
    x, w = hermite_rule(6)
    args = (0.4, 0.7, 0.5, 0.2, 0.1, 0.3)
    table = R.LayerTable(table_module, *args, ((x, w), (x, w)))
    res = np.empty(N_RESULTS)
    for m in (0.3, 0.8):
        module.rsb1_layer(*args, m, x, w, res)
        av = table.averages(m)
        for i, key in enumerate(("G", "D", "Q1", "Q0", "GD", "GC1", "GC0")):
            assert av[key] == pytest.approx(res[i], abs=1e-13)
        h = 1e-4
        assert av["dG"] == pytest.approx((table.averages(m + h)["G"] - table.averages(m - h)["G"]) / (2 * h), abs=1e-8)
        assert av["d2G"] == pytest.approx((table.averages(m + h)["dG"] - table.averages(m - h)["dG"]) / (2 * h), abs=1e-7)


def test_grid_table_agrees_with_hermite_where_both_converge():
    """Small tilt (large alpha): ln Z is smooth and both rules converge to the same layer averages."""
    land = FiniteAlphaLandscape("sin", 1, 2.0, 0.0, 100.0)
    tm = R._table_module(land.covariance.activation)
    x, w = hermite_rule(24)
    c0, c1, v, qh = 0.9, 1.3, 0.6, 0.05
    gh = R.LayerTable(tm, c0, c1, v, 0.0, qh, qh, ((x, w), (x, w)))
    for ny in (16, None):                            # Gauss–Hermite or trapezoid in y0
        grid = R.GridTable(tm, c0, c1, v, 0.0, qh, qh, ny, None, 0.04)
        for m in (0.3, 0.9):
            a, b = gh.averages(m), grid.averages(m)
            for key in a:
                assert b[key] == pytest.approx(a[key], abs=1e-7), key


def test_derivatives_of_the_layer_term_in_the_covariances():
    """dG/dD = GD, dG/dc1 = -(1 - m) GC1, dG/dc0 = -m GC0 (the replica pair counts behind the backward equations)."""
    land = FiniteAlphaLandscape("sin", 1, 2.0, 0.0, 4.0)
    tm = R._table_module(land.covariance.activation)
    m, a, qh = 0.6, 0.0, 2.0
    G = lambda D, c1, c0: R.GridTable(tm, c0, c1, D - c1, a, qh, qh, 16, None, 0.04).averages(m)
    D, c1, c0, h = 1.4, 1.1, 0.8, 1e-4
    av = G(D, c1, c0)
    assert (G(D + h, c1, c0)["G"] - G(D - h, c1, c0)["G"]) / (2 * h) == pytest.approx(av["GD"], abs=1e-6)
    assert (G(D, c1 + h, c0)["G"] - G(D, c1 - h, c0)["G"]) / (2 * h) == pytest.approx(-(1 - m) * av["GC1"], abs=1e-6)
    assert (G(D, c1, c0 + h)["G"] - G(D, c1, c0 - h)["G"]) / (2 * h) == pytest.approx(-m * av["GC0"], abs=1e-6)


# ------------------------------------------------------------------------------------------------ linear: no RSB
@pytest.mark.parametrize("depth, alpha", [(1, 2.0), (2, [1.5, 3.0])])
def test_linear_network_collapses_to_rs_with_the_exact_energy(depth, alpha):
    cw = 1.5
    land = FiniteAlphaLandscape("linear", depth, cw, 0.0, alpha)
    beta = 2.0
    rs = land.rs(beta)
    exact = -(math.sqrt(1 + 4 * beta ** 2 * cw ** depth * cw) - 1) / (2 * beta)
    for m in (None, 0.5):
        s = R.rsb1(land, beta, m=m, nodes=6, grid_nodes=12, grid_step=0.1)
        assert R.is_replica_symmetric(s)
        assert s.q1 == s.q0 == pytest.approx(rs.q0, abs=1e-12)
        np.testing.assert_allclose(s.q1_layers, rs.q, atol=1e-12)
        assert s.free_energy == pytest.approx(rs.free_energy, abs=1e-12)
        assert s.energy == pytest.approx(exact, rel=1e-9)
        assert s.entropy == pytest.approx(s.free_energy + beta * s.energy, abs=1e-12)


# ------------------------------------------------------------------------------------------------ reduction to RS
def test_action_at_q1_equal_q0_is_the_rs_free_energy(sin4):
    """At the RS saddle written as q1 = q0 (any m) the 1RSB action is the RS one. With finite_alpha's own rule
    (40 Gauss–Hermite nodes where the tilt is weak; the degenerate 1RSB table is then the same tensor rule) the
    match is exact; where the tilt is strong (alpha = 4) both use converged grids in mu and agree to 2e-6. (Before
    the RS solver had its grid, its Gauss–Hermite error there was 4e-4 at alpha = 4 for sin, C_W = 2, beta = 3.)"""
    land, rs, _ = sin4
    land100 = FiniteAlphaLandscape(**SIN, alpha=100.0)
    rs100 = land100.rs(BETA)
    land2 = FiniteAlphaLandscape("tanh", 2, 1.5, 0.05, [3.0, 30.0])        # two layers: Gauss–Hermite table in layer 1
    rs2 = land2.rs(1.5)
    for m in (0.25, 0.7, 1.0):
        for lnd, r, beta in ((land100, rs100, BETA), (land2, rs2, 1.5)):   # weak tilt: the RS solver uses Gauss-Hermite
            X = np.concatenate([[r.q0, r.q0, m], r.d, r.q, r.q, r.dh, r.qh, r.qh])
            assert R.RSB1Solver(lnd, beta, 40, grid_step=None).action(X) == pytest.approx(r.free_energy, abs=1e-12)
        # strong tilt (alpha = 4): the RS solver switches to its own uniform grid in mu; both grids converged
        X = np.concatenate([[rs.q0, rs.q0, m], rs.d, rs.q, rs.q, rs.dh, rs.qh, rs.qh])
        assert R.RSB1Solver(land, BETA, grid_step=0.04).action(X) == pytest.approx(rs.free_energy, abs=2e-6)
        X = np.concatenate([[rs100.q0, rs100.q0, m], rs100.d, rs100.q, rs100.q, rs100.dh, rs100.qh, rs100.qh])
        assert R.RSB1Solver(land100, BETA, grid_step=0.04).action(X) == pytest.approx(rs100.free_energy, abs=1e-6)


# ------------------------------------------------------------------------------------------------ the saddle
def test_rsb_at_finite_alpha_lowers_the_free_energy(sin4):
    land, rs, s = sin4
    assert rs.replicon < 0                          # RS is AT-unstable here
    assert not R.is_replica_symmetric(s)
    assert s.q1 - s.q0 > 0.2 and 0 < s.m < 1
    solver = R.RSB1Solver(land, BETA, grid_nodes=16, grid_step=0.05)
    p_rs = solver.action(np.concatenate([[rs.q0, rs.q0, 0.5], rs.d, rs.q, rs.q, rs.dh, rs.qh, rs.qh]))
    assert s.free_energy < p_rs - 5e-3
    assert s.energy > rs.energy                     # RSB raises the (signed) energy at fixed beta
    assert s.entropy == pytest.approx(s.free_energy + BETA * s.energy, abs=1e-12)


def test_stationarity_by_finite_differences_of_the_action(sin4):
    land, _, s = sin4
    solver = R.RSB1Solver(land, BETA, grid_nodes=16, grid_step=0.05)
    X = _state(solver, s)
    assert solver.action(X) == pytest.approx(s.free_energy, abs=1e-13)
    h = 1e-5
    # q1, q0, m, d_1, q1_1, q0_1, dh_1 (the top conjugates' split qh1 != qh0 leaves the grid rule: see the
    # Gauss–Hermite test below); the sum over the three top conjugates keeps qh1 = qh0
    for i in range(7):
        e = np.zeros_like(X)
        e[i] = h
        assert (solver.action(X + e) - solver.action(X - e)) / (2 * h) == pytest.approx(0, abs=1e-7), i
    e = np.zeros_like(X)
    e[6:9] = h                                       # limited by the 16-node Gauss–Hermite rule in y0 (3e-6)
    assert (solver.action(X + e) - solver.action(X - e)) / (2 * h) == pytest.approx(0, abs=1e-5)


def test_energy_is_minus_the_beta_derivative_of_the_free_energy(sin4):
    land, _, s = sin4
    h = 2e-3
    p = [R.rsb1(land, BETA + d, start=s, grid_nodes=16, grid_step=0.05).free_energy for d in (h, -h)]
    # 16 Gauss–Hermite nodes in y0 (for speed) leave 5e-6 (Stein's lemma is exact only in the limit); with the
    # default trapezoid rule in y0 the two agree to 3e-8
    assert -(p[0] - p[1]) / (2 * h) == pytest.approx(s.energy, abs=2e-5)


def test_m_is_the_minimum_of_the_free_energy_over_fixed_m_saddles(sin4):
    """The Parisi parameter: P(m) of the fixed-m saddles is stationary at the returned m and a minimum there (as
    for the Crisanti–Sommers functional, whose optimum is the infimum over Parisi measures)."""
    land, _, s = sin4
    p = {}
    for dm in (-0.05, 0.05):
        p[dm] = R.rsb1(land, BETA, m=s.m + dm, start=s, grid_nodes=16, grid_step=0.05).free_energy
    assert p[-0.05] > s.free_energy and p[0.05] > s.free_energy
    # the parabola through the three points has its vertex at s.m
    vertex = s.m - 0.05 * (p[0.05] - p[-0.05]) / (2 * (p[0.05] + p[-0.05] - 2 * s.free_energy))
    assert vertex == pytest.approx(s.m, abs=2e-3)


@pytest.mark.slow
def test_stationarity_in_the_top_conjugates_split():
    """The top layer's split qh1 != qh0, which the mu-grid rule cannot represent: Gauss–Hermite tables everywhere
    (accurate at small tilt), one-sided differences (G is linear in qh1 - qh0 >= 0)."""
    land = FiniteAlphaLandscape(**SIN, alpha=50.0)
    s = R.rsb1(land, BETA, nodes=12, grid_step=None)
    solver = R.RSB1Solver(land, BETA, 12, grid_step=None)
    X = _state(solver, s)
    h = 1e-7                                         # one-sided: the O(h) term is 0.8 h alpha here
    assert (solver.action(X + h * np.eye(len(X))[7]) - solver.action(X)) / h == pytest.approx(0, abs=1e-6)   # qh1 up
    assert (solver.action(X) - solver.action(X - h * np.eye(len(X))[8])) / h == pytest.approx(0, abs=1e-6)   # qh0 down


@pytest.mark.slow
def test_stationarity_of_a_two_layer_saddle():
    """Depth 2: the backward equations of the hidden layer (dh, qh1, qh0 from GD, GC1, GC0 of the layer above) and
    the mu-grid table with qh1 != qh0 in layer 1."""
    land = FiniteAlphaLandscape("sin", 2, 2.0, 0.0, 20.0)
    kw = dict(nodes=8, grid_step=0.06)
    s = R.rsb1(land, BETA, **kw)
    assert not R.is_replica_symmetric(s) and 0 < s.m < 1
    solver = R.RSB1Solver(land, BETA, **kw)
    X = _state(solver, s)
    h = 1e-5
    for i in range(len(X)):
        if i in (len(X) - 4 + 1, len(X) - 1):       # the top layer's qh1, qh0 (split: see the test above)
            continue
        e = np.zeros_like(X)
        e[i] = h
        assert (solver.action(X + e) - solver.action(X - e)) / (2 * h) == pytest.approx(0, abs=1e-6), i


# ------------------------------------------------------------------------------------------------ alpha -> infinity
@pytest.mark.slow
def test_large_alpha_matches_the_spherical_1rsb():
    land = FiniteAlphaLandscape(**SIN, alpha=1e4)
    rs = land.rs(BETA)
    assert rs.replicon < 0
    sph = land.spherical_model()
    ref, ref_rs = sph.parisi(BETA, 1), sph.rs(BETA)
    s = R.rsb1(land, BETA, start=rs, grid_step=0.1, grid_nodes=16)
    # finite-alpha corrections are O(1/alpha) = 1e-4 (RS: |P - P_sph| = 5e-5 here)
    assert s.q1 == pytest.approx(ref.q[1], abs=5e-4)
    assert s.q0 == pytest.approx(ref.q[0], abs=5e-4)
    assert s.m == pytest.approx(ref.m[0], abs=5e-4)
    assert s.free_energy == pytest.approx(ref.free_energy, abs=2e-4)
    assert s.energy == pytest.approx(ref.energy, abs=2e-4)
    assert s.free_energy - rs.free_energy == pytest.approx(ref.free_energy - ref_rs.free_energy, abs=2e-5)


# ------------------------------------------------------------------------------------------------ errors
def test_parameter_errors():
    land = FiniteAlphaLandscape("linear", 1, 1.0, 0.0, 1.0)
    with pytest.raises(ParameterError):
        R.rsb1(land, -1.0)
    with pytest.raises(ParameterError):
        R.rsb1(land, 1.0, m=1.5)
    with pytest.raises(ParameterError):
        R.rsb1(land, 1.0, nodes=2)
    with pytest.raises(ParameterError):
        R.rsb1(land, 1.0, start="rs")


def test_non_convergence_raises_divergence_error(sin4):
    land, rs, _ = sin4
    with pytest.raises(DivergenceError, match="did not converge"):
        R.rsb1(land, BETA, start=rs, max_iter=2, grid_nodes=8, grid_step=0.1)
