"""``fieldnet demo``: derive, solve and evaluate something real in a few seconds."""

from __future__ import annotations

import time

import numpy as np

from fieldnet.numeric.kernels import kernels
from fieldnet.spec import DeepNetwork
from fieldnet.symbolic.recursions import mean_field_recursion
from fieldnet.symbolic.solve import solve_single_input


def run_demo(print_=print) -> dict:
    """Print the ReLU recursion, its closed-form solution, and kernels on random data.

    Returns the numbers it printed (for the tests)."""
    t0 = time.perf_counter()
    print_("== 1. The mean-field recursion of a deep ReLU network, derived by sympy ==")
    print_(str(mean_field_recursion("relu")))

    print_("\n== 2. One input, solved in closed form (chi = C_W/2; critical at C_W = 2) ==")
    sol = solve_single_input("relu")
    k_crit, t_crit = sol.at(C_W=2, C_b=0)
    print_(f"  at C_W = 2, C_b = 0:  K^(l) = {k_crit},  Theta^(l) = {t_crit}")

    print_("\n== 3. Kernels of 4 random inputs in 16 dimensions, depth L = 5 (6 weight layers) ==")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 16))
    net = DeepNetwork(depth=5, activation="relu", weight_var=2.0, bias_var=0.0)
    res = kernels(net, X)
    k1 = np.diag(res.nngp[0])
    print_("  output NNGP K^(6):\n" + np.array2string(res.nngp[-1], precision=4))
    print_("  output NTK Theta^(6):\n" + np.array2string(res.ntk[-1], precision=4))
    ratio = np.diag(res.ntk[-1]) / (6 * k1)
    print_(f"  check: Theta^(6)_aa / (6 K^(1)_aa) = {np.array2string(ratio, precision=12)}  (closed form: 1)")
    corr = res.nngp[:, 0, 1] / np.sqrt(res.nngp[:, 0, 0] * res.nngp[:, 1, 1])
    print_(f"  correlation of inputs 0 and 1 by layer: {np.array2string(corr, precision=4)}")

    print_("\n== 4. tanh: no closed form; the recursion keeps Gaussian averages for quadrature ==")
    rec = mean_field_recursion("tanh")
    print_("  K^(l+1)_ab = " + str(rec.entry("K")))
    tanh = kernels(DeepNetwork(depth=3, activation="tanh", weight_var=1.5, bias_var=0.05), X)
    print_("  output NNGP K^(4):\n" + np.array2string(tanh.nngp[-1], precision=4))
    print_(f"\ndone in {time.perf_counter() - t0:.1f} s")
    return {"ntk_ratio": ratio, "relu": res, "tanh": tanh}
