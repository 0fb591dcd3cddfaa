"""mpmath reference for the benchmark's accuracy columns: output-layer NNGP and NTK entries.

For a pair of inputs (a, b) the deep mean-field recursion only ever needs the 2 x 2 blocks
[[K_aa, K_ab], [K_ab, K_bb]] and [[Theta_aa, Theta_ab], [Theta_ab, Theta_bb]] of the previous
layer, so the reference iterates exactly those six numbers, layer by layer, at 30 significant
digits (NTK parameterization, fieldnet's ``DeepNetwork`` conventions):

    K^(1)_ab     = C_b + C_W x_a . x_b / n_0,            Theta^(1) = K^(1)
    K^(l+1)_ab   = C_b + C_W E[phi(z_a) phi(z_b)]
    Theta^(l+1)_ab = K^(l+1)_ab + C_W E[phi'(z_a) phi'(z_b)] Theta^(l)_ab,   (z_a, z_b) ~ N(0, K^(l) on {a, b})

Gaussian averages:

* relu: the arc-cosine kernels, E[phi phi] = sqrt(K_aa K_bb) (sin t + (pi - t) cos t) / (2 pi),
  E[phi' phi'] = (pi - t) / (2 pi), t = arccos rho; diagonal K / 2 and 1 / 2.
* erf: E[erf erf] = (2/pi) asin(2 K_ab / sqrt((1 + 2 K_aa)(1 + 2 K_bb))),
  E[erf' erf'] = (4/pi) / sqrt((1 + 2 K_aa)(1 + 2 K_bb) - 4 K_ab^2).
* tanh (no closed form): the trapezoid rule in whitened coordinates, z_a = s_a x,
  z_b = s_b (rho x + sqrt(1 - rho^2) y), on [-12, 12]^2 (Gaussian mass outside < 1e-32), both
  averages E[tanh tanh] and E[sech^2 sech^2] from the same grid. The integrand is analytic in a strip
  (tanh's poles at +-i pi/2), so the error of step h falls like exp(-c / h) and halving h squares
  it: the step is halved from h = 1/4 until two successive sums agree to 1e-13 (relative to
  E|f|), which leaves an error of order 1e-26 on the finer one. Checked against two-dimensional
  ``mpmath.quad`` (tanh-sinh) on one pair: agreement to 30 digits (``python reference.py --check``).

Values are cached in a JSON file keyed by (method version, activation, C_W, C_b, the two input
vectors' bytes): every layer computed so far is stored, so a depth-10 run also serves depth 3.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

import mpmath as mp
import numpy as np

DPS = 30
METHOD_VERSION = "1"
RADIUS = 12
TRAPEZOID_ACCEPT = mp.mpf("1e-13")   # |S_h - S_2h| / E|f| below this: S_h is good to ~1e-26
FIELDS = ("K_aa", "K_ab", "K_bb", "Theta_aa", "Theta_ab", "Theta_bb")


# ---------------------------------------------------------------------------------------------
# Gaussian averages: (E[phi phi], E[phi' phi']) for a pair, and the same for one input

def _relu_pair(kaa, kab, kbb):
    d = mp.sqrt(kaa * kbb)
    rho = max(min(kab / d, mp.mpf(1)), mp.mpf(-1))
    t = mp.acos(rho)
    return d * (mp.sin(t) + (mp.pi - t) * rho) / (2 * mp.pi), (mp.pi - t) / (2 * mp.pi)


def _relu_diag(k):
    return k / 2, mp.mpf(1) / 2


def _erf_pair(kaa, kab, kbb):
    pa, pb = 1 + 2 * kaa, 1 + 2 * kbb
    return (2 / mp.pi) * mp.asin(2 * kab / mp.sqrt(pa * pb)), (4 / mp.pi) / mp.sqrt(pa * pb - 4 * kab * kab)


def _erf_diag(k):
    return (2 / mp.pi) * mp.asin(2 * k / (1 + 2 * k)), (4 / mp.pi) / mp.sqrt(1 + 4 * k)


def _grid(h):
    n = int(RADIUS / h)
    xs = [h * j for j in range(-n, n + 1)]
    return xs, [mp.exp(-x * x / 2) for x in xs]


def _tanh_pair_at(h, sa, sb, rho, s):
    xs, ws = _grid(h)
    s1 = s2 = a1 = mp.mpf(0)
    for x, w in zip(xs, ws):
        ta = mp.tanh(sa * x)
        m = sb * rho * x
        i1 = i2 = j1 = mp.mpf(0)
        for y, v in zip(xs, ws):
            tb = mp.tanh(m + sb * s * y)
            i1 += v * tb
            j1 += v * abs(tb)
            i2 += v * (1 - tb * tb)
        s1 += w * ta * i1
        a1 += w * abs(ta) * j1
        s2 += w * (1 - ta * ta) * i2
    c = h * h / (2 * mp.pi)
    return s1 * c, s2 * c, a1 * c, s2 * c   # E[tanh tanh], E[sech^2 sech^2], E|tanh tanh|, E|sech^2 sech^2|


def _tanh_pair(kaa, kab, kbb):
    sa, sb = mp.sqrt(kaa), mp.sqrt(kbb)
    rho = max(min(kab / (sa * sb), mp.mpf(1)), mp.mpf(-1))
    s = mp.sqrt((1 - rho) * (1 + rho))
    h = mp.mpf(1) / 4
    prev = _tanh_pair_at(h, sa, sb, rho, s)
    while True:
        h /= 2
        cur = _tanh_pair_at(h, sa, sb, rho, s)
        if abs(cur[0] - prev[0]) <= TRAPEZOID_ACCEPT * cur[2] and abs(cur[1] - prev[1]) <= TRAPEZOID_ACCEPT * cur[3]:
            return cur[0], cur[1]
        if h < mp.mpf(1) / 64:
            raise RuntimeError(f"tanh pair average did not converge (K = {kaa}, {kab}, {kbb})")
        prev = cur


def _tanh_diag(k):
    sig = mp.sqrt(k)

    def at(h):
        xs, ws = _grid(h)
        t = [mp.tanh(sig * x) for x in xs]
        c = h / mp.sqrt(2 * mp.pi)
        return (mp.fsum(w * v * v for w, v in zip(ws, t)) * c,
                mp.fsum(w * (1 - v * v) ** 2 for w, v in zip(ws, t)) * c)

    h = mp.mpf(1) / 4
    prev = at(h)
    while True:
        h /= 2
        cur = at(h)
        if abs(cur[0] - prev[0]) <= mp.mpf("1e-28") * cur[0] and abs(cur[1] - prev[1]) <= mp.mpf("1e-28") * cur[1]:
            return cur
        prev = cur


AVERAGES = {"relu": (_relu_pair, _relu_diag), "erf": (_erf_pair, _erf_diag), "tanh": (_tanh_pair, _tanh_diag)}


# ---------------------------------------------------------------------------------------------
# the recursion for one pair

def pair_layers(activation: str, weight_var: float, bias_var: float, xa, xb, n_layers: int, start=None):
    """[{field: mpf}] for layers 1 .. n_layers; ``start`` continues a list already computed."""
    pair_avg, diag_avg = AVERAGES[activation]
    cw, cb = mp.mpf(weight_var), mp.mpf(bias_var)
    layers = list(start or [])
    if not layers:
        n0 = len(xa)
        dot = lambda u, v: mp.fsum(mp.mpf(float(p)) * mp.mpf(float(q)) for p, q in zip(u, v)) / n0
        k = {"K_aa": cb + cw * dot(xa, xa), "K_ab": cb + cw * dot(xa, xb), "K_bb": cb + cw * dot(xb, xb)}
        k.update({"Theta_aa": k["K_aa"], "Theta_ab": k["K_ab"], "Theta_bb": k["K_bb"]})
        layers.append(k)
    while len(layers) < n_layers:
        p = layers[-1]
        e_ab, d_ab = pair_avg(p["K_aa"], p["K_ab"], p["K_bb"])
        e_aa, d_aa = diag_avg(p["K_aa"])
        e_bb, d_bb = diag_avg(p["K_bb"])
        k = {"K_aa": cb + cw * e_aa, "K_ab": cb + cw * e_ab, "K_bb": cb + cw * e_bb}
        k["Theta_aa"] = k["K_aa"] + cw * d_aa * p["Theta_aa"]
        k["Theta_ab"] = k["K_ab"] + cw * d_ab * p["Theta_ab"]
        k["Theta_bb"] = k["K_bb"] + cw * d_bb * p["Theta_bb"]
        layers.append(k)
    return layers


def _key(activation, weight_var, bias_var, xa, xb) -> str:
    h = hashlib.sha256()
    h.update(f"{METHOD_VERSION}|{DPS}|{activation}|{float(weight_var)!r}|{float(bias_var)!r}|".encode())
    h.update(np.ascontiguousarray(xa, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(xb, dtype=np.float64).tobytes())
    return h.hexdigest()[:24]


class ReferenceCache:
    """JSON file {key: {"activation": ..., "layers": [{field: "digits"}]}}."""

    def __init__(self, path):
        self.path = path
        self.data = {}
        if path and os.path.isfile(path):
            with open(path) as fh:
                self.data = json.load(fh)
        self.dirty = False

    def layers(self, activation, weight_var, bias_var, xa, xb, n_layers, label=""):
        """The first ``n_layers`` layers as mpf dicts (computing and caching what is missing)."""
        key = _key(activation, weight_var, bias_var, xa, xb)
        with mp.workdps(DPS):
            entry = self.data.get(key)
            have = [{f: mp.mpf(v[f]) for f in FIELDS} for v in entry["layers"]] if entry else []
            if len(have) < n_layers:
                t0 = time.perf_counter()
                have = pair_layers(activation, weight_var, bias_var, xa, xb, n_layers, have)
                self.data[key] = {"activation": activation, "weight_var": weight_var, "bias_var": bias_var,
                                  "label": label, "seconds": round(time.perf_counter() - t0, 2),
                                  "layers": [{f: mp.nstr(v[f], DPS, strip_zeros=False) for f in FIELDS}
                                             for v in have]}
                self.dirty = True
            return have[:n_layers]

    def save(self):
        if self.path and self.dirty:
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "w") as fh:
                json.dump(self.data, fh, indent=0, sort_keys=True)
                fh.write("\n")
            os.replace(tmp, self.path)
            self.dirty = False


def check(verbose=True) -> float:
    """One tanh pair average: the trapezoid rule against two-dimensional mpmath.quad (slow: ~20 s)."""
    with mp.workdps(DPS):
        kaa, kab, kbb = mp.mpf("1.7"), mp.mpf("0.6"), mp.mpf("0.9")
        tr = _tanh_pair(kaa, kab, kbb)
        sa, sb = mp.sqrt(kaa), mp.sqrt(kbb)
        rho = kab / (sa * sb)
        s = mp.sqrt(1 - rho * rho)
        c = 1 / (2 * mp.pi)
        qa = mp.quad(lambda x, y: mp.tanh(sa * x) * mp.tanh(sb * (rho * x + s * y)) * mp.exp(-(x * x + y * y) / 2) * c,
                     [-mp.inf, 0, mp.inf], [-mp.inf, 0, mp.inf])
        qb = mp.quad(lambda x, y: mp.sech(sa * x) ** 2 * mp.sech(sb * (rho * x + s * y)) ** 2
                     * mp.exp(-(x * x + y * y) / 2) * c, [-mp.inf, 0, mp.inf], [-mp.inf, 0, mp.inf])
        err = max(abs(tr[0] / qa - 1), abs(tr[1] / qb - 1))
        if verbose:
            print(f"E[tanh tanh]:   trapezoid {mp.nstr(tr[0], DPS)}\n                mpmath.quad {mp.nstr(qa, DPS)}")
            print(f"E[sech2 sech2]: trapezoid {mp.nstr(tr[1], DPS)}\n                mpmath.quad {mp.nstr(qb, DPS)}")
            print(f"max relative difference {mp.nstr(err, 3)}")
        return float(err)


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        sys.exit(0 if check() < 1e-25 else 1)
    print(__doc__)
