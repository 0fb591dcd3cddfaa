"""Closed-form single-input solutions (sympy summation) against the iterated recursion."""

import numpy as np
import pytest
import sympy as sp

from fieldnet import DeepNetwork, kernels
from fieldnet.symbolic.solve import solve_single_input


@pytest.mark.parametrize("activation, cw, cb", [
    ("relu", 2.0, 0.0), ("relu", 2.0, 0.3), ("relu", 1.3, 0.2), ("relu", 2.7, 0.0),
    ("linear", 1.0, 0.4), ("linear", 0.8, 0.1), ("leaky_relu(0.1)", 1.7, 0.25), ("abs", 1.0, 0.0),
])
def test_closed_form_matches_iterated_kernels(activation, cw, cb):
    sol = solve_single_input(activation)
    assert sol is not None
    X = np.array([[0.3, -1.2, 0.8]])
    depth = 6
    res = kernels(DeepNetwork(depth, activation, weight_var=cw, bias_var=cb), X)
    k1 = res.nngp[0, 0, 0]
    k_l, t_l = sol.at(C_W=sp.nsimplify(cw), C_b=sp.nsimplify(cb), K_1=sp.Float(k1, 30))
    l = sp.Symbol("l", integer=True, positive=True)
    for layer in range(1, depth + 2):
        assert float(k_l.subs(l, layer)) == pytest.approx(res.nngp[layer - 1, 0, 0], rel=1e-12)
        assert float(t_l.subs(l, layer)) == pytest.approx(res.ntk[layer - 1, 0, 0], rel=1e-12)


def test_relu_critical_point_gives_textbook_result():
    # THEORY.md 5.4 with lambda = C: at C_W = 2, C_b = 0, K^(l) = K_1 and Theta^(l) = l K_1
    k, t = solve_single_input("relu").at(C_W=2, C_b=0)
    l, k1 = sp.Symbol("l", integer=True, positive=True), sp.Symbol("K_1", positive=True)
    assert sp.simplify(k - k1) == 0 and sp.simplify(t - l * k1) == 0


def test_chi_definitions():
    assert solve_single_input("relu").chi_definition == sp.Symbol("C_W", positive=True) / 2
    assert solve_single_input("relu").critical_weight_var == 2
    assert solve_single_input("linear").critical_weight_var == 1


@pytest.mark.parametrize("activation", ["erf", "tanh", "sin", "gelu"])
def test_nonlinear_recursions_have_no_closed_form(activation):
    assert solve_single_input(activation) is None
