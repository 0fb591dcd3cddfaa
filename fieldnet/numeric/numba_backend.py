"""The default numeric backend: the lowered (numba-compiled) mean-field recursion over a dataset.

Per layer: the diagonal entries K_aa, Theta_aa once per input; then, per input, the Hermite
coefficients of each factor of the pair averages at that input's variance (only for activations
whose pair averages have no closed form); then all pairs a < b in parallel (``prange`` over
rows), written to the upper triangle (a, b). The lower triangle is filled by mirroring when a
whole matrix is returned, so the Gram matrices are exactly symmetric. The drivers count
non-finite entries as they write them; a count > 0 raises a DivergenceError naming the entry.
Memory: two float64 working layers of (quantities, N, N) plus the returned arrays ((L+1, N, N)
per quantity, or (N, N) with ``last_only``).

Accuracy contract (tested against mpmath, :mod:`tests.test_lowering`): every Gaussian average is
computed to ``tol`` (default 1e-13) relative to the integrand's scale E|f| (panel rules) or
sqrt(E f^2 E g^2) (Mehler series); kernel entries of smooth activations agree with mpmath to
1e-10 relative for correlations up to |c| = 0.9999.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from fieldnet.errors import DivergenceError, FieldnetError, ParameterError
from fieldnet.numeric.integrators import coefficient_nodes, hermite_tables, largest_correlation, mirror_upper
from fieldnet.numeric.lowering import lower_mean_field

DEFAULT_TOL = 1e-13
MAX_COEFFICIENTS = 320


class LoweringWarning(UserWarning):
    """The recursion could not be lowered to numba; the numpy path computed it instead."""


def series_length(prev_k: np.ndarray, rho_series: float, tol: float) -> int:
    """Hermite coefficients needed for the pairs that take the series path: |rho|^M <= tol for
    the largest |rho| <= ``rho_series`` among them (the tail bound decides per pair). Reads the
    diagonal and the upper triangle of ``prev_k`` only."""
    top = largest_correlation(prev_k, rho_series)
    if top <= 0.0:
        return 2
    return int(min(MAX_COEFFICIENTS, max(2, math.ceil(math.log(tol) / math.log(top)) + 2)))


class NumbaBackend:
    """Evaluate the deep mean-field recursion with the lowered numba kernels."""

    name = "numba"

    def __init__(self, tol: float = DEFAULT_TOL, dtype=np.float64, fallback: bool = True):
        if not (isinstance(tol, float) and 0 < tol < 1e-3):
            raise ParameterError(f"tol: must be a float in (0, 1e-3), got {tol!r}")
        if np.dtype(dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ParameterError(f"dtype: must be float64 or float32, got {dtype!r}")
        self.tol, self.dtype, self.fallback = tol, np.dtype(dtype), fallback
        self.stats = {}

    def run(self, network, gram: np.ndarray, layer_params: list, last_only: bool = False,
            quantities: tuple = ("K", "Theta")) -> dict:
        """{quantity: (L+1, N, N)} (or (N, N) with ``last_only``); see :class:`Backend`."""
        wanted = tuple(q for q in ("K", "Theta") if q in quantities)
        try:
            lowered = lower_mean_field(network.activation, network.parameterization, wanted)
        except FieldnetError as exc:
            from fieldnet.numeric.codegen import LoweringError  # imported here: the code generator needs sympy

            if not isinstance(exc, LoweringError) or not self.fallback:
                raise
            from fieldnet.numeric.numpy_backend import NumpyBackend

            warnings.warn(f"numba lowering failed ({exc}); using the numpy path", LoweringWarning, stacklevel=3)
            return NumpyBackend().run(network, gram, layer_params, last_only, quantities)
        return self._run(lowered, gram, layer_params, last_only, wanted)

    def _run(self, lowered, gram, layer_params, last_only, wanted):
        mod = lowered.module
        n, n_layers, nq = gram.shape[0], len(layer_params), len(wanted)
        prev = np.zeros((nq, n, n))
        new = np.zeros((nq, n, n))
        keep_all = not last_only
        out = np.empty((nq, n_layers, n, n), dtype=self.dtype) if keep_all else None
        g = np.ascontiguousarray(gram, dtype=np.float64)
        for index, params in enumerate(layer_params):
            cw, cb = float(params["C_W"]), float(params["C_b"])
            fan_in = math.nan if params.get("fan_in") is None else float(params["fan_in"])
            if index == 0:
                nonfinite = mod.first_diag(prev, new, g, cw, cb, fan_in, self.tol)
                nonfinite += mod.first_pairs(prev, new, g, cw, cb, fan_in, self.tol)
            else:
                tables = []
                if mod.N_FACTORS:
                    kdiag = np.ascontiguousarray(np.diag(prev[0]))
                    n_coef = series_length(prev[0], mod.RHO_SERIES, self.tol)
                for i in range(mod.N_FACTORS):
                    zs, xs, ws, offsets = coefficient_nodes(kdiag, getattr(mod, f"BREAKS_F{i}"), n_coef)
                    alpha, tails, energy = np.empty((n, n_coef)), np.empty((n, n_coef)), np.empty(n)
                    hermite_tables(getattr(mod, f"values_{i}")(zs), xs, ws, offsets, n_coef, alpha, tails, energy)
                    tables += [alpha, tails, energy]
                nonfinite = mod.update_diag(prev, new, g, cw, cb, fan_in, self.tol)
                nonfinite += mod.update_pairs(prev, new, g, cw, cb, fan_in, self.tol, *tables)
            if nonfinite:
                _raise_nonfinite(new, wanted, index + 1)
            if keep_all:
                mirror_upper(new)
                out[:, index] = new
            prev, new = new, prev
        self.stats = {"layers": n_layers, "pairs": n * (n - 1) // 2}
        if keep_all:
            return {q: out[i] for i, q in enumerate(wanted)}
        mirror_upper(prev)
        return {q: prev[i].astype(self.dtype, copy=self.dtype != np.float64) for i, q in enumerate(wanted)}


def _raise_nonfinite(state: np.ndarray, quantities: tuple, layer: int) -> None:
    """DivergenceError naming the quantity and the first non-finite entry of the diagonal or the
    upper triangle of ``state`` (the drivers counted at least one)."""
    names = {"K": "NNGP kernel K", "Theta": "NTK Theta"}
    upper = np.triu(np.ones(state.shape[1:], dtype=bool))
    for i, q in enumerate(quantities):
        bad = ~np.isfinite(state[i]) & upper
        if bad.any():
            a, b = (int(v) for v in np.argwhere(bad)[0])
            where = f"input {a}" if a == b else f"inputs {a}, {b}"
            raise DivergenceError(f"{names[q]} is not finite at layer {layer} ({where}): the Gaussian average "
                                  "diverges or overflows float64 — reduce the depth or the variances")
    raise DivergenceError(f"a kernel entry is not finite at layer {layer}: the Gaussian average diverges or "
                          "overflows float64 — reduce the depth or the variances")
