"""sympy expressions -> vectorised numpy functions (one place for the module table).

Heaviside(0) = 1/2 (any value is a set of Gaussian measure zero); erf and friends come from
scipy. Delta terms are first normalised (x delta(x) = 0, see
:mod:`fieldnet.symbolic.distributions`); a delta that remains cannot be evaluated pointwise and
raises :class:`~fieldnet.errors.DivergenceError`.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from fieldnet.errors import DivergenceError
from fieldnet.symbolic.distributions import normalize_deltas

MODULES = [{"Heaviside": lambda v, h0=0.5: np.heaviside(v, 0.5)}, "scipy", "numpy"]


def numpy_function(args, expr, what: str = "expression"):
    """``sympy.lambdify(args, expr)`` with fieldnet's module table, after normalising deltas."""
    expr = normalize_deltas(sp.sympify(expr))
    if expr.has(sp.DiracDelta):
        raise DivergenceError(f"{what} {expr} contains a delta function, which has no pointwise value")
    return sp.lambdify(args, expr, modules=MODULES)
