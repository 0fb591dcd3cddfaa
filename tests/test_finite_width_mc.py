"""Theory vs Monte Carlo of real finite-width networks: K1, the four-point vertex V (several inputs) and the NTK's
relative variance, extrapolated in 1/n with :mod:`fieldnet.montecarlo.finite_width`. Tolerance: 5 standard errors
of the fitted coefficient (computed from the samples)."""

import numpy as np
import pytest

import fieldnet as fn
from fieldnet.analysis.finite_width import finite_width
from fieldnet.montecarlo.finite_width import finite_width_scan

X = np.random.default_rng(11).standard_normal((3, 8))
SETTINGS = [("relu", 2.0, 0.0, 4), ("tanh", 1.5, 0.05, 2), ("tanh", 1.0, 0.0, 4),
            ("erf", 2.0, 0.1, 3)]


def _z(estimate, se, theory):
    ok = se > 0
    return np.abs(estimate - theory)[ok] / se[ok]


@pytest.mark.slow
@pytest.mark.parametrize("name, cw, cb, depth", SETTINGS)
def test_finite_width_theory_vs_monte_carlo(name, cw, cb, depth):
    net = fn.DeepNetwork(depth, name, weight_var=cw, bias_var=cb)
    theory = finite_width(net, X, ntk=True)
    scan = finite_width_scan(net, X, widths=(32, 64, 128), n_networks=(3000, 1500, 750), seed=5)
    v = scan.fit("V")
    k1 = scan.fit("G")
    var = scan.fit("ntk_relative_variance", scaled=True)
    idx = np.arange(3)
    rel = (theory.A + 2 * theory.B) / theory.Theta[:, idx, idx] ** 2
    worst = {"V": _z(v.intercept, v.intercept_se, theory.V).max(),
             "K1": _z(k1.slope, k1.slope_se, theory.K1).max(),
             "Var(H)/E[H]^2 x n": _z(var.intercept, var.intercept_se, rel).max()}
    print(f"{name} C_W={cw} C_b={cb} depth {depth}: largest |theory - MC| / se:",
          {k: round(float(x), 2) for k, x in worst.items()})
    assert max(worst.values()) < 5, worst
