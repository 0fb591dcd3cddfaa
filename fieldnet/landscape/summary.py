"""One call for the landscape of a network: what ``fieldnet landscape`` prints.

alpha = None is the alpha -> infinity limit (the spherical model of :mod:`.spherical` with the network's xi);
a finite alpha uses the replica saddle with layer overlaps of :mod:`.finite_alpha`. Energies are signed per
input dimension (u = H/N, ground state u_GS = min H / N < 0); entropies s = P + beta u <= 0.
"""

from __future__ import annotations

import math

import numpy as np

from fieldnet.analysis.averages import averages
from fieldnet.errors import DivergenceError, require
from fieldnet.landscape.covariance import NetworkCovariance

K_MAX = 4          # RSB steps tried for the T = 0 phase (alpha -> infinity)
AT_BETAS = np.geomspace(0.25, 16.0, 13)   # scan for the AT temperature at finite alpha


def _finite(value):
    """JSON-safe number: inf/nan -> None."""
    value = float(value)
    return value if math.isfinite(value) else None


def spherical_summary(cov: NetworkCovariance, beta=None, k_max: int = K_MAX) -> dict:
    """alpha -> infinity: xi and its derivatives at q = 1, T = 0 energies and phase, AT temperature, RS at beta."""
    ones = cov.at_one()
    model = cov.spherical_model()
    if averages(cov.activation).closed_form("P") is None:
        model = model.tabulated(201)   # quadrature-based xi (tanh, ...): tabulate once, optimise on the spline
    phase = model.phase(None, k_max=k_max)
    top = max(phase.energies)     # the Parisi optimum is the highest u; report the fewest RSB steps that reach it
    best = min(k for k, e in enumerate(phase.energies) if e >= top - 1e-7)
    out = {"alpha": None, "network": cov.name,
           "xi": ones["xi"], "xi_prime": ones["xi_prime"], "xi_second": _finite(ones["xi_second"]),
           "xi_offset": ones["offset"],
           "ground_state_energy_rs": -math.sqrt(ones["xi_prime"]),
           "ground_state_energy": float(phase.energies[best]), "ground_state_rsb_steps": int(best),
           "ground_state_energies_by_k": [float(e) for e in phase.energies],
           "rs_exact_at_zero_temperature": bool(ones["xi_second"] <= ones["xi_prime"]),
           "phase": phase.label, "phase_reason": phase.reason,
           "at_temperature": float(model.at_temperature()),
           "talagrand_convex": phase.talagrand_convex}
    if beta is not None:
        rs = model.rs(beta)
        at_beta = model.phase(beta, k_max=k_max)
        out.update(beta=float(beta), rs_overlap=rs.q, rs_energy=rs.energy, rs_entropy=rs.entropy,
                   rs_free_energy=rs.free_energy, rs_replicon=rs.replicon, rs_stable=bool(rs.stable),
                   phase_at_beta=at_beta.label)
    return out


def finite_alpha_summary(cov: NetworkCovariance, alpha, beta=None, zero_temperature: bool = True) -> dict:
    """Finite alpha: RS ground state (extrapolated in beta), AT temperature on the RS branch (both skipped with
    ``zero_temperature=False``), and the RS (and, where RS is unstable, 1RSB) saddle at beta."""
    from fieldnet.landscape.finite_alpha import FiniteAlphaLandscape, ground_state_rs

    land = FiniteAlphaLandscape(cov.activation, cov.depth, cov.weight_var, cov.bias_var, alpha, cov.readout_var)
    out = {"alpha": [float(a) for a in land.alpha], "network": cov.name}
    if zero_temperature:
        gs = ground_state_rs(land)
        out.update(ground_state_energy_rs=gs.energy, ground_state_energy_rs_uncertainty=gs.uncertainty,
                   at_temperature=at_temperature(land))
        unstable_low_t = bool(gs.replicons[-1] < 0)
        out["phase"] = "RSB" if unstable_low_t else "RS"
        out["phase_reason"] = (f"RS replicon at beta = {gs.betas[-1]:g}: {gs.replicons[-1]:.4g} "
                               + ("< 0 (AT-unstable at low temperature; the RS ground state is then only an estimate)"
                                  if unstable_low_t else ">= 0 (RS stable down to that temperature)"))
    if beta is not None:
        rs = land.rs(beta)
        out.update(beta=float(beta), rs_overlap=rs.q0, rs_energy=rs.energy, rs_entropy=rs.entropy,
                   rs_free_energy=rs.free_energy, rs_replicon=rs.replicon, rs_stable=bool(rs.stable),
                   layer_overlaps=[float(v) for v in rs.q], layer_self_overlaps=[float(v) for v in rs.d],
                   phase_at_beta="RS")
        if not rs.stable:   # AT-unstable: solve the one-step RSB saddle
            from fieldnet.landscape.finite_alpha_rsb import is_replica_symmetric, rsb1

            sol = rsb1(land, beta, start=rs)
            rsb = not is_replica_symmetric(sol)
            out.update(phase_at_beta="1RSB" if rsb else "RS (RS replicon < 0 but 1RSB collapses)",
                       rsb1_overlaps=[sol.q1, sol.q0], rsb1_m=sol.m, rsb1_free_energy=sol.free_energy,
                       rsb1_energy=sol.energy, rsb1_entropy=sol.entropy)
    return out


def at_temperature(land) -> float:
    """The temperature where the finite-alpha RS branch first turns AT-unstable on cooling (0.0 if stable down to
    T = 1/16): the first sign change of the replicon on AT_BETAS, refined by bisection."""
    prev_b, sol = None, None
    for b in AT_BETAS:
        sol = land.rs(b, start=sol)      # continuation along the branch
        r = sol.replicon
        if r < 0:
            if prev_b is None:
                return 1.0 / b     # unstable already at the highest temperature scanned: report it as a bound
            lo, hi = prev_b, b
            for _ in range(12):
                mid = math.sqrt(lo * hi)
                if land.rs(mid, start=sol).replicon < 0:
                    hi = mid
                else:
                    lo = mid
            return 2.0 / (lo + hi)
        prev_b = b
    return 0.0


def landscape_summary(activation, depth, weight_var, bias_var, alpha=None, beta=None, readout_var=None) -> dict:
    """The dictionary printed by ``fieldnet landscape`` (keys in the README)."""
    cov = NetworkCovariance(activation, depth, weight_var, bias_var, readout_var)
    if beta is not None:
        require(isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0, "beta",
                f"inverse temperature must be > 0 and finite, got {beta!r}")
    if alpha is None:
        return spherical_summary(cov, beta)
    return finite_alpha_summary(cov, alpha, beta)


def entropy_curve(activation, depth, weight_var, bias_var, alpha=None, betas=None, readout_var=None):
    """(u, s, label) arrays for the s(u) plot: alpha -> infinity equilibrium (RS, or 1RSB where lower), or the
    finite-alpha RS branch."""
    cov = NetworkCovariance(activation, depth, weight_var, bias_var, readout_var)
    betas = np.geomspace(0.05, 8.0, 24) if betas is None else np.asarray(betas, float)
    if alpha is None:
        curve = cov.spherical_model().tabulated(201).entropy_curve(betas, k=1)
        return curve.u, curve.s, "alpha -> infinity (RS; 1RSB where it lowers P)"
    from fieldnet.landscape.finite_alpha import FiniteAlphaLandscape

    land = FiniteAlphaLandscape(cov.activation, cov.depth, cov.weight_var, cov.bias_var, alpha, cov.readout_var)
    sols = []
    for b in betas:
        try:
            sols.append(land.rs(b))
        except DivergenceError:
            break
    return (np.array([s.energy for s in sols]), np.array([s.entropy for s in sols]),
            f"alpha = {alpha}, RS branch")
