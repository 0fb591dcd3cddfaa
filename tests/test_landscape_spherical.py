"""Replica theory of spherical mixed p-spin models (fieldnet.landscape.spherical).

Reference values and where they come from:
* linear xi = c q: exact RS solution, derived by hand (module docstring / linear_closed_forms).
* pure 2-spin xi = q^2/2: H(x) = x.Jx / sqrt(2N) with GOE-like J, so u_GS = -1 (top eigenvalue); RS q = 1 - 1/beta
  above beta = 1 (solving beta^2 q = q/(1-q)^2).
* pure p-spin ground state and threshold: the zero of the Kac-Rice complexity of Auffinger, Ben Arous & Cerny
  (CPAM 66, 165 (2013), arXiv:1003.1129, Theorem 2.8 with xi = q^p) is computed below independently of the replica
  functional; E_0(p = 3) = -1.657 and E_inf = -2 sqrt(2/3) are the values quoted there and in Crisanti & Sommers
  (Z. Phys. B 87, 341 (1992)). These are for variance N q^p; for xi = q^p / 2 all energies scale by 1/sqrt(2).
* the T = 0 functional (derived in the module docstring) is tested against large-beta k-RSB of the finite-beta
  Crisanti-Sommers functional: u(beta) = u_GS + T/2 + O(T^2) (equipartition over the N - 1 harmonic directions of
  the sphere at a minimum).
* FRSB example xi = q^2/2 + 0.1 q^4 (the numbers -1.1740043 (k=1) and -1.1739926 (k=3) are this module's own, kept as
  regression values; the physics checks are that each level raises u_GS and the levels spread).
"""

import math

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import quad
from scipy.optimize import brentq

from fieldnet.errors import ParameterError
from fieldnet.landscape.spherical import SphericalModel, linear_closed_forms


@pytest.fixture(scope="module")
def three():
    return SphericalModel.from_coefficients({3: 1.0})


@pytest.fixture(scope="module")
def mix():
    """xi = q^2/2 + 0.1 q^4: xi''(q)^{-1/2} concave near 0, FRSB at T = 0."""
    return SphericalModel.from_coefficients({2: 0.5, 4: 0.1})


def abc_ground_state(p):
    """Zero of the ABC annealed complexity Theta_p(u) below -E_inf, variance N q^p (independent of replicas)."""
    e_inf = 2 * math.sqrt((p - 1) / p)

    def theta(u):
        r = math.sqrt(u * u - e_inf ** 2)
        i1 = -u / e_inf ** 2 * r - math.log(-u + r) + math.log(e_inf)
        return 0.5 * math.log(p - 1) - (p - 2) / (4 * (p - 1)) * u * u - i1

    return brentq(theta, -e_inf - 1.0, -e_inf - 1e-9, xtol=1e-14), -e_inf


# ------------------------------------------------------------------------------------------------ functionals
def test_rs_step_function_reproduces_the_rs_formula(mix):
    field = SphericalModel.from_coefficients({1: 0.2, 2: 0.5, 3: 0.3})
    for model in (mix, field):
        for beta in (0.7, 2.5):
            for q0 in (0.0, 0.3, 0.9):
                rs = 0.5 * (beta ** 2 * (model.xi1 - model.xi(q0)) + q0 / (1 - q0) + math.log(1 - q0))
                assert model.crisanti_sommers(beta, [q0], []) == pytest.approx(rs, rel=1e-14, abs=1e-14)
            r = model.rs(beta)
            assert beta ** 2 * model.xi_prime(r.q) * (1 - r.q) ** 2 == pytest.approx(r.q, abs=1e-12)
            assert r.free_energy == pytest.approx(model.crisanti_sommers(beta, [r.q], []), rel=1e-14)
            grid = np.linspace(0, 0.999, 2000)         # the saddle minimises P over q
            assert r.free_energy <= min(model.crisanti_sommers(beta, [g], []) for g in grid) + 1e-12


def test_k_step_closed_form_equals_quadrature_of_the_definition():
    model = SphericalModel.from_coefficients({1: 0.05, 2: 0.5, 4: 0.1})
    beta, q, m = 2.0, np.array([0.1, 0.3, 0.6]), np.array([0.3, 0.7])

    def x(s):
        return 0.0 if s < q[0] else m[0] if s < q[1] else m[1] if s < q[2] else 1.0

    lam = lambda t: quad(x, t, 1, points=list(q), epsabs=1e-14)[0]  # noqa: E731
    i1 = quad(lambda s: x(s) * model.xi_prime(s), 0, 1, points=list(q), epsabs=1e-14)[0]
    i2 = quad(lambda t: 1 / lam(t), 0, q[-1], points=list(q), epsabs=1e-13)[0]
    assert model.crisanti_sommers(beta, q, m) == pytest.approx(0.5 * (beta ** 2 * i1 + i2 + math.log(1 - q[-1])),
                                                               rel=1e-10)
    # the T = 0 functional against its own definition: xi'(1) L - int alpha (xi'(1) - xi') + int dq/(L - int_0^q alpha)
    qz, a, L = np.array([0.2, 0.5, 1.0]), np.array([0.4, 0.9]), 1.3
    alpha = lambda s: 0.0 if s < qz[0] else a[0] if s < qz[1] else a[1]  # noqa: E731
    A = lambda s: quad(alpha, 0, s, points=list(qz[:-1]), epsabs=1e-14)[0]  # noqa: E731
    Q = (model.xip1 * L - quad(lambda s: alpha(s) * (model.xip1 - model.xi_prime(s)), 0, 1, points=list(qz))[0]
         + quad(lambda s: 1 / (L - A(s)), 0, 1, points=list(qz), epsabs=1e-13)[0])
    assert model.zero_temperature_functional(qz, a, L) == pytest.approx(-Q / 2, rel=1e-10)


def test_exact_gradients_match_finite_differences(mix):
    rng = np.random.default_rng(0)
    for fun in (mix._parisi_objective(1.7, 2), mix._gs_objective(2)):
        theta = rng.uniform(0.1, 1.2, 5)
        g = fun(theta)[1]
        h = 1e-6
        fd = [(fun(theta + h * e)[0] - fun(theta - h * e)[0]) / (2 * h) for e in np.eye(5)]
        assert np.allclose(g, fd, atol=1e-8)


# ------------------------------------------------------------------------------------------------ exact cases
def test_linear_model_matches_its_closed_forms():
    forms = linear_closed_forms()
    syms = {s.name: s for e in forms.values() for s in e.free_symbols}
    cval = 0.7
    model = SphericalModel.from_coefficients({1: cval})
    for bval in (0.3, 1.0, 4.0):
        sub = {syms["beta"]: bval, syms["c"]: cval}
        r = model.rs(bval)
        assert r.q == pytest.approx(float(forms["q"].subs(sub)), rel=1e-12)
        assert r.energy == pytest.approx(float(forms["energy"].subs(sub)), rel=1e-12)
        assert r.free_energy == pytest.approx(float(forms["free_energy"].subs(sub)), rel=1e-12)
        assert r.entropy == pytest.approx(float(forms["entropy"].subs(sub)), rel=1e-10)
        assert r.entropy == pytest.approx(float(forms["entropy_of_energy"].subs({syms["u"]: r.energy, syms["c"]: cval})),
                                          rel=1e-10)
        assert r.stable and r.replicon == 1.0
        assert r.entropy < 0 and r.energy < 0
        # u = -dP/dbeta
        h = 1e-5
        assert r.energy == pytest.approx(-(model.rs(bval + h).free_energy - model.rs(bval - h).free_energy) / (2 * h),
                                         rel=1e-8)
    gs = float(forms["ground_state_energy"].subs(syms["c"], cval))
    assert gs == pytest.approx(-math.sqrt(cval)) == model.ground_state_rs()
    assert model.ground_state(2).energy == pytest.approx(gs, abs=1e-9)      # RSB cannot help a pure field
    assert model.at_beta() == math.inf and model.at_temperature() == 0.0
    assert model.phase().label == "RS" and model.phase(2.0).label == "RS"


def test_linear_closed_forms_are_mutually_consistent():
    f = linear_closed_forms()
    beta, c = sorted((s for s in f["q"].free_symbols), key=lambda s: s.name)
    u = next(iter(f["entropy_of_energy"].free_symbols - {c}))
    # s(u(beta)) = s(beta), -dP/dbeta = u, saddle beta^2 c (1-q)^2 = q, T -> 0 limit of u
    for bval, cval in ((0.4, 0.3), (2.0, 1.7)):
        sub = {beta: bval, c: cval}
        assert float(f["entropy_of_energy"].subs({u: f["energy"].subs(sub), c: cval})) == pytest.approx(
            float(f["entropy"].subs(sub)), rel=1e-12)
        assert float(-sp.diff(f["free_energy"], beta).subs(sub)) == pytest.approx(float(f["energy"].subs(sub)), rel=1e-12)
        assert float((beta ** 2 * c * (1 - f["q"]) ** 2 - f["q"]).subs(sub)) == pytest.approx(0, abs=1e-12)
    assert sp.simplify(sp.limit(f["energy"], beta, sp.oo) - f["ground_state_energy"]) == 0


def test_pure_two_spin():
    model = SphericalModel.from_coefficients({2: 0.5})
    for beta in (0.3, 0.9, 1.0):
        assert model.rs(beta).q == 0.0 and model.rs(beta).free_energy == pytest.approx(beta ** 2 / 4)
    for beta in (1.5, 3.0, 20.0):
        r = model.rs(beta)
        assert r.q == pytest.approx(1 - 1 / beta, rel=1e-12)
        assert abs(r.replicon) < 1e-9 and r.stable               # marginal: beta^2 xi'' (1-q)^2 = 1 exactly
    assert model.at_beta() == math.inf
    assert model.ground_state_rs() == -1.0
    assert model.ground_state(2).energy == pytest.approx(-1.0, abs=1e-9)
    ph = model.phase(k_max=2)
    assert ph.label == "RS" and ph.talagrand_convex is True


# ------------------------------------------------------------------------------------------------ pure 3-spin, 1RSB
def test_pure_three_spin_ground_state_is_1rsb_and_matches_kac_rice(three):
    e0, e_inf = abc_ground_state(3)
    assert e0 == pytest.approx(-1.657, abs=5e-4) and e_inf == pytest.approx(-1.63299, abs=1e-5)
    g1, g2 = three.ground_state(1), three.ground_state(2)
    assert g1.energy == pytest.approx(e0, abs=1e-9)
    assert g1.energy < e_inf                                     # the ground state lies below the threshold
    assert three.ground_state_rs() == pytest.approx(-math.sqrt(3)) and three.ground_state_rs() < g1.energy
    assert g2.energy - g1.energy == pytest.approx(0, abs=1e-10) and g2.levels == 1     # 2RSB collapses
    assert g1.q[0] == pytest.approx(0, abs=1e-6)
    half = SphericalModel.from_coefficients({3: 0.5})            # the brief's normalisation: energies / sqrt(2)
    assert half.ground_state(1).energy == pytest.approx(e0 / math.sqrt(2), abs=1e-9)
    ph = three.phase(k_max=3)
    assert ph.label == "1RSB" and ph.talagrand_convex is True and ph.rs_replicon == pytest.approx(-1.0)


def test_pure_three_spin_finite_temperature_phases():
    model = SphericalModel.from_coefficients({3: 0.5})
    assert model.phase(1.0, k_max=2).label == "RS"               # paramagnet, q = 0
    p3 = model.phase(3.0, k_max=2)
    assert p3.label == "1RSB" and p3.free_energies[1] < p3.free_energies[0] - 1e-3
    # RS at q = 0 stays AT-stable there: the 1RSB transition is discontinuous, only the CS comparison sees it
    assert model.rs(3.0).q > 0 and not model.rs(3.0).stable
    b_at = model.at_beta()
    assert model.rs(0.99 * b_at).q == 0.0 and model.rs(1.01 * b_at).q > 0 and not model.rs(1.01 * b_at).stable
    s = model.parisi(3.0, 1)
    h = 1e-4                                                     # u = -dP/dbeta on the 1RSB optimum
    dP = (model.parisi(3.0 + h, 1).free_energy - model.parisi(3.0 - h, 1).free_energy) / (2 * h)
    assert s.energy == pytest.approx(-dP, abs=1e-6)
    assert s.entropy == pytest.approx(s.free_energy + 3.0 * s.energy)


# ------------------------------------------------------------------------------------------------ FRSB, large beta
def test_mixture_is_frsb_at_zero_temperature(mix):
    assert mix.xi_second_at_one() > mix.xip1                     # RS unstable at T = 0
    ph = mix.phase(k_max=3)
    assert ph.label == "FRSB" and ph.talagrand_convex is False
    e = np.array(ph.energies)
    assert np.all(np.diff(e) > 1e-7)                             # each extra level raises u_GS further
    assert e[1] == pytest.approx(-1.1740043, abs=1e-6) and e[3] == pytest.approx(-1.1739926, abs=1e-6)
    g = mix.ground_state(3)
    assert g.levels == 3 and np.all(np.diff(g.q) > 0.05) and np.all(np.diff(g.alpha) > 0.05) and g.q[0] > 0.02


def test_strong_four_spin_mixture_is_1rsb_at_zero_temperature():
    # xi''^{-1/2} is concave only for q < 1/sqrt(24 c): with c = 10 the T = 0 optimum is a single step at q_0 = 0
    model = SphericalModel.from_coefficients({2: 0.5, 4: 10.0})
    ph = model.phase(k_max=2)
    assert ph.label == "1RSB" and ph.energies[2] - ph.energies[1] < 1e-10


def test_large_beta_k_rsb_tends_to_the_zero_temperature_functional(mix):
    g = mix.ground_state(2)
    betas = np.array([200.0, 400.0, 800.0])
    sols = [mix.parisi(b, 2) for b in betas]
    u = np.array([s.energy for s in sols])
    c0, c1, c2 = np.linalg.solve(np.vstack([np.ones(3), 1 / betas, 1 / betas ** 2]).T, u)
    assert c0 == pytest.approx(g.energy, abs=2e-6)
    assert c1 == pytest.approx(0.5, abs=0.02)                    # equipartition: u = u_GS + T/2
    assert sols[-1].q[:2] == pytest.approx(g.q[:2], abs=2e-3)
    assert betas[-1] * sols[-1].m == pytest.approx(g.alpha, rel=2e-3)     # m = alpha / beta
    assert sols[-1].free_energy / betas[-1] == pytest.approx(-g.energy, abs=0.01)
    assert all(s.free_energy / b < -g.energy for s, b in zip(sols, betas))


def test_at_line_of_the_mixture_is_where_q_leaves_zero(mix):
    # q xi''(q) > xi'(q) for every q > 0 here, so the RS branch is AT-unstable as soon as q > 0, i.e. beta > 1
    b = mix.at_beta()
    assert b == pytest.approx(1.0, abs=1e-3) and mix.at_temperature() == pytest.approx(1 / b)
    assert mix.rs(0.99).stable and mix.rs(0.99).q == 0.0 and not mix.rs(1.1).stable
    assert mix.phase(1.5, k_max=2).label == "FRSB"


def test_entropy_curve(three):
    model = SphericalModel.from_coefficients({3: 0.5})
    betas = np.linspace(1.0, 6.0, 51)
    cur = model.entropy_curve(betas)
    assert not cur.rsb[0] and cur.rsb[-1]
    assert np.all(cur.s <= 1e-12) and np.all(np.diff(cur.u) < 0)          # cooling lowers the energy
    # thermodynamics along the equilibrium branch: ds = beta du
    mid = 0.5 * (betas[1:] + betas[:-1])
    ok = cur.rsb[1:] == cur.rsb[:-1]                   # not across the (continuous, kinked) transition
    assert np.allclose((np.diff(cur.s) / np.diff(cur.u))[ok], mid[ok], rtol=2e-3)
    assert all(P <= model.rs(b).free_energy + 1e-12 for P, b in zip(cur.free_energy, betas))      # P = inf over x
    assert np.array_equal(cur.u[~cur.rsb], cur.u_rs[~cur.rsb])
    lin = SphericalModel.from_coefficients({1: 0.7}).entropy_curve([0.5, 2.0])
    assert np.allclose(lin.s, 0.5 * np.log(1 - lin.u ** 2 / 0.7)) and not lin.rsb.any()


# ------------------------------------------------------------------------------------------------ callables, errors
def test_relu_like_covariance_with_infinite_second_derivative():
    # arc-cosine kernel of ReLU minus its constant: xi'(0) = 1/2 (a field), xi''(q) = 1/(pi sqrt(1-q^2)) -> inf
    xi = lambda q: (np.sqrt(1 - q ** 2) + (np.pi - np.arccos(q)) * q - 1) / np.pi  # noqa: E731
    xp = lambda q: (np.pi - np.arccos(q)) / np.pi  # noqa: E731
    model = SphericalModel(xi, xp, name="relu")
    assert model.xi_second_at_one() == math.inf
    assert float(model.xi_second(0.5)) == pytest.approx(1 / (np.pi * math.sqrt(0.75)), rel=1e-8)
    assert model.ground_state_rs() == pytest.approx(-1.0)
    r = model.rs(0.5)
    assert r.q > 0 and r.stable
    ph = model.phase(k_max=2)
    assert ph.label != "RS" and ph.talagrand_convex is None and ph.energies[1] > ph.energies[0]
    tab = model.tabulated(401)                                   # Hermite interpolant, for slow callables
    assert tab.xi_second_at_one() == math.inf
    assert tab.rs(3.0).free_energy == pytest.approx(model.rs(3.0).free_energy, abs=1e-10)
    assert tab.ground_state(2).energy == pytest.approx(model.ground_state(2).energy, abs=1e-7)


def test_bad_input_raises_parameter_error(three):
    for beta in (0, -1.0, math.nan, math.inf, "2", True):
        with pytest.raises(ParameterError, match="^beta: "):
            three.rs(beta)
    with pytest.raises(ParameterError, match="^k: "):
        three.parisi(2.0, -1)
    with pytest.raises(ParameterError, match="^k: "):
        three.ground_state(1.5)
    with pytest.raises(ParameterError, match="^xi: "):
        SphericalModel(3.0, lambda q: q)
    with pytest.raises(ParameterError, match="^xi: "):
        SphericalModel(lambda q: 0 * q, lambda q: 1 + 0 * q)
    with pytest.raises(ParameterError, match="^xi_prime: "):
        SphericalModel(lambda q: q, lambda q: math.inf + 0 * q)
    with pytest.raises(ParameterError, match="^xi: "):
        SphericalModel(lambda q: float(q[0]), lambda q: 1 + 0 * q)        # not vectorised
    for coeffs in ({3: -0.5}, {0: 1.0}, {}, {2: 0.0}):
        with pytest.raises(ParameterError, match="^coeffs: "):
            SphericalModel.from_coefficients(coeffs)
    with pytest.raises(ParameterError, match="^k_max: "):
        three.phase(k_max=1)
