"""Leading 1/n corrections of deep networks, derived by the symbolic engine (THEORY.md sections 4-5).

Conventions (Roberts, Yaida & Hanin arXiv:2106.10165 ch. 4, 8; Yaida arXiv:1910.00019). Layer l has
fan-in n_{l-1}; every O(1/n) coefficient of layer l is normalised by n_{l-1}, and r = r_l = n_l / n_{l-1}
enters the step l -> l + 1. For inputs a, b, ... and neurons i, k:

    E[z_{i;a} z_{k;b}] = delta_ik [K_ab + K1_ab / n_{l-1}] + O(1/n^2)
    E[z_{i1;a1} z_{i2;a2} z_{i3;a3} z_{i4;a4}]_connected
        = (1/n_{l-1}) [d_{i1i2} d_{i3i4} V_{(a1a2)(a3a4)} + d_{i1i3} d_{i2i4} V_{(a1a3)(a2a4)} + d_{i1i4} d_{i2i3} V_{(a1a4)(a2a3)}]

Layer 1 is exactly Gaussian: V^(1) = K1^(1) = 0. Pairs P, Q, R, S are *unordered* input pairs, used as
independent coordinates of the kernel (K_ab = K_ba is one coordinate), so V_PQ = n_{l-1} Cov(hat G_P, hat G_Q),
hat G the conditional variance. Nothing here is typed in: the mean-field update of a pair P,

    K^(l+1)_P = C_b + C_W <phi phi>_P,    Theta^(l+1)_P = lambda_b + lambda_W <phi phi>_P + C_W <phi' phi'>_P Theta^(l)_P,

is composed from the :class:`~fieldnet.symbolic.layers.Nonlinearity` layer and a rate-aware affine layer, and
its Jacobian J_PR = dK^(l+1)_P / dK^(l)_R, Hessian and NTK derivatives come from ``sympy.diff`` (Price's theorem
on :class:`~fieldnet.symbolic.nodes.GaussianExpectation` nodes, or the derivative of a closed form). Then

    V'_PQ  = C_W^2 Cov_K(phi phi_P, phi phi_Q) + r sum_{R in P, S in Q} J_PR J_QS V_RS                    (4.2)
    K1'_P  = r [ sum_R J_PR K1_R + (1/2) sum_{R,S} d^2 K'_P / dK_R dK_S V_RS ]

and for the NTK (5.1-5.3; h_P = lambda_W phi phi_P + C_W Theta_P phi' phi'_P, g_P = C_W phi phi_P are one
neuron's contributions to hat Theta' and hat G'; chi_P = dTheta'_P / dTheta_P = C_W <phi' phi'>_P):

    D'_{P,Q} = Cov(h_P, g_Q) + r sum_S [ sum_R dTheta'_P/dK_R V_RS + chi_P D_{P,S} ] J_QS
    A'_{P,Q} = Cov(h_P, h_Q) + r [ T V T^T + chi_P D_{P,S} T_QS + T_PR D_{Q,R} chi_Q + chi_P chi_Q A_PQ ],  T_PR = dTheta'_P/dK_R
    B'_{a1a3a2a4} = C_W^2 Theta_a1a2 Theta_a3a4 <phi'_a1 phi'_a2 phi'_a3 phi'_a4> + r C_W^2 <phi'_a1 phi'_a3><phi'_a2 phi'_a4> B_{a1a3a2a4}
    F'_{a1a3a2a4} = C_W^2 Theta_a1a2 <phi'_a1 phi_a3 phi'_a2 phi_a4>
                    + r C_W^2 sum_{b1 in {a1,a3}, b2 in {a2,a4}} F_{a1b1a2b2} <d_b1(phi'_a1 phi_a3)><d_b2(phi'_a2 phi_a4)>
    H1'_P = r [ sum_R T_PR K1_R + (1/2) sum_{RS} d^2 Theta'_P/dK_R dK_S V_RS + sum_R (d chi_P / dK_R) M_{P,R} + chi_P H1_P ]
    M_{(p1p2),(r1r2)} = D_{(p1p2),(r1r2)} + F_{p1 r1 p2 r2} + F_{p1 r2 p2 r1}     (= n E[dH_jj;P z_j;r1 z_j;r2])

with E[H_{i1i2;P}] = delta (Theta_P + H1_P / n_{l-1}), Cov(H_ii;P, H_kk;Q) = A_PQ / n, E[H_ik;a1a2 H_ik;a3a4] =
B_{a1a3a2a4} / n, E[dH_ii;P z_k;q1 z_k;q2] = D_{P,Q} / n, E[H_ik;a1a2 z_i;a3 z_k;a4] = F_{a1a3a2a4} / n (i != k),
so for one input Var(H_ii) = (A + 2B)/n (Hanin & Nica arXiv:1909.05989 for ReLU). For one input these are
THEORY.md 4.1 and 5.2 exactly; the several-input NTK forms (5.3) are [D] there, not Monte-Carlo tested.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import product

import sympy as sp

from fieldnet.symbolic.activations import get_activation
from fieldnet.symbolic.expectation import gaussian_expectation
from fieldnet.symbolic.layers import PHI, X, Nonlinearity, compose, layer_param
from fieldnet.symbolic.nodes import LayerQuantity
from fieldnet.symbolic.recursions import LAYER, Recursion

C_W = layer_param("C_W", LAYER + 1, False)
C_B = layer_param("C_b", LAYER + 1, False)
LAMBDA_W = sp.Symbol("lambda_W", positive=True)
LAMBDA_B = sp.Symbol("lambda_b", nonnegative=True)
#: r_l = n_l / n_{l-1}, the width ratio entering the step l -> l + 1
RATIO = LayerQuantity("r", LAYER)


# ---------------------------------------------------------------- indices and state quantities

def _key(s):
    return sp.default_sort_key(sp.Symbol(s) if isinstance(s, str) else s)


def symbols(*names):
    return tuple(sp.Symbol(n) if isinstance(n, str) else n for n in names)


def pair(p, q) -> tuple:
    """An unordered input pair as a sorted tuple of symbols."""
    p, q = symbols(p, q)
    return (p, q) if _key(p) <= _key(q) else (q, p)


def distinct(*inputs) -> tuple:
    """The distinct inputs, sorted."""
    return tuple(sorted(set(symbols(*inputs)), key=_key))


def sub_pairs(*inputs) -> tuple:
    """Every unordered pair (diagonal included) of the distinct ``inputs``: the kernel coordinates."""
    d = distinct(*inputs)
    return tuple(pair(d[i], d[j]) for i in range(len(d)) for j in range(i, len(d)))


def kernel(P, layer=LAYER, name="K") -> LayerQuantity:
    return LayerQuantity(name, layer, pair(*P))


def vertex(P, Q, layer=LAYER, name="V") -> LayerQuantity:
    """V_{(P)(Q)} with its symmetries: sorted within each pair and between the pairs."""
    P, Q = pair(*P), pair(*Q)
    if [_key(s) for s in Q] < [_key(s) for s in P]:
        P, Q = Q, P
    return LayerQuantity(name, layer, P + Q)


def ntk_kernel_cov(P, Q, layer=LAYER) -> LayerQuantity:
    """D_{P,Q}: NTK pair P, kernel pair Q (no symmetry between them)."""
    return LayerQuantity("D", layer, pair(*P) + pair(*Q))


def four_index(name, a1, a3, a2, a4, layer=LAYER) -> LayerQuantity:
    """B_{a1a3a2a4} or F_{a1a3a2a4}: inputs a1, a3 on neuron i, a2, a4 on neuron k."""
    return LayerQuantity(name, layer, symbols(a1, a3, a2, a4))


def zvar(s) -> sp.Symbol:
    return sp.Symbol(f"z_{s}", real=True)


# ---------------------------------------------------------------- the derived mean-field map

class RatedDense:
    """Affine layer with NTK rates: K' = C_b + C_W K, Theta' = lambda_b + lambda_W K + C_W Theta (THEORY.md 1)."""

    def kernel_map(self, state: dict) -> dict:
        k, t = state["K"], state["Theta"]
        return {"K": k.applyfunc(lambda e: C_B + C_W * e),
                "Theta": sp.ImmutableMatrix(2, 2, lambda i, j: LAMBDA_B + LAMBDA_W * k[i, j] + C_W * t[i, j])}


def _phi(act):
    return PHI(X) if act is None else act.expr.subs(sp.Symbol("x", real=True), X)


def _act(activation):
    return None if activation is None else get_activation(activation)


@lru_cache(maxsize=512)
def mean_field_map(activation, P) -> tuple:
    """(K^(l+1)_P, Theta^(l+1)_P) in terms of K^(l), Theta^(l): Nonlinearity then RatedDense."""
    act = _act(activation)
    p, q = pair(*P)
    idx = (p, q)
    state = {"K": sp.ImmutableMatrix(2, 2, lambda i, j: kernel((idx[i], idx[j]))),
             "Theta": sp.ImmutableMatrix(2, 2, lambda i, j: kernel((idx[i], idx[j]), name="Theta"))}
    out = compose(state, Nonlinearity(_phi(act), evaluate=act is not None), RatedDense())
    j = 0 if p == q else 1
    return out["K"][0, j], out["Theta"][0, j]


def tidy(expr, P, arc_cosine=True):
    """Simplify a derivative of an arc-cosine closed form (relu, leaky relu, abs, step ...) of pair P.

    Differentiating sqrt(K_aa K_bb - K_ab^2) and arccos(rho) leaves terms that cancel only analytically
    (and blow up separately as |rho| -> 1); in the variables s_a = sqrt(K_aa), s_b = sqrt(K_bb),
    rho = K_ab/(s_a s_b) sympy's ``simplify`` removes them, e.g. relu's J_(ab)(aa) becomes
    C_W s_b sqrt(1 - rho^2)/(4 pi s_a) = (C_W/2)<phi''_a phi_b>."""
    p, q = pair(*P)
    if p == q or not arc_cosine or expr == 0:
        return expr
    s_p, s_q = sp.Symbol("s_p", positive=True), sp.Symbol("s_q", positive=True)
    rho = sp.Symbol("rho", real=True)
    kpp, kqq, kpq = kernel((p, p)), kernel((q, q)), kernel((p, q))
    short = sp.simplify(expr.xreplace({kpp: s_p ** 2, kqq: s_q ** 2, kpq: rho * s_p * s_q}))
    return short.xreplace({rho: kpq / (sp.sqrt(kpp) * sp.sqrt(kqq)), s_p: sp.sqrt(kpp), s_q: sp.sqrt(kqq)})


@lru_cache(maxsize=2048)
def kernel_jacobian(activation, P) -> dict:
    """J_PR = dK^(l+1)_P / dK^(l)_R (= C_W d<phi phi>_P / dK_R, Price's theorem) for R in P's sub-pairs."""
    k_new, _ = mean_field_map(activation, P)
    arc = k_new.has(sp.acos)
    return {R: tidy(sp.diff(k_new, kernel(R)), P, arc) for R in sub_pairs(*P)}


@lru_cache(maxsize=2048)
def kernel_hessian(activation, P) -> dict:
    """d^2 K^(l+1)_P / dK_R dK_S for every ordered (R, S) of P's sub-pairs."""
    k_new, _ = mean_field_map(activation, P)
    subs, arc = sub_pairs(*P), k_new.has(sp.acos)
    return {(R, S): tidy(sp.diff(k_new, kernel(R), kernel(S)), P, arc) for R in subs for S in subs}


@lru_cache(maxsize=2048)
def ntk_derivatives(activation, P) -> tuple:
    """(T_PR = dTheta'_P/dK_R, chi_P = dTheta'_P/dTheta_P, d^2Theta'_P/dK_R dK_S, d chi_P/dK_R)."""
    _, t_new = mean_field_map(activation, P)
    subs = sub_pairs(*P)
    theta, arc = kernel(P, name="Theta"), t_new.has(sp.acos)
    slope = {R: tidy(sp.diff(t_new, kernel(R)), P, arc) for R in subs}
    chi = tidy(sp.diff(t_new, theta), P, arc)
    hess = {(R, S): tidy(sp.diff(t_new, kernel(R), kernel(S)), P, arc) for R in subs for S in subs}
    dchi = {R: tidy(sp.diff(t_new, theta, kernel(R)), P, arc) for R in subs}
    return slope, chi, hess, dchi


# ---------------------------------------------------------------- Gaussian averages of one neuron

def average(integrand, activation=None):
    """<integrand>_K over the z_s it contains (z_s = :func:`zvar`), covariance K^(l) on those inputs; the
    integrand is expanded and each product averaged on its own (closed form where the engine has one)."""
    act = _act(activation)
    total = sp.S.Zero
    for term in sp.Add.make_args(sp.expand(integrand)):
        zs = sorted((s for s in term.free_symbols if s.name.startswith("z_")), key=sp.default_sort_key)
        if not zs:
            total += term
            continue
        inputs = [sp.Symbol(z.name[2:]) for z in zs]
        coeff, body = sp.S.One, sp.S.One
        for factor in sp.Mul.make_args(term):
            if factor.free_symbols & set(zs):
                body *= factor
            else:
                coeff *= factor
        cov = [[kernel((u, v)) for v in inputs] for u in inputs]
        total += coeff * gaussian_expectation(body, zs, cov, evaluate=act is not None)
    return total


def phi_of(activation, s, order=0):
    """phi^(order)(z_s) for the activation (generic phi when None)."""
    return sp.diff(_phi(_act(activation)), X, order).subs(X, zvar(s))


def _g(activation, P):
    """One neuron's contribution to hat G'_P: C_W phi(z_p) phi(z_q)."""
    return C_W * phi_of(activation, P[0]) * phi_of(activation, P[1])


def _h(activation, P):
    """One neuron's contribution to hat Theta'_P: lambda_W phi phi + C_W Theta_P phi' phi'."""
    return (LAMBDA_W * phi_of(activation, P[0]) * phi_of(activation, P[1])
            + C_W * kernel(P, name="Theta") * phi_of(activation, P[0], 1) * phi_of(activation, P[1], 1))


def covariance(u, v, activation=None):
    """Cov_K(u, v) = <u v> - <u><v> for one neuron's integrands u, v."""
    return average(u * v, activation) - average(u, activation) * average(v, activation)


@lru_cache(maxsize=4096)
def four_point_source(activation, P, Q):
    """C_W^2 [<phi_a1 phi_a2 phi_a3 phi_a4> - <phi_a1 phi_a2><phi_a3 phi_a4>]: the V source (THEORY.md 4.2)."""
    return covariance(_g(activation, pair(*P)), _g(activation, pair(*Q)), activation)


# ---------------------------------------------------------------- the recursions

def vertex_update(activation, P, Q):
    """V^(l+1)_PQ (THEORY.md 4.2, independent-coordinate form)."""
    jp, jq = kernel_jacobian(activation, pair(*P)), kernel_jacobian(activation, pair(*Q))
    carried = sum((jp[R] * jq[S] * vertex(R, S) for R in jp for S in jq), sp.S.Zero)
    return four_point_source(activation, P, Q) + RATIO * carried


def k1_update(activation, P):
    """K1^(l+1)_P = r [sum_R J_PR K1_R + (1/2) sum_RS d^2K'_P/dK_R dK_S V_RS]."""
    jac, hess = kernel_jacobian(activation, pair(*P)), kernel_hessian(activation, pair(*P))
    linear = sum((jac[R] * kernel(R, name="K1") for R in jac), sp.S.Zero)
    second = sum((h * vertex(R, S) for (R, S), h in hess.items()), sp.S.Zero)
    return RATIO * (linear + second / 2)


def d_update(activation, P, Q):
    """D^(l+1)_{P,Q} (NTK pair P, kernel pair Q)."""
    P, Q = pair(*P), pair(*Q)
    slope, chi, _, _ = ntk_derivatives(activation, P)
    jq = kernel_jacobian(activation, Q)
    carried = sum(((sum((slope[R] * vertex(R, S) for R in slope), sp.S.Zero) + chi * ntk_kernel_cov(P, S)) * jq[S]
                   for S in jq), sp.S.Zero)
    return covariance(_h(activation, P), _g(activation, Q), activation) + RATIO * carried


def a_update(activation, P, Q):
    """A^(l+1)_{PQ} (NTK pair with NTK pair)."""
    P, Q = pair(*P), pair(*Q)
    sp_, cp, _, _ = ntk_derivatives(activation, P)
    sq, cq, _, _ = ntk_derivatives(activation, Q)
    carried = (sum((sp_[R] * sq[S] * vertex(R, S) for R in sp_ for S in sq), sp.S.Zero)
               + cp * sum((ntk_kernel_cov(P, S) * sq[S] for S in sq), sp.S.Zero)
               + cq * sum((ntk_kernel_cov(Q, R) * sp_[R] for R in sp_), sp.S.Zero)
               + cp * cq * vertex(P, Q, name="A"))
    return covariance(_h(activation, P), _h(activation, Q), activation) + RATIO * carried


def b_update(activation, a1, a3, a2, a4):
    """B^(l+1)_{a1a3a2a4}, E[H_ik;a1a2 H_ik;a3a4] = B/n (THEORY.md 5.3)."""
    a1, a3, a2, a4 = symbols(a1, a3, a2, a4)
    d = {s: phi_of(activation, s, 1) for s in (a1, a2, a3, a4)}
    src = C_W ** 2 * kernel((a1, a2), name="Theta") * kernel((a3, a4), name="Theta") * average(
        d[a1] * d[a2] * d[a3] * d[a4], activation)
    prop = C_W ** 2 * average(d[a1] * d[a3], activation) * average(d[a2] * d[a4], activation)
    return src + RATIO * prop * four_index("B", a1, a3, a2, a4)


def f_update(activation, a1, a3, a2, a4):
    """F^(l+1)_{a1a3a2a4}, E[H_ik;a1a2 z_i;a3 z_k;a4] = F/n (THEORY.md 5.3; Stein derivatives d_b)."""
    a1, a3, a2, a4 = symbols(a1, a3, a2, a4)
    left = phi_of(activation, a1, 1) * phi_of(activation, a3)
    right = phi_of(activation, a2, 1) * phi_of(activation, a4)
    src = C_W ** 2 * kernel((a1, a2), name="Theta") * average(left * right, activation)
    carried = sp.S.Zero
    for b1 in distinct(a1, a3):
        for b2 in distinct(a2, a4):
            carried += (four_index("F", a1, b1, a2, b2) * average(sp.diff(left, zvar(b1)), activation)
                        * average(sp.diff(right, zvar(b2)), activation))
    return src + RATIO * C_W ** 2 * carried


def h1_update(activation, P):
    """H1^(l+1)_P, the 1/n mean correction of the NTK: E[H_ii;P] = Theta_P + H1_P / n."""
    P = pair(*P)
    slope, chi, hess, dchi = ntk_derivatives(activation, P)
    p1, p2 = P
    mixed = sum((dchi[R] * (ntk_kernel_cov(P, R) + four_index("F", p1, R[0], p2, R[1])
                            + four_index("F", p1, R[1], p2, R[0])) for R in dchi), sp.S.Zero)
    linear = sum((slope[R] * kernel(R, name="K1") for R in slope), sp.S.Zero)
    second = sum((h * vertex(R, S) for (R, S), h in hess.items()), sp.S.Zero)
    return RATIO * (linear + second / 2 + mixed + chi * kernel(P, name="H1"))


def pair_ntk_targets(a, b) -> dict:
    """The closed two-input system behind H1_ab: {LayerQuantity at l+1: update builder}."""
    a, b = symbols(a, b)
    P = pair(a, b)
    out = {}
    for S in sub_pairs(a, b):
        out[("D", P, S)] = lambda act, S=S: d_update(act, P, S)
    for a3, a4 in product((a, b), repeat=2):
        out[("F", a, a3, b, a4)] = lambda act, a3=a3, a4=a4: f_update(act, a, a3, b, a4)
    out[("H1", P)] = lambda act: h1_update(act, P)
    return out


def _next(q: LayerQuantity) -> LayerQuantity:
    return q.at_layer(LAYER + 1)


def finite_width_recursion(activation=None) -> Recursion:
    """The 1/n recursions for preactivation statistics, printed for representative index patterns:
    V_{(ab)(cd)} (four distinct inputs), V_{(ab)(ab)}, V_{(aa)(aa)}, K1_ab, K1_aa (THEORY.md 4.1-4.2)."""
    a, b, c, d = symbols("a", "b", "c", "d")
    update = {}
    for P, Q in (((a, b), (c, d)), ((a, b), (a, b)), ((a, a), (a, a))):
        update[_next(vertex(P, Q))] = vertex_update(activation, P, Q)
    for P in ((a, b), (a, a)):
        update[_next(kernel(P, name="K1"))] = k1_update(activation, P)
    initial = {q.at_layer(1): sp.S.Zero for q in update}
    notes = ("E[z_a z_b] = K_ab + K1_ab/n_{l-1}; connected four-point = (1/n_{l-1})[d d V + 2 perms]; "
             "r[l] = n_l/n_{l-1}; V_abcd means V_(ab)(cd).",
             "Standard parameterization: W^(l)_ij ~ N(0, C_W/n_{l-1}), b^(l)_i ~ N(0, C_b).")
    return Recursion("deep finite width (1/n): four-point vertex V and two-point correction K1",
                     ("V", "K1"), initial, update, _act(activation), ("K",), "ntk", False, notes)


def ntk_finite_width_recursion(activation=None) -> Recursion:
    """The NTK at order 1/n for one input a (THEORY.md 5.2): D, A, B, F, H1 (with V, K1 they feed on)."""
    a = sp.Symbol("a")
    P = (a, a)
    update = {_next(vertex(P, P)): vertex_update(activation, P, P),
              _next(kernel(P, name="K1")): k1_update(activation, P),
              _next(ntk_kernel_cov(P, P)): d_update(activation, P, P),
              _next(vertex(P, P, name="A")): a_update(activation, P, P),
              _next(four_index("B", a, a, a, a)): b_update(activation, a, a, a, a),
              _next(four_index("F", a, a, a, a)): f_update(activation, a, a, a, a),
              _next(kernel(P, name="H1")): h1_update(activation, P)}
    initial = {q.at_layer(1): sp.S.Zero for q in update}
    notes = ("E[H_ii] = Theta + H1/n_{l-1}; Var(H_ii) = (A + 2B)/n_{l-1}; Cov(H_ii, H_kk) = A/n, E[H_ik^2] = B/n, "
             "Cov(H_ii, z_k^2) = D/n, E[H_ik z_i z_k] = F/n (i != k); r[l] = n_l/n_{l-1}.",
             "NTK rates: lambda_b for biases, lambda_W/n_{l-1} for W^(l) (NTK parameterization: lambda = C).")
    return Recursion("deep finite width (1/n): NTK mean correction H1 and fluctuations A, B, D, F (one input)",
                     ("V", "K1", "D", "A", "B", "F", "H1"), initial, update, _act(activation), ("K",), "ntk",
                     False, notes)
