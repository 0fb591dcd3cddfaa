"""Issue 7: the covariance xi of a network's input landscape, the finite-alpha replica saddle, the symbolic
replicated action and the ``fieldnet landscape`` command (THEORY.md section 8)."""

import json
import math

import mpmath
import numpy as np
import pytest
import sympy as sp

from fieldnet.cli import main
from fieldnet.errors import ParameterError
from fieldnet.landscape import replica
from fieldnet.landscape.covariance import NetworkCovariance, q_symbol, symbolic_xi
from fieldnet.landscape.finite_alpha import FiniteAlphaLandscape, ground_state_rs

# ---------------------------------------------------------------------------------------- xi(q)


def test_one_sin_layer_matches_the_closed_form_of_theory_8_3():
    # THEORY.md 8.3: one hidden sin layer, C_b = 0, C_v = C_W: xi(q) = C_W e^{-C_W} sinh(C_W q)
    cw = sp.Rational(3, 2)
    xi = symbolic_xi("sin", 1, cw, 0)
    assert sp.simplify((xi - cw * sp.exp(-cw) * sp.sinh(cw * q_symbol)).rewrite(sp.exp)) == 0
    cov = NetworkCovariance("sin", 1, 1.5, 0.0)
    q = np.array([0.0, 0.3, 0.8, 1.0])
    assert np.allclose(cov.xi(q), 1.5 * np.exp(-1.5) * np.sinh(1.5 * q), rtol=1e-13, atol=1e-15)
    ones = cov.at_one()
    # xi''(1) / xi'(1) = C_W tanh C_W (THEORY.md 8.4)
    assert ones["xi_second"] / ones["xi_prime"] == pytest.approx(1.5 * math.tanh(1.5), rel=1e-12)


@pytest.mark.parametrize("act, depth, cw, cb", [("relu", 2, 2.0, 0.1), ("erf", 2, 1.5, 0.2), ("sin", 2, 1.2, 0.0),
                                                ("relu", 3, 1.8, 0.3)])
def test_chain_rule_equals_the_symbolic_derivatives(act, depth, cw, cb):
    xi = symbolic_xi(act, depth, sp.nsimplify(cw), sp.nsimplify(cb))
    assert xi is not None
    cov = NetworkCovariance(act, depth, cw, cb)
    q = np.array([0.05, 0.4, 0.9])
    for order, values in enumerate(cov.kernels(q)):
        f = sp.lambdify(q_symbol, sp.diff(xi, q_symbol, order), "mpmath")
        exact = np.array([float(f(mpmath.mpf(float(t)))) for t in q])
        if order == 0:
            values = values - cov.kernels(np.zeros(1), order=0)[0][0]
        assert np.allclose(values, exact, rtol=1e-9, atol=1e-12), order


def test_tanh_derivatives_match_finite_differences_and_xi_has_nonnegative_taylor_coefficients():
    cov = NetworkCovariance("tanh", 2, 1.5, 0.05)
    h = 1e-4
    q = np.array([0.2, 0.6, 0.95])
    k, dk, ddk = cov.kernels(q)
    kp, km = cov.kernels(q + h, order=0)[0], cov.kernels(q - h, order=0)[0]
    assert np.allclose(dk, (kp - km) / (2 * h), rtol=1e-6)
    assert np.allclose(ddk, (kp - 2 * k + km) / h ** 2, rtol=1e-3)
    # a positive-definite dot-product kernel: xi and all its derivatives are >= 0 and increasing on [0, 1]
    grid = np.linspace(0.0, 1.0, 11)
    _, d1, d2 = cov.kernels(grid)
    assert np.all(d1 > 0) and np.all(d2 >= -1e-12)


def test_relu_curvature_diverges_at_q_1():
    ones = NetworkCovariance("relu", 1, 2.0, 0.0).at_one()
    assert ones["xi_prime"] == pytest.approx(2.0, rel=1e-12)      # C_v C_W <Theta Theta> at rho = 1 = 2 * 2 / 2
    assert math.isinf(ones["xi_second"])


def test_covariance_rejects_bad_parameters():
    with pytest.raises(ParameterError, match="weight_var"):
        NetworkCovariance("tanh", 1, -1.0, 0.0)
    with pytest.raises(ParameterError, match="depth"):
        NetworkCovariance("tanh", 0, 1.0, 0.0)
    with pytest.raises(ParameterError, match="q"):
        NetworkCovariance("tanh", 1, 1.0, 0.0).xi(np.array([1.5]))


# ---------------------------------------------------------------------------------------- finite alpha

def _linear_exact(beta, c):
    u = -(math.sqrt(1 + 4 * beta ** 2 * c) - 1) / (2 * beta)
    q = 1 + (1 - math.sqrt(1 + 4 * beta ** 2 * c)) / (2 * beta ** 2 * c)
    return q, u, 0.5 * math.log(1 - u * u / c)


@pytest.mark.parametrize("depth, alpha", [(1, 0.5), (2, [1.0, 3.0])])
def test_linear_network_is_exact_and_independent_of_alpha(depth, alpha):
    # THEORY.md 8.4: xi = c q with c = C_W^L C_v; the finite-alpha saddle must reproduce it for every alpha
    cw, beta = 1.5, 1.7
    sol = FiniteAlphaLandscape("linear", depth, cw, 0.0, alpha).rs(beta)
    q, u, s = _linear_exact(beta, cw ** (depth + 1))
    assert sol.q0 == pytest.approx(q, abs=1e-9)
    assert sol.energy == pytest.approx(u, abs=1e-9)
    assert sol.entropy == pytest.approx(s, abs=1e-9)
    assert sol.replicon == pytest.approx(1.0, abs=1e-9)      # xi'' = 0


@pytest.mark.parametrize("act, cw", [("tanh", 1.5), ("relu", 2.0)])
def test_large_alpha_recovers_the_spherical_model(act, cw):
    beta = 2.0
    sph = NetworkCovariance(act, 1, cw, 0.0).spherical_model().rs(beta)
    sol = FiniteAlphaLandscape(act, 1, cw, 0.0, 1e5).rs(beta)
    # the finite-alpha corrections are O(1/alpha) = 1e-5
    assert sol.q0 == pytest.approx(sph.q, abs=1e-4)
    assert sol.free_energy == pytest.approx(sph.free_energy, abs=1e-4)
    assert sol.energy == pytest.approx(sph.energy, abs=1e-4)
    assert sol.replicon == pytest.approx(sph.replicon, abs=1e-3)   # the replicon form reduces to de Almeida-Thouless


def test_finite_alpha_corrections_are_order_one_over_alpha():
    beta = 1.0
    sph = NetworkCovariance("relu", 1, 2.0, 0.0).spherical_model().rs(beta)
    gaps = [FiniteAlphaLandscape("relu", 1, 2.0, 0.0, a).rs(beta).energy - sph.energy for a in (16.0, 64.0)]
    assert abs(gaps[0]) > 1e-4
    assert gaps[0] / gaps[1] == pytest.approx(4.0, rel=0.1)


def test_energy_is_minus_the_beta_derivative_of_the_free_energy():
    land = FiniteAlphaLandscape("tanh", 1, 1.5, 0.0, 2.0)
    h = 1e-3
    p_plus, p_minus = land.rs(1.5 + h).free_energy, land.rs(1.5 - h).free_energy
    assert land.rs(1.5).energy == pytest.approx(-(p_plus - p_minus) / (2 * h), abs=1e-6)


def test_finite_alpha_ground_state_extrapolation_is_exact_for_the_linear_network():
    gs = ground_state_rs(FiniteAlphaLandscape("linear", 1, 1.5, 0.0, 2.0))
    assert gs.energy == pytest.approx(-1.5, abs=2e-4)        # -sqrt(c), c = 1.5^2
    assert gs.uncertainty < 1e-3


def test_finite_alpha_rejects_bad_parameters():
    with pytest.raises(ParameterError, match="alpha"):
        FiniteAlphaLandscape("tanh", 2, 1.0, 0.0, [1.0, 2.0, 3.0])
    with pytest.raises(ParameterError, match="alpha"):
        FiniteAlphaLandscape("tanh", 1, 1.0, 0.0, 0.0)
    with pytest.raises(ParameterError, match="beta"):
        FiniteAlphaLandscape("tanh", 1, 1.0, 0.0, 1.0).rs(-1.0)


# ---------------------------------------------------------------------------------------- symbolic action

def test_replica_limits_of_the_parisi_ansatz():
    d, q, q1, q0 = sp.symbols("d q q1 q0")
    rs = replica.replica_limit("rs")
    assert sp.simplify(rs["logdet"] - (sp.log(d - q) + q / (d - q))) == 0
    assert sp.simplify(rs["sum"] - (d - q)) == 0
    m = replica.m
    lam = 1 - q1 + m * (q1 - q0)
    expected = (1 - 1 / m) * sp.log(1 - q1) + sp.log(lam) / m + q0 / lam
    got = replica.replica_limit("1rsb")["logdet"].subs(d, 1)
    for values in ({q1: 0.6, q0: 0.2, m: 0.4}, {q1: 0.9, q0: 0.5, m: 0.8}):
        assert float(got.subs(values)) == pytest.approx(float(expected.subs(values)), rel=1e-12)
    assert replica.hubbard_stratonovich_check(4, 2) and replica.hubbard_stratonovich_check(6, 3)


def test_linear_saddle_is_the_spherical_closed_form_for_every_alpha():
    lin = replica.linear_saddle()
    assert lin["difference"] == 0
    assert "alpha" not in {str(s) for s in lin["action"].free_symbols}


def test_rs_stationarity_has_one_equation_per_order_parameter():
    S, sym = replica.rs_action(2)
    variables = [replica.q0, *sym["d"], *sym["q"], *sym["dh"], *sym["qh"]]
    eqs = replica.stationarity(S, variables)
    assert len(eqs) == 9 and all(e != 0 for e in eqs.values())
    # d S / d d_L = (beta^2/2) C_v - alpha_L dh_L: the last layer's conjugate is fixed by the readout
    top = eqs[sym["d"][-1]]
    assert sp.simplify(top - (replica.beta ** 2 * replica.C_v / 2 - sym["alpha"][-1] * sym["dh"][-1])) == 0


# ---------------------------------------------------------------------------------------- CLI

def test_cli_landscape_json_alpha_infinity(capsys):
    assert main(["landscape", "--activation", "sin", "--depth", "1", "--weight-var", "1.5", "--beta", "1",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    cw = 1.5
    assert out["xi"] == pytest.approx(cw * math.exp(-cw) * math.sinh(cw), rel=1e-12)
    assert out["xi_prime"] == pytest.approx(cw ** 2 * math.exp(-cw) * math.cosh(cw), rel=1e-12)
    assert out["xi_second"] == pytest.approx(cw ** 3 * math.exp(-cw) * math.sinh(cw), rel=1e-12)
    assert out["ground_state_energy_rs"] == pytest.approx(-math.sqrt(out["xi_prime"]), rel=1e-12)
    # C_W tanh C_W = 1.36 > 1: RS is not exact at T = 0 (THEORY.md 8.4)
    assert out["rs_exact_at_zero_temperature"] is False and out["phase"] in ("1RSB", "FRSB")
    assert out["ground_state_energy"] > out["ground_state_energy_rs"]   # RSB raises u_GS (RS over-estimates the depth)
    for key in ("rs_overlap", "rs_energy", "rs_entropy", "at_temperature"):
        assert math.isfinite(out[key])


def test_cli_landscape_relu_reports_infinite_curvature_as_null(capsys):
    assert main(["landscape", "--activation", "relu", "--depth", "1", "--weight-var", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["xi_second"] is None and out["xi_prime"] == pytest.approx(2.0)
    assert out["phase"] == "FRSB"


def test_cli_landscape_finite_alpha_text(capsys):
    assert main(["landscape", "--activation", "linear", "--depth", "1", "--weight-var", "1.5", "--alpha", "2",
                 "--beta", "1"]) == 0
    text = capsys.readouterr().out
    assert "alpha = 2.0" in text and "rs_energy" in text and "ground_state_energy_rs" in text


@pytest.mark.parametrize("argv, flag", [
    (["--activation", "nope", "--depth", "1", "--weight-var", "1"], "--activation"),
    (["--activation", "tanh", "--depth", "0", "--weight-var", "1"], "--depth"),
    (["--activation", "tanh", "--depth", "1", "--weight-var", "-2"], "--weight-var"),
    (["--activation", "tanh", "--depth", "1", "--weight-var", "1", "--beta", "-1"], "--beta"),
    (["--activation", "tanh", "--depth", "1", "--weight-var", "1", "--alpha", "0"], "--alpha"),
])
def test_cli_landscape_errors_name_the_flag(capsys, argv, flag):
    assert main(["landscape", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fieldnet: error:") and flag in err and "Traceback" not in err


def test_cli_landscape_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "s.png"
    assert main(["landscape", "--activation", "erf", "--depth", "1", "--weight-var", "1.5", "--plot", str(path)]) == 0
    assert path.stat().st_size > 1000


@pytest.mark.slow
def test_cli_landscape_finite_alpha_solves_1rsb_where_rs_is_unstable(capsys):
    # sin, L = 1, C_W = 2, alpha = 4, beta = 3: RS is AT-unstable (replicon < 0) and the 1RSB saddle lowers P
    # (tests/test_landscape_rsb.py checks the solver itself against the spherical model and finite differences)
    from fieldnet.landscape.summary import finite_alpha_summary

    cov = NetworkCovariance("sin", 1, 2.0, 0.0)
    out = finite_alpha_summary(cov, 4.0, beta=3.0, zero_temperature=False)
    assert out["rs_replicon"] < 0 and out["phase_at_beta"] == "1RSB"
    q1, q0 = out["rsb1_overlaps"]
    assert q1 > q0 + 0.1 and 0 < out["rsb1_m"] < 1
    assert out["rsb1_free_energy"] < out["rs_free_energy"] - 1e-3
