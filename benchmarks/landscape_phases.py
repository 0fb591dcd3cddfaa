"""Replica phases of random MLP input landscapes (issue 7): the classification table of the README.

alpha -> infinity (spherical model with the network's xi; fieldnet.landscape.spherical): the zero-temperature
phase from k-step RSB (k <= 4), the RS ground-state energy -sqrt(xi'(1)) and the k-RSB one, the AT temperature,
xi''(1)/xi'(1) (RS exact at T = 0 iff <= 1). Finite alpha (fieldnet.landscape.finite_alpha): the replicon of the
RS saddle at beta = 2 and 4 for alpha = 1 and 4 (>= 0: RS stable there).
Usage: python benchmarks/landscape_phases.py  (writes benchmarks/landscape_phases.md and .json)
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from fieldnet.errors import FieldnetError
from fieldnet.landscape.covariance import NetworkCovariance
from fieldnet.landscape.finite_alpha import FiniteAlphaLandscape

SHAPED = {1: "tanh", 2: "sqrt(2)*tanh(x/sqrt(2))", 4: "2*tanh(x/2)"}   # phi_L(x) = sqrt(L) tanh(x / sqrt(L))
CASES = [(act, L, cw) for act, cw in (("tanh", 1.0), ("tanh", 2.0), ("sin", 1.0), ("sin", 2.0), ("relu", 2.0))
         for L in (1, 2, 4)] + [("shaped", L, 1.0) for L in (2, 4)]
FINITE = [(a, b) for a in (1.0, 4.0) for b in (2.0, 4.0)]


def row(act, L, cw):
    name = SHAPED[L] if act == "shaped" else act
    t0 = time.perf_counter()
    cov = NetworkCovariance(name, L, cw, 0.0)
    ones = cov.at_one()
    model = cov.spherical_model()
    if act in ("tanh", "shaped"):
        model = model.tabulated(201)
    phase = model.phase(None, k_max=4)
    best = max(phase.energies)
    out = dict(activation=act if act != "shaped" else f"shaped tanh {name}", depth=L, weight_var=cw,
               xi_prime=ones["xi_prime"], curvature_ratio=ones["xi_second"] / ones["xi_prime"],
               phase=phase.label, gs_rs=-math.sqrt(ones["xi_prime"]), gs=best, t_at=model.at_temperature(),
               talagrand_convex=phase.talagrand_convex, finite={})
    if L <= 2:
        for alpha, beta in FINITE:
            try:
                out["finite"][f"{alpha:g},{beta:g}"] = FiniteAlphaLandscape(name, L, cw, 0.0, alpha).rs(beta).replicon
            except FieldnetError as exc:
                out["finite"][f"{alpha:g},{beta:g}"] = str(exc)
    out["seconds"] = time.perf_counter() - t0
    return out


def table(rows) -> str:
    head = ("| activation | L | C_W | xi''(1)/xi'(1) | T = 0 phase (alpha -> inf) | u_GS RS | u_GS k-RSB | T_AT | "
            + " | ".join(f"replicon a={a:g}, b={b:g}" for a, b in FINITE) + " |")
    lines = [head, "|" + "---|" * (8 + len(FINITE))]
    for r in rows:
        fin = [r["finite"].get(f"{a:g},{b:g}") for a, b in FINITE]
        cells = ["" if v is None else (f"{v:+.3f}" if isinstance(v, float) else "n/c") for v in fin]
        ratio = "inf" if not math.isfinite(r["curvature_ratio"]) else f"{r['curvature_ratio']:.3f}"
        lines.append(f"| {r['activation']} | {r['depth']} | {r['weight_var']:g} | {ratio} | {r['phase']} | "
                     f"{r['gs_rs']:.4f} | {r['gs']:.4f} | {r['t_at']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    rows = []
    for case in CASES:
        rows.append(row(*case))
        print(rows[-1], flush=True)
    here = Path(__file__).parent
    (here / "landscape_phases.json").write_text(json.dumps(rows, indent=1, default=str))
    (here / "landscape_phases.md").write_text(table(rows) + "\n")
    print(table(rows))
