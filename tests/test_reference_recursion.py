"""An independent high-precision evaluation of the deep NNGP / NTK recursion (THEORY.md sec. 1) vs
``fieldnet.kernels``.

The reference is written directly in mpmath from the textbook formulas, with no use of fieldnet's sympy
expressions:

    K^(1)_ab     = C_b^(1) + C_W^(1) x_a.x_b / n_0,          Theta^(1) = K^(1)
    K^(l+1)_ab   = C_b^(l+1) + C_W^(l+1) <phi(u) phi(v)>,    (u, v) ~ N(0, K^(l) on {a, b})
    Theta^(l+1)_ab = K^(l+1)_ab + C_W^(l+1) <phi'(u) phi'(v)> Theta^(l)_ab

with the two-point averages of relu, erf, sin, gelu and abs typed from THEORY 2.2 (mp.dps = 30). fieldnet's
``DeepNetwork(depth)`` has depth + 1 weight layers, and ``kernels(...).nngp[l - 1]`` is K^(l).

Tolerance for the closed-form activations: |fieldnet - reference| <= 1e-10 * sqrt(R_aa R_bb) for entry (a, b)
of R = K or Theta (plain relative error on the diagonal; off-diagonal entries are measured against their
natural scale, since a near-orthogonal pair can have K_ab ~ 0). Measured worst error over all cases below:
1.1e-15 scaled, 6.9e-15 plain relative (float64 rounding); with a near-parallel pair (1 - rho ~ 1e-10) the
relu / abs NTK error rises to 2.8e-12 / 1.1e-11, the float64 conditioning of arccos(rho) near rho = 1.

tanh has no closed form. Its reference uses mpmath.quad (1-D, diagonal entries) and, for pairs, a 2-D trapezoid
rule in whitened coordinates at mp.dps = 20 (THEORY 7.8: exponential convergence, unlike Gauss-Hermite for
tanh). Nested 2-D mpmath.quad took 34 s per integral; the trapezoid agrees with it to 18 digits at K = 2.5 and
halving the step changes it by < 1e-17 (measured), i.e. far below the errors being measured. fieldnet's adaptive
whitened trapezoid quadrature is measured at <= 1e-15 relative for input variances up to K = 16; the tests assert
the documented contract, 1e-12 (``TANH_RTOL``).
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

import fieldnet as fn

mp.mp.dps = 30

RTOL = 1e-10
SEED = 20240611


@pytest.fixture(autouse=True)
def _mp_precision():
    """mp.dps = 30 for every test, whatever other modules set at import (tanh references use dps 20 inside)."""
    with mp.workdps(30):
        yield


def _inputs(n, n0, seed=SEED):
    return np.random.default_rng(seed).normal(size=(n, n0))


# ---------------------------------------------------------------------------------------------------------
# THEORY 2.2 closed forms in mpmath: (pp, dd) = (<phi(u) phi(v)>, <phi'(u) phi'(v)>) for
# (u, v) ~ N(0, [[a, c], [c, b]]); rho is passed so the diagonal uses rho = 1 exactly


def _relu(a, b, c, rho):
    th = mp.acos(rho)
    return mp.sqrt(a * b) * (mp.sin(th) + (mp.pi - th) * mp.cos(th)) / (2 * mp.pi), (mp.pi - th) / (2 * mp.pi)


def _abs(a, b, c, rho):
    pp = 2 / mp.pi * mp.sqrt(a * b) * (mp.sqrt(1 - rho * rho) + rho * mp.asin(rho))
    return pp, 2 / mp.pi * mp.asin(rho)


def _erf(a, b, c, rho):
    pp = 2 / mp.pi * mp.asin(2 * c / mp.sqrt((1 + 2 * a) * (1 + 2 * b)))
    return pp, 4 / mp.pi / mp.sqrt((1 + 2 * a) * (1 + 2 * b) - 4 * c * c)


def _sin(a, b, c, rho):
    e = mp.exp(-(a + b) / 2)
    return e * mp.sinh(c), e * mp.cosh(c)


def _gelu(a, b, c, rho):
    delta = (1 + a) * (1 + b) - c * c
    s = mp.asin(c / mp.sqrt((1 + a) * (1 + b)))
    pp = c / 4 + c * s / (2 * mp.pi) + (a * b + c * c * (1 / (1 + a) + 1 / (1 + b) - 1)) / (2 * mp.pi * mp.sqrt(delta))
    dd = (mp.mpf(1) / 4 + s / (2 * mp.pi) + c * (1 / (1 + a) + 1 / (1 + b)) / (2 * mp.pi * mp.sqrt(delta))
          + c / (2 * mp.pi * delta ** mp.mpf(1.5)))
    return pp, dd


CLOSED = {"relu": _relu, "abs": _abs, "erf": _erf, "sin": _sin, "gelu": _gelu}


def reference_recursion(pair, X, depth, weight_var, bias_var):
    """(K, Theta) as lists of mpmath matrices, layers 1 .. depth + 1. ``pair(a, b, c, rho)`` -> (pp, dd)."""
    n, n0 = X.shape
    L = depth + 1
    cw = list(weight_var) if np.ndim(weight_var) else [weight_var] * L
    cb = list(bias_var) if np.ndim(bias_var) else [bias_var] * L
    cw, cb = [mp.mpf(v) for v in cw], [mp.mpf(v) for v in cb]
    xs = [[mp.mpf(float(v)) for v in row] for row in X]  # float64 inputs are exact in mpmath
    K = mp.matrix(n, n)
    for i in range(n):
        for j in range(n):
            K[i, j] = cb[0] + cw[0] * mp.fsum(p * q for p, q in zip(xs[i], xs[j])) / n0
    Ks, Ts = [K], [K.copy()]
    for layer in range(1, L):
        K, T = Ks[-1], Ts[-1]
        K2, T2 = mp.matrix(n, n), mp.matrix(n, n)
        for i in range(n):
            for j in range(i, n):
                a, b, c = K[i, i], K[j, j], K[i, j]
                rho = mp.mpf(1) if i == j else max(-1, min(1, c / mp.sqrt(a * b)))
                pp, dd = pair(a, b, c, rho)
                K2[i, j] = K2[j, i] = cb[layer] + cw[layer] * pp
                T2[i, j] = T2[j, i] = K2[i, j] + cw[layer] * dd * T[i, j]
        Ks.append(K2)
        Ts.append(T2)
    return Ks, Ts


def scaled_errors(values, ref):
    """max over entries of |value - ref| / sqrt(ref_aa ref_bb), and the plain relative error max |d| / |ref|."""
    worst_scaled = worst_rel = 0.0
    n = ref.rows
    for i in range(n):
        for j in range(n):
            d = abs(mp.mpf(float(values[i, j])) - ref[i, j])
            worst_scaled = max(worst_scaled, float(d / mp.sqrt(ref[i, i] * ref[j, j])))
            if ref[i, j] != 0:
                worst_rel = max(worst_rel, float(d / abs(ref[i, j])))
    return worst_scaled, worst_rel


def compare(result, Ks, Ts):
    """Worst scaled and relative errors over all layers, for the NNGP and the NTK."""
    out = {}
    for name, arr, refs in (("nngp", result.nngp, Ks), ("ntk", result.ntk, Ts)):
        assert arr.shape == (len(refs), refs[0].rows, refs[0].rows)
        errs = [scaled_errors(arr[l], refs[l]) for l in range(len(refs))]
        out[name] = (max(e[0] for e in errs), max(e[1] for e in errs))
    return out


# ---------------------------------------------------------------------------------------------------------
# closed-form activations: required agreement 1e-10

VARIANCES = [(2.0, 0.0), (1.5, 0.2), (0.8, 1.0)]


@pytest.mark.parametrize("activation", list(CLOSED))
@pytest.mark.parametrize("depth", [1, 3, 5])
@pytest.mark.parametrize("weight_var,bias_var", VARIANCES)
def test_closed_form_recursion_vs_mpmath(activation, depth, weight_var, bias_var):
    X = _inputs(4, 5)
    net = fn.DeepNetwork(depth, activation, weight_var=weight_var, bias_var=bias_var)
    result = fn.kernels(net, X)
    Ks, Ts = reference_recursion(CLOSED[activation], X, depth, weight_var, bias_var)
    errors = compare(result, Ks, Ts)
    for name, (scaled, _) in errors.items():
        assert scaled <= RTOL, (activation, depth, weight_var, bias_var, name, errors)


@pytest.mark.parametrize("activation", ["relu", "erf", "gelu"])
def test_per_layer_variances_vs_mpmath(activation):
    """Per-layer C_W^(l), C_b^(l) (index 0 is layer 1)."""
    X = _inputs(3, 6, seed=SEED + 1)
    cw, cb = [1.3, 2.0, 0.7, 1.6], [0.1, 0.0, 0.5, 0.25]
    result = fn.kernels(fn.DeepNetwork(3, activation, weight_var=cw, bias_var=cb), X)
    Ks, Ts = reference_recursion(CLOSED[activation], X, 3, cw, cb)
    for name, (scaled, _) in compare(result, Ks, Ts).items():
        assert scaled <= RTOL, (activation, name)


@pytest.mark.parametrize("activation", ["relu", "abs", "erf"])
def test_parallel_and_duplicate_inputs_vs_mpmath(activation):
    """Inputs with rho = 1 exactly (a duplicate), rho = 1 - O(1e-10) and anti-parallel ones: the arccos forms must
    not lose accuracy where sqrt(ab - c^2) -> 0."""
    rng = np.random.default_rng(SEED + 2)
    x0 = rng.normal(size=5)
    X = np.stack([x0, x0.copy(), x0 + 1e-5 * rng.normal(size=5), -x0, rng.normal(size=5)])
    result = fn.kernels(fn.DeepNetwork(3, activation, weight_var=1.7, bias_var=0.05), X)
    Ks, Ts = reference_recursion(CLOSED[activation], X, 3, 1.7, 0.05)
    for name, (scaled, _) in compare(result, Ks, Ts).items():
        assert scaled <= RTOL, (activation, name)


# ---------------------------------------------------------------------------------------------------------
# tanh: mpmath quadrature reference


def _sech2(t):
    return 1 / mp.cosh(t) ** 2


def tanh_diag(K):
    """(<tanh(z)^2>, <sech(z)^4>) for z ~ N(0, K), by 1-D mpmath.quad at dps 20."""
    with mp.workdps(20):
        s = mp.sqrt(K)
        pts = [-mp.inf, -2, 0, 2, mp.inf]
        pp = mp.quad(lambda t: mp.npdf(t) * mp.tanh(s * t) ** 2, pts)
        dd = mp.quad(lambda t: mp.npdf(t) * _sech2(s * t) ** 2, pts)
    return +pp, +dd


def tanh_pair(a, b, c):
    """(<tanh u tanh v>, <sech^2 u sech^2 v>) by the trapezoid rule in whitened coordinates x, y ~ N(0, 1),
    u = sqrt(a) x, v = l21 x + l22 y, at dps 20. The poles of tanh at +-i pi/2 set the strip width
    pi / (2 sqrt(K)) and the step h = min(1/8, 0.2 / sqrt(max(a, b))) (error ~ exp(-2 pi d / h) << 1e-16);
    |x|, |y| <= 10 (Gaussian tail e^-50). The integrand is even under (x, y) -> (-x, -y), so only x >= 0 is
    summed."""
    with mp.workdps(20):
        a, b, c = mp.mpf(a), mp.mpf(b), mp.mpf(c)
        sa = mp.sqrt(a)
        l21 = c / sa
        l22 = mp.sqrt(max(b - l21 * l21, 0))
        h = min(mp.mpf(1) / 8, mp.mpf("0.2") / mp.sqrt(max(a, b)))
        n = int(mp.ceil(10 / h))
        ys = [h * j for j in range(-n, n + 1)]
        wy = [mp.exp(-y * y / 2) for y in ys]
        s1 = s2 = mp.mpf(0)
        for j in range(0, n + 1):
            x = h * j
            wx = mp.exp(-x * x / 2) * (1 if j == 0 else 2)
            tu = mp.tanh(sa * x)
            su = 1 - tu * tu
            m = l21 * x
            i1 = i2 = mp.mpf(0)
            for y, w in zip(ys, wy):
                tv = mp.tanh(m + l22 * y)
                i1 += w * tv
                i2 += w * (1 - tv * tv)
            s1 += wx * tu * i1
            s2 += wx * su * i2
        norm = h * h / (2 * mp.pi)
        return +(s1 * norm), +(s2 * norm)


def tanh_reference(X, depth, cw, cb):
    """The tanh recursion, diagonal entries by tanh_diag and pairs by tanh_pair (no closed form)."""
    def pair(a, b, c, rho):
        if rho == 1 and a == b == c:
            return tanh_diag(a)
        return tanh_pair(a, b, c)
    return reference_recursion(pair, X, depth, cw, cb)


# Accuracy contract for tanh (no closed form: adaptive whitened trapezoid quadrature, fieldnet.numeric.quadrature).
# Setting: a depth-1 network with C_W = K, C_b = 0 and two inputs with |x|^2 / n_0 = 1 and overlap rho = 0.6, so
# K^(1) = K [[1, .6], [.6, 1]]; relative error of layer 2's entries vs the mpmath reference (itself converged to
# ~1e-19). Measured (numpy 2.4 / scipy 1.17): <= 8.3e-16 for every K below and every entry; the earlier default,
# 64 x 64 Gauss-Hermite, was off by 2.3e-7 (K = 2) to 2.3e-2 (K = 16, NTK) -- THEORY.md 7.8.
TANH_VARIANCES = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0, 16.0)
TANH_RTOL = 1e-12  # the documented tolerance (README), ~1000x the measured error


def _unit_pair(rho, n0=8):
    """Two inputs with |x|^2 / n_0 = 1 and x_a.x_b / n_0 = rho."""
    e1, e2 = np.zeros(n0), np.zeros(n0)
    e1[0], e2[1] = 1, 1
    xa = math.sqrt(n0) * e1
    xb = math.sqrt(n0) * (rho * e1 + math.sqrt(1 - rho * rho) * e2)
    return np.stack([xa, xb])


@pytest.mark.parametrize("K", TANH_VARIANCES)
def test_tanh_quadrature_error_vs_variance(K):
    X = _unit_pair(0.6)
    result = fn.kernels(fn.DeepNetwork(1, "tanh", weight_var=K, bias_var=0.0), X)
    Ks, Ts = tanh_reference(X, 1, K, 0.0)
    for name, arr, ref in (("K", result.nngp[1], Ks[1]), ("Theta", result.ntk[1], Ts[1])):
        for i, j in ((0, 0), (0, 1)):
            err = float(abs(mp.mpf(float(arr[i, j])) - ref[i, j]) / abs(ref[i, j]))
            assert err <= TANH_RTOL, (K, name, i, j, err)


# deeper tanh networks: (depth, C_W, C_b, number of inputs); measured worst scaled error (|d| / sqrt(R_aa R_bb))
# over all layers <= 1.0e-15 (NNGP) and 5.0e-16 (NTK); asserted: TANH_RTOL
TANH_NETWORKS = (
    (3, 1.0, 0.0, 3),   # critical tanh, diag K^(1) = 0.74-1.36, shrinking with depth
    (2, 2.0, 0.1, 2),   # diag K^(1) = 1.6-2.0
    (1, 4.0, 0.2, 2),   # diag K^(1) = 3.2-4.0
)


@pytest.mark.parametrize("depth,cw,cb,n", TANH_NETWORKS)
def test_tanh_recursion_vs_mpmath(depth, cw, cb, n):
    X = _inputs(n, 4, seed=SEED + 3)
    result = fn.kernels(fn.DeepNetwork(depth, "tanh", weight_var=cw, bias_var=cb), X)
    Ks, Ts = tanh_reference(X, depth, cw, cb)
    for name, (scaled, _) in compare(result, Ks, Ts).items():
        assert scaled <= TANH_RTOL, (depth, cw, cb, name, scaled)
