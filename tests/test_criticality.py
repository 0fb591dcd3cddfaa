"""Criticality and signal propagation (fieldnet.analysis.criticality, .universality, .plots; the CLI).

References: exact results quoted in THEORY.md 3.1-3.2 (relu C_W = 2, tanh C_W = 1, the scale-invariant
class C_W = 1/A2, the K* = 0 class coefficients a1, b1), hand expansions of the activations written out
below, an independent mpmath quadrature of the tanh critical line, and the kernel recursion
fieldnet.kernels iterated layer by layer (the depth scales).
"""

import json
import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import fieldnet as fn
from fieldnet.analysis.criticality import (CRITICAL_TOL, correlation_map, critical_line, critical_point,
                                           critical_weight_var, depth_scale, fixed_point_c, fixed_point_q,
                                           signal_propagation, signal_propagation_at_critical_line,
                                           susceptibilities, variance_map)
from fieldnet.analysis.universality import equal_susceptibility_points, universality_class
from fieldnet.cli import main
from fieldnet.errors import ActivationError, DivergenceError, ParameterError

# ---------------------------------------------------------------------------------------------
# closed-form critical points and universality classes


@pytest.mark.parametrize("name, cw, a2, a4", [
    ("relu", 2, sp.Rational(1, 2), sp.Rational(1, 2)),         # THEORY 3.2(a): A2 = A4 = 1/2
    ("linear", 1, 1, 1),
    ("abs", 1, 1, 1),                                          # a+ = 1, a- = -1
    ("leaky_relu(0.1)", sp.Rational(200, 101), sp.Rational(101, 200), sp.Rational(10001, 20000)),
])
def test_scale_invariant_class(name, cw, a2, a4):
    uc = universality_class(name)
    assert uc.name == "scale-invariant"
    assert uc.critical_weight_var == cw and uc.critical_bias_var == 0
    assert uc.A2 == a2 and uc.A4 == a4
    # the critical point is critical: chi_parallel = chi_perp = 1 at every q
    res = signal_propagation(name, float(cw), 0.0, q0=0.7)
    assert res.phase == "critical" and res.q_star == pytest.approx(0.7, rel=1e-14)
    assert res.chi_parallel == pytest.approx(1, abs=1e-14) and res.chi_perp == pytest.approx(1, abs=1e-14)
    assert math.isinf(res.xi_q) and math.isinf(res.xi_c)


@pytest.mark.parametrize("name, cw, a1, b1", [
    # tanh = x - x^3/3: phi1 = 1, phi2 = 0, phi3 = -2 -> a1 = b1 = -2 (THEORY 3.2(b))
    ("tanh", 1, -2, -2),
    # erf = (2/sqrt(pi)) (x - x^3/3): phi3/phi1 = -2, C_W = 1/phi1^2 = pi/4
    ("erf", sp.pi / 4, -2, -2),
    # sin: phi3/phi1 = -1
    ("sin", 1, -1, -1),
])
def test_k_star_zero_class(name, cw, a1, b1):
    uc = universality_class(name)
    assert uc.name == "K*=0"
    assert sp.simplify(uc.critical_weight_var - cw) == 0 and uc.critical_bias_var == 0
    assert uc.a1 == a1 and uc.b1 == b1 and uc.zeta == 1
    res = signal_propagation(name, float(cw), 0.0)
    assert res.q_star == 0.0 and res.phase == "critical"
    assert res.chi_perp == pytest.approx(1, abs=1e-14) and res.chi_parallel == pytest.approx(1, abs=1e-14)
    assert res.as_dict()["xi_c"] is None and res.as_dict()["xi_q"] is None


def test_half_stable_class_gelu_swish():
    # gelu = x Phi(x) = x/2 + x^2/sqrt(2 pi) - x^4/(6 sqrt(2 pi)) + ...: phi1 = 1/2, phi2 = 2/sqrt(2 pi), phi3 = 0
    #   a1 = (3/4)(phi2/phi1)^2 = 6/pi > 0, b1 = 8/pi
    gelu = universality_class("gelu")
    assert gelu.name == "half-stable"
    assert sp.simplify(gelu.a1 - 6 / sp.pi) == 0 and sp.simplify(gelu.b1 - 8 / sp.pi) == 0
    # swish = x sigmoid(x) = x/2 + x^2/4 - x^4/48: phi1 = 1/2, phi2 = 1/2, phi3 = 0 -> a1 = 3/4, b1 = 1
    swish = universality_class("swish")
    assert swish.name == "half-stable" and swish.a1 == sp.Rational(3, 4) and swish.b1 == 1


def test_marginal_class():
    # phi = x + x^2/2 - x^3/8: phi1 = 1, phi2 = 1, phi3 = -3/4 -> a1 = -3/4 + 3/4 = 0, b1 = 1/4
    uc = universality_class("x + x**2/2 - x**3/8")
    assert uc.name == "marginal" and uc.a1 == 0 and uc.b1 == sp.Rational(1, 4) and uc.zeta is None


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "cos", "exp", "step", "x**2"])
def test_no_criticality_class(name):
    uc = universality_class(name)
    assert uc.name == "none" and uc.critical_weight_var is None


@pytest.mark.parametrize("name", ["tanh", "erf", "sin", "gelu", "x*exp(-x**2) + x**2/3"])
def test_a1_equals_fourth_derivative_identity(name):
    # THEORY 3.2(b), small-K limit: (C_W/8) (phi^2)''''(0) = a1 at C_W = 1/phi1^2 (an independent route)
    uc = universality_class(name)
    x = sp.Symbol("x", real=True)
    phi = fn.get_activation(name).expr
    fourth = sp.diff(phi ** 2, x, 4).subs(x, 0)
    assert sp.simplify(uc.critical_weight_var * fourth / 8 - uc.a1) == 0


def test_equal_susceptibility_points_rdlt():
    # RDLT criticality chi_par = chi_perp = 1 at K* > 0 (THEORY 3.2(c)); none for tanh (<phi phi''> < 0)
    assert equal_susceptibility_points("tanh") == []
    (q, cw, cb), = equal_susceptibility_points("swish", (1e-2, 64.0))
    res = signal_propagation("swish", cw, cb, q0=q)
    assert res.q_star == pytest.approx(q, rel=1e-8)
    assert res.chi_parallel == pytest.approx(1, abs=1e-8) and res.chi_perp == pytest.approx(1, abs=1e-10)


def test_half_stable_critical_line_is_unstable_in_q():
    # gelu at C_b = 0.1: on the critical line chi_perp = 1, but the fixed point q* repels (chi_par > 1,
    # xi_q < 0), the half-stable behaviour of THEORY 3.2(c)
    res = signal_propagation_at_critical_line("gelu", 0.1)
    cw, q = critical_point("gelu", 0.1)
    assert res.weight_var == cw and res.q_star == pytest.approx(q, rel=1e-12)
    assert res.phase == "critical" and res.chi_parallel > 1 and res.xi_q < 0
    with pytest.raises(DivergenceError, match="bias_var: the critical line of gelu reaches C_b = 0 only at q"):
        signal_propagation_at_critical_line("gelu", 0.0)


def test_critical_weight_var_closed_forms():
    assert critical_weight_var("relu", 0.0) == 2.0
    assert critical_weight_var("tanh", 0.0) == 1.0
    assert critical_weight_var("erf", 0.0) == pytest.approx(math.pi / 4, rel=1e-15)
    with pytest.raises(ParameterError, match="bias_var: relu is scale-invariant"):
        critical_weight_var("relu", 0.1)


# ---------------------------------------------------------------------------------------------
# the tanh critical line against an independent quadrature


def _mp_average(f, q):
    mp.mp.dps = 25
    weight = (lambda z: f(z) * mp.exp(-z * z / (2 * q)) / mp.sqrt(2 * mp.pi * q))
    return mp.quad(weight, [-mp.inf, -5, 0, 5, mp.inf])


@pytest.mark.parametrize("q_star", [0.05, 0.3, 1.0, 2.5, 6.0])
def test_tanh_critical_line_against_mpmath(q_star):
    q = mp.mpf(q_star)
    cw_ref = 1 / _mp_average(lambda z: mp.sech(z) ** 4, q)              # THEORY 3.1: sigma_w^2 = 1/<sech^4>
    cb_ref = q - cw_ref * _mp_average(lambda z: mp.tanh(z) ** 2, q)     # sigma_b^2 = q* - sigma_w^2 <tanh^2>
    line = critical_line("tanh", [q_star])
    assert line.weight_var[0] == pytest.approx(float(cw_ref), rel=1e-12)
    assert line.bias_var[0] == pytest.approx(float(cb_ref), rel=1e-10, abs=1e-14)
    # the inverse: the critical C_W at that C_b, and the point is critical with q* as its fixed point
    assert critical_weight_var("tanh", float(cb_ref)) == pytest.approx(float(cw_ref), rel=1e-9)
    res = signal_propagation("tanh", float(cw_ref), float(cb_ref))
    assert res.q_star == pytest.approx(q_star, rel=1e-9)
    assert res.phase == "critical" and res.xi_c == math.inf and res.c_star == 1.0


def test_critical_line_separates_the_phases():
    line = critical_line("tanh", [0.5])
    cw, cb = float(line.weight_var[0]), float(line.bias_var[0])
    assert signal_propagation("tanh", cw * 0.98, cb).phase == "ordered"
    chaotic = signal_propagation("tanh", cw * 1.02, cb)
    assert chaotic.phase == "chaotic" and 0 < chaotic.c_star < 1


def test_critical_line_of_sigmoid_needs_large_q():
    # sigmoid has no K*=0 criticality; its Poole critical line enters C_b >= 0 only at large q*
    line = critical_line("sigmoid", [0.1, 1.0])
    assert np.all(line.bias_var < 0) and not np.any(line.physical)
    cw = critical_weight_var("sigmoid", 0.5)
    res = signal_propagation("sigmoid", cw, 0.5)
    assert res.phase == "critical" and res.q_star > 16  # found through the large-q (scipy quad) path


# ---------------------------------------------------------------------------------------------
# fixed points and susceptibilities


@pytest.mark.parametrize("name, cw, cb", [("tanh", 1.5, 0.05), ("tanh", 2.5, 0.1), ("erf", 2.0, 0.1),
                                         ("gelu", 1.0, 0.1), ("exp", 0.1, 0.0), ("cos", 1.0, 0.1)])
def test_q_star_is_a_fixed_point(name, cw, cb):
    q = fixed_point_q(name, cw, cb)
    assert q > 0
    assert float(variance_map(name, cw, cb, q)) == pytest.approx(q, rel=1e-13)


def test_relu_ordered_closed_form():
    # relu, C_b > 0, C_W < 2: q* = C_b / (1 - C_W/2), chi_par = chi_perp = C_W/2
    res = signal_propagation("relu", 1.5, 0.1)
    assert res.q_star == pytest.approx(0.1 / (1 - 0.75), rel=1e-14)
    assert res.chi_parallel == res.chi_perp == 0.75 and res.phase == "ordered" and res.c_star == 1.0
    assert res.xi_c == pytest.approx(-1 / math.log(0.75), rel=1e-15)


def test_q_star_zero_below_the_tanh_transition():
    res = signal_propagation("tanh", 0.5, 0.0)
    assert res.q_star == 0.0 and res.phase == "ordered"
    assert res.chi_perp == res.chi_parallel == 0.5           # Taylor limits C_W phi'(0)^2
    assert res.xi_q == pytest.approx(1 / math.log(2), rel=1e-15)


def test_chi_parallel_against_finite_differences():
    # chi_par = C_W d<phi^2>/dq from the derivative-free form vs a central difference of <phi^2>
    for name, q in [("tanh", 0.8), ("sigmoid", 2.0), ("relu", 1.3), ("gelu", 0.7)]:
        chi_par, _ = susceptibilities(name, 1.0, q)
        h = 1e-4
        fd = (variance_map(name, 1.0, 0.0, q + h) - variance_map(name, 1.0, 0.0, q - h)) / (2 * h)
        assert float(chi_par) == pytest.approx(float(fd), rel=1e-7)


def test_chaotic_correlation_fixed_point():
    c_star, chi_c = fixed_point_c("tanh", 2.5, 0.1)
    assert 0 < c_star < 1 and chi_c < 1
    q = fixed_point_q("tanh", 2.5, 0.1)
    assert float(correlation_map("tanh", 2.5, 0.1, c_star, q)) == pytest.approx(c_star, abs=1e-13)
    # odd phi without bias: c* = 0 exactly (the map is odd)
    assert fixed_point_c("tanh", 2.5, 0.0)[0] == 0.0
    assert fixed_point_c("erf", 2.0, 0.0)[0] == 0.0


@pytest.mark.parametrize("name, cw", [("relu", 3.0), ("relu", 2.0 + 1e-6), ("exp", 1.0)])
def test_no_fixed_point_raises(name, cw):
    with pytest.raises(DivergenceError, match="weight_var: no fixed point of the variance map"):
        fixed_point_q(name, cw, 0.1)


def test_bad_inputs():
    with pytest.raises(ParameterError, match="weight_var: must be > 0"):
        signal_propagation("tanh", -1.0, 0.0)
    with pytest.raises(ParameterError, match="bias_var: must be finite"):
        signal_propagation("tanh", 1.0, float("nan"))
    with pytest.raises(ParameterError, match="q_star"):
        critical_line("tanh", [-1.0])
    with pytest.raises(ActivationError, match="unknown name"):
        signal_propagation("nope", 1.0, 0.0)
    with pytest.raises(DivergenceError, match="chi_perp is infinite"):
        signal_propagation("step", 1.0, 0.1)


def test_depth_scale():
    assert depth_scale(1.0) == math.inf and depth_scale(1 + CRITICAL_TOL / 2) == math.inf
    assert depth_scale(math.exp(-0.25)) == pytest.approx(4.0, rel=1e-15)
    assert depth_scale(-math.exp(-0.5)) == pytest.approx(2.0, rel=1e-15)


# ---------------------------------------------------------------------------------------------
# depth scales against the iterated kernel recursion


def _two_inputs(q_star, cw, cb, c1):
    """Inputs x_a, x_b (n_0 = 2) with K^(1)_aa = K^(1)_bb = q* and K^(1)_ab = q* c1."""
    s = (q_star - cb) / cw                       # |x|^2 / n_0
    rho = (c1 * q_star - cb) / (cw * s)          # input correlation giving c^(1) = c1
    return math.sqrt(2 * s) * np.array([[1.0, 0.0], [rho, math.sqrt(1 - rho ** 2)]])


def _slope_from_decay(d, power):
    """chi from d_l ~ A chi^l (1 + alpha d_l^power): fit the ratios d_{l+1}/d_l linearly in d_l^power
    over the last 8 layers; the intercept has error O(d^(2 power))."""
    r = d[1:] / d[:-1]
    design = np.vstack([np.ones(8), d[:-1][-8:] ** power]).T
    return np.linalg.lstsq(design, r[-8:], rcond=None)[0][0]


@pytest.mark.parametrize("name, cw, cb, power", [
    ("tanh", 1.5, 0.05, 1.0),    # ordered, c* = 1
    ("tanh", 2.5, 0.1, 1.0),     # chaotic, c* ~ 0.66
    ("erf", 2.0, 0.1, 1.0),      # chaotic, closed-form kernels
    ("relu", 1.5, 0.1, 0.5),     # ordered; relu's correlation map has a (1-c)^(3/2) term at c = 1
])
def test_xi_c_against_kernel_recursion(name, cw, cb, power):
    res = signal_propagation(name, cw, cb)
    X = _two_inputs(res.q_star, cw, cb, res.c_star - 1e-3)
    K = fn.kernels(fn.DeepNetwork(25, name, cw, cb), X, ntk=False).nngp
    assert np.allclose(K[:, 0, 0], res.q_star, rtol=1e-12)     # the inputs sit at the fixed point q*
    c = K[:, 0, 1] / np.sqrt(K[:, 0, 0] * K[:, 1, 1])
    d = np.abs(c - res.c_star)
    assert d[-1] < d[0] * 0.5                                   # the correlation relaxes to c*
    xi = -1 / math.log(_slope_from_decay(d, power))
    # d falls from 1e-3 to ~1e-4 (1e-6 for relu); the fit leaves O(d^2) ~ 1e-7 relative
    assert xi == pytest.approx(res.xi_c, rel=2e-6)


@pytest.mark.parametrize("name, cw, cb", [("tanh", 1.5, 0.05), ("erf", 2.0, 0.1), ("sin", 2.0, 0.3)])
def test_xi_q_against_kernel_recursion(name, cw, cb):
    res = signal_propagation(name, cw, cb)
    q1 = res.q_star * (1 + 1e-3)
    X = np.full((1, 4), math.sqrt((q1 - cb) / cw))
    K = fn.kernels(fn.DeepNetwork(12, name, cw, cb), X, ntk=False).nngp[:, 0, 0]
    d = np.abs(K - res.q_star)
    keep = d > 1e-11 * res.q_star   # above the quadrature's resolution
    d = d[keep][-9:]
    xi = -1 / math.log(abs(_slope_from_decay(d, 1.0)))
    assert xi == pytest.approx(res.xi_q, rel=1e-5)   # measured <= 4e-7


# ---------------------------------------------------------------------------------------------
# the command line


def _run(capsys, *argv):
    code = main(["criticality", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_at_the_critical_line(capsys):
    code, out, err = _run(capsys, "--activation", "tanh", "--bias-var", "0.05", "--json")
    assert code == 0 and err == ""
    data = json.loads(out)  # exactly one JSON object
    for key in ("q_star", "c_star", "chi_parallel", "chi_perp", "xi_q", "xi_c", "phase", "critical_weight_var"):
        assert key in data
    assert data["phase"] == "critical" and data["xi_c"] is None and data["c_star"] == 1.0
    assert data["critical_weight_var"] == pytest.approx(critical_weight_var("tanh", 0.05), rel=1e-14)
    assert data["chi_perp"] == pytest.approx(1.0, abs=1e-12)


def test_cli_json_at_a_given_point(capsys):
    code, out, _ = _run(capsys, "--activation", "tanh", "--weight-var", "2.5", "--bias-var", "0.1", "--json")
    data = json.loads(out)
    assert code == 0 and "critical_weight_var" not in data
    ref = signal_propagation("tanh", 2.5, 0.1)
    assert data["phase"] == "chaotic" and data["c_star"] == ref.c_star and data["xi_c"] == ref.xi_c


def test_cli_text(capsys):
    code, out, _ = _run(capsys, "--activation", "relu")
    assert code == 0
    assert "relu at C_W = 2, C_b = 0 (the critical line at this C_b)" in out
    assert "phase            = critical" in out and "xi_c             = inf" in out


@pytest.mark.parametrize("argv, message", [
    (["--activation", "nope"], "--activation: unknown name 'nope'"),
    (["--activation", "relu", "--weight-var", "3"], "--weight-var: no fixed point"),
    (["--activation", "tanh", "--weight-var", "-1"], "--weight-var: must be > 0"),
    (["--activation", "relu", "--bias-var", "0.1"], "--bias-var: relu is scale-invariant"),
    (["--activation", "gelu"], "--bias-var: the critical line of gelu reaches C_b = 0 only at q* -> 0"),
    (["--activation", "tanh", "--plot", "/no/such/folder/x.png"], "--plot: folder"),
])
def test_cli_errors(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("fieldnet: error: ") and message in err and err.count("\n") == 1


def test_cli_plot(capsys, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import fieldnet.analysis.plots as plots

    calls = []
    real = plots.criticality_figure
    monkeypatch.setattr(plots, "criticality_figure",
                        lambda *a, **k: calls.append(a) or real(*a, **k, resolution=12, points=6))
    path = tmp_path / "erf.png"
    code, out, err = _run(capsys, "--activation", "erf", "--weight-var", "2", "--bias-var", "0.1", "--json",
                          "--plot", str(path))
    assert code == 0 and json.loads(out)["phase"] == "chaotic" and f"wrote {path}" in err
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot_without_matplotlib(capsys, monkeypatch):
    import sys

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)        # importing matplotlib now raises ImportError
    code, out, err = _run(capsys, "--activation", "tanh", "--json", "--plot", "x.png")
    assert code == 2 and out == ""                          # fails before printing any result
    assert "--plot: matplotlib is not installed" in err


def test_plots_draw():
    pytest.importorskip("matplotlib")
    from fieldnet.analysis.plots import depth_scales, plot_phase_diagram

    fig = plot_phase_diagram("erf", (0.5, 3.0), (0.0, 0.5), resolution=10, point=(2.0, 0.1))
    assert len(fig.axes) == 2  # the diagram and its colour bar
    xi_q, xi_c = depth_scales("relu", 0.1, [1.0, 1.5, 3.0])
    assert xi_c[1] == pytest.approx(-1 / math.log(0.75)) and np.isnan(xi_c[2])  # relu C_W = 3: no q*
