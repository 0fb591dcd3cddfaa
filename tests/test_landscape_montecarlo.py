"""Monte Carlo of random-MLP landscapes (fieldnet.montecarlo.landscape).

Exact references: a linear network is a linear field H(x) = H(0) + G . x, whose minimum on |x|^2 = N is
H(0) - sqrt(N) |G| and whose Gibbs measure reduces to the 1-d density of t = G . x / (|G| sqrt(N)),
proportional to (1 - t^2)^((N-3)/2) exp(-beta sqrt(N) |G| t). Statistical comparisons use the ensemble's own
standard errors (5 sigma)."""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from fieldnet.errors import ParameterError
from fieldnet.montecarlo.landscape import (LandscapeEnsemble, energy_entropy, find_ground_states,
                                           landscape_width_scan, sample_gibbs, thermodynamic_integration,
                                           uniform_sphere)


def _linear_field(ens):
    """(H(0), G) per network of a linear-activation ensemble: H(x) = H(0) + G . x."""
    zero = np.zeros((1, ens.N))
    H0 = ens.energy(zero)[:, 0]
    _, G = ens.energy_and_grad(zero)
    return H0, G[:, 0]


def _linear_gibbs(N, H0, g, beta):
    """Exact (<H>/N, P) at inverse temperature beta for H = H0 + sqrt(N) g t, g = |G|."""
    kappa = beta * math.sqrt(N) * g
    w = (lambda t, k: (1 - t * t) ** ((N - 3) / 2) * math.exp(-k * t - kappa))   # shifted by exp(-kappa)
    z0 = quad(w, -1, 1, args=(0.0,))[0] * math.exp(kappa)
    z = quad(w, -1, 1, args=(kappa,))[0]
    t_mean = quad(lambda t: t * w(t, kappa), -1, 1)[0] / z
    u = (H0 + math.sqrt(N) * g * t_mean) / N
    P = (-beta * H0 + math.log(z / z0) + kappa) / N
    return u, P


# ----------------------------------------------------------------------------------------------
# the ensemble


@pytest.mark.parametrize("activation,C_b,depth", [("tanh", 0.3, 2), ("relu", 0.0, 2), ("sin", 0.1, 1),
                                                  ("x*erf(x)", 0.2, 1)])
def test_gradient_matches_finite_differences(activation, C_b, depth):
    ens = LandscapeEnsemble(12, [2.0, 1.5][:depth], depth, activation, C_W=1.5, C_b=C_b, n_networks=4, seed=3)
    rng = np.random.default_rng(0)
    X = uniform_sphere(rng, (6,), 12)
    D = rng.standard_normal((6, 12))
    h = 1e-5
    fd = (ens.energy(X + h * D) - ens.energy(X - h * D)) / (2 * h)
    E, G = ens.energy_and_grad(X)
    np.testing.assert_array_equal(E, ens.energy(X))
    analytic = np.sum(G * D, axis=-1)
    # relu: only points whose preactivations stay away from the kinks over [x - hD, x + hD]
    margin = np.min([np.min(np.abs(z), axis=-1) for z in ens.preactivations(X)], axis=0)
    keep = margin > 1e-3 if activation == "relu" else np.ones_like(margin, bool)
    assert keep.sum() >= 12
    # central differences: O(h^2 H''') + round-off O(1e-16 |H| / h); both far below 1e-6 (|H| = O(sqrt N))
    np.testing.assert_allclose(fd[keep], analytic[keep], rtol=0, atol=1e-6 * max(1.0, np.abs(analytic).max()))


def test_batched_points_per_network_and_chunking():
    ens = LandscapeEnsemble(10, 3.0, 1, "tanh", n_networks=3, seed=1)
    X = uniform_sphere(np.random.default_rng(2), (3, 5), 10)
    E, G = ens.energy_and_grad(X)
    for k in range(3):
        e, g = ens.energy_and_grad(X[k], networks=[k])
        np.testing.assert_allclose(E[k], e[0], rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(G[k], g[0], rtol=1e-12, atol=1e-12)
    import fieldnet.montecarlo.landscape as mod
    old, mod._CHUNK_BYTES = mod._CHUNK_BYTES, 1      # one point per chunk
    try:
        E1, G1 = ens.energy_and_grad(X)
    finally:
        mod._CHUNK_BYTES = old
    np.testing.assert_allclose(E1, E, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(G1, G, rtol=1e-12, atol=1e-12)


def test_reproducible_with_the_seed():
    X = uniform_sphere(np.random.default_rng(0), (4,), 8)
    a = LandscapeEnsemble(8, 2.0, 1, "relu", C_W=2.0, n_networks=3, seed=7)
    b = LandscapeEnsemble(8, 2.0, 1, "relu", C_W=2.0, n_networks=3, seed=7)
    c = LandscapeEnsemble(8, 2.0, 1, "relu", C_W=2.0, n_networks=3, seed=8)
    np.testing.assert_array_equal(a.energy(X), b.energy(X))
    assert not np.allclose(a.energy(X), c.energy(X))
    g1, g2 = find_ground_states(a, 3, seed=1), find_ground_states(b, 3, seed=1)
    np.testing.assert_array_equal(g1.u_starts, g2.u_starts)
    s1 = sample_gibbs(a, [0.0, 1.0], n_pairs=1, n_burn=20, n_measure=20, seed=2)
    s2 = sample_gibbs(b, [0.0, 1.0], n_pairs=1, n_burn=20, n_measure=20, seed=2)
    np.testing.assert_array_equal(s1.u, s2.u)
    np.testing.assert_array_equal(s1.q_hist, s2.q_hist)


def test_centering_subtracts_the_sphere_average():
    kw = dict(C_W=1.0, C_b=0.5, n_networks=8, seed=4)
    raw = LandscapeEnsemble(16, 2.0, 1, "tanh", center=False, **kw)
    ens = LandscapeEnsemble(16, 2.0, 1, "tanh", **kw)
    X = uniform_sphere(np.random.default_rng(9), (4096,), 16)
    H_raw = raw.energy(X)
    np.testing.assert_allclose(ens.energy(X), H_raw - ens.center_constant[:, None], rtol=0, atol=1e-12)
    # c_k is a mean over 2048 uniform points: it agrees with a fresh 4096-point mean within its error
    se = H_raw.std(axis=1, ddof=1) * math.sqrt(1 / 2048 + 1 / 4096)
    assert np.all(np.abs(ens.center_constant - H_raw.mean(axis=1)) < 5 * se)
    np.testing.assert_array_equal(raw.center_constant, 0.0)


@pytest.mark.parametrize("kwargs,name", [
    (dict(N=1), "N"), (dict(N=4.0), "N"), (dict(alpha=0.0), "alpha"), (dict(alpha=[1.0, 2.0]), "alpha"),
    (dict(alpha=0.01), "alpha"), (dict(depth=0), "depth"), (dict(C_W=0.0), "C_W"), (dict(C_b=-1.0), "C_b"),
    (dict(C_v=-1.0), "C_v"), (dict(C_bv=-0.1), "C_bv"), (dict(n_networks=1), "n_networks"),
    (dict(seed=-1), "seed"), (dict(n_center=0), "n_center"), (dict(center="yes"), "center"),
])
def test_bad_ensemble_parameters_are_named(kwargs, name):
    args = dict(N=8, alpha=2.0, depth=1, activation="tanh", n_networks=2)
    args.update(kwargs)
    with pytest.raises(ParameterError, match=rf"^{name}:"):
        LandscapeEnsemble(args.pop("N"), args.pop("alpha"), args.pop("depth"), args.pop("activation"), **args)


def test_bad_run_parameters_are_named():
    ens = LandscapeEnsemble(6, 2.0, 1, "tanh", n_networks=2, seed=0)
    with pytest.raises(ParameterError, match="^X:"):
        ens.energy(np.zeros((3, 5)))
    with pytest.raises(ParameterError, match="^X:"):
        ens.energy(np.zeros((3, 2, 6)))
    with pytest.raises(ParameterError, match="^networks:"):
        ens.energy(np.zeros((1, 6)), networks=[2])
    with pytest.raises(ParameterError, match="^n_starts:"):
        find_ground_states(ens, 0)
    with pytest.raises(ParameterError, match="^betas:"):
        sample_gibbs(ens, [1.0, 0.5])
    with pytest.raises(ParameterError, match="^target_accept:"):
        sample_gibbs(ens, [0.0], target_accept=1.5)
    with pytest.raises(ParameterError, match="^betas:"):
        thermodynamic_integration([0.5, 1.0], np.zeros(2))
    with pytest.raises(ParameterError, match="^activation:"):
        LandscapeEnsemble(6, 2.0, 1, "step", n_networks=2).energy_and_grad(np.ones((1, 6)))
    with pytest.raises(ParameterError, match="^widths:"):
        landscape_width_scan([8, 8], n_networks=2)


# ----------------------------------------------------------------------------------------------
# ground states


@pytest.mark.parametrize("N,depth", [(8, 1), (20, 2)])
def test_linear_network_ground_state_is_exact(N, depth):
    ens = LandscapeEnsemble(N, 2.0, depth, "linear", C_W=1.3, C_b=0.4, n_networks=6, seed=11)
    H0, G = _linear_field(ens)
    exact = (H0 - math.sqrt(N) * np.linalg.norm(G, axis=1)) / N
    gs = find_ground_states(ens, 4, momentum_iter=50, seed=5)
    np.testing.assert_allclose(gs.u_best, exact, rtol=0, atol=1e-8)
    np.testing.assert_allclose(gs.u_starts, np.repeat(exact[:, None], 4, axis=1), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(gs.fraction_best, 1.0)
    # the minimiser is -sqrt(N) G / |G|
    np.testing.assert_allclose(gs.x_best, -math.sqrt(N) * G / np.linalg.norm(G, axis=1, keepdims=True), atol=1e-4)


def test_ground_state_below_every_sample_and_consistent():
    ens = LandscapeEnsemble(12, 3.0, 1, "tanh", C_W=1.0, n_networks=6, seed=2)
    gs = find_ground_states(ens, 8, seed=3)
    X = uniform_sphere(np.random.default_rng(1), (4000,), 12)
    assert np.all(gs.u_best <= ens.energy(X).min(axis=1) / 12)
    np.testing.assert_allclose(ens.energy(gs.x_best[:, None, :])[:, 0] / 12, gs.u_best, rtol=0, atol=1e-13)
    assert np.all(gs.u_best <= gs.u_starts.min(axis=1) + 1e-12)
    assert np.all(gs.grad_norm < 1e-8)           # a smooth activation: a true critical point
    assert gs.mean == pytest.approx(gs.u_best.mean()) and gs.sem > 0


# ----------------------------------------------------------------------------------------------
# finite temperature


def test_metropolis_matches_the_exact_linear_gibbs_average():
    N, betas = 12, np.linspace(0.0, 1.5, 7)
    ens = LandscapeEnsemble(N, 2.0, 1, "linear", C_W=1.0, C_b=0.3, n_networks=40, seed=21)
    H0, G = _linear_field(ens)
    g = np.linalg.norm(G, axis=1)
    samples = sample_gibbs(ens, betas, n_pairs=3, n_burn=200, n_measure=600, seed=4)
    exact = np.array([[_linear_gibbs(N, H0[k], g[k], b) for b in betas] for k in range(ens.n_networks)])
    u_exact, P_exact = exact[..., 0], exact[..., 1]
    # per-network differences: mean within 5 of its SEM, and the SEM small enough to mean something
    d = samples.u - u_exact
    dm, ds = d.mean(axis=0), d.std(axis=0, ddof=1) / math.sqrt(d.shape[0])
    assert np.all(np.abs(dm) < 5 * ds)
    assert np.all(ds < 0.01)
    tuned = samples.step < 10.0                    # below the cap delta = 10 (nearly independent proposals)
    assert tuned[:, -1].all()
    assert np.all((samples.acceptance[tuned] > 0.2) & (samples.acceptance[tuned] < 0.6))
    # thermodynamic integration: against the same trapezoid rule applied to the exact u
    curve = energy_entropy(samples)
    P_trap, s_trap = thermodynamic_integration(betas, u_exact)
    dP = curve.P - P_trap
    assert np.all(np.abs(dP.mean(0)[1:]) < 5 * dP.std(0, ddof=1)[1:] / math.sqrt(dP.shape[0]))
    ds_ = curve.s - s_trap
    assert np.all(np.abs(ds_.mean(0)[1:]) < 5 * ds_.std(0, ddof=1)[1:] / math.sqrt(ds_.shape[0]))
    # and the trapezoid of the exact u is close to the exact free energy on this grid (O(h^2) rule error)
    assert np.max(np.abs(P_trap - P_exact)) < 0.05 * np.max(np.abs(P_exact))
    assert np.all(curve.s_mean <= 1e-12)


def test_overlap_of_independent_uniform_chains():
    """At beta = 0 the chains are uniform and independent: E q = 0 and E q^2 = 1 / N exactly."""
    N = 10
    ens = LandscapeEnsemble(N, 2.0, 1, "tanh", n_networks=12, seed=5)
    s = sample_gibbs(ens, [0.0], n_pairs=4, n_burn=200, n_measure=400, thin=4, seed=6)
    assert abs(s.q_mean[0]) < 5 * s.q_sem[0]
    assert abs(s.q2_mean[0] - 1 / N) < 5 * s.q2_sem[0]
    assert s.q_hist.shape == (1, 40)
    assert np.sum(s.q_hist[0] * np.diff(s.q_edges)) == pytest.approx(1.0)
    assert np.all(s.step[:, 0] == 10.0)             # nothing is rejected: delta grows to its cap


def test_thermodynamic_integration_is_exact_for_linear_u():
    betas = np.array([0.0, 0.3, 1.0, 2.0])
    u = -0.7 * betas + 0.1                          # P = -0.1 beta + 0.35 beta^2, s = -0.35 beta^2
    P, s = thermodynamic_integration(betas, u)
    np.testing.assert_allclose(P, -0.1 * betas + 0.35 * betas ** 2, atol=1e-15)
    np.testing.assert_allclose(s, -0.35 * betas ** 2, atol=1e-15)


# ----------------------------------------------------------------------------------------------
# scans


def test_width_scan_and_extrapolation():
    scan = landscape_width_scan([6, 8, 12], 2.0, 1, "tanh", n_networks=4, n_starts=3, betas=[0.0, 0.5],
                                seed=1, descent=dict(momentum_iter=100), gibbs=dict(n_pairs=1, n_burn=20,
                                                                                   n_measure=40))
    assert scan.widths == (6, 8, 12)
    assert scan.gs_mean.shape == (3,) and np.all(scan.gs_sem > 0)
    assert scan.gs_fit.dof == 1 and np.isfinite(scan.gs_fit.intercept)
    assert scan.u_mean.shape == (3, 2) and scan.s_mean.shape == (3, 2)
    assert np.isnan(scan.s_fit.intercept[0]) and np.isfinite(scan.s_fit.intercept[1])   # s(0) = 0: no error
    np.testing.assert_array_equal(scan.s_mean[:, 0], 0.0)
    again = landscape_width_scan([6, 8, 12], 2.0, 1, "tanh", n_networks=4, n_starts=3, seed=1, order=2,
                                 descent=dict(momentum_iter=100))
    np.testing.assert_array_equal(again.gs_mean, scan.gs_mean)
    assert again.gs_fit.dof == 0 and again.u_mean is None
