"""The NTK's 1/n fluctuation tensors A, B, D, F on several inputs (THEORY.md 5.1-5.3), propagated layer by layer.

For neurons i != k of layer l (fan-in n = n_{l-1}), inputs a1..a4, pairs P = (a1 a2), Q = (a3 a4):

    E[dH_{i1i2;a1a2} dH_{i3i4;a3a4}] = (1/n)[d_i1i2 d_i3i4 A_(a1a2)(a3a4) + d_i1i3 d_i2i4 B_{a1a3a2a4} + d_i1i4 d_i2i3 B_{a1a4a2a3}]
    E[dH_{i1i2;a1a2} z_{i3;a3} z_{i4;a4}] = (1/n)[d_i1i2 d_i3i4 D_(a1a2),(a3a4) + d_i1i3 d_i2i4 F_{a1a3a2a4} + d_i1i4 d_i2i3 F_{a1a4a2a3}]

so A_PQ = n Cov(H_ii;P, H_kk;Q), D_{P,Q} = n Cov(H_ii;P, z_k;a3 z_k;a4), B_{a1a3a2a4} = n E[H_ik;a1a2 H_ik;a3a4],
F_{a1a3a2a4} = n E[H_ik;a1a2 z_i;a3 z_k;a4] (i != k): B and F group their indices by neuron (a1, a3 on neuron i,
a2, a4 on neuron k). Array layout (layer l at index l - 1), every array (L+1, N, N, N, N):

    A[l-1, a, b, c, d] = A_(ab)(cd)          symmetric within each pair and between the pairs
    D[l-1, a, b, c, d] = D_(ab),(cd)         NTK pair (a b), kernel pair (c d); symmetric within each pair only
    B[l-1, a1, a3, a2, a4] = B_{a1a3a2a4}    = n E[H_ik;a1a2 H_ik;a3a4]
    F[l-1, a1, a3, a2, a4] = F_{a1a3a2a4}    = n E[H_ik;a1a2 z_i;a3 z_k;a4]

The updates are those derived by :mod:`fieldnet.symbolic.finite_width` (``d_update``, ``a_update``, ``b_update``,
``f_update``); here their pieces are lowered (:class:`fieldnet.analysis.finite_width._Lowered`) and assembled in
matrix form over the N(N+1)/2 unordered pairs, like V' = S + r J V J^T. With g_P = C_W phi phi_P and
u_P = C_W phi' phi'_P one neuron's contributions to hat G'_P and to chi_P = dTheta'_P/dTheta_P = <u_P>, and
h_P = (lambda_W / C_W) g_P + Theta_P u_P its contribution to hat Theta'_P, the Jacobian of THEORY.md 5.3 is
[[J, 0], [T, diag chi]] (J_PR = dK'_P/dK_R, T_PR = dTheta'_P/dK_R, both nonzero only for R inside P), and

    D' = Cov(h_P, g_Q) + r (T V + chi D) J^T
    A' = Cov(h_P, h_Q) + r [T V T^T + chi D T^T + T D^T chi + chi A chi]          (chi = diag_P chi_P)
    B'_{a1a3a2a4} = C_W^2 Theta_a1a2 Theta_a3a4 <phi'_a1 phi'_a2 phi'_a3 phi'_a4> + r chi_(a1a3) chi_(a2a4) B_{a1a3a2a4}
    F'_{a1a3a2a4} = C_W^2 Theta_a1a2 <phi'_a1 phi'_a2 phi_a3 phi_a4>
                    + r C_W^2 sum_{b1 in {a1,a3}, b2 in {a2,a4}} <d_b1(phi'_a1 phi_a3)><d_b2(phi'_a2 phi_a4)> F_{a1b1a2b2}

with Cov(h_P, g_Q) = (lambda_W/C_W) S_PQ + Theta_P X_PQ and Cov(h_P, h_Q) = (lambda_W/C_W)^2 S_PQ
+ (lambda_W/C_W)(Theta_P X_PQ + Theta_Q X_QP) + Theta_P Theta_Q Y_PQ, where S = Cov(g_P, g_Q) is V's source,
X_PQ = Cov(u_P, g_Q) = C_W^2 <phi'_p1 phi'_p2 phi_q1 phi_q2> - chi_P (K'_Q - C_b) and Y_PQ = Cov(u_P, u_Q).

Gaussian averages over four inputs, and how many (N inputs, p = N(N+1)/2 pairs):

* <phi'phi'phi'phi'> (B and A) is symmetric in all four inputs: one average per multiset {a, b, c, d}, C(N+3, 4),
  through the same multiset table as V's source (``_Multisets``, ``_four_point_source``);
* M_PQ = <phi'_p1 phi'_p2 phi_q1 phi_q2> (D, A and F) is symmetric only within P and within Q: one average per
  ordered pair of pairs, p^2, grouped by index-coincidence pattern (:class:`_PairPairPatterns`).

The updates' agreement with the lowered symbolic updates, entry by entry, is a test (tests/test_finite_width.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import sympy as sp

from fieldnet.symbolic import finite_width as fw


# ---------------------------------------------------------------- index patterns of (P, Q)

class _PairPairPatterns:
    """All p^2 ordered (P, Q) of unordered pairs P = (p1 <= p2), Q = (q1 <= q2), grouped by the equality pattern of
    (p1, p2, q1, q2) up to the swaps p1 <-> p2 and q1 <-> q2 (the symmetries of <phi'_p1 phi'_p2 phi_q1 phi_q2>).

    ``groups[code] = (rows, inputs)``: ``code`` is the tuple of first-occurrence positions of the canonical
    variant (e.g. (0, 0, 2, 3): p1 = p2, q1, q2 new), ``rows`` index the flattened (P, Q) array, and
    ``inputs[:, j]`` is the input behind the j-th distinct letter (letters a, b, c, d in order of appearance)."""

    _SWAPS = ((0, 1, 2, 3), (1, 0, 2, 3), (0, 1, 3, 2), (1, 0, 3, 2))

    def __init__(self, N: int):
        pa, pb = np.triu_indices(N)
        n_pairs = len(pa)
        P, Q = np.divmod(np.arange(n_pairs * n_pairs), n_pairs)
        quad = np.stack([pa[P], pb[P], pa[Q], pb[Q]], 1)
        best_code, best = None, None
        for swap in self._SWAPS:
            v = quad[:, swap]
            first = (v[:, :, None] == v[:, None, :]).argmax(2)          # first position holding the same input
            code = first @ np.array([64, 16, 4, 1])
            if best_code is None:
                best_code, best = code, v
            else:
                better = code < best_code
                best_code = np.where(better, code, best_code)
                best = np.where(better[:, None], v, best)
        self.n_pairs = n_pairs
        self.groups = {}
        for c in np.unique(best_code):
            rows = np.flatnonzero(best_code == c)
            code = tuple(int(c) >> s & 3 for s in (6, 4, 2, 0))
            letters = sorted(set(code))
            self.groups[code] = (rows, best[rows][:, letters])


def _pair_pair_integrand(activation, code: tuple):
    """<phi'(z_x1) phi'(z_x2) phi(z_x3) phi(z_x4)> for the letters of ``code`` (engine average)."""
    letters = fw.symbols(*"abcd")
    first = sorted(set(code))
    s = [letters[first.index(c)] for c in code]
    return fw.average(fw.phi_of(activation, s[0], 1) * fw.phi_of(activation, s[1], 1)
                      * fw.phi_of(activation, s[2]) * fw.phi_of(activation, s[3]), activation)


# ---------------------------------------------------------------- the lowered pieces, per activation

@dataclass(frozen=True)
class _NTKProgram:
    single: dict    # one input a: T = dTheta'_aa/dK_aa, chi, G = <d_a(phi'_a phi_a)>
    pair: dict      # inputs a < b: T_aa, T_ab, T_bb (dTheta'_ab/dK_R), chi, Ga = <d_a(phi'_a phi_b)>, Gb = <d_b(...)>,
    #                 Ga_rev = <d_b(phi'_b phi_a)>, Gb_rev = <d_a(phi'_b phi_a)>
    quad: dict      # multiplicity pattern -> <prod phi'(z_i)^{c_i}>
    mixed: dict     # pair-pair code -> <phi'_x1 phi'_x2 phi_x3 phi_x4>


@lru_cache(maxsize=32)
def ntk_program(activation) -> _NTKProgram:
    from fieldnet.analysis.finite_width import _Lowered   # the shared lowering (finite_width imports this module)

    a, b, c, d = fw.symbols("a", "b", "c", "d")
    aa, ab, bb = (a, a), (a, b), (b, b)
    slope, chi, _, _ = fw.ntk_derivatives(activation, aa)
    stein = lambda x, y, w: fw.average(sp.diff(fw.phi_of(activation, x, 1) * fw.phi_of(activation, y), fw.zvar(w)),
                                       activation)
    single = {"T": slope[aa], "chi": chi, "G": stein(a, a, a)}
    slope, chi, _, _ = fw.ntk_derivatives(activation, ab)
    pair = {"T_aa": slope[aa], "T_ab": slope[ab], "T_bb": slope[bb], "chi": chi,
            "Ga": stein(a, b, a), "Gb": stein(a, b, b), "Ga_rev": stein(b, a, b), "Gb_rev": stein(b, a, a)}
    dphi = {s: fw.phi_of(activation, s, 1) for s in (a, b, c, d)}
    quad = {counts: fw.average(sp.Mul(*[dphi[s] ** k for s, k in zip((a, b, c, d), counts)]), activation)
            for counts in ((4,), (3, 1), (2, 2), (2, 1, 1), (1, 1, 1, 1))}
    lower = lambda table, tag: {k: _Lowered(v, f"NTK {tag} {k}") for k, v in table.items()}
    return _NTKProgram(lower(single, "one-input"), lower(pair, "two-input"), lower(quad, "phi'^4"), {})


def _mixed(prog: _NTKProgram, activation, code):
    if code not in prog.mixed:                       # lowered on first use (only the patterns N inputs can have)
        from fieldnet.analysis.finite_width import _Lowered
        prog.mixed[code] = _Lowered(_pair_pair_integrand(activation, code), f"NTK <phi'phi'phi phi> {code}")
    return prog.mixed[code]


# ---------------------------------------------------------------- one step l -> l + 1

@dataclass
class NTKState:
    """D, A (p, p) over unordered pairs; B, F (N, N, N, N) in the order [a1, a3, a2, a4]."""
    D: np.ndarray
    A: np.ndarray
    B: np.ndarray
    F: np.ndarray

    @classmethod
    def zeros(cls, N: int) -> "NTKState":
        p = N * (N + 1) // 2
        return cls(np.zeros((p, p)), np.zeros((p, p)), np.zeros((N,) * 4), np.zeros((N,) * 4))


class NTKFluctuations:
    """Propagates (D, A, B, F) for one network and input set; the driver calls :meth:`step` once per layer."""

    def __init__(self, activation, pairs):
        self.activation, self.pairs = activation, pairs
        self.prog = ntk_program(activation)
        self.patterns = _PairPairPatterns(pairs.N)
        self.multisets = pairs.multisets

    def mixed_average(self, k: np.ndarray) -> np.ndarray:
        """M_PQ = <phi'_p1 phi'_p2 phi_q1 phi_q2>_K, (p, p), one average per ordered (P, Q)."""
        from fieldnet.analysis.finite_width import _regularise_pair
        out = np.empty(self.patterns.n_pairs ** 2)
        names = "abcd"
        for code, (rows, inputs) in self.patterns.groups.items():
            m = inputs.shape[1]
            state = {"_shape": (len(rows),)}
            for i in range(m):
                for j in range(i, m):
                    state[f"K_{names[i]}{names[j]}"] = k[inputs[:, i], inputs[:, j]]
            if m == 2:
                state["K_aa"], state["K_ab"], state["K_bb"] = _regularise_pair(state["K_aa"], state["K_ab"], state["K_bb"])
            out[rows] = _mixed(self.prog, self.activation, code)(state, {})
        return out.reshape(self.patterns.n_pairs, self.patterns.n_pairs)

    def quad_average(self, k: np.ndarray) -> np.ndarray:
        """<phi'_a phi'_b phi'_c phi'_d>_K as a (p, p) matrix over pairs (ab), (cd): one average per multiset."""
        from fieldnet.analysis.finite_width import _four_point_source
        return _four_point_source(SimpleNamespace(four=self.prog.quad), self.multisets, k,
                                  np.zeros_like(k), 1.0)

    def step(self, st: NTKState, V: np.ndarray, J: np.ndarray, S: np.ndarray, s1: dict, s2: dict,
             theta: np.ndarray, two_point: np.ndarray, k: np.ndarray, params: dict) -> NTKState:
        """(D, A, B, F) of layer l + 1 from layer l. V, J, S: V^(l), dK'/dK and V's source over pairs; s1, s2: the
        one-input and pair states of the driver (K, Theta at layer l); theta = Theta^(l) (N, N);
        two_point = K^(l+1) - C_b = C_W <phi phi> (N, N); k = K^(l) (N, N)."""
        px = self.pairs
        N = px.N
        cw, lam_w, r = params["C_W"], params["lambda_W"], params["r"]
        c1, c2 = {}, {}
        one = {q: self.prog.single[q](s1, c1) for q in self.prog.single}
        two = {q: self.prog.pair[q](s2, c2) for q in self.prog.pair}
        dup = px.dup
        T = px.matrix(one["T"], *(np.where(dup, v, w) for v, w in
                                  ((0.0, two["T_aa"]), (one["T"][px.ia], two["T_ab"]), (0.0, two["T_bb"]))))
        chi = np.empty(px.n_pairs)
        chi[px.diag_pos] = one["chi"]
        chi[px.off_pos] = np.where(dup, one["chi"][px.ia], two["chi"])
        theta_p = theta[px.pa, px.pb]
        tp = two_point[px.pa, px.pb]
        M = self.mixed_average(k)
        Q4 = self.quad_average(k)
        X = cw ** 2 * M - chi[:, None] * tp[None, :]
        Y = cw ** 2 * Q4 - chi[:, None] * chi[None, :]
        rho = lam_w / cw
        TV = T @ V
        D = rho * S + theta_p[:, None] * X + r * (TV + chi[:, None] * st.D) @ J.T
        A_src = rho ** 2 * S + rho * (theta_p[:, None] * X + (theta_p[:, None] * X).T) + np.outer(theta_p, theta_p) * Y
        DT = st.D @ T.T
        A = A_src + r * (TV @ T.T + chi[:, None] * DT + DT.T * chi[None, :] + np.outer(chi, chi) * st.A)
        A = (A + A.T) / 2                                   # symmetric to the last bit
        # B and F over (a1, a3, a2, a4)
        idx = px.pidx
        chi_nn = chi[idx]                                   # chi_(ab) as (N, N)
        Q4_full = Q4[idx[:, :, None, None], idx[None, None, :, :]]        # [a1, a2, a3, a4]
        M_full = M[idx[:, :, None, None], idx[None, None, :, :]]          # [a1, a2, a3, a4]: <phi'_a1 phi'_a2 phi_a3 phi_a4>
        B_src = cw ** 2 * np.einsum("ab,cd,abcd->acbd", theta, theta, Q4_full)
        B = B_src + r * chi_nn[:, :, None, None] * chi_nn[None, None, :, :] * st.B
        # Stein factors g1[x, y] = <d_x(phi'_x phi_y)> (with F_{x x ..}), g3[x, y] = <d_y(phi'_x phi_y)> (with F_{x y ..}),
        # x != y; for x = y f_update has the one term <d_x(phi'_x phi_x)> F_{x x ..}: g1 = G, g3 = 0. Identical inputs
        # (dup) copy the diagonal: g1 = 0, g3 = G (their F_{x y ..} equals F_{x x ..}), as J does for V.
        g1, g3 = np.zeros((N, N)), np.zeros((N, N))
        g1[px.ia, px.ib] = np.where(dup, 0.0, two["Ga"])
        g3[px.ia, px.ib] = np.where(dup, one["G"][px.ia], two["Gb"])
        g1[px.ib, px.ia] = np.where(dup, 0.0, two["Ga_rev"])
        g3[px.ib, px.ia] = np.where(dup, one["G"][px.ia], two["Gb_rev"])
        diag = np.arange(N)
        g1[diag, diag] = one["G"]
        F_src = cw ** 2 * np.einsum("ab,abcd->acbd", theta, M_full)
        Fd = st.F[diag, diag]                               # F_{x x . .}: (N, N, N) -> [x, a2, b2]
        F11 = Fd[:, diag, diag]                             # F_{x x y y}: (N, N)
        F13 = Fd                                            # F_{a1 a1 a2 a4}: [a1, a2, a4]
        F31 = st.F[:, :, diag, diag]                        # F_{a1 a3 a2 a2}: [a1, a3, a2]
        carried = (g1[:, :, None, None] * g1[None, None, :, :] * F11[:, None, :, None]
                   + g1[:, :, None, None] * g3[None, None, :, :] * F13[:, None, :, :]
                   + g3[:, :, None, None] * g1[None, None, :, :] * F31[:, :, :, None]
                   + g3[:, :, None, None] * g3[None, None, :, :] * st.F)
        F = F_src + r * cw ** 2 * carried
        return NTKState(D, A, B, F)
