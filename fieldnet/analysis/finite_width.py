"""Finite-width (1/n) predictions for a deep network on a dataset (THEORY.md sections 4-5).

    res = finite_width(network, X, ntk=True)
    res.K0[l-1], res.K1[l-1]          # (N, N): E[z_a z_b] = K0_ab + K1_ab / n_{l-1} + O(1/n^2)
    res.V[l-1]                        # (N, N, N, N): V_(ab)(cd), connected 4-pt = (1/n_{l-1})[dd V + 2 perms]
    res.Theta[l-1], res.H1[l-1]       # (N, N): E[H_ab] = Theta_ab + H1_ab / n_{l-1}
    res.A[l-1], res.D[l-1]            # (N, N, N, N): A_(ab)(cd) = n Cov(H_ii;ab, H_kk;cd), D_(ab),(cd) = n Cov(H_ii;ab, z_k;c z_k;d)
    res.B[l-1], res.F[l-1]            # (N, N, N, N) as [a1, a3, a2, a4]: n E[H_ik;a1a2 H_ik;a3a4], n E[H_ik;a1a2 z_i;a3 z_k;a4]
    res.per_input("A")                # (L+1, N): A_(aa)(aa), ...;  Var(H_aa) = (A + 2B) / n_{l-1} per input
    res.ntk_covariance(n)             # (L+1, N, N, N, N): Cov(H_ii;ab, H_ii;cd) = (A_(ab)(cd) + B_acbd + B_adbc) / n_{l-1}

Conventions as in :mod:`fieldnet.symbolic.finite_width` (Roberts-Yaida-Hanin arXiv:2106.10165, Yaida
arXiv:1910.00019, Hanin-Nica arXiv:1909.05989): layer l (array index l - 1) has fan-in n_{l-1}, layer 1 is
exactly Gaussian (all coefficients 0 there), and the step l -> l + 1 carries r_l = n_l / n_{l-1}. When
``network.widths`` is None the coefficients are those of a uniform width (r = 1).

The recursions are the engine's: every update is the sympy expression derived in
:mod:`fieldnet.symbolic.finite_width`, lowered to numpy (``lambdify``), its Gaussian-average nodes integrated
by one private helper, :func:`_gaussian_average` (the single place to switch integrators). V is propagated in
matrix form over the N(N+1)/2 unordered pairs, V' = S + r J V J^T, J and the source S being the derived
Jacobian entries and connected four-point averages (one average per multiset {a, b, c, d}: 1-D for aaaa,
2-D for aaab / aabb, 3-D for aabc, 4-D for abcd). K1 and H1 live on pairs and use 2-D averages; H1_ab reads
D_{(ab),R} and F_{a.b.} from the full NTK tensors A, B, D, F, which :mod:`fieldnet.analysis.ntk_fluctuations`
propagates for every input (``ntk=True``; index orders in :class:`FiniteWidthResult`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from fieldnet.errors import DivergenceError, ParameterError, require
from fieldnet.numeric.functions import numpy_function
from fieldnet.numeric.kernels import kernels, validate_inputs
from fieldnet.numeric.numpy_backend import _regularise_pair, stable_forms
from fieldnet.numeric.products import canonical_factor, product_module, split_product
from fieldnet.numeric.quadrature import QuadratureWarning, batched_expectation
from fieldnet.spec import DeepNetwork
from fieldnet.symbolic import finite_width as fw
from fieldnet.symbolic.nodes import LayerQuantity, expectation_nodes

_PARAMS = {fw.C_W: "C_W", fw.C_B: "C_b", fw.LAMBDA_W: "lambda_W", fw.LAMBDA_B: "lambda_b", fw.RATIO: "r"}
_RHO_MAX = 1.0 - 1e-12  # |rho| cap on pairs: arc-cosine derivatives are singular (with finite limits) at |rho| = 1


def _gaussian_average(f, cov: np.ndarray, product=None) -> np.ndarray:
    """E_{z ~ N(0, cov[p])} f(z) for cov (P, k, k): the ONE place fieldnet's finite-width code integrates.

    With ``product`` (a :class:`_ProductAverage`: the integrand as a sum of products of single-variable
    factors; every 3-/4-variable node while ``_USE_PRODUCTS``) the exact relu-family moments of
    :mod:`fieldnet.numeric.orthant` where the factors allow, else the generated numba integrator of
    :mod:`fieldnet.numeric.products` (nested 1-D rules after a pivoted Cholesky, tolerance ``_PRODUCT_TOL``);
    otherwise :func:`fieldnet.numeric.quadrature.batched_expectation` on the numpy callable ``f`` (adaptive
    whitened trapezoid for k <= 2; tensor Gauss-Hermite for k = 3, 4 only with ``_USE_PRODUCTS = False``)."""
    if product is not None:
        return product(cov)
    return batched_expectation(f, cov)


_USE_PRODUCTS = True        # route product-form averages of >= 3 variables to fieldnet.numeric.products (False: the
                            # tensor Gauss-Hermite of batched_expectation, ~1e-3 for tanh, 10 % off on relu's steps)
_PRODUCT_MIN_VARIABLES = 3  # 1-, 2-variable averages stay on the adaptive trapezoid (1e-12 relative already)
_PRODUCT_TOL = 1e-9         # relative to E|integrand|


class _ProductAverage:
    """A Gaussian-average node written as sum_t c_t prod_v g_tv(z_v), for the generated integrator of
    :mod:`fieldnet.numeric.products` (its compiled module depends only on the primitives of the factors,
    e.g. tanh(x), so one activation costs one numba compile)."""

    def __init__(self, terms, variables):
        self.terms = [(coef, tuple(variables.index(v) for v in parts), tuple(parts[v] for v in parts))
                      for coef, parts in terms]
        self.module = None
        self.fids = None

    def _resolve(self):
        from fieldnet.numeric.orthant import relu_family_terms

        # relu-family terms (polynomials in z, Max(0, z), Heaviside(z), |z|, sign z) are exact and ~1000x faster
        # through fieldnet.numeric.orthant; the others go to the product integrator's compiled module
        self.exact = [all(relu_family_terms(f) is not None for f in fs) for _, _, fs in self.terms]
        rest = [fs for (_, _, fs), exact in zip(self.terms, self.exact) if not exact]
        factors = sorted({canonical_factor(f) for fs in rest for f in fs}, key=sp.srepr)
        self.module = product_module(factors) if factors else False
        self.fids = [None if exact else tuple(factors.index(canonical_factor(f)) for f in fs)
                     for (_, _, fs), exact in zip(self.terms, self.exact)]

    def __call__(self, cov: np.ndarray) -> np.ndarray:
        from fieldnet.numeric.orthant import relu_family_average

        if self.module is None:
            self._resolve()
        total = np.zeros(cov.shape[0])
        for (coef, idx, fs), fids in zip(self.terms, self.fids):
            if not idx:
                total += coef
                continue
            sub = cov[:, idx][:, :, idx]
            if fids is None:
                total += coef * relu_family_average(fs, sub)
            else:
                total += coef * self.module.average(np.array(fids, dtype=np.int64), sub, tol=_PRODUCT_TOL)
        return total


# ---------------------------------------------------------------- lowering of one derived expression

def _name(q: LayerQuantity) -> str:
    return q.name + ("_" + "".join(str(i) for i in q.indices) if q.indices else "")


def _product_plan(node, enabled: bool | None = None):
    """A :class:`_ProductAverage` for a node of >= _PRODUCT_MIN_VARIABLES variables whose integrand is a
    sum of products of single-variable factors, else None (the numpy path). ``enabled`` overrides
    ``_USE_PRODUCTS`` (the recurrent one-loop code always uses the product integrator)."""
    if not (_USE_PRODUCTS if enabled is None else enabled) or len(node.variables) < _PRODUCT_MIN_VARIABLES:
        return None
    terms = split_product(node.integrand, node.variables)
    return None if terms is None else _ProductAverage(terms, list(node.variables))


def _hold_nodes(expr):
    """(expr with its Gaussian-average nodes replaced by symbols E0, E1, ..., the nodes, those symbols, the sorted
    names of the remaining free symbols and of the nodes' covariance entries): the split every lowered update
    makes before it becomes a numpy function of its state arrays and the nodes' values."""
    nodes = expectation_nodes(expr)
    holders = sp.symbols(f"E0:{len(nodes)}")
    expr = expr.xreplace(dict(zip(nodes, holders)))
    args = sorted({s.name for s in expr.free_symbols} - {h.name for h in holders}
                  | {s.name for n in nodes for s in n.covariance.free_symbols})
    return expr, nodes, holders, args


_GAP = sp.Symbol("K_gap")  # 1 - rho^2 of the pair, rho = K_ab / (sqrt(K_aa) sqrt(K_bb)), evaluated as (1 - rho)(1 + rho)


def _gap_forms(expr):
    """Write the polynomials in rho that vanish at |rho| = 1 through K_gap = 1 - rho^2, factored.

    The arc-cosine derivatives bring 1 - K_ab^2/(K_aa K_bb) and (1 - rho^2)^2 = 1 - 2 rho^2 + rho^4 (expanded by
    the derivation); near |rho| = 1 (parallel inputs, |rho| capped at _RHO_MAX) the expanded forms lose every digit
    to cancellation, even their sign, and 0 / (-1e-16) became NaN. Factored, they are K_gap and K_gap^2, computed
    from the same rho that enters arccos. Only sums that vanish at rho^2 = 1 are rewritten (elsewhere K_ab^2 is
    kept: (1 - K_gap) loses K_ab^2's relative precision at small rho)."""
    kaa, kab, kbb = sp.symbols("K_aa K_ab K_bb")
    if not {kaa, kab, kbb} <= expr.free_symbols:
        return expr
    high = lambda e: e.is_Pow and e.base == kab and e.exp.is_Integer and e.exp >= 2
    power = lambda p: (((1 - _GAP) * kaa * kbb) ** (int(p.exp) // 2)) * kab ** (int(p.exp) % 2)

    def vanishing(e):
        return (e.is_Add and e.free_symbols <= {kaa, kab, kbb} and e.find(high)
                and sp.simplify(e.subs(kab, sp.sqrt(kaa) * sp.sqrt(kbb))) == 0)
    return expr.replace(vanishing, lambda e: sp.factor(e.replace(high, power)))


class _Lowered:
    """A derived update as a numpy function of named state arrays; averages go through the helper."""

    def __init__(self, expr, label: str):
        mapping = {q: sp.Symbol(_name(q)) for q in expr.atoms(LayerQuantity)}
        mapping.update({k: sp.Symbol(v) for k, v in _PARAMS.items() if not isinstance(k, LayerQuantity)})
        expr = stable_forms(expr.xreplace(mapping), ("K",))  # sqrt(K_aa K_bb - K_ab^2) in the form of arccos's rho
        if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
            raise DivergenceError(f"{label}: a Gaussian average in the 1/n recursion is infinite for this activation")
        expr, nodes, holders, self.args = _hold_nodes(expr)
        expr = _gap_forms(expr)
        self.gap = expr.has(_GAP)     # an extra last argument, computed from K_aa, K_ab, K_bb
        syms = [sp.Symbol(a) for a in self.args]
        self.nodes = [(n, [[numpy_function(syms, n.covariance[i, j]) for j in range(len(n.variables))]
                           for i in range(len(n.variables))],
                       numpy_function(n.variables, n.integrand, f"{label}: the integrand"), _product_plan(n))
                      for n in nodes]
        self.value = numpy_function(syms + [_GAP] * self.gap + list(holders), expr, label)

    def __call__(self, state: dict, cache: dict) -> np.ndarray:
        args = [state[a] for a in self.args]
        gap = []
        if self.gap:
            rho = state["K_ab"] / (np.sqrt(state["K_aa"]) * np.sqrt(state["K_bb"]))
            gap = [(1 - rho) * (1 + rho)]
        shape = state["_shape"]
        vals = []
        with np.errstate(all="ignore"):
            for node, cov, f, product in self.nodes:
                if node not in cache:
                    c = np.stack([np.stack([np.broadcast_to(np.asarray(e(*args), float), shape) for e in row], -1)
                                  for row in cov], -2)
                    cache[node] = _gaussian_average(f, c, product)
                vals.append(cache[node])
            return np.broadcast_to(np.asarray(self.value(*args, *gap, *vals), dtype=float), shape).copy()


# ---------------------------------------------------------------- the derived programs, per activation

@dataclass(frozen=True)
class _Program:
    single: dict   # name -> _Lowered, one input a
    pair: dict     # name -> _Lowered, two inputs a < b
    four: dict     # multiplicity pattern -> _Lowered  <prod_i phi(z_i)^{c_i}>


@lru_cache(maxsize=32)
def _program(activation, ntk: bool) -> _Program:
    a, b, c, d = fw.symbols("a", "b", "c", "d")
    aa, ab = (a, a), (a, b)
    single = {"J": fw.kernel_jacobian(activation, aa)[aa], "K1": fw.k1_update(activation, aa)}
    jac = fw.kernel_jacobian(activation, ab)
    pair = {"J_aa": jac[aa], "J_ab": jac[ab], "J_bb": jac[(b, b)], "K1": fw.k1_update(activation, ab)}
    if ntk:   # A, B, D, F: fieldnet.analysis.ntk_fluctuations (full tensors); H1 reads D and F from them
        single["H1"] = fw.h1_update(activation, aa)
        pair["H1"] = fw.h1_update(activation, ab)
    four = {}
    phi = {s: fw.phi_of(activation, s) for s in (a, b, c, d)}
    for counts in ((4,), (3, 1), (2, 2), (2, 1, 1), (1, 1, 1, 1)):
        four[counts] = fw.average(sp.Mul(*[phi[s] ** k for s, k in zip((a, b, c, d), counts)]), activation)
    lower = lambda table, tag: {k: _Lowered(v, f"{tag} {k}") for k, v in table.items()}
    return _Program(lower(single, "one-input"), lower(pair, "two-input"), lower(four, "four-point"))


# ---------------------------------------------------------------- result

@dataclass(frozen=True)
class FiniteWidthResult:
    """1/n coefficients of every layer l = 1 .. L+1 (array index l - 1) for inputs X (N of them).

    K0, K1 : (L+1, N, N)           E[z_a z_b] = K0 + K1 / n_{l-1}
    V      : (L+1, N, N, N, N)     V[l-1, a, b, c, d] = V_(ab)(cd); symmetric within and between pairs
    Theta, H1 : (L+1, N, N)        E[H_ab] = Theta + H1 / n_{l-1}              (ntk=True, else None)
    A, B, D, F : (L+1, N, N, N, N) NTK fluctuations (ntk=True, else None); for neurons i != k (THEORY.md 5.1):
        A[l-1, a, b, c, d]     = A_(ab)(cd)      = n Cov(H_ii;ab, H_kk;cd)
        D[l-1, a, b, c, d]     = D_(ab),(cd)     = n Cov(H_ii;ab, z_k;c z_k;d)   (NTK pair first; not symmetric)
        B[l-1, a1, a3, a2, a4] = B_{a1a3a2a4}    = n E[H_ik;a1a2 H_ik;a3a4]
        F[l-1, a1, a3, a2, a4] = F_{a1a3a2a4}    = n E[H_ik;a1a2 z_i;a3 z_k;a4]
        (n = n_{l-1}); :meth:`per_input` gives the one-input values A_(aa)(aa), ... as (L+1, N).
    widths : the hidden widths (n_1..n_L) the coefficients were computed for (r_l = n_l/n_{l-1}), or None
             for the uniform-width coefficients.
    """

    network: DeepNetwork
    K0: np.ndarray
    K1: np.ndarray
    V: np.ndarray
    Theta: np.ndarray | None = None
    H1: np.ndarray | None = None
    A: np.ndarray | None = None
    B: np.ndarray | None = None
    D: np.ndarray | None = None
    F: np.ndarray | None = None
    widths: tuple | None = None

    def fan_in(self, n=None) -> np.ndarray:
        """n_{l-1} for layers l = 1 .. L+1 (layer 1's entry is inf: its coefficients vanish)."""
        depth = self.network.depth
        if n is None:
            require(self.widths is not None, "n", "give the width n (this result is for uniform width)")
            hidden = self.widths
        else:
            hidden = _hidden_widths(n, depth)
            require(self.widths is None or tuple(hidden) == tuple(self.widths), "n",
                    f"these coefficients were computed for widths {self.widths}; call without n")
        return np.array((np.inf,) + tuple(float(h) for h in hidden))

    def effective_depth(self, n=None) -> np.ndarray:
        """sum_{k<l} 1/n_k for layer l (= (l-1)/n at uniform width): the expansion parameter at criticality."""
        inv = 1.0 / self.fan_in(n)
        return np.cumsum(inv)

    def corrected_kernel(self, n=None) -> np.ndarray:
        """E[z_a z_b] = K0 + K1 / n_{l-1}, shape (L+1, N, N)."""
        return self.K0 + self.K1 / self.fan_in(n)[:, None, None]

    def four_point(self, n=None) -> np.ndarray:
        """Connected four-point function of one neuron, E[z_a z_b z_c z_d]_c = (V_(ab)(cd) + V_(ac)(bd) +
        V_(ad)(bc)) / n_{l-1}, shape (L+1, N, N, N, N) (for neurons i1..i4 use the Kronecker form)."""
        sym = self.V + self.V.transpose(0, 1, 3, 2, 4) + self.V.transpose(0, 1, 4, 3, 2)
        return sym / self.fan_in(n)[:, None, None, None, None]

    def excess_kurtosis(self, n=None) -> np.ndarray:
        """E z_a^4 / (E z_a^2)^2 - 3 = 3 V_(aa)(aa) / (n_{l-1} K_aa^2) + O(1/n^2), shape (L+1, N)."""
        idx = np.arange(self.K0.shape[1])
        return 3 * self.V[:, idx, idx, idx, idx] / (self.fan_in(n)[:, None] * self.K0[:, idx, idx] ** 2)

    def ntk_mean(self, n=None) -> np.ndarray:
        """E[H_ab] = Theta + H1 / n_{l-1}, shape (L+1, N, N)."""
        self._need_ntk()
        return self.Theta + self.H1 / self.fan_in(n)[:, None, None]

    def per_input(self, name: str) -> np.ndarray:
        """The one-input value of a four-index tensor ("V", "A", "B", "D" or "F"): X[:, a, a, a, a], shape (L+1, N)."""
        require(name in ("V", "A", "B", "D", "F"), "name", f"expected one of V, A, B, D, F, got {name!r}")
        if name != "V":
            self._need_ntk()
        idx = np.arange(self.K0.shape[1])
        return getattr(self, name)[:, idx, idx, idx, idx]

    def ntk_covariance(self, n=None) -> np.ndarray:
        """Cov(H_ii;ab, H_ii;cd) = (A_(ab)(cd) + B_{acbd} + B_{adbc}) / n_{l-1} + O(1/n^2) for one neuron i,
        shape (L+1, N, N, N, N) (THEORY.md 5.1 with i1 = i2 = i3 = i4)."""
        self._need_ntk()
        B = self.B
        cov = self.A + np.einsum("lacbd->labcd", B) + np.einsum("ladbc->labcd", B)
        return cov / self.fan_in(n)[:, None, None, None, None]

    def ntk_relative_variance(self, n=None) -> np.ndarray:
        """Var(H_aa) / E[H_aa]^2 = (A_(aa)(aa) + 2 B_aaaa) / (n_{l-1} Theta_aa^2) + O(1/n^2), shape (L+1, N)."""
        self._need_ntk()
        idx = np.arange(self.K0.shape[1])
        return (self.per_input("A") + 2 * self.per_input("B")) / (self.fan_in(n)[:, None] * self.Theta[:, idx, idx] ** 2)

    def _need_ntk(self):
        require(self.Theta is not None, "ntk", "NTK quantities were not computed (call finite_width(..., ntk=True))")

    def save(self, path) -> None:
        """Write the arrays (float64) to an ``.npz``: K0, K1 (L+1, N, N), V (L+1, N, N, N, N) and, with the NTK,
        Theta, H1 (L+1, N, N) and A, B, D, F (L+1, N, N, N, N), index orders as in the class docstring."""
        names = ("K0", "K1", "V") + (("Theta", "H1", "A", "B", "D", "F") if self.Theta is not None else ())
        np.savez(path, **{k: np.asarray(getattr(self, k), dtype=np.float64) for k in names})


def _hidden_widths(n, depth: int) -> tuple:
    if isinstance(n, (int, float, np.integer, np.floating)) and not isinstance(n, bool):
        require(np.isfinite(n) and n > 0, "n", f"must be a positive width, got {n}")
        return (float(n),) * depth
    try:
        values = tuple(float(v) for v in n)
    except TypeError:
        raise ParameterError(f"n: expected a width or {depth} hidden widths, got {n!r}") from None
    require(len(values) == depth, "n", f"expected {depth} hidden widths (n_1..n_L), got {len(values)}")
    require(all(np.isfinite(v) and v > 0 for v in values), "n", f"widths must be positive, got {values}")
    return values


# ---------------------------------------------------------------- the pair coordinates

class _Pairs:
    """Index bookkeeping of the N(N+1)/2 unordered pairs (a <= b) of N inputs, shared by V and the NTK tensors.

    pidx[a, b]: position of pair (a b); diag_pos[a]: of (a a); ia < ib, off_pos: the off-diagonal pairs;
    dup: off-diagonal pairs of identical inputs (their pair quantities copy the diagonal ones)."""

    def __init__(self, N: int, k1: np.ndarray):
        self.N = N
        self.pa, self.pb = np.triu_indices(N)
        self.n_pairs = len(self.pa)
        self.pidx = np.empty((N, N), dtype=np.int64)
        self.pidx[self.pa, self.pb] = np.arange(self.n_pairs)
        self.pidx[self.pb, self.pa] = np.arange(self.n_pairs)
        self.ia, self.ib = np.triu_indices(N, k=1)
        self.off_pos = self.pidx[self.ia, self.ib]
        self.diag_pos = self.pidx[np.arange(N), np.arange(N)]
        self.dup = _duplicates(k1, self.ia, self.ib)
        self.multisets = _Multisets(N, self.pidx)

    def matrix(self, diag, off_aa, off_ab, off_bb) -> np.ndarray:
        """A (p, p) derivative matrix X_PR = dY_P/dK_R, nonzero only for R inside P: X_(aa)(aa) = diag[a] and, for
        P = (a b), X_P(aa), X_P(ab), X_P(bb) = off_aa, off_ab, off_bb (J = dK'/dK, T = dTheta'/dK)."""
        out = np.zeros((self.n_pairs, self.n_pairs))
        out[self.diag_pos, self.diag_pos] = diag
        out[self.off_pos, self.diag_pos[self.ia]] = off_aa
        out[self.off_pos, self.off_pos] = off_ab
        out[self.off_pos, self.diag_pos[self.ib]] = off_bb
        return out

    def full(self, x: np.ndarray) -> np.ndarray:
        """(..., p, p) over pairs -> (..., N, N, N, N)."""
        return x[..., self.pidx[:, :, None, None], self.pidx[None, None, :, :]]

    def pos(self, x: str, y: str) -> np.ndarray:
        """Positions of the pairs (x y), x, y in {"a", "b"}, for every off-diagonal pair a < b."""
        return self.pidx[self.ia if x == "a" else self.ib, self.ia if y == "a" else self.ib]


class _Proportional:
    """Inputs that are exact multiples of each other at a layer, z_b = c_b z_rep(b) (rho = +-1 after
    :func:`_regularise_pair`'s snapping): duplicates; x and 2x or -x through a positively homogeneous activation
    without bias (relu, leaky relu, abs). In the mean field rho = +-1 means E(z_b - c z_a)^2 = 0, i.e. a pointwise
    proportionality that holds at every width, so every finite-width quantity with an index b equals c_b times
    the same quantity with rep(b) in its place. The pair formulas themselves are useless there: the kinked
    activations' arc-cosine derivatives are singular at |rho| = 1 (finite limits through cancellations that
    float64 cannot carry), so those entries are overwritten by the exact copies."""

    def __init__(self, k: np.ndarray, px: "_Pairs", theta: np.ndarray | None = None):
        N = k.shape[0]
        kaa, kab, kbb = _regularise_pair(k[px.ia, px.ia], k[px.ia, px.ib], k[px.ib, px.ib])
        parallel = np.abs(kab) == np.sqrt(kaa) * np.sqrt(kbb)
        if theta is not None:   # the NTK's copy needs grad z_b = c grad z_a too: Theta_bb - 2 c Theta_ab + c^2 Theta_aa = 0
            c = kab / kaa
            t_aa, t_ab, t_bb = theta[px.ia, px.ia], theta[px.ia, px.ib], theta[px.ib, px.ib]
            parallel &= np.abs(t_bb - 2 * c * t_ab + c * c * t_aa) <= 64 * np.finfo(float).eps * (t_bb + c * c * t_aa)
        self.rep, self.c = np.arange(N), np.ones(N)
        for a, b, kab_, kaa_ in zip(px.ia[parallel], px.ib[parallel], kab[parallel], kaa[parallel]):
            if self.rep[b] == b and self.rep[a] == a:   # a is its class's representative (the smallest index)
                self.rep[b], self.c[b] = a, kab_ / kaa_
        self.parallel = parallel
        self.any = bool(np.any(self.rep != np.arange(N)))
        self.px = px
        self.src = px.pidx[self.rep[px.pa], self.rep[px.pb]]    # pair (u w) -> (rep u, rep w)
        self.fac = self.c[px.pa] * self.c[px.pb]

    def pairs(self, q: np.ndarray) -> np.ndarray:
        """(N, N) pair quantity: q_ab = c_a c_b q_rep(a) rep(b)."""
        return self.c[:, None] * self.c[None, :] * q[np.ix_(self.rep, self.rep)]

    def over_pairs(self, x: np.ndarray) -> np.ndarray:
        """(p, p) over unordered pairs (V, A, D)."""
        return self.fac[:, None] * self.fac[None, :] * x[np.ix_(self.src, self.src)]

    def full(self, x: np.ndarray) -> np.ndarray:
        """(N, N, N, N) (B, F)."""
        c, r = self.c, self.rep
        return np.einsum("a,b,c,d,abcd->abcd", c, c, c, c, x[np.ix_(r, r, r, r)])


# ---------------------------------------------------------------- the driver

@lru_cache(maxsize=32)
def _kinked(activation) -> bool:
    """phi' is discontinuous (relu, abs, a Piecewise): the pair formulas' arc-cosine derivatives are singular at
    |rho| = 1."""
    from fieldnet.symbolic.activations import get_activation

    expr = get_activation(activation).expr
    slope = sp.diff(expr, next(iter(expr.free_symbols)))
    return slope.has(sp.Heaviside, sp.DiracDelta, sp.sign, sp.Piecewise)


def _check_parallel_step(activation, layer: int, before: "_Proportional", after: "_Proportional", what: str) -> None:
    """A pair exactly parallel at layer ``layer`` whose proportionality the step breaks (a bias switched on, or
    the NTK's bias gradients under parameterization='standard' with C_b = 0) has no usable formula for a kinked
    activation once the 1/n quantities are non-zero (layer >= 2): raise rather than return the cancellation's noise."""
    if layer < 2 or not _kinked(activation):
        return
    broken = before.parallel & ~after.parallel
    if np.any(broken):
        a, b = before.px.ia[broken][0], before.px.ib[broken][0]
        raise DivergenceError(
            f"X: inputs {a} and {b} are exactly parallel at layer {layer} (z_b = c z_a), and the step to layer {layer + 1} "
            f"breaks the proportionality of {what}; for a kinked activation the 1/n recursion is singular there "
            "(arc-cosine derivatives at |rho| = 1). Perturb one input, or use C_b > 0 or parameterization='ntk'")

def _warn_step_averages(activation, X) -> None:
    """Warn where the Gauss-Hermite fallback (``_USE_PRODUCTS = False``) is known to be inaccurate: 3-/4-variable
    averages of a discontinuous phi' (relu's step) enter B and F on three or more distinct inputs (measured 12 %
    off on an orthant probability; the default path is exact there)."""
    if _USE_PRODUCTS or len(np.unique(X, axis=0)) < 3:
        return
    if _kinked(activation):
        warnings.warn(QuadratureWarning(
            "finite_width(ntk=True): this activation's derivative is discontinuous, and on three or more distinct "
            "inputs the NTK tensors B and F (and A, D through them) use tensor Gauss-Hermite averages of step "
            "functions, accurate only to about 10 %; leave fieldnet.analysis.finite_width._USE_PRODUCTS = True "
            "(the default) for exact averages"), stacklevel=3)


def finite_width(network: DeepNetwork, X, *, ntk: bool = False) -> FiniteWidthResult:
    """1/n coefficients K1, V (and with ``ntk`` H1 and the tensors A, B, D, F) of every layer on inputs X (N, n_0)."""
    from fieldnet.analysis.ntk_fluctuations import NTKFluctuations, NTKState

    if not isinstance(network, DeepNetwork):
        raise ParameterError(f"network: expected a DeepNetwork, got {type(network).__name__}")
    X = validate_inputs(X, network.input_dim)
    mean = kernels(network, X, ntk=ntk)
    K0 = mean.nngp
    theta = mean.ntk
    n_layers, N = K0.shape[0], K0.shape[1]
    prog = _program(network.activation, ntk)
    if ntk:
        _warn_step_averages(network.activation, X)
    lam_w, lam_b = network.ntk_rates(X.shape[1]) if ntk else ((0.0,) * n_layers, (0.0,) * n_layers)
    widths = network.widths
    ratios = [1.0] + ([widths[l] / widths[l - 1] for l in range(1, network.depth)] if widths else [1.0] * (network.depth - 1))

    px = _Pairs(N, K0[0])
    ia, ib, dup = px.ia, px.ib, px.dup
    diag_pos = px.diag_pos

    K1 = np.zeros_like(K0)
    V = np.zeros((n_layers, px.n_pairs, px.n_pairs))
    H1 = np.zeros_like(K0) if ntk else None
    if ntk:
        fluct = NTKFluctuations(network.activation, px)
        ntk_states = [NTKState.zeros(N)]
    letters = {"a": ia, "b": ib}
    parallel = _Proportional(K0[0], px)              # exactly parallel inputs of the current layer (K alone)

    for l in range(1, n_layers):                     # step layer l -> l + 1 (array l-1 -> l)
        params = {"C_W": network.weight_var[l], "C_b": network.bias_var[l], "lambda_W": lam_w[l],
                  "lambda_b": lam_b[l], "r": ratios[l - 1]}
        k, t = K0[l - 1], (theta[l - 1] if ntk else np.zeros_like(K0[l - 1]))
        # one input
        s1 = dict(params, _shape=(N,), K_aa=np.diag(k).copy(), Theta_aa=np.diag(t).copy(), K1_aa=np.diag(K1[l - 1]).copy(),
                  V_aaaa=V[l - 1][diag_pos, diag_pos])
        if ntk:
            st = ntk_states[-1]
            s1.update(H1_aa=np.diag(H1[l - 1]).copy(), D_aaaa=st.D[diag_pos, diag_pos],
                      F_aaaa=st.F[np.arange(N), np.arange(N), np.arange(N), np.arange(N)])
        cache1 = {}
        j_diag = prog.single["J"](s1, cache1)
        # two inputs a < b
        kaa, kab, kbb = _regularise_pair(k[ia, ia], k[ia, ib], k[ib, ib])
        bound = _RHO_MAX * np.sqrt(kaa) * np.sqrt(kbb)
        kab = np.clip(kab, -bound, bound)
        s2 = dict(params, _shape=(len(ia),), K_aa=kaa, K_ab=kab, K_bb=kbb, Theta_aa=t[ia, ia], Theta_ab=t[ia, ib], Theta_bb=t[ib, ib],
                  K1_aa=K1[l - 1][ia, ia], K1_ab=K1[l - 1][ia, ib], K1_bb=K1[l - 1][ib, ib])
        for x, y in (("a", "a"), ("a", "b"), ("b", "b")):
            for u, w in (("a", "a"), ("a", "b"), ("b", "b")):
                s2[f"V_{x}{y}{u}{w}"] = V[l - 1][px.pos(x, y), px.pos(u, w)]
        if ntk:   # H1_ab reads D_{(ab),R} and F_{a.b.} (R inside (a b)) from the full tensors of layer l
            s2.update(H1_ab=H1[l - 1][ia, ib], H1_aa=H1[l - 1][ia, ia], H1_bb=H1[l - 1][ib, ib])
            for u, w in (("a", "a"), ("a", "b"), ("b", "b")):
                s2[f"D_ab{u}{w}"] = st.D[px.pos("a", "b"), px.pos(u, w)]
            for u in "ab":
                for w in "ab":
                    s2[f"F_a{u}b{w}"] = st.F[ia, letters[u], ib, letters[w]]
        cache2 = {}
        J = px.matrix(j_diag, np.where(dup, 0.0, prog.pair["J_aa"](s2, cache2)),
                      np.where(dup, j_diag[ia], prog.pair["J_ab"](s2, cache2)),
                      np.where(dup, 0.0, prog.pair["J_bb"](s2, cache2)))
        # the four-point vertex, in matrix form over pairs
        S = _four_point_source(prog, px.multisets, k, K0[l] - params["C_b"], params["C_W"])
        carried = J @ V[l - 1] @ J.T
        V[l] = S + params["r"] * (carried + carried.T) / 2   # symmetric to the last bit
        # K1, and the NTK quantities
        new_k1 = np.empty((N, N))
        new_k1[np.arange(N), np.arange(N)] = prog.single["K1"](s1, cache1)
        k1_off = np.where(dup, new_k1[ia, ia], prog.pair["K1"](s2, cache2))
        new_k1[ia, ib] = new_k1[ib, ia] = k1_off
        K1[l] = new_k1
        if ntk:
            h1 = np.empty((N, N))
            h1[np.arange(N), np.arange(N)] = prog.single["H1"](s1, cache1)
            h1_off = np.where(dup, h1[ia, ia], prog.pair["H1"](s2, cache2))
            h1[ia, ib] = h1[ib, ia] = h1_off
            H1[l] = h1
            new = fluct.step(st, V[l - 1], J, S, s1, s2, t, K0[l] - params["C_b"], k, params)
        before, prop = parallel, _Proportional(K0[l], px)   # parallel at layer l + 1: copies of the representative's
        parallel = prop
        _check_parallel_step(network.activation, l, before, prop, "the preactivations")
        if prop.any:
            K1[l], V[l] = prop.pairs(K1[l]), prop.over_pairs(V[l])
        if ntk:
            prop = _Proportional(K0[l], px, theta[l])
            _check_parallel_step(network.activation, l, before, prop, "the gradients")
        if ntk and prop.any:
            H1[l] = prop.pairs(H1[l])
            new = type(new)(D=prop.over_pairs(new.D), A=prop.over_pairs(new.A), B=prop.full(new.B), F=prop.full(new.F))
        if ntk:
            ntk_states.append(new)
        _check(l + 1, K1=K1[l], V=V[l], **({"H1": H1[l], "A": new.A, "B": new.B, "D": new.D, "F": new.F} if ntk else {}))

    extra = {}
    if ntk:
        extra = dict(Theta=theta, H1=H1, A=px.full(np.stack([s.A for s in ntk_states])),
                     D=px.full(np.stack([s.D for s in ntk_states])), B=np.stack([s.B for s in ntk_states]),
                     F=np.stack([s.F for s in ntk_states]))
    return FiniteWidthResult(network, K0, K1, px.full(V), widths=widths, **extra)


def _duplicates(k1, ia, ib) -> np.ndarray:
    """Pairs of identical inputs (K^(1) equal on aa, ab, bb): their pair quantities equal the diagonal ones."""
    return (k1[ia, ia] == k1[ib, ib]) & (k1[ia, ib] == k1[ia, ia])


class _Multisets:
    """The distinct multisets {a, b, c, d} behind all (P, Q), P <= Q, with their multiplicity patterns."""

    def __init__(self, N: int, pidx: np.ndarray):
        pa, pb = np.triu_indices(N)
        P, Q = np.triu_indices(len(pa))
        quads = np.sort(np.stack([pa[P], pb[P], pa[Q], pb[Q]], 1), axis=1)
        code = ((quads[:, 0] * N + quads[:, 1]) * N + quads[:, 2]) * N + quads[:, 3]
        uniq, self.inverse = np.unique(code, return_inverse=True)
        self.P, self.Q, self.n_pairs = P, Q, len(pa)
        m = np.stack([uniq // N ** 3, uniq // N ** 2 % N, uniq // N % N, uniq % N], 1)
        self.groups = {}
        for i, row in enumerate(m):
            values, counts = np.unique(row, return_counts=True)
            order = np.argsort(-counts, kind="stable")
            pattern = tuple(int(c) for c in counts[order])
            self.groups.setdefault(pattern, ([], []))
            self.groups[pattern][0].append(i)
            self.groups[pattern][1].append(values[order])
        self.groups = {p: (np.array(i), np.array(v)) for p, (i, v) in self.groups.items()}
        self.count = len(uniq)


def _four_point_source(prog: _Program, ms: _Multisets, k: np.ndarray, two_point: np.ndarray, cw: float) -> np.ndarray:
    """S_PQ = C_W^2 <phi_a phi_b phi_c phi_d> - (C_W <phi phi>_P)(C_W <phi phi>_Q), filled from one average
    per multiset; ``two_point`` = K^(l+1) - C_b = C_W <phi phi>."""
    values = np.empty(ms.count)
    letters = "abcd"
    for pattern, (rows, inputs) in ms.groups.items():
        state = {"C_W": cw, "_shape": (len(rows),)}
        for i, x in enumerate(letters[:len(pattern)]):
            for j, y in enumerate(letters[:len(pattern)]):
                if i <= j:
                    state[f"K_{x}{y}"] = k[inputs[:, i], inputs[:, j]]
        if len(pattern) == 2:  # closed forms of pairs: |K_ab| <= sqrt(K_aa K_bb) exactly (rounding can break it)
            state["K_aa"], state["K_ab"], state["K_bb"] = _regularise_pair(state["K_aa"], state["K_ab"], state["K_bb"])
        values[rows] = prog.four[pattern](state, {})
    pa, pb = np.triu_indices(k.shape[0])
    tp = two_point[pa, pb]
    S = np.empty((ms.n_pairs, ms.n_pairs))
    upper = cw ** 2 * values[ms.inverse] - tp[ms.P] * tp[ms.Q]
    S[ms.P, ms.Q] = upper
    S[ms.Q, ms.P] = upper
    return S


def _check(layer: int, **arrays) -> None:
    for name, arr in arrays.items():
        if not np.all(np.isfinite(arr)):
            raise DivergenceError(f"{name} is not finite at layer {layer}: a Gaussian average in the 1/n recursion "
                                  "diverges or overflows float64 (for kinked activations: exactly parallel inputs?)")
