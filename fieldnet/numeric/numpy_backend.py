"""Reference numeric backend: a pair recursion evaluated with numpy over a dataset.

This is the straightforward path behind :class:`Backend`; the numba lowering replaces it. The
recursion's expressions are turned into vectorised numpy functions with ``sympy.lambdify``
(closed forms), and every expectation node that has no closed form is integrated by
Gauss–Hermite quadrature (:mod:`fieldnet.numeric.quadrature`). Diagonal entries (a, a) are
computed once per input with their one-dimensional averages; off-diagonal pairs a < b once per
pair, and mirrored.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from fieldnet.errors import DivergenceError, FieldnetError
from fieldnet.numeric.quadrature import batched_expectation
from fieldnet.numeric.functions import numpy_function
from fieldnet.symbolic.layers import PAIR, layer_param
from fieldnet.symbolic.nodes import InputOverlap, LayerQuantity, expectation_nodes
from fieldnet.symbolic.recursions import LAYER, Recursion

_SUFFIX = {(0, 0): "aa", (0, 1): "ab", (1, 1): "bb"}
PARAMS = ("C_W", "C_b", "fan_in")


def _state_symbol(name: str, new: bool, i: int, j: int) -> sp.Symbol:
    return sp.Symbol(f"{name}{'_new' if new else ''}_{_SUFFIX[(min(i, j), max(i, j))]}")


def _substitutions(rec: Recursion, first: bool) -> dict:
    """LayerQuantity / InputOverlap atoms -> plain symbols of the compiled functions."""
    mapping = {}
    pairs = [(0, 0), (0, 1), (1, 1)]
    for i, j in pairs:
        a, b = PAIR[i], PAIR[j]
        mapping[InputOverlap(a, b)] = sp.Symbol(f"g_{_SUFFIX[(i, j)]}")
        for q in rec.quantities:
            if first:
                mapping[LayerQuantity(q, 1, (a, b))] = _state_symbol(q, True, i, j)
            else:
                mapping[LayerQuantity(q, LAYER, (a, b))] = _state_symbol(q, False, i, j)
                mapping[LayerQuantity(q, LAYER + 1, (a, b))] = _state_symbol(q, True, i, j)
    layer = 1 if first else LAYER + 1
    for p in ("C_W", "C_b"):
        for per_layer in (True, False):
            mapping[layer_param(p, layer, per_layer)] = sp.Symbol(p)
    mapping[LayerQuantity("n", layer - 1)] = sp.Symbol("fan_in")
    return mapping


def _state_args(rec: Recursion) -> list:
    args = [sp.Symbol(f"g_{s}") for s in ("aa", "ab", "bb")]
    for q in rec.quantities:
        for new in (False, True):
            args += [_state_symbol(q, new, i, j) for i, j in ((0, 0), (0, 1), (1, 1))]
    return args + [sp.Symbol(p) for p in PARAMS]


@dataclass
class _CompiledNode:
    key: object        # the node expression: equal nodes in different entries are integrated once
    cov: list          # (k x k) of callables of the state args
    integrand: object  # callable of the k integration variables
    k: int


@dataclass
class _CompiledEntry:
    value: object      # callable(*state_args, *node_values)
    nodes: list


def stable_forms(expr, quantities):
    """Rewrite sqrt(X_aa X_bb - X_ab^2) as sqrt(X_aa) sqrt(X_bb) sqrt((1 - rho)(1 + rho)) with
    rho = X_ab / (sqrt(X_aa) sqrt(X_bb)), the same rho that enters arccos(rho).

    Mathematically equal; numerically it keeps sin(theta) and theta consistent, so the arc-cosine
    kernels' analytic cancellation (sin theta - theta cos theta = O(theta^3)) survives rounding and
    parallel inputs keep rho = 1 instead of drifting by sqrt(machine epsilon)."""
    for q in quantities:
        for new in (False, True):
            aa, ab, bb = (_state_symbol(q, new, i, j) for i, j in ((0, 0), (0, 1), (1, 1)))
            rho = ab / (sp.sqrt(aa) * sp.sqrt(bb))
            stable = sp.sqrt(aa) * sp.sqrt(bb) * sp.sqrt((1 - rho) * (1 + rho))
            expr = expr.xreplace({sp.sqrt(aa * bb - ab ** 2): stable})
    return expr


def _compile_entry(expr, mapping: dict, args: list, label: str, quantities=()) -> _CompiledEntry:
    expr = stable_forms(expr.xreplace(mapping), quantities)
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise DivergenceError(f"{label} diverges: a Gaussian average in it is infinite for this activation "
                              "(its derivative contains a delta function); ask for the NNGP kernel alone")
    nodes = expectation_nodes(expr)
    placeholders = sp.symbols(f"E0:{len(nodes)}")
    expr = expr.xreplace(dict(zip(nodes, placeholders)))
    compiled_nodes = []
    for node in nodes:
        k = len(node.variables)
        extra = node.integrand.free_symbols - set(node.variables)
        if extra:
            raise FieldnetError(f"{label}: integrand {node.integrand} depends on {sorted(map(str, extra))}")
        cov = [[numpy_function(args, node.covariance[i, j]) for j in range(k)] for i in range(k)]
        integrand = numpy_function(node.variables, node.integrand, f"{label}: the integrand")
        compiled_nodes.append(_CompiledNode(node, cov, integrand, k))
    value = numpy_function(list(args) + list(placeholders), expr, label)
    return _CompiledEntry(value, compiled_nodes)


@dataclass
class CompiledRecursion:
    """A pair recursion as numpy callables: ``entries[(first, quantity, diagonal)]``."""

    quantities: tuple
    covariances: tuple
    args: list
    entries: dict

    def evaluate(self, first: bool, q: str, diagonal: bool, state: dict, quad_nodes, cache: dict) -> np.ndarray:
        """One entry over a batch; ``cache`` holds node values already integrated for this batch
        (nodes depend only on the previous layer, so K and Theta updates can share them)."""
        entry = self.entries[(first, q, diagonal)]
        if isinstance(entry, Exception):
            raise entry
        args = [state[str(a)] for a in self.args]
        shape = np.shape(args[0])
        with np.errstate(all="ignore"):
            node_values = []
            for node in entry.nodes:
                if node.key not in cache:
                    cov = np.stack([np.stack([np.broadcast_to(np.asarray(c(*args), float), shape)
                                              for c in row], -1) for row in node.cov], -2)
                    cache[node.key] = batched_expectation(node.integrand, cov, quad_nodes)
                node_values.append(cache[node.key])
            return np.broadcast_to(np.asarray(entry.value(*args, *node_values), dtype=float), shape)


def compile_recursion(rec: Recursion) -> CompiledRecursion:
    """Lambdify every entry of ``rec`` (initial and update, diagonal and off-diagonal)."""
    args = _state_args(rec)
    entries = {}
    for first, table in ((True, rec.initial), (False, rec.update)):
        mapping = _substitutions(rec, first)
        layer = 1 if first else LAYER + 1
        for q in rec.quantities:
            for diagonal in (True, False):
                i, j = (0, 0) if diagonal else (0, 1)
                expr = table[LayerQuantity(q, layer, (PAIR[i], PAIR[j]))]
                label = f"{q}^({'1' if first else 'l+1'})_{'aa' if diagonal else 'ab'}"
                try:
                    entries[(first, q, diagonal)] = _compile_entry(expr, mapping, args, label, rec.covariances)
                except DivergenceError as exc:  # raised only if this quantity is asked for
                    entries[(first, q, diagonal)] = exc
    return CompiledRecursion(rec.quantities, rec.covariances, args, entries)


@lru_cache(maxsize=64)
def _compiled_mean_field(activation, parameterization: str) -> CompiledRecursion:
    from fieldnet.symbolic.recursions import mean_field_recursion

    return compile_recursion(mean_field_recursion(activation, parameterization))


class NumpyBackend:
    """Evaluate the deep mean-field recursion over a dataset with numpy (reference path)."""

    name = "numpy"

    def __init__(self, quad_nodes: int | None = None):
        self.quad_nodes = quad_nodes

    def compiled(self, network) -> CompiledRecursion:
        return _compiled_mean_field(network.activation, network.parameterization)

    def run(self, network, gram: np.ndarray, layer_params: list, last_only: bool = False,
            quantities: tuple = ("K", "Theta")) -> dict:
        """Kernels for every layer: {quantity: array (L+1, N, N)} (or (N, N) if ``last_only``).

        ``gram`` is x_a . x_b / n_0; ``layer_params[l-1]`` holds C_W, C_b and fan_in = n_{l-1}.
        ``quantities`` selects what to compute (K alone skips the NTK).
        """
        comp = self.compiled(network)
        wanted = tuple(q for q in comp.quantities if q in quantities)
        n = gram.shape[0]
        ia, ib = np.triu_indices(n, k=1)
        gdiag = np.diag(gram).copy()
        g_diag, g_off = (gdiag,) * 3, (gdiag[ia], gram[ia, ib], gdiag[ib])
        out = {q: [] for q in wanted}
        diag, off = {}, {}
        for index, params in enumerate(layer_params):
            first, layer = index == 0, index + 1
            new_diag, new_off, diag_cache, off_cache = {}, {}, {}, {}
            for q in wanted:
                st = self._state(comp, params, g_diag, (diag,) * 3, (new_diag,) * 3, True)
                new_diag[q] = comp.evaluate(first, q, True, st, self.quad_nodes, diag_cache)
            old = (_take(diag, ia), off, _take(diag, ib))
            for q in wanted:
                st = self._state(comp, params, g_off, old, (_take(new_diag, ia), new_off, _take(new_diag, ib)), False)
                new_off[q] = comp.evaluate(first, q, False, st, self.quad_nodes, off_cache)
            for q in wanted:
                _check_finite(q, layer, new_diag[q], new_off[q], ia, ib)
                if last_only and layer < len(layer_params):
                    continue
                full = np.empty((n, n))
                full[np.arange(n), np.arange(n)] = new_diag[q]
                full[ia, ib] = new_off[q]
                full[ib, ia] = new_off[q]
                out[q].append(full)
            diag, off = new_diag, new_off
        return {q: (v[-1] if last_only else np.stack(v)) for q, v in out.items()}

    @staticmethod
    def _state(comp, params, g, old, new, diagonal) -> dict:
        """Arguments of the compiled functions. ``g``, ``old``, ``new`` are (aa, ab, bb) triples;
        covariance quantities are clipped to |K_ab| <= sqrt(K_aa K_bb) (rounding can break it)."""
        shape = np.shape(g[0])
        st = {"g_aa": g[0], "g_ab": g[1], "g_bb": g[2]}
        zeros = np.zeros(shape)
        for q in comp.quantities:
            for prefix, (aa, ab, bb) in ((q, old), (f"{q}_new", new)):
                va, vab, vb = aa.get(q, zeros), ab.get(q, zeros), bb.get(q, zeros)
                if q in comp.covariances and not diagonal and q in ab:
                    va, vab, vb = _regularise_pair(va, vab, vb)
                st[f"{prefix}_aa"], st[f"{prefix}_ab"], st[f"{prefix}_bb"] = va, vab, vb
        for p in PARAMS:
            value = params.get(p)
            st[p] = np.full(shape, np.nan if value is None else float(value))
        return st


def _regularise_pair(va, vab, vb):
    """Make a 2 x 2 covariance block safe for the closed forms.

    Variances are floored at the smallest normal float (a zero-variance input then has rho = 0
    and a vanishing prefactor, not 0/0); K_ab is clipped to |K_ab| <= sqrt(K_aa) sqrt(K_bb), and
    |rho| within 8 machine epsilons of 1 is set to exactly +-1: below the precision of the inputs,
    and it makes duplicate or parallel inputs give theta = 0 exactly instead of sqrt(eps)."""
    tiny = np.finfo(float).tiny
    va, vb = np.maximum(va, tiny), np.maximum(vb, tiny)
    bound = np.sqrt(va) * np.sqrt(vb)  # the same form as in rho = K_ab / (sqrt(K_aa) sqrt(K_bb))
    near = np.abs(vab) >= bound * (1 - 8 * np.finfo(float).eps)
    vab = np.where(near, np.copysign(bound, vab), vab)
    return va, vab, vb


def _take(table: dict, idx) -> dict:
    return {q: v[idx] for q, v in table.items()}


def _check_finite(q: str, layer: int, diag: np.ndarray, off: np.ndarray, ia, ib) -> None:
    names = {"K": "NNGP kernel K", "Theta": "NTK Theta"}
    if not np.all(np.isfinite(diag)):
        a = int(np.flatnonzero(~np.isfinite(diag))[0])
        raise DivergenceError(f"{names.get(q, q)} is not finite at layer {layer} (input {a}): the Gaussian "
                              "average diverges or overflows float64 — reduce the depth or the variances")
    if not np.all(np.isfinite(off)):
        p = int(np.flatnonzero(~np.isfinite(off))[0])
        raise DivergenceError(f"{names.get(q, q)} is not finite at layer {layer} (inputs {ia[p]}, {ib[p]}): the "
                              "Gaussian average diverges or overflows float64")
