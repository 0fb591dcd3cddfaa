"""Lowered integrators for the replica layer term: tilted single-neuron averages, compiled with numba.

The finite-alpha replica action (:mod:`fieldnet.landscape.finite_alpha`) needs, for each layer, the
layer term G = E_outer ln Z with the tilted one-neuron partition function

    Z(mu, h) = E_eta exp(a phi(z)^2 + h phi(z)),   z = mu + sigma eta,   eta ~ N(0, 1),

and its tilted moments <phi>, <phi^2>, <eta>, <eta^2>, <phi eta>. The derivatives of ln Z in the
centre mu follow without differentiating phi (Stein's lemma on eta):

    d ln Z / d mu = <eta> / sigma,     d^2 ln Z / d mu^2 = (<eta^2> - <eta>^2 - 1) / sigma^2,
    d^2 ln Z / d mu d h = (<phi eta> - <phi><eta>) / sigma,   d^2 ln Z / dh^2 = <phi^2> - <phi>^2,

so kinked activations (relu) need no delta functions. The inner integral over eta is done in the log
domain: a coarse scan locates the window where the exponent is within 60 of its maximum (widening the
scan until the window is interior, so large tilts at low temperature are followed), then composite
8-point Gauss–Legendre panels of width <= 0.25 cover the window, with panel edges at phi's kinks.
Outer averages are tensor rules over the independent standard normals: (zeta, y) for replica symmetry,
(zeta0, y0) and (zeta1, y1) for one-step RSB. Gauss–Hermite (probabilists' weights) by default; for the centre
zeta, :func:`kink_rule` (panels refined at phi's kinks, on the inner scale) or :func:`centre_grid` (a uniform grid
in mu, for smooth phi under a strong tilt, where ln Z(mu) has near-kinks that Gauss–Hermite nodes miss).

The module is generated per activation from its sympy expression by
:func:`fieldnet.numeric.codegen.function_source` (sympy's printer) and cached on disk, like the
mean-field integrators; :func:`tilted_module` returns it.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from fieldnet.numeric.codegen import breakpoints, function_source
from fieldnet.numeric.lowering import load_generated
from fieldnet.symbolic.activations import get_activation
from fieldnet.symbolic.activations import x as _x

GENERATOR_VERSION = "tilted-2"

# Indices of the per-layer results written by rs_layer / rsb1_layer (see _KERNELS).
G, D, Q1, Q0, GD, GC1, GC0, LHH, LHM, LMM = range(10)
N_RESULTS = 10

_KERNELS = r'''
SQRT2PI = math.sqrt(2.0 * math.pi)
GL_X = np.array([-0.9602898564975363, -0.7966664774136267, -0.5255324099163290, -0.1834346424956498,
                 0.1834346424956498, 0.5255324099163290, 0.7966664774136267, 0.9602898564975363])
GL_W = np.array([0.1012285362903763, 0.2223810344533745, 0.3137066458778873, 0.3626837833783620,
                 0.3626837833783620, 0.3137066458778873, 0.2223810344533745, 0.1012285362903763])
WINDOW = 60.0      # the integrand is kept where the exponent is within WINDOW of its maximum
PANEL = 0.25       # the widest Gauss-Legendre panel, in units of the prior's standard deviation


@njit(cache=True)
def exponent(eta, mu, sig, a, h):
    p = phi(mu + sig * eta)
    return -0.5 * eta * eta + a * p * p + h * p


@njit(cache=True)
def window(mu, sig, a, h):
    """(lo, hi, max) of the eta-window where the exponent is within WINDOW of its maximum."""
    R = 16.0
    for attempt in range(12):
        n = 161
        step = 2.0 * R / (n - 1)
        best = -np.inf
        ibest = 0
        vals = np.empty(n)
        for i in range(n):
            e = exponent(-R + i * step, mu, sig, a, h)
            vals[i] = e
            if e > best:
                best = e
                ibest = i
        if not math.isfinite(best):
            return 0.0, 0.0, best
        lo = 0
        while lo < ibest and vals[lo] < best - WINDOW:
            lo += 1
        hi = n - 1
        while hi > ibest and vals[hi] < best - WINDOW:
            hi -= 1
        if lo > 0 and hi < n - 1:
            a_lo = -R + (lo - 1) * step
            a_hi = -R + (hi + 1) * step
            # refine the maximum around the best coarse node
            left = -R + max(ibest - 1, 0) * step
            for j in range(41):
                e = exponent(left + j * step / 20.0, mu, sig, a, h)
                if e > best:
                    best = e
            return a_lo, a_hi, best
        R *= 2.0
    return -R, R, np.inf   # no interior window: the tilt outgrows the Gaussian prior (divergent)


@njit(cache=True)
def inner(mu, sig, a, h, out):
    """out = [ln Z, <phi>, <phi^2>, <eta>, <eta^2>, <phi eta>] for Z = E_eta exp(a phi^2 + h phi)."""
    lo, hi, top = window(mu, sig, a, h)
    if not math.isfinite(top):
        out[0] = np.inf
        return
    edges = np.empty(len(KINKS) + 2)
    ne = 0
    edges[ne] = lo
    ne += 1
    for k in KINKS:
        t = (k - mu) / sig
        if t > lo and t < hi:
            edges[ne] = t
            ne += 1
    edges[ne] = hi
    ne += 1
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    s5 = 0.0
    for e in range(ne - 1):
        left = edges[e]
        right = edges[e + 1]
        npan = int(math.ceil((right - left) / PANEL))
        if npan < 1:
            npan = 1
        width = (right - left) / npan
        for p in range(npan):
            c = left + (p + 0.5) * width
            for g in range(8):
                eta = c + 0.5 * width * GL_X[g]
                ph = phi(mu + sig * eta)
                w = 0.5 * width * GL_W[g] * math.exp(-0.5 * eta * eta + a * ph * ph + h * ph - top)
                s0 += w
                s1 += w * ph
                s2 += w * ph * ph
                s3 += w * eta
                s4 += w * eta * eta
                s5 += w * ph * eta
    out[0] = top + math.log(s0) - math.log(SQRT2PI)
    out[1] = s1 / s0
    out[2] = s2 / s0
    out[3] = s3 / s0
    out[4] = s4 / s0
    out[5] = s5 / s0


@njit(cache=True, parallel=True)
def rs_layer(c, v, a, qhat, zn, zw, xn, xw, res):
    """Replica-symmetric layer averages over (zeta, y) ~ N(0, 1)^2: mu = sqrt(c) zeta, h = sqrt(2 qhat) y.

    (zn, zw) is the rule for zeta (Gauss–Hermite, or panels refined at phi's kinks), (xn, xw) for y.

    res[G] = E ln Z, res[D] = E<phi^2>, res[Q1] = E<phi>^2, res[GD] = E[Z_mumu / Z] / 2,
    res[GC1] = E[(Z_mu / Z)^2] / 2, res[LHH], res[LHM], res[LMM] = E of the squared second
    derivatives of ln Z in (h, h), (h, mu), (mu, mu). res[Q0] = res[GC0] = 0. res[G] = inf if Z diverges.
    """
    n = len(zn)
    sig = math.sqrt(v)
    rc = math.sqrt(c)
    rq = math.sqrt(2.0 * qhat)
    part = np.zeros((n, N_RESULTS))
    for i in prange(n):
        out = np.empty(6)
        for j in range(len(xn)):
            inner(rc * zn[i], sig, a, rq * xn[j], out)
            w = zw[i] * xw[j]
            if not math.isfinite(out[0]):
                part[i, G] = np.inf
                continue
            m1, m2, e1, e2, pe = out[1], out[2], out[3], out[4], out[5]
            part[i, G] += w * out[0]
            part[i, D] += w * m2
            part[i, Q1] += w * m1 * m1
            part[i, GD] += w * 0.5 * (e2 - 1.0) / v
            part[i, GC1] += w * 0.5 * e1 * e1 / v
            hh = m2 - m1 * m1
            hm = (pe - m1 * e1) / sig
            mm = (e2 - e1 * e1 - 1.0) / v
            part[i, LHH] += w * hh * hh
            part[i, LHM] += w * hm * hm
            part[i, LMM] += w * mm * mm
    for k in range(N_RESULTS):
        res[k] = 0.0
        for i in range(n):
            res[k] += part[i, k]


@njit(cache=True, parallel=True)
def rsb1_layer(c0, c1, v, a, qh0, qh1, m, xn, xw, res):
    """One-step RSB layer averages: outer (zeta0, y0), inner block (zeta1, y1), Parisi parameter m.

    mu = sqrt(c0) zeta0 + sqrt(c1 - c0) zeta1, h = sqrt(2 qh0) y0 + sqrt(2 (qh1 - qh0)) y1, and block
    weights w1 = Z^m / E_1[Z^m]. res[G] = (1/m) E_0 ln E_1 Z^m, res[D] = E w1 <phi^2>,
    res[Q1] = E w1 <phi>^2, res[Q0] = E_0 (E_1 w1 <phi>)^2, res[GD] = E w1 Z_mumu / (2 Z),
    res[GC1] = E w1 (Z_mu / Z)^2 / 2, res[GC0] = E_0 (E_1 w1 Z_mu / Z)^2 / 2.
    """
    n = len(xn)
    sig = math.sqrt(v)
    r0 = math.sqrt(c0)
    r1 = math.sqrt(max(c1 - c0, 0.0))
    s0 = math.sqrt(2.0 * qh0)
    s1 = math.sqrt(2.0 * max(qh1 - qh0, 0.0))
    part = np.zeros((n * n, N_RESULTS))
    for ij in prange(n * n):
        i = ij // n
        j = ij - i * n
        out = np.empty(6)
        logz = np.empty(n * n)
        mom = np.empty((n * n, 6))
        top = -np.inf
        bad = False
        for k in range(n):
            for l in range(n):
                inner(r0 * xn[i] + r1 * xn[k], sig, a, s0 * xn[j] + s1 * xn[l], out)
                if not math.isfinite(out[0]):
                    bad = True
                kl = k * n + l
                logz[kl] = m * out[0]
                for t in range(6):
                    mom[kl, t] = out[t]
                if logz[kl] > top:
                    top = logz[kl]
        w0 = xw[i] * xw[j]
        if bad:
            part[ij, G] = np.inf
            continue
        norm = 0.0
        for k in range(n):
            for l in range(n):
                norm += xw[k] * xw[l] * math.exp(logz[k * n + l] - top)
        mphi = 0.0
        mb = 0.0
        for k in range(n):
            for l in range(n):
                kl = k * n + l
                w1 = xw[k] * xw[l] * math.exp(logz[kl] - top) / norm
                m1, m2, e1, e2 = mom[kl, 1], mom[kl, 2], mom[kl, 3], mom[kl, 4]
                part[ij, D] += w0 * w1 * m2
                part[ij, Q1] += w0 * w1 * m1 * m1
                part[ij, GD] += w0 * w1 * 0.5 * (e2 - 1.0) / v
                part[ij, GC1] += w0 * w1 * 0.5 * e1 * e1 / v
                mphi += w1 * m1
                mb += w1 * e1 / sig
        part[ij, G] = w0 * (top + math.log(norm)) / m
        part[ij, Q0] = w0 * mphi * mphi
        part[ij, GC0] = w0 * 0.5 * mb * mb
    for k in range(N_RESULTS):
        res[k] = 0.0
        for ij in range(n * n):
            res[k] += part[ij, k]
'''


def module_source(activation) -> str:
    """The generated numba source for one activation: phi, its kinks, and the layer integrators."""
    act = get_activation(activation)
    kinks = breakpoints(act.expr, _x)
    header = (f'"""Tilted layer integrators for activation {act.name} (generated by fieldnet.landscape.tilted)."""\n'
              "import math\nimport numpy as np\nfrom numba import njit, prange\n\n"
              f"N_RESULTS = {N_RESULTS}\nG, D, Q1, Q0, GD, GC1, GC0, LHH, LHM, LMM = range({N_RESULTS})\n"
              f"KINKS = np.array({[float(k) for k in kinks]!r} + [0.0])[:{len(kinks)}]\n\n")
    phi = function_source("phi", (_x,), act.expr, doc=f"phi(x) = {act.expr}")
    return header + phi + _KERNELS


@lru_cache(maxsize=32)
def tilted_module(activation):
    """The compiled (disk-cached) module of :func:`module_source` for ``activation``."""
    act = get_activation(activation)
    _, _, module = load_generated(module_source(act), GENERATOR_VERSION, "fieldnet_tilted")
    return module


@lru_cache(maxsize=32)
def activation_kinks(activation) -> tuple:
    """The points where phi is not smooth (relu: (0.0,))."""
    return tuple(breakpoints(get_activation(activation).expr, _x))


def kink_rule(kinks, c: float, v: float, nodes: int):
    """A rule for E over zeta ~ N(0, 1) resolving the kinks of ln Z(mu = sqrt(c) zeta): near each kink
    zeta_k = kink / sqrt(c) the function varies on the inner scale s = sqrt(v / c), so panels (8-point
    Gauss–Legendre) have edges at zeta_k +- s 2^j; beyond, uniform panels to |zeta| = 10. Falls back to
    Gauss–Hermite with ``nodes`` nodes when phi has no kinks or when s >= 1 (nothing sharp to resolve)."""
    s = math.sqrt(v / c) if c > 0 else math.inf
    if len(kinks) == 0 or s >= 1.0:
        return hermite_rule(nodes)
    edges = {-10.0, 10.0}
    for k in kinks:
        zk = k / math.sqrt(c)
        edges.add(zk)
        step = s / 4.0
        while step < 20.0:
            for e in (zk - step, zk + step):
                edges.add(e)
            step *= 2.0
    edges = np.array(sorted(e for e in edges if -10.0 <= e <= 10.0))
    gx, gw = np.polynomial.legendre.leggauss(8)
    left, right = edges[:-1], edges[1:]
    half, mid = (right - left) / 2.0, (right + left) / 2.0
    z = (mid[:, None] + half[:, None] * gx[None, :]).ravel()
    w = (half[:, None] * gw[None, :]).ravel() * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z, w


def centre_grid(c: float, mu_step: float, half_width: float = 8.0):
    """Uniform rule for E over zeta ~ N(0, 1) with step mu_step / sqrt(c) in zeta (mu_step in the centre
    mu = sqrt(c) zeta) on |zeta| <= half_width, Gaussian weights normalised to sum 1."""
    step = min(mu_step / math.sqrt(c), 0.25) if c > 0 else 0.25
    z = np.arange(-half_width, half_width + 0.5 * step, step)
    w = np.exp(-0.5 * z * z)
    return z, w / w.sum()


@lru_cache(maxsize=8)
def hermite_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss–Hermite nodes and weights for E over N(0, 1) (weights sum to 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / np.sqrt(2.0 * np.pi)
