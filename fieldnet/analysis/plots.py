"""Phase diagrams and depth-scale plots (matplotlib, the optional extra ``plot``).

Figures are built with matplotlib's object-oriented API on the Agg canvas (no pyplot, no display),
so they work headless and inside notebooks alike. Pass ``ax`` to draw into your own axes.

* :func:`plot_phase_diagram` — chi_1 = C_W <phi'^2>_{q*} over the (C_W, C_b) plane (colour: log chi_1,
  blue ordered, red chaotic, grey where q* diverges), the critical line chi_1 = 1 traced by its
  q*-parameterisation, and the closed-form critical point of the universality class.
* :func:`plot_depth_scales` — xi_q and xi_c against C_W at fixed C_b (Schoenholz et al.
  arXiv:1611.01232, Fig. 2): xi_c diverges at the critical C_W.
"""

from __future__ import annotations

import math

import numpy as np

from fieldnet.analysis.criticality import (chi_perp_grid, critical_line, critical_weight_var, fixed_point_c,
                                           fixed_point_q, susceptibilities, depth_scale)
from fieldnet.analysis.universality import universality_class
from fieldnet.errors import FieldnetError, ParameterError


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ParameterError("plot: matplotlib is not installed (pip install 'fieldnet[plot]')") from None
    return Figure, FigureCanvasAgg


def require_matplotlib() -> None:
    """Raise ParameterError('plot: matplotlib is not installed ...') unless matplotlib imports."""
    _matplotlib()


def _axes(ax, size=(5.0, 4.0)):
    if ax is not None:
        return ax.figure, ax
    Figure, Canvas = _matplotlib()
    fig = Figure(figsize=size, layout="constrained")
    Canvas(fig)
    return fig, fig.add_subplot()


def plot_phase_diagram(activation, weight_vars=(0.5, 4.0), bias_vars=(0.0, 1.0), resolution=80, ax=None,
                       point=None):
    """The (C_W, C_b) phase diagram of ``activation``; ``point`` = (C_W, C_b) is marked. Returns the figure."""
    fig, ax = _axes(ax)
    from matplotlib.colors import TwoSlopeNorm

    cw = np.linspace(*weight_vars, resolution)
    cb = np.linspace(*bias_vars, resolution)
    _, chi = chi_perp_grid(activation, cw, cb)
    with np.errstate(divide="ignore"):
        log_chi = np.where(np.isfinite(chi), np.log(chi), np.nan)
    finite = log_chi[np.isfinite(log_chi)]
    low = min(float(finite.min()), -1e-3) if finite.size else -1.0
    high = max(float(finite.max()), 1e-3) if finite.size else 1.0
    mesh = ax.pcolormesh(cw, cb, np.ma.masked_invalid(log_chi), cmap="coolwarm", shading="auto",
                         norm=TwoSlopeNorm(0.0, low, high))
    ax.set_facecolor("0.8")  # where the variance map diverges
    bar = fig.colorbar(mesh, ax=ax, label=r"$\log\chi_1$,  $\chi_1 = C_W\langle\phi'^2\rangle_{q^*}$")
    ticks = np.unique(np.round(np.r_[np.linspace(low, 0, 4), np.linspace(0, high, 4)], 2))
    bar.set_ticks(ticks[(ticks >= low) & (ticks <= high)])
    line = critical_line(activation, np.geomspace(1e-4, 64.0, 400))
    keep = line.physical & (line.weight_var <= weight_vars[1]) & (line.bias_var <= bias_vars[1])
    ax.plot(line.weight_var[keep], line.bias_var[keep], "k-", lw=2, label=r"critical line $\chi_1 = 1$")
    uc = universality_class(activation)
    if uc.critical_weight_var is not None and weight_vars[0] <= float(uc.critical_weight_var) <= weight_vars[1]:
        ax.plot([float(uc.critical_weight_var)], [0.0], "ko", ms=7, clip_on=False,
                label=f"{uc.name} critical point $C_W = {uc.critical_weight_var}$")
    if point is not None:
        ax.plot([point[0]], [point[1]], "w*", ms=12, mec="k", clip_on=False, label="this point")
    ax.set_xlabel(r"$C_W = \sigma_w^2$")
    ax.set_ylabel(r"$C_b = \sigma_b^2$")
    ax.set_xlim(*weight_vars)
    ax.set_ylim(*bias_vars)
    ax.set_title(f"{line.activation}: ordered (blue) and chaotic (red) phases")
    ax.legend(loc="upper left", fontsize="small")
    return fig


def depth_scales(activation, bias_var, weight_vars):
    """(xi_q, xi_c) at each C_W of ``weight_vars`` for fixed C_b (NaN where q* does not exist)."""
    xi_q, xi_c = [], []
    for cw in weight_vars:
        try:
            q = fixed_point_q(activation, cw, bias_var)
            chi_par, chi_perp = susceptibilities(activation, cw, q)
            _, chi_c = fixed_point_c(activation, cw, bias_var, q)
            xi_q.append(depth_scale(chi_par))
            xi_c.append(depth_scale(chi_c) if abs(chi_perp - 1) > 1e-9 else math.inf)
        except FieldnetError:
            xi_q.append(np.nan)
            xi_c.append(np.nan)
    return np.array(xi_q), np.array(xi_c)


def plot_depth_scales(activation, bias_var, weight_vars=(0.5, 4.0), points=24, ax=None):
    """xi_q and xi_c against C_W at fixed C_b, with the critical C_W marked. Returns the figure."""
    fig, ax = _axes(ax)
    cw = np.linspace(*weight_vars, points)
    xi_q, xi_c = depth_scales(activation, bias_var, cw)
    ax.semilogy(cw, xi_q, "o-", ms=3, label=r"$\xi_q = -1/\log\chi_\parallel$")
    ax.semilogy(cw, xi_c, "s-", ms=3, label=r"$\xi_c = -1/\log\chi_c$")
    try:
        crit = critical_weight_var(activation, bias_var)
        ax.axvline(crit, color="k", ls="--", lw=1, label=f"critical $C_W = {crit:.4g}$")
    except FieldnetError:
        pass
    ax.set_xlabel(r"$C_W = \sigma_w^2$")
    ax.set_ylabel("depth scale (layers)")
    ax.set_title(f"depth scales at $C_b = {bias_var:g}$")
    ax.legend(fontsize="small")
    return fig


def criticality_figure(activation, weight_var=None, bias_var=0.0, path=None, resolution=80, points=24):
    """Two panels (phase diagram, depth scales at this C_b); saved to ``path`` (PNG) when given.
    ``resolution`` is the phase diagram's grid per axis, ``points`` the number of C_W in the right panel."""
    Figure, Canvas = _matplotlib()
    fig = Figure(figsize=(11.0, 4.3), layout="constrained")
    Canvas(fig)
    left, right = fig.subplots(1, 2)
    hi_b = max(1.0, 2.0 * bias_var)
    hi_w = max(4.0, 1.5 * (weight_var or 0.0))
    point = None if weight_var is None else (weight_var, bias_var)
    plot_phase_diagram(activation, (0.25, hi_w), (0.0, hi_b), resolution, ax=left, point=point)
    plot_depth_scales(activation, bias_var, (0.25, hi_w), points, ax=right)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
