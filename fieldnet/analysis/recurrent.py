"""Two-time kernels of recurrent and deep networks on a dataset, and their leading 1/n corrections.

    res = recurrent_kernel(net, X)                 # C0: (T+1, T+1, N, N), index [s, t, a, b]
    res = recurrent_finite_width(net, X)           # C0 and C1 with
          E[(1/n) sum_i h^s_{i;a} h^t_{i;b}] = C0[s,t,a,b] + C1[s,t,a,b] / n + O(1/n^2)
    res = recurrent_finite_width(net, X, readout=True)   # also P0, P1: the same for phi(h^s).phi(h^t)
    cmp = convergence_comparison("tanh", [1.0, 2.0], 4, bias_var=0.1)   # recurrent vs deep, vs C_W and t

Time index 0 is h^0 = U x^(0) + b (see :mod:`fieldnet.symbolic.recurrent` for the networks; THEORY.md section 7
counts from 1). X is (N, n_0) for input at the first step and (N, T+1, n_0) for input at every step.

**Mean field.** C0 follows the derived recursion of :mod:`fieldnet.symbolic.recurrent`. Numerically each step is one
application of the deep layer map K -> C_b + C_W <phi phi>_K to the kernel of all (time, input) variables so far,
evaluated by fieldnet's lowered pair averages (:class:`fieldnet.numeric.numba_backend.NumbaBackend`, the engine
behind :func:`fieldnet.kernels`).

**One loop** (THEORY.md 7.3-7.5; the auxiliary-field action of Segadlo et al. arXiv:2112.05589). Variables are the
(time, input) preactivations v = (t, a); the conditional covariance of one neuron's trajectory given the past is

    C_vw[h] = C_b + (C_W/n) sum_j phi(h_{j,v-1}) phi(h_{j,w-1}) + C_U x_v.x_w/n_0   = mean_j psi^{vw}(h_j)

(v - 1 is the same input one step earlier; entries with a time-0 variable are constants; the deep net keeps only
equal-time entries). The fluctuating entries x = {v, w} are the coordinates. With F^x(C) = <psi^x>_C (the mean-field
map), the response J_xz = dF^x/dC^z, the single-neuron noise Pi_xz = Cov_{C0}(psi^x, psi^z) and R = (1 - J)^{-1},
Sigma = R Pi R^T is n times the covariance of the fluctuating C, and the mean of C is C0 + Caux1/n with

    (*)   Caux1 = R [ (1/2) sum_{z,z'} d^2F/dC^z dC^z' Sigma_zz' + a ],   a^w = sum_{u,z} dPi^{wu}/dC^z R_zu.

The observable is O = h_v h_w, neuron-averaged; <O>_C = C_vw, so (**) of THEORY.md 7.5 gives

    C1_vw = Caux1_vw [if {v, w} fluctuates] + sum_{u,z} d/dC^z Cov_C(h_v h_w, psi^u) R_zu,
    Cov_C(h_v h_w, psi^u) = sum_{k,m in vars(u)} C_vk C_wm <d_k d_m psi^u>_C         (Stein's lemma, twice)

The last term is the O(1/n) gap between (1/n)|h_t|^2 and C_tt (the conditional mean of h_t given the past is built
from a fluctuating C); it vanishes in the deep net, where (**) reduces to Caux1 = K1 of
:func:`fieldnet.finite_width` at equal widths (Sigma <-> V).

Every Gaussian average and its covariance derivative is a sympy expression derived by the engine
(:func:`fieldnet.symbolic.finite_width.kernel_jacobian`, ``kernel_hessian``, ``four_point_source`` and
``sympy.diff`` through Price's theorem), with the two "inputs" of the deep formulas read as two time-input
variables. Averages with no closed form go through one private helper, :func:`_gaussian_average`: integrands that
split into single-variable factors (all of them for the built-in activations) go, via
:class:`fieldnet.analysis.finite_width._ProductAverage`, to the exact relu-family moments of
:mod:`fieldnet.numeric.orthant` (relu, leaky relu, abs, step, linear) or to the numba product integrator of
:mod:`fieldnet.numeric.products` (1e-9 relative; kink-aware), 1- and 2-variable ones otherwise to the adaptive whitened trapezoid, and only integrands that do not
split to tensor Gauss-Hermite (:data:`HERMITE_NODES`). Against the same integrator at 1e-12, C1 is accurate to
7e-13 absolute (tanh, C_W = 2.5, C_U = 1.5, C_b = 0.2, T = 3; tensor Gauss-Hermite gave 3e-6). Cost: Pi and the a-term
need O(M^2) averages of up to 4 variables, M = T N (T N + 1)/2 coordinates (tanh on 2 shared cores: T = 4, N = 1
about 2 s; T = 8 about 15 s; T = 10 about 45 s; T = 5, N = 2 about 30 s).

**Kinked activations.** Price's theorem differentiates averages twice, so for relu the one-loop integrands contain
delta(z_s) times factors of the other variables (e.g. delta(z_b) relu(z_a) relu(z_c)^2 / 2 in dPi/dC_bb). These are
integrated exactly by conditioning (:class:`_DeltaProductAverage`): E[delta(z_S) f(z_R)] = N(0; 0, C_SS)
E[f(z_R) | z_S = 0], z_R | z_S = 0 Gaussian with the Schur-complement covariance and, the kink being at 0, zero mean;
g(z_s) delta(z_s) is g(0) delta(z_s) with Heaviside(0) = 1/2. Deltas away from 0 (a non-zero conditional mean) and
delta derivatives raise :class:`fieldnet.errors.DivergenceError` naming the integrand.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from fieldnet.analysis.finite_width import _hold_nodes, _product_plan, _ProductAverage
from fieldnet.errors import DivergenceError, ParameterError, require
from fieldnet.numeric.functions import numpy_function
from fieldnet.numeric.kernels import validate_inputs
from fieldnet.numeric.products import split_product
from fieldnet.numeric.quadrature import batched_expectation
from fieldnet.spec import DeepNetwork, RecurrentNetwork
from fieldnet.symbolic import finite_width as fw
from fieldnet.symbolic.distributions import normalize_deltas
from fieldnet.symbolic.nodes import LayerQuantity

_LABELS = fw.symbols("a", "b", "c", "d")
_RHO_MAX = 1.0 - 1e-12


#: tensor Gauss-Hermite nodes per axis for the fallback path (3- and 4-variable averages whose integrand does not split
#: into single-variable factors; none of the built-in activations needs it). Measured on C1 (tanh, C_W = 2.5,
#: C_U = 1.5, C_b = 0.2, T = 3) against 40 nodes: 16 nodes 4.7e-3 absolute (C1 ~ 1.6), 24 nodes 3.1e-4, 32 nodes
#: 2.4e-5 (tanh's poles at +-i pi/2 make Gauss-Hermite converge sub-exponentially, THEORY.md 7.8).
HERMITE_NODES = {3: 40, 4: 24}


def _gaussian_average(f, cov: np.ndarray, product=None) -> np.ndarray:
    """E_{z ~ N(0, cov[p])} f(z) for cov (P, k, k), k <= 4: the ONE place this module integrates.

    With ``product`` (a plan from :func:`_average_plan`: the integrand as a sum of products of single-variable
    factors, delta functions conditioned out) the numba product integrator of :mod:`fieldnet.numeric.products`,
    through :class:`fieldnet.analysis.finite_width._ProductAverage` (tolerance 1e-9 relative to E|f|); otherwise
    ``f`` on the numpy path: adaptive whitened trapezoid (1e-14 relative) for k <= 2, tensor Gauss-Hermite with
    :data:`HERMITE_NODES` per axis for k = 3, 4."""
    if product is not None:
        return product(cov)
    return batched_expectation(f, cov, n_nodes=HERMITE_NODES.get(cov.shape[-1]))


class _DeltaProductAverage:
    """E_{z ~ N(0, C)} of sum_t c_t prod_{s in S_t} delta(z_s) prod_{r not in S_t} g_tr(z_r): every delta sits at 0,
    so each term is

        c_t N(0; 0, C_SS) E[prod_r g_tr(z_r) | z_S = 0],   z_R | z_S = 0 ~ N(0, C_RR - C_RS C_SS^{-1} C_SR)

    (the conditional mean C_RS C_SS^{-1} t vanishes at t = 0), the remaining average going to the product
    integrator. ``terms``: (c, delta variables S, product terms of the rest as from split_product, rest variables).
    A factor g(z_s) delta(z_s) at the same variable has been replaced by g(0) delta(z_s) beforehand
    (:func:`fieldnet.symbolic.distributions.normalize_deltas`; Heaviside(0) = 1/2, the project's convention)."""

    def __init__(self, terms, variables):
        self.variables = list(variables)
        self.terms = []
        for coef, deltas, rest, rest_vars in terms:
            S = [self.variables.index(v) for v in deltas]
            R = [self.variables.index(v) for v in rest_vars]
            plan = _ProductAverage(rest, list(rest_vars)) if rest_vars else None
            const = sum(c for c, parts in rest if not parts) if not rest_vars else None
            self.terms.append((coef, S, R, plan, const))

    def __call__(self, cov: np.ndarray) -> np.ndarray:
        total = np.zeros(cov.shape[0])
        for coef, S, R, plan, const in self.terms:
            density, cond = 1.0, cov[:, R][:, :, R]
            if S:
                css = cov[:, S][:, :, S]
                det = np.linalg.det(css)
                if not np.all(det > 0):
                    raise DivergenceError("a delta function sits on a variable of zero variance (given the other "
                                          "delta variables): the Gaussian average is infinite")
                density = (2 * np.pi) ** (-len(S) / 2) / np.sqrt(det)
                if plan is not None:
                    crs = cov[:, R][:, :, S]
                    cond = cond - crs @ np.linalg.solve(css, np.swapaxes(crs, 1, 2))
                    cond = 0.5 * (cond + np.swapaxes(cond, 1, 2))
            total += coef * density * (const if plan is None else plan(cond))
        return total


def _delta_plan(integrand, variables):
    """A :class:`_DeltaProductAverage` for an integrand with delta functions (every term: deltas of order 0 at 0
    on distinct variables times single-variable factors of the others), or None when some term does not split
    (the numpy path then raises DivergenceError). Delta derivatives and deltas away from 0 raise DivergenceError
    here: their conditional averages have a non-zero mean, which the product integrator does not take."""
    variables = tuple(variables)
    terms = []
    for term in sp.Add.make_args(sp.expand(normalize_deltas(integrand))):
        deltas, rest = {}, sp.S.One
        for factor in sp.Mul.make_args(term):
            base, exp = factor.as_base_exp()
            if not isinstance(base, sp.DiracDelta):
                rest *= factor
                continue
            arg, order = base.args[0], (int(base.args[1]) if len(base.args) > 1 else 0)
            var = [v for v in variables if arg.has(v)]
            if len(var) != 1 or sp.diff(arg, var[0]) != 1:
                return None
            point = sp.simplify(var[0] - arg)
            if order != 0 or point != 0:
                raise DivergenceError(f"the integrand {integrand} has {factor}: only delta functions at 0 "
                                      "(kinks at 0, e.g. relu) are integrated exactly (the conditional average at "
                                      "a kink away from 0, or of a delta derivative, has a non-zero mean)")
            if exp != 1 or var[0] in deltas:
                raise DivergenceError(f"the integrand {integrand} has a product of delta functions at the same "
                                      "variable: its Gaussian average is infinite")
            deltas[var[0]] = point
        rest = rest.xreplace(deltas)                 # g(z_s) delta(z_s) -> g(0) delta(z_s), Heaviside(0) = 1/2
        if rest.free_symbols - set(variables):
            return None
        rest_vars = tuple(v for v in variables if rest.has(v))
        split = split_product(rest, rest_vars) if rest_vars else [(float(rest), {})]
        if split is None:
            return None
        terms.append((1.0, tuple(deltas), split, rest_vars))
    return _DeltaProductAverage(terms, variables)


def _average_plan(node):
    """How :func:`_gaussian_average` integrates ``node``: integrands with delta functions by conditioning
    (:func:`_delta_plan`), others as finite_width does (:func:`fieldnet.analysis.finite_width._product_plan`:
    the product integrator for >= 3 variables when the integrand splits, else None, the numpy path)."""
    if node.integrand.has(sp.DiracDelta):
        return _delta_plan(node.integrand, node.variables)
    return _product_plan(node, enabled=True)


# ---------------------------------------------------------------- inputs and the variable layout

def input_gram(network: RecurrentNetwork, X) -> np.ndarray:
    """G[v, w] = x_v . x_w / n_0 over the variables v = t N + a (t = 0..T), zero where no input is fed."""
    if not isinstance(network, RecurrentNetwork):
        raise ParameterError(f"network: expected a RecurrentNetwork, got {type(network).__name__}")
    T1 = network.steps + 1
    if network.input_mode == "first":
        X = validate_inputs(X)
        N = X.shape[0]
        G = np.zeros((T1 * N, T1 * N))
        G[:N, :N] = X @ X.T / X.shape[1]
        return G
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError("X: expected a numeric array of shape (N, T+1, n_0)") from None
    require(arr.ndim == 3 and arr.shape[1] == T1, "X",
            f"input_mode='every' needs shape (N, T+1, n_0) = (N, {T1}, n_0), got {arr.shape}")
    require(arr.shape[0] >= 1 and arr.shape[2] >= 1, "X", f"needs at least one input and one feature, got {arr.shape}")
    require(bool(np.all(np.isfinite(arr))), "X", "contains NaN or infinite values")
    N, n0 = arr.shape[0], arr.shape[2]
    flat = arr.transpose(1, 0, 2).reshape(T1 * N, n0)          # row t N + a
    return flat @ flat.T / n0


def to_time_major(full: np.ndarray, T1: int, N: int) -> np.ndarray:
    """(D, D) over variables t N + a -> (T+1, T+1, N, N) indexed [s, t, a, b]."""
    return full.reshape(T1, N, T1, N).transpose(0, 2, 1, 3).copy()


# ---------------------------------------------------------------- mean field

def _layer_map(activation, K: np.ndarray, cw: float, cb: float) -> np.ndarray:
    """C_b + C_W <phi(z_v) phi(z_w)>_K for every pair of a (D, D) kernel: one deep layer on the lowered pair averages."""
    from fieldnet.numeric.numba_backend import NumbaBackend

    net = DeepNetwork(1, activation, (1.0, cw), (0.0, cb))
    params = [{"C_W": 1.0, "C_b": 0.0, "fan_in": None}, {"C_W": cw, "C_b": cb, "fan_in": None}]
    return NumbaBackend().run(net, np.ascontiguousarray(K), params, last_only=True, quantities=("K",))["K"]


def mean_field_full(network: RecurrentNetwork, G: np.ndarray) -> np.ndarray:
    """C0 over all variables (D, D), D = (T+1) N, from the input Gram G (see :func:`input_gram`)."""
    T1, N = network.steps + 1, G.shape[0] // (network.steps + 1)
    cw, cb, cu = network.weight_var, network.bias_var, network.input_var
    C = np.zeros_like(G)
    C[:N, :N] = cb + cu * G[:N, :N]
    for k in range(1, T1):
        if network.shared:
            C[:N, N:(k + 1) * N] = cb + cu * G[:N, N:(k + 1) * N]
            C[N:(k + 1) * N, :N] = C[:N, N:(k + 1) * N].T
            C[N:(k + 1) * N, N:(k + 1) * N] = (_layer_map(network.activation, C[:k * N, :k * N], cw, cb)
                                               + cu * G[N:(k + 1) * N, N:(k + 1) * N])
        else:
            prev, new = slice((k - 1) * N, k * N), slice(k * N, (k + 1) * N)
            C[new, new] = _layer_map(network.activation, C[prev, prev], cw, cb) + cu * G[new, new]
    if not np.all(np.isfinite(C)):
        raise DivergenceError("C0 is not finite: the Gaussian averages overflow float64 (reduce T or the variances)")
    return C


@dataclass(frozen=True)
class RecurrentResult:
    """Two-time kernels of a :class:`~fieldnet.spec.RecurrentNetwork` on N inputs, arrays (T+1, T+1, N, N).

    C0 : the mean-field kernel, C0[s, t, a, b] = lim E[(1/n) sum_i h^s_{i;a} h^t_{i;b}].
    C1 : its 1/n coefficient for that same observable (None from :func:`recurrent_kernel`).
    Caux1 : the 1/n coefficient of the mean of the conditional covariance C[h] (THEORY.md 7.5 (*)); zero on
        constant entries. C1 - Caux1 is the conditional-mean gap, zero in the deep net.
    Sigma : n times the covariance of the fluctuating entries of C[h], over ``coordinates`` (pairs of variables
        v = t N + a); :meth:`sigma_diagonal` gives n Var(C[h]_{(t,a),(t,a)}) as (T+1, N).
    Q_var : (T+1, N), n Var((1/n) sum_i (h^t_{i;a})^2) at leading order (THEORY.md 7.5 (**)).
    P0, P1 : E[(1/n) sum_i phi(h^s_{i;a}) phi(h^t_{i;b})] = P0 + P1/n (readout at one or several times, both
        architectures; for the RNN and s, t < T, P1[s, t] = Caux1[s+1, t+1] / C_W).
    """

    network: RecurrentNetwork
    C0: np.ndarray
    C1: np.ndarray | None = None
    Caux1: np.ndarray | None = None
    Sigma: np.ndarray | None = None
    coordinates: tuple | None = None
    Q_var: np.ndarray | None = None
    P0: np.ndarray | None = None
    P1: np.ndarray | None = None

    def readout_kernel(self, n=None, readout_var: float = 1.0, readout_bias_var: float = 0.0) -> np.ndarray:
        """E[y^s_a y^t_b] for the readout y^t = v.phi(h^t) + b_v, v_i ~ N(0, C_v/n), b_v ~ N(0, C_bv):
        C_v (P0 + P1/n) + C_bv, shape (T+1, T+1, N, N) (mean field when n is None)."""
        require(self.P0 is not None, "P0", "not computed (use recurrent_finite_width with readout=True)")
        require(np.isfinite(readout_var) and readout_var > 0, "readout_var", f"must be > 0, got {readout_var}")
        require(np.isfinite(readout_bias_var) and readout_bias_var >= 0, "readout_bias_var",
                f"must be >= 0, got {readout_bias_var}")
        p = self.P0 if n is None else self.P0 + self.P1 / n
        return readout_var * p + readout_bias_var

    def sigma_diagonal(self) -> np.ndarray:
        """n Var(C[h]_{(t,a),(t,a)}) as (T+1, N) (0 at t = 0, where C is a constant)."""
        require(self.Sigma is not None, "Sigma", "not computed (use recurrent_finite_width)")
        T1, N = self.C0.shape[0], self.C0.shape[2]
        out = np.zeros((T1, N))
        for m, (v, w) in enumerate(self.coordinates):
            if v == w:
                out[v // N, v % N] = self.Sigma[m, m]
        return out

    def corrected(self, n) -> np.ndarray:
        """C0 + C1 / n."""
        require(self.C1 is not None, "C1", "not computed (use recurrent_finite_width)")
        require(np.isfinite(n) and n > 0, "n", f"must be a positive width, got {n}")
        return self.C0 + self.C1 / n

    def save(self, path) -> None:
        arrays = {"C0": np.asarray(self.C0, dtype=np.float64)}
        if self.C1 is not None:
            arrays["C1"] = np.asarray(self.C1, dtype=np.float64)
        np.savez(path, **arrays)


def recurrent_kernel(network: RecurrentNetwork, X) -> RecurrentResult:
    """The mean-field two-time kernel C0, shape (T+1, T+1, N, N)."""
    G = input_gram(network, X)
    T1 = network.steps + 1
    return RecurrentResult(network, to_time_major(mean_field_full(network, G), T1, G.shape[0] // T1))


# ---------------------------------------------------------------- engine-derived templates, lowered to numpy

def _qname(q: LayerQuantity) -> str:
    return "K_" + "".join(str(i) for i in q.indices)


class _Template:
    """A derived expression in kernel entries K_xy of labels a, b, c, d (and C_W, C_b) as a numpy function;
    its Gaussian-average nodes are integrated by :func:`_gaussian_average`."""

    def __init__(self, expr, label: str):
        expr = sp.sympify(expr)
        if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
            raise DivergenceError(f"{label}: a Gaussian average is infinite for this activation")
        mapping = {q: sp.Symbol(_qname(q)) for q in expr.atoms(LayerQuantity)}
        expr = expr.xreplace(mapping)
        expr, nodes, holders, self.args = _hold_nodes(expr)
        syms = [sp.Symbol(a) for a in self.args]
        self.nodes = []
        for n in nodes:
            k = len(n.variables)
            cov = [[numpy_function(syms, n.covariance[i, j]) for j in range(k)] for i in range(k)]
            plan = _average_plan(n)
            f = None if plan is not None else numpy_function(n.variables, n.integrand, f"{label}: the integrand")
            self.nodes.append((cov, f, plan))
        self.value = numpy_function(syms + list(holders), expr, label)
        self.label = label

    def __call__(self, state: dict, size: int) -> np.ndarray:
        args = [state[a] for a in self.args]
        vals = []
        with np.errstate(all="ignore"):
            for cov, f, plan in self.nodes:
                c = np.stack([np.stack([np.broadcast_to(np.asarray(e(*args), float), (size,)) for e in row], -1)
                              for row in cov], -2)
                vals.append(_gaussian_average(f, c, plan))
            out = np.broadcast_to(np.asarray(self.value(*args, *vals), dtype=float), (size,)).copy()
        if not np.all(np.isfinite(out)):
            raise DivergenceError(f"{self.label} is not finite: a Gaussian average diverges for this activation")
        return out


def _state(C: np.ndarray, variables: np.ndarray, cw: float, cb: float) -> dict:
    """K_xy = C[var_x, var_y] for the labels x, y of ``variables`` (P, k), with |rho| capped below 1."""
    state = {"C_W": cw, "C_b": cb}
    k = variables.shape[1]
    for i in range(k):
        for j in range(i, k):
            vi, vj = variables[:, i], variables[:, j]
            value = C[vi, vj]
            if i != j:
                bound = _RHO_MAX * np.sqrt(np.maximum(C[vi, vi], 0) * np.maximum(C[vj, vj], 0))
                value = np.where(vi == vj, value, np.clip(value, -bound, bound))
            state[f"K_{_LABELS[i]}{_LABELS[j]}"] = value
    return state


@lru_cache(maxsize=None)
def _pair_templates(activation, diagonal: bool) -> dict:
    """J, Hessian, H_km = C_W <d_k d_m phi_a phi_b> and dH_km/dK_z for psi = C_b + C_W phi_a phi_b."""
    a, b = _LABELS[:2]
    P = (a, a) if diagonal else (a, b)
    labels = (a,) if diagonal else (a, b)
    out = {("F",): _Template(fw.mean_field_map(activation, P)[0], "mean-field map C_b + C_W <phi phi>")}
    for R, e in fw.kernel_jacobian(activation, P).items():
        out[("J", R)] = _Template(e, f"response dC/dK_{R}")
    for (R, S), e in fw.kernel_hessian(activation, P).items():
        out[("F2", R, S)] = _Template(e, f"curvature d2C/dK_{R}dK_{S}")
    psi = fw.C_W * fw.phi_of(activation, P[0]) * fw.phi_of(activation, P[1])
    subs = fw.sub_pairs(*labels)
    for i, k in enumerate(labels):
        for m in labels[i:]:
            h = fw.average(sp.diff(psi, fw.zvar(k), fw.zvar(m)), activation)
            out[("H", k, m)] = _Template(h, f"<d_{k} d_{m} psi>")
            for z in subs:
                out[("dH", k, m, z)] = _Template(sp.diff(h, fw.kernel(z)), f"d<d_{k} d_{m} psi>/dK_{z}")
    return out


@lru_cache(maxsize=None)
def _noise_template(activation, P: tuple, Q: tuple, z: tuple | None) -> _Template:
    """Pi_PQ = Cov(psi_P, psi_Q) (z None) or dPi_PQ/dK_z, over canonical labels."""
    expr = fw.four_point_source(activation, P, Q)
    if z is not None:
        expr = sp.diff(expr, fw.kernel(z))
    return _Template(expr, f"noise Cov(psi_{P}, psi_{Q})" + ("" if z is None else f" d/dK_{z}"))


def _canonical(vars4) -> tuple:
    """Relabel (p, q, r, s) by first appearance: returns (P, Q, distinct variables in label order)."""
    order = list(dict.fromkeys(vars4))
    lab = {v: _LABELS[i] for i, v in enumerate(order)}
    return fw.pair(lab[vars4[0]], lab[vars4[1]]), fw.pair(lab[vars4[2]], lab[vars4[3]]), tuple(order)


# ---------------------------------------------------------------- the one-loop computation

class _Coordinates:
    """The fluctuating entries {v, w} (v <= w) of C[h] and the variables their psi depends on (v - N, w - N)."""

    def __init__(self, T1: int, N: int, shared: bool):
        D = T1 * N
        pairs = [(v, w) for v in range(N, D) for w in range(v, D) if shared or v // N == w // N]
        self.pairs = pairs
        self.index = -np.ones((D, D), dtype=np.int64)
        for m, (v, w) in enumerate(pairs):
            self.index[v, w] = self.index[w, v] = m
        self.prev = np.array([(v - N, w - N) for v, w in pairs], dtype=np.int64).reshape(-1, 2)
        self.M, self.D, self.N = len(pairs), D, N

    def coord(self, v, w):
        return self.index[v, w]


def _label_vars(prev: np.ndarray) -> list:
    """For psi pairs (p, q): (diagonal?, variables in label order)."""
    return [(p == q, (p,) if p == q else (p, q)) for p, q in prev]


def _response_and_curvature(act, co: _Coordinates, C: np.ndarray, cw: float, cb: float, pairs=None):
    """For psi = C_b + C_W phi_p phi_q on each variable pair (p, q) of ``pairs`` (default: the coordinates' own,
    ``co.prev``): F = <psi> (K,), J = dF/dC^z (K, M) and the curvature d^2F/dC^z dC^z' as (row, z, z', value)."""
    pairs = co.prev if pairs is None else pairs
    K, M = len(pairs), co.M
    F = np.zeros(K)
    J = np.zeros((K, M))
    curv = []
    for diagonal in (True, False):
        rows = np.array([x for x in range(K) if (pairs[x, 0] == pairs[x, 1]) == diagonal], dtype=np.int64)
        if rows.size == 0:
            continue
        vars_ = pairs[rows, :1] if diagonal else pairs[rows]
        state = _state(C, vars_, cw, cb)
        temps = _pair_templates(act, diagonal)
        lab = {s: vars_[:, i] for i, s in enumerate(_LABELS[:vars_.shape[1]])}
        for key, tmpl in temps.items():
            if key[0] == "F":
                F[rows] = tmpl(state, rows.size)
            elif key[0] == "J":
                R = key[1]
                z = co.index[lab[R[0]], lab[R[1]]]
                ok = z >= 0
                if ok.any():
                    J[rows[ok], z[ok]] += tmpl(state, rows.size)[ok]
            elif key[0] == "F2":
                R, S = key[1], key[2]
                z1, z2 = co.index[lab[R[0]], lab[R[1]]], co.index[lab[S[0]], lab[S[1]]]
                ok = (z1 >= 0) & (z2 >= 0)
                if ok.any():
                    vals = tmpl(state, rows.size)
                    curv += [(rows[i], z1[i], z2[i], vals[i]) for i in np.flatnonzero(ok)]
    return F, J, curv


def _decoupled(C: np.ndarray, A, B) -> bool:
    return not (set(A) & set(B)) and bool(np.all(C[np.ix_(list(A), list(B))] == 0.0))


def _noise(act, co: _Coordinates, C, cw, cb):
    """Pi (M, M): one-neuron covariance of psi^x, psi^y at C0 (exactly 0 for decoupled variable sets)."""
    M = co.M
    Pi = np.zeros((M, M))
    groups: dict = {}
    for x in range(M):
        for y in range(x, M):
            vx, vy = tuple(co.prev[x]), tuple(co.prev[y])
            if _decoupled(C, set(vx), set(vy)):
                continue
            P, Q, order = _canonical(vx + vy)
            groups.setdefault((P, Q), []).append((x, y, order))
    for (P, Q), items in groups.items():
        xs = np.array([i[0] for i in items])
        ys = np.array([i[1] for i in items])
        variables = np.array([i[2] for i in items], dtype=np.int64)
        vals = _noise_template(act, P, Q, None)(_state(C, variables, cw, cb), len(items))
        Pi[xs, ys] = vals
        Pi[ys, xs] = vals
    return Pi


def _noise_loop(act, co: _Coordinates, C, cw, cb, R, pairs=None):
    """a^w = sum_{u,z} dPi^{wu}/dC^z R_zu (THEORY.md 7.5), z over the coordinates among vars(w) and vars(u); w runs
    over the psi pairs of ``pairs`` (default: the coordinates' own, ``co.prev``)."""
    pairs = co.prev if pairs is None else pairs
    M = co.M
    a = np.zeros(len(pairs))
    groups: dict = {}
    for w in range(len(pairs)):
        for u in range(M):
            vw, vu = tuple(pairs[w]), tuple(co.prev[u])
            P, Q, order = _canonical(vw + vu)
            dec = _decoupled(C, set(vw), set(vu))
            labels = _LABELS[:len(order)]
            lab = dict(zip(labels, order))
            for i, x in enumerate(labels):
                for y in labels[i:]:
                    z = co.index[lab[x], lab[y]]
                    if z < 0 or R[z, u] == 0.0:
                        continue
                    within = {lab[x], lab[y]} <= set(vw) or {lab[x], lab[y]} <= set(vu)
                    if dec and within:
                        continue                       # Pi^{wu} = 0 while the two sets stay uncorrelated
                    groups.setdefault((P, Q, (x, y)), []).append((w, R[z, u], order))
    for (P, Q, z), items in groups.items():
        ws = np.array([i[0] for i in items])
        weights = np.array([i[1] for i in items])
        variables = np.array([i[2] for i in items], dtype=np.int64)
        vals = _noise_template(act, P, Q, z)(_state(C, variables, cw, cb), len(items))
        np.add.at(a, ws, vals * weights)
    return a


def _conditional_mean_gap(act, co: _Coordinates, C, cw, cb, R, Sigma):
    """(b, qvar): b_vw = sum_{u,z} d/dC^z Cov(h_v h_w, psi^u) R_zu over all variable pairs (D, D) (module docstring),
    and qvar_v = n Var((1/n)|h_v|^2) at leading order, THEORY.md 7.5 (**) with O = h_v^2:
    2 C_vv^2 + Sigma_cc + 2 sum_u R_cu Cov(psi^u, h_v^2), c = {v, v} (the last two only where c fluctuates)."""
    D, M = co.D, co.M
    b = np.zeros((D, D))
    cov_psi_o = np.zeros((M, D))                    # Cov(psi^u, h_v^2)
    for diagonal in (True, False):
        us = np.array([u for u in range(M) if (co.prev[u, 0] == co.prev[u, 1]) == diagonal], dtype=np.int64)
        if us.size == 0:
            continue
        vars_ = co.prev[us, :1] if diagonal else co.prev[us]
        k = vars_.shape[1]
        labels = _LABELS[:k]
        temps = _pair_templates(act, diagonal)
        state = _state(C, vars_, cw, cb)
        H = np.zeros((us.size, k, k))
        dH = np.zeros((us.size, k, k))
        subs = fw.sub_pairs(*labels)
        # Delta^u restricted to the coordinates among vars(u): the response of C_z to noise at u
        dz = {}
        for z in subs:
            idx = co.index[vars_[:, labels.index(z[0])], vars_[:, labels.index(z[1])]]
            dz[z] = np.where(idx >= 0, R[np.maximum(idx, 0), us], 0.0)
        for i in range(k):
            for j in range(i, k):
                h = temps[("H", labels[i], labels[j])](state, us.size)
                H[:, i, j] = H[:, j, i] = h
                d = sum(temps[("dH", labels[i], labels[j], z)](state, us.size) * dz[z] for z in subs)
                dH[:, i, j] = dH[:, j, i] = d
        nz = co.index >= 0
        for row, u in enumerate(us):
            V = vars_[row]
            delta = np.zeros((D, D))
            delta[nz] = R[co.index[nz], u]
            A = delta[:, V] @ H[row] @ C[V, :]
            b += A + A.T + C[:, V] @ dH[row] @ C[V, :]
            cov_psi_o[u] = np.einsum("vk,km,vm->v", C[:, V], H[row], C[:, V])
    qvar = 2 * np.diag(C) ** 2
    for v in range(D):
        c = co.index[v, v]
        if c >= 0:
            qvar[v] += Sigma[c, c] + 2 * R[c] @ cov_psi_o[:, v]
    return b, qvar


def _readout(act, co: _Coordinates, C, cw, cb, R, Sigma, aux):
    """E[(1/n) sum_i phi(h_{i,v}) phi(h_{i,w})] = P0 + P1/n for all variable pairs, THEORY.md 7.5 (**) with
    O = phi_v phi_w = (psi - C_b)/C_W on the unshifted pair: P1 = [J.Caux1 + (1/2) F'':Sigma + a] / C_W."""
    D = co.D
    v, w = np.triu_indices(D)
    pairs = np.stack([v, w], 1).astype(np.int64)
    F, J, curv = _response_and_curvature(act, co, C, cw, cb, pairs)
    one = J @ aux + _noise_loop(act, co, C, cw, cb, R, pairs)
    for x, z1, z2, value in curv:
        one[x] += 0.5 * value * Sigma[z1, z2]
    P0, P1 = np.zeros((D, D)), np.zeros((D, D))
    P0[v, w] = P0[w, v] = (F - cb) / cw
    P1[v, w] = P1[w, v] = one / cw
    return P0, P1


def recurrent_finite_width(network: RecurrentNetwork, X, readout: bool = False) -> RecurrentResult:
    """C0 and the 1/n coefficient C1 of E[(1/n) sum_i h^s_{i;a} h^t_{i;b}], arrays (T+1, T+1, N, N) (module doc).

    ``readout=True`` also gives P0, P1 of E[(1/n) sum_i phi(h^s_{i;a}) phi(h^t_{i;b})] (the readout two-point
    function; about doubles the cost); at t = T it needs the averages of one more step."""
    G = input_gram(network, X)
    T1 = network.steps + 1
    N = G.shape[0] // T1
    C = mean_field_full(network, G)
    act, cw, cb = network.activation, network.weight_var, network.bias_var
    co = _Coordinates(T1, N, network.shared)
    # coordinates whose psi involves a time-0 variable: their psi depends only on constants, so J, F'' vanish there
    _, J, curv = _response_and_curvature(act, co, C, cw, cb)
    R = np.linalg.inv(np.eye(co.M) - J)
    Pi = _noise(act, co, C, cw, cb)
    Sigma = R @ Pi @ R.T
    Sigma = (Sigma + Sigma.T) / 2
    source = np.zeros(co.M)
    for x, z1, z2, value in curv:
        source[x] += 0.5 * value * Sigma[z1, z2]
    source += _noise_loop(act, co, C, cw, cb, R)
    aux = R @ source
    aux_full = np.zeros((co.D, co.D))
    nz = co.index >= 0
    aux_full[nz] = aux[co.index[nz]]
    gap, qvar = _conditional_mean_gap(act, co, C, cw, cb, R, Sigma)
    C1 = aux_full + gap
    P0 = P1 = None
    if readout:
        try:
            P0, P1 = _readout(act, co, C, cw, cb, R, Sigma, aux)
        except DivergenceError as exc:
            raise DivergenceError(f"{exc} (in the readout phi(h^s).phi(h^t), which needs one more step's averages: "
                                  "pass readout=False for C0, C1 alone)") from None
    for name, arr in (("C1", C1), ("Sigma", Sigma)):
        if not np.all(np.isfinite(arr)):
            raise DivergenceError(f"{name} is not finite: a Gaussian average in the one-loop terms diverges")
    tm = lambda full: to_time_major(full, T1, N)
    return RecurrentResult(network, tm(C), tm(C1), tm(aux_full), Sigma, tuple(co.pairs), qvar.reshape(T1, N),
                           None if P0 is None else tm(P0), None if P1 is None else tm(P1))


# ---------------------------------------------------------------- deep versus recurrent: how fast each converges

@dataclass(frozen=True)
class ConvergenceComparison:
    """1/n coefficients of one input's single-time statistics, recurrent vs deep, on a grid of C_W (rows) and
    t = 1 .. T (columns); arrays (len(weight_vars), T).

    c1_* : the 1/n coefficient of E[(1/n)|h^t|^2] (the issue's C1[t, t, 0, 0]); relative deviation at width n is c1/(n C0)
    sigma_* : n Var(C[h]_tt), the run-to-run fluctuation of the conditional variance (the next step's readout kernel)
    qvar_* : n Var((1/n)|h^t|^2)
    """

    activation: str
    bias_var: float
    input_var: float
    weight_vars: np.ndarray
    steps: np.ndarray
    C0: np.ndarray
    c1_recurrent: np.ndarray
    c1_deep: np.ndarray
    sigma_recurrent: np.ndarray
    sigma_deep: np.ndarray
    qvar_recurrent: np.ndarray
    qvar_deep: np.ndarray

    @property
    def c1_ratio(self) -> np.ndarray:
        """|c1_recurrent| / |c1_deep| (inf where the deep coefficient vanishes)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.abs(self.c1_recurrent) / np.abs(self.c1_deep)

    @property
    def sigma_ratio(self) -> np.ndarray:
        return self.sigma_recurrent / self.sigma_deep

    @property
    def qvar_ratio(self) -> np.ndarray:
        return self.qvar_recurrent / self.qvar_deep


def convergence_comparison(activation, weight_vars, steps: int, bias_var: float, input_var: float = 1.0,
                           x=None) -> ConvergenceComparison:
    """Recurrent vs deep 1/n coefficients for one input ``x`` (n_0-vector; default (1, 0.5, -0.3)), input at the
    first step, at every C_W in ``weight_vars`` and every t = 1 .. ``steps`` (one T-step computation per C_W and
    architecture: the coefficients at time t do not depend on later steps)."""
    x = np.array([1.0, 0.5, -0.3]) if x is None else np.asarray(x, dtype=float).ravel()
    X = x[None, :]
    cws = np.atleast_1d(np.asarray(weight_vars, dtype=float))
    shape = (cws.size, int(steps))
    out = {k: np.zeros(shape) for k in ("C0", "c1r", "c1d", "sr", "sd", "qr", "qd")}
    for i, cw in enumerate(cws):
        res = {}
        for arch in ("recurrent", "deep"):
            res[arch] = recurrent_finite_width(RecurrentNetwork(activation, steps, cw, bias_var, input_var,
                                                                "first", arch), X)
        r, d = res["recurrent"], res["deep"]
        diag = lambda a: np.array([a[t, t, 0, 0] for t in range(1, steps + 1)])
        out["C0"][i], out["c1r"][i], out["c1d"][i] = diag(r.C0), diag(r.C1), diag(d.C1)
        out["sr"][i], out["sd"][i] = r.sigma_diagonal()[1:, 0], d.sigma_diagonal()[1:, 0]
        out["qr"][i], out["qd"][i] = r.Q_var[1:, 0], d.Q_var[1:, 0]
    name = RecurrentNetwork(activation).activation.name
    return ConvergenceComparison(name, float(bias_var), float(input_var), cws, np.arange(1, steps + 1), out["C0"],
                                 out["c1r"], out["c1d"], out["sr"], out["sd"], out["qr"], out["qd"])
