"""The entropy-energy curve s(u) of a network's input landscape (matplotlib, the optional extra ``plot``)."""

from __future__ import annotations

import numpy as np

from fieldnet.analysis.plots import _axes


def entropy_figure(activation, depth, weight_var, bias_var, alpha=None, path=None, ax=None, betas=None):
    """Plot s(u) (entropy per input dimension against the energy u = H/N) from beta = 0 (u = 0, s = 0) down to low
    temperature, with the ground-state energy marked; returns the figure (saved to ``path`` if given)."""
    from fieldnet.landscape.summary import entropy_curve, landscape_summary

    u, s, label = entropy_curve(activation, depth, weight_var, bias_var, alpha=alpha, betas=betas)
    info = landscape_summary(activation, depth, weight_var, bias_var, alpha=alpha)
    fig, ax = _axes(ax)
    ax.plot(np.concatenate([[0.0], u]), np.concatenate([[0.0], s]), "-", label=label)
    ax.axvline(info["ground_state_energy_rs"], color="grey", ls=":", label="RS ground state")
    if "ground_state_energy" in info and info["ground_state_energy"] != info["ground_state_energy_rs"]:
        ax.axvline(info["ground_state_energy"], color="k", ls="--",
                   label=f"ground state ({info['ground_state_rsb_steps']}-RSB)")
    ax.set_xlabel("energy u = H / N")
    ax.set_ylabel("entropy s(u)")
    ax.set_title(f"{info['network']}, " + ("alpha -> inf" if alpha is None else f"alpha = {alpha}") +
                 f", phase {info['phase']}", fontsize=9)
    ax.legend(fontsize=8)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
