"""Theory against Monte Carlo for the input landscape of random MLPs (issue 7; THEORY.md section 8).

For each network (activation, depth, C_W, C_b = 0, alpha = N_l / N):
  * Monte Carlo (fieldnet.montecarlo.landscape): ground states by projected descent from many starts, and
    annealed Metropolis at beta in [0, beta_max] with thermodynamic integration for s; at N = 16, 32, 64,
    extrapolated as a + b/N (weighted by the SEMs over networks);
  * theory: u(beta), s(beta) from the finite-alpha replica-symmetric saddle (fieldnet.landscape.finite_alpha)
    and the ground-state energy from (i) the finite-alpha RS branch extrapolated in beta and (ii) the
    alpha -> infinity spherical model with k-step RSB (fieldnet.landscape.spherical).
Prints a table and writes benchmarks/landscape_mc.json. Usage: python benchmarks/landscape_mc.py [--quick]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from fieldnet.landscape.covariance import NetworkCovariance
from fieldnet.landscape.finite_alpha import FiniteAlphaLandscape, ground_state_rs
from fieldnet.montecarlo.landscape import landscape_width_scan

CONFIGS = [("tanh", 1, 1.0), ("tanh", 2, 1.0), ("relu", 1, 2.0), ("relu", 2, 2.0)]
ALPHA = 4.0
BETAS = np.linspace(0.0, 1.0, 9)


def run(quick: bool = False) -> list[dict]:
    widths = (12, 24) if quick else (16, 32, 64)
    n_networks = 20 if quick else 60
    rows = []
    for act, depth, cw in CONFIGS:
        t0 = time.perf_counter()
        scan = landscape_width_scan(widths, ALPHA, depth, act, C_W=cw, C_b=0.0, n_networks=n_networks,
                                    n_starts=30, betas=BETAS, seed=7,
                                    gibbs=dict(n_burn=1000, n_measure=2000))
        t_mc = time.perf_counter() - t0
        t0 = time.perf_counter()
        land = FiniteAlphaLandscape(act, depth, cw, 0.0, ALPHA)
        sols = [land.rs(b) for b in BETAS[1:]]
        u_th = np.array([0.0] + [s.energy for s in sols])
        s_th = np.array([0.0] + [s.entropy for s in sols])
        gs_fa = ground_state_rs(land)
        sph = NetworkCovariance(act, depth, cw, 0.0).spherical_model()
        if act == "tanh":
            sph = sph.tabulated(201)
        gs_k = [sph.ground_state(k).energy for k in range(4)]
        t_th = time.perf_counter() - t0
        fit = scan.gs_fit
        se_u, se_s = scan.u_fit.intercept_se[1:], scan.s_fit.intercept_se[1:]
        z_u = np.abs(scan.u_fit.intercept[1:] - u_th[1:]) / se_u
        z_s = np.abs(scan.s_fit.intercept[1:] - s_th[1:]) / se_s
        z_gs_fa = abs(fit.intercept - gs_fa.energy) / np.hypot(fit.intercept_se, gs_fa.uncertainty)
        z_gs_k = abs(fit.intercept - gs_k[-1]) / fit.intercept_se
        rows.append(dict(activation=act, depth=depth, weight_var=cw, alpha=ALPHA, widths=list(widths),
                         n_networks=n_networks, gs_mc=list(scan.gs_mean), gs_mc_sem=list(scan.gs_sem),
                         gs_mc_extrapolated=float(fit.intercept), gs_mc_extrapolated_se=float(fit.intercept_se),
                         gs_chi2=float(fit.chi2), fraction_best=list(scan.fraction_best),
                         gs_theory_finite_alpha_rs=gs_fa.energy, gs_theory_finite_alpha_rs_uncertainty=gs_fa.uncertainty,
                         gs_theory_finite_alpha_replicon_at_beta16=float(gs_fa.replicons[-1]),
                         gs_theory_alpha_inf_by_k=gs_k, sigma_gs_finite_alpha_rs=float(z_gs_fa),
                         sigma_gs_alpha_inf_krsb=float(z_gs_k),
                         betas=list(BETAS), u_mc_extrapolated=list(scan.u_fit.intercept), u_mc_se=list(scan.u_fit.intercept_se),
                         s_mc_extrapolated=list(scan.s_fit.intercept), s_mc_se=list(scan.s_fit.intercept_se),
                         u_theory=list(u_th), s_theory=list(s_th), max_sigma_u=float(z_u.max()), max_sigma_s=float(z_s.max()),
                         replicon_at_beta_max=float(sols[-1].replicon), seconds_mc=t_mc, seconds_theory=t_th))
        r = rows[-1]
        print(f"{act} L={depth} C_W={cw} alpha={ALPHA}: GS MC {r['gs_mc_extrapolated']:.4f} +- {r['gs_mc_extrapolated_se']:.4f}"
              f" | finite-alpha RS {gs_fa.energy:.4f} +- {gs_fa.uncertainty:.4f} ({z_gs_fa:.2f} sigma)"
              f" | alpha->inf RS {gs_k[0]:.4f}, {len(gs_k) - 1}-RSB {gs_k[-1]:.4f} ({z_gs_k:.2f} sigma)"
              f" | u(beta<=1) max {z_u.max():.2f} sigma, s max {z_s.max():.2f} sigma | MC {t_mc:.0f} s, theory {t_th:.0f} s",
              flush=True)
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    rows = run(quick)
    out = Path(__file__).with_name("landscape_mc_quick.json" if quick else "landscape_mc.json")
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")
