"""Reference pair averages for tests/test_lowering.py, computed with mpmath at 16 digits.

    python tests/reference/make_lowering_reference.py    # writes tests/data/lowering_reference.json

For (u, v) ~ N(0, [[a, c], [c, b]]) with rho = c / sqrt(ab): E[f(u) g(v)] as the nested integral
E_x[ f(sqrt(a) x) E_y[ g(sqrt(b) (rho x + sqrt(1 - rho^2) y)) ] ] over standard normals x, y,
each integral by mpmath.quad (tanh-sinh) split at 0 and +-4. Independent of fieldnet's code.
"""

import json
from pathlib import Path

import mpmath as mp

mp.mp.dps = 16
SQ2 = mp.sqrt(2)


def _phi(t):
    return mp.exp(-t * t / 2) / mp.sqrt(2 * mp.pi)


ACTIVATIONS = {
    "tanh": (mp.tanh, lambda t: 1 - mp.tanh(t) ** 2),
    "erf": (mp.erf, lambda t: 2 / mp.sqrt(mp.pi) * mp.exp(-t * t)),
    "gelu": (lambda t: t * mp.ncdf(t), lambda t: mp.ncdf(t) + t * _phi(t)),
    "silu": (lambda t: t / (1 + mp.exp(-t)), lambda t: 1 / (1 + mp.exp(-t)) + t * mp.exp(-t) / (1 + mp.exp(-t)) ** 2),
    "softplus": (lambda t: mp.log(1 + mp.exp(t)), lambda t: 1 / (1 + mp.exp(-t))),
    "sigmoid": (lambda t: 1 / (1 + mp.exp(-t)), lambda t: mp.exp(-t) / (1 + mp.exp(-t)) ** 2),
    "sin": (mp.sin, mp.cos),
    # a kink away from 0 that no closed form covers: max(x, -1) and its derivative (step at -1)
    "Max(x, -1)": (lambda t: t if t > -1 else mp.mpf(-1), lambda t: mp.mpf(1) if t > -1 else mp.mpf(0)),
}
CASES = [(0.7, 1.6, -0.6), (0.7, 1.6, 0.9999)]
TANH_EXTRA = [(0.7, 1.6, 0.99), (9.0, 9.0, 0.9999)]  # tanh only: and large variance, nearly parallel


KINKS = {"Max(x, -1)": [-1]}


def _split(points):
    inside = sorted({mp.mpf(t) for t in points if -8 < t < 8} | {mp.mpf(-4), mp.mpf(0), mp.mpf(4)})
    return [-mp.inf] + inside + [mp.inf]


def pair_average(f, g, a, b, rho, kinks=()):
    """Nested quadrature, both levels split at the kinks (in whitened coordinates)."""
    sa, sb, s = mp.sqrt(a), mp.sqrt(b), mp.sqrt(1 - mp.mpf(rho) ** 2)

    def inner(x):
        return mp.quad(lambda y: g(sb * (rho * x + s * y)) * _phi(y), _split([(t / sb - rho * x) / s for t in kinks]))

    outer = [t / sa for t in kinks] + [t / (sb * rho) for t in kinks]
    return mp.quad(lambda x: f(sa * x) * inner(x) * _phi(x), _split(outer))


def _row(job):
    name, a, b, rho = job
    f, df = ACTIVATIONS[name]
    rho = mp.mpf(rho)
    row = {"activation": name, "a": a, "b": b, "c": float(rho * mp.sqrt(a * b)), "rho": float(rho),
           "phi_phi": str(pair_average(f, f, a, b, rho, KINKS.get(name, ()))),
           "dphi_dphi": str(pair_average(df, df, a, b, rho, KINKS.get(name, ())))}
    print(row, flush=True)
    return row


def main():
    from multiprocessing import Pool

    jobs = [(name, a, b, rho) for name in ACTIVATIONS for a, b, rho in CASES + (TANH_EXTRA if name == "tanh" else [])]
    with Pool() as pool:
        out = pool.map(_row, jobs, chunksize=1)
    path = Path(__file__).resolve().parents[1] / "data" / "lowering_reference.json"
    path.write_text(json.dumps({"source": "tests/reference/make_lowering_reference.py (mpmath, 25 digits)",
                                "rows": out}, indent=1))


if __name__ == "__main__":
    main()
