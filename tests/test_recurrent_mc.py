"""Recurrent and deep networks against Monte Carlo of real finite-width networks (THEORY.md 7.2, 7.5-7.7).

Tolerances come from the samples: |fit - theory| <= 5 standard errors of the fitted coefficient. The 1/n
coefficient is the slope of a weighted fit a + b/n + c/n^2 over widths 16..128 (the c/n^2 term absorbs the next
order, which is not small at n = 16 for T = 3).
"""

import numpy as np
import pytest

from fieldnet.analysis.recurrent import recurrent_finite_width, recurrent_kernel
from fieldnet.montecarlo.recurrent import recurrent_width_scan, sample_recurrent
from fieldnet.spec import RecurrentNetwork

X1 = np.array([[1.0, 0.5, -0.3]])
X2 = np.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.4]])
WIDTHS = (16, 32, 64, 128)
SIGMAS = 5.0


@pytest.mark.parametrize("architecture", ["recurrent", "deep"])
def test_sequential_sampler_matches_explicit_weights(architecture):
    """The exact conditional sampler (no n x n matrix) and explicit shared/independent weights give the same law."""
    net = RecurrentNetwork("tanh", 2, 1.6, 0.3, 1.0, architecture=architecture)
    a = sample_recurrent(net, X2, 8, 6000, seed=11, method="sequential")
    b = sample_recurrent(net, X2, 8, 6000, seed=12, method="explicit")
    for mean, sem in (("Q_mean", "Q_sem"), ("C_mean", "C_sem")):
        diff = getattr(a, mean) - getattr(b, mean)
        se = np.hypot(getattr(a, sem), getattr(b, sem))
        assert np.all(np.abs(diff) <= SIGMAS * se + 1e-12), (mean, np.max(np.abs(diff) / np.maximum(se, 1e-300)))
    # at n = 8 the 1/n effects are large: the RNN's E (1/n) h^0.h^2 is visibly above mean field
    if architecture == "recurrent":
        mf = recurrent_finite_width(net, X2)
        assert np.all(np.abs(a.Q_mean[0, 2].diagonal() - mf.C0[0, 2].diagonal()) > 8 * a.Q_sem[0, 2].diagonal())


def _check(net, X, n_networks, seed, entries="all"):
    theory = recurrent_finite_width(net, X, readout=True)
    scan = recurrent_width_scan(net, X, WIDTHS, n_networks, seed=seed)
    fit = scan.fit("Q", order=2)
    dev = np.abs(fit.slope - theory.C1) / fit.slope_se
    assert np.all(dev <= SIGMAS), (net.describe(), dev.max(), fit.slope, theory.C1)
    assert np.all(np.abs(fit.intercept - theory.C0) <= SIGMAS * fit.intercept_se + 1e-12)
    aux = scan.fit("C", order=2)
    fluct = np.abs(aux.slope - theory.Caux1) <= SIGMAS * aux.slope_se + 1e-12
    assert np.all(fluct), (aux.slope, theory.Caux1)
    var = scan.fit("C_var", order=1)                # n Var(C_tt[h]) -> Sigma_(tt)(tt)
    sig = theory.sigma_diagonal()
    assert np.all(np.abs(var.intercept - sig) <= SIGMAS * var.intercept_se + 1e-12), (var.intercept, sig)
    readout = scan.fit("P", order=2)                # E (1/n) phi(h^s).phi(h^t): the readout two-point function
    assert np.all(np.abs(readout.slope - theory.P1) <= SIGMAS * readout.slope_se + 1e-12), (readout.slope, theory.P1)
    assert np.all(np.abs(readout.intercept - theory.P0) <= SIGMAS * readout.intercept_se + 1e-12)
    qvar = scan.fit("Q_var", order=2)               # n Var((1/n)|h_t|^2), THEORY 7.5 (**)
    assert np.all(np.abs(qvar.intercept - theory.Q_var) <= SIGMAS * qvar.intercept_se), (qvar.intercept, theory.Q_var)
    return theory, fit


@pytest.mark.slow
@pytest.mark.parametrize("activation, cw, cb", [("tanh", 1.5, 0.2), ("erf", 0.8, 0.1), ("erf", 2.5, 0.1)])
@pytest.mark.parametrize("architecture", ["recurrent", "deep"])
def test_c1_against_monte_carlo(activation, cw, cb, architecture):
    net = RecurrentNetwork(activation, 3, cw, cb, 1.0, architecture=architecture)
    seed = {"tanh": 100, "erf": 200}[activation] + int(10 * cw) + (architecture == "deep")   # fixed, not hash()
    _check(net, X1, 60000, seed=seed)


@pytest.mark.slow
def test_symmetric_case_off_diagonal_against_monte_carlo():
    """Odd phi, C_b = 0, first-step input: C1 equal-time as in the DNN, off-diagonal O(1/n) means from E[WW]."""
    net = RecurrentNetwork("erf", 3, 1.3, 0.0, 1.0)
    theory, fit = _check(net, X1, 60000, seed=7)
    assert abs(theory.C1[1, 3, 0, 0]) > 10 * fit.slope_se[1, 3, 0, 0]    # a test that could fail


@pytest.mark.slow
def test_repeated_input_two_inputs_against_monte_carlo():
    X = np.random.default_rng(3).normal(size=(2, 3, 4))
    net = RecurrentNetwork("tanh", 2, 1.2, 0.05, 0.8, input_mode="every")
    _check(net, X, 40000, seed=21)


@pytest.mark.slow
def test_recurrent_fluctuates_more_than_deep_in_monte_carlo():
    """'RNNs converge more slowly' as a measured number: n Var((1/n)|h_3|^2), RNN / DNN (tanh, shared bias)."""
    net = RecurrentNetwork("tanh", 3, 1.0, 0.1, 1.0)
    cmp = {}
    for arch in ("recurrent", "deep"):
        fit = recurrent_width_scan(net.with_architecture(arch), X1, WIDTHS, 30000, seed=41 + len(arch)).fit("Q_var", 2)
        cmp[arch] = (fit.intercept[3, 0], fit.intercept_se[3, 0])
    (r, sr), (d, sd) = cmp["recurrent"], cmp["deep"]
    ratio = r / d
    se = ratio * np.hypot(sr / r, sd / d)
    fn_ratio = recurrent_finite_width(net, X1).Q_var[3, 0] / recurrent_finite_width(
        net.with_architecture("deep"), X1).Q_var[3, 0]
    assert ratio - 1 > SIGMAS * se
    assert abs(ratio - fn_ratio) < SIGMAS * se, (ratio, se, fn_ratio)


@pytest.mark.slow
def test_relu_mean_field_cross_time_against_monte_carlo():
    """ReLU (non-zero mean) RNN, two inputs: every two-time entry of C0 is the infinite-width limit of the MC fit."""
    net = RecurrentNetwork("relu", 3, 1.8, 0.0, 1.0)
    theory = recurrent_kernel(net, X2).C0
    fit = recurrent_width_scan(net, X2, (32, 64, 128), 20000, seed=77).fit("Q", order=1)
    assert np.all(np.abs(fit.intercept - theory) <= SIGMAS * fit.intercept_se + 1e-12)
    assert np.abs(theory[1, 3, 0, 0]) > 20 * fit.intercept_se[1, 3, 0, 0]      # cross-time entries are not small


@pytest.mark.slow
def test_two_inputs_first_step_against_monte_carlo():
    """Every (s, t, a, b) entry of C1 for two inputs (erf, shared bias), plus Caux1, Sigma and n Var."""
    _check(RecurrentNetwork("erf", 3, 1.2, 0.15, 1.3), X2, 30000, seed=9)


@pytest.mark.slow
@pytest.mark.parametrize("architecture, seed", [("recurrent", 301), ("deep", 302)])
def test_relu_c1_against_monte_carlo(architecture, seed):
    """ReLU at 1/n, two inputs, T = 3: the second derivatives' delta functions are conditioned out exactly
    (E[delta(z_a) f] = N(0; 0, C_aa) E[f | z_a = 0]); C1, Caux1, n Var and the readout P1 against MC fits (measured:
    every entry within 2.0 sigma (RNN) and 3.3 sigma (DNN); the DNN's C1 is also fn.finite_width's K1 exactly,
    test_recurrent.py, since its relu C1 of about -0.18 is not resolved here)."""
    net = RecurrentNetwork("relu", 3, 1.8, 0.1, 1.0, architecture=architecture)
    theory, fit = _check(net, X2, 30000, seed=seed)
    if architecture == "recurrent":   # the cross-time 1/n mean, 1.01 against a standard error of 0.13
        assert np.abs(theory.C1[1, 3, 0, 0]) > 5 * fit.slope_se[1, 3, 0, 0]
