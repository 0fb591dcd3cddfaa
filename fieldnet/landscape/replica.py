"""The replicated action of an MLP's input landscape, derived with sympy (and its LaTeX).

Model: :mod:`fieldnet.landscape.covariance`. Averaging Z^n = (int dsigma e^{-beta H})^n over the weights
layer by layer (THEORY.md 8.2), with overlaps Q^0_ab = x^a.x^b/N, Q^l_ab = phi(z^l_a).phi(z^l_b)/N_l and
conjugates Qh^l, gives (1/N) ln E Z^n = extr S[Q, Qh] with

    S = (1/2) ln det Q^0 + (beta^2/2) sum_ab (C_v Q^L_ab + C_bv)
        + sum_l alpha_l [ -tr(Qh^l Q^l) + ln E_{z ~ N(0, C_W Q^{l-1} + C_b)} exp(phi(z)^T Qh^l phi(z)) ].

This module carries out, symbolically, the steps that turn S into the functions the numerics solve:

* :func:`replica_limit` — (1/n) of each term for a Parisi ansatz (RS, 1RSB), n -> 0, from the
  eigenvalues of the block matrices (``sympy.limit``);
* :func:`hubbard_stratonovich_check` — the identity phi^T Qh phi = (dh - qh1) sum_a phi_a^2
  + (qh1 - qh0) sum_B (sum_{a in B} phi_a)^2 + qh0 (sum_a phi_a)^2 behind the layer term's Gaussian
  fields, expanded for explicit replicas;
* :func:`rs_action` / :func:`rsb1_action` — S / n with the layer terms G_l left as functions of their
  arguments, and :func:`stationarity` — its derivatives (sympy.diff);
* :func:`linear_layer_term` — G in closed form for phi(z) = z, and :func:`linear_saddle` — the saddle of
  the one-layer linear network solved exactly: the free energy equals the spherical linear closed form
  for every alpha (the random-matrix fluctuations of W^T v do not enter at leading order);
* :func:`landscape_latex_document` — all of it as a standalone document (``derivations/``).
"""

from __future__ import annotations

import sympy as sp

n, m = sp.symbols("n m", positive=True)
beta = sp.Symbol("beta", positive=True)
C_W = sp.Symbol("C_W", positive=True)
C_b = sp.Symbol("C_b", nonnegative=True)
C_v = sp.Symbol("C_v", positive=True)
C_bv = sp.Symbol("C_bv", nonnegative=True)
q0, q1 = sp.symbols("q_0 q_1", nonnegative=True)   # input overlaps (RS: q0 only)


def layer_symbols(L: int, rsb: bool = False) -> dict:
    """Per-layer symbols: alpha_l, d_l, q_l (q1_l, q0_l), dh_l, qh_l (qh1_l, qh0_l), l = 1..L."""
    out = {"alpha": sp.symbols(f"alpha_1:{L + 1}", positive=True), "d": sp.symbols(f"d_1:{L + 1}", positive=True),
           "dh": sp.symbols(f"\\hat{{d}}_1:{L + 1}", real=True)}
    if rsb:
        out["q1"] = sp.symbols(f"q_{{1\\,1}}:{L + 1}", real=True)
        out.update(q1=[sp.Symbol(f"q^{{({l})}}_1", real=True) for l in range(1, L + 1)],
                   q0=[sp.Symbol(f"q^{{({l})}}_0", real=True) for l in range(1, L + 1)],
                   qh1=[sp.Symbol(f"\\hat{{q}}^{{({l})}}_1", real=True) for l in range(1, L + 1)],
                   qh0=[sp.Symbol(f"\\hat{{q}}^{{({l})}}_0", real=True) for l in range(1, L + 1)])
    else:
        out["q"] = [sp.Symbol(f"q_{l}", real=True) for l in range(1, L + 1)]
        out["qh"] = [sp.Symbol(f"\\hat{{q}}_{l}", real=True) for l in range(1, L + 1)]
    return out


# -- n -> 0 limits of the Parisi ansatz ------------------------------------------------------------

def _logdet_eigenvalues(d, qa, qb=None, block=None):
    """[(eigenvalue, multiplicity)] of an n x n Parisi matrix: diagonal d, qa inside blocks of size m, qb across
    (RS when qb is None)."""
    if qb is None:
        return [(d - qa, n - 1), (d - qa + n * qa, 1)]
    return [(d - qa, n - n / block), (d - qa + block * (qa - qb), n / block - 1),
            (d - qa + block * (qa - qb) + n * qb, 1)]


def replica_limit(kind: str = "rs") -> dict:
    """{'logdet', 'sum', 'trace'}: (1/n) ln det Q, (1/n) sum_ab Q_ab, (1/n) tr(Qh Q) as n -> 0 (sympy.limit).

    RS: Q = (d, q), Qh = (dh, qh). 1RSB: Q = (d, q1, q0), Qh = (dh, qh1, qh0), block size m.
    """
    d, dh = sp.symbols("d dh")
    if kind == "rs":
        q, qh = sp.symbols("q qh")
        eig = _logdet_eigenvalues(d, q)
        total = d + (n - 1) * q
        trace = dh * d + (n - 1) * qh * q
    elif kind == "1rsb":
        qa, qb, qha, qhb = sp.symbols("q1 q0 qh1 qh0")
        eig = _logdet_eigenvalues(d, qa, qb, m)
        total = d + (m - 1) * qa + (n - m) * qb
        trace = dh * d + (m - 1) * qha * qa + (n - m) * qhb * qb
    else:
        raise ValueError(f"kind: expected 'rs' or '1rsb', got {kind!r}")
    logdet = sum(mult * sp.log(val) for val, mult in eig) / n
    return {"logdet": sp.simplify(sp.limit(logdet, n, 0)), "sum": sp.limit(total, n, 0),
            "trace": sp.expand(sp.limit(trace, n, 0))}


def hubbard_stratonovich_check(replicas: int = 4, block: int = 2) -> bool:
    """True iff phi^T Qh phi equals the three-level decomposition for a 1RSB Qh on explicit replicas."""
    phis = sp.symbols(f"phi_1:{replicas + 1}")
    dh, qh1, qh0 = sp.symbols("dh qh1 qh0")
    quad = 0
    for a in range(replicas):
        for b in range(replicas):
            value = dh if a == b else (qh1 if a // block == b // block else qh0)
            quad += value * phis[a] * phis[b]
    blocks = [phis[i:i + block] for i in range(0, replicas, block)]
    split = ((dh - qh1) * sum(p ** 2 for p in phis) + (qh1 - qh0) * sum(sum(B) ** 2 for B in blocks)
             + qh0 * sum(phis) ** 2)
    return sp.expand(quad - split) == 0


# -- the actions ------------------------------------------------------------------------------------

def _G(l: int):
    return sp.Function(f"G_{l}")


def rs_action(L: int):
    """(S/n at n -> 0, symbols) for replica symmetry; G_l(a_l, qh_l, D_l, c_l) is the layer term
    E_{zeta,y} ln E_eta exp(a phi^2 + sqrt(2 qh) y phi), z = sqrt(c) zeta + sqrt(D - c) eta, a = dh - qh."""
    s = layer_symbols(L)
    lim = replica_limit("rs")
    d_sym, q_sym, dh_sym, qh_sym = sp.symbols("d q dh qh")
    S = sp.Rational(1, 2) * lim["logdet"].subs({d_sym: 1, q_sym: q0})
    S += beta ** 2 / 2 * C_v * lim["sum"].subs({d_sym: s["d"][-1], q_sym: s["q"][-1]})
    prev_d, prev_q = sp.Integer(1), q0
    for l in range(L):
        trace = lim["trace"].subs({dh_sym: s["dh"][l], qh_sym: s["qh"][l], d_sym: s["d"][l], q_sym: s["q"][l]})
        G = _G(l + 1)(s["dh"][l] - s["qh"][l], s["qh"][l], C_W * prev_d + C_b, C_W * prev_q + C_b)
        S += s["alpha"][l] * (-trace + G)
        prev_d, prev_q = s["d"][l], s["q"][l]
    return S, s


def rsb1_action(L: int):
    """(S/n at n -> 0, symbols) for one-step RSB; G_l(a, qh0, qh1, D, c1, c0, m) = (1/m) E_0 ln E_1 Z^m."""
    s = layer_symbols(L, rsb=True)
    lim = replica_limit("1rsb")
    d_sym, qa, qb, dh_sym, qha, qhb = sp.symbols("d q1 q0 dh qh1 qh0")
    S = sp.Rational(1, 2) * lim["logdet"].subs({d_sym: 1, qa: q1, qb: q0})
    S += beta ** 2 / 2 * C_v * lim["sum"].subs({d_sym: s["d"][-1], qa: s["q1"][-1], qb: s["q0"][-1]})
    prev = (sp.Integer(1), q1, q0)
    for l in range(L):
        trace = lim["trace"].subs({dh_sym: s["dh"][l], qha: s["qh1"][l], qhb: s["qh0"][l], d_sym: s["d"][l],
                                   qa: s["q1"][l], qb: s["q0"][l]})
        G = _G(l + 1)(s["dh"][l] - s["qh1"][l], s["qh0"][l], s["qh1"][l], C_W * prev[0] + C_b,
                      C_W * prev[1] + C_b, C_W * prev[2] + C_b, m)
        S += s["alpha"][l] * (-trace + G)
        prev = (s["d"][l], s["q1"][l], s["q0"][l])
    return S, s


def stationarity(S, variables) -> dict:
    """{v: dS/dv} for the order parameters ``variables`` (sympy.diff; derivatives of G_l stay symbolic)."""
    return {v: sp.diff(S, v) for v in variables}


# -- the exact linear case ----------------------------------------------------------------------------

def linear_layer_term():
    """G for phi(z) = z in closed form: E_{zeta,y} ln E_eta exp(a z^2 + h z), z = mu + sigma eta, mu = sqrt(c) zeta,
    h = sqrt(2 qh) y: the eta-integral is Gaussian, then the outer average of a quadratic form.

    Returns (G, (a, qh, D, c)). Valid for 2 a (D - c) < 1."""
    a, qh, D, c = sp.symbols("a qh D c", real=True)
    mu, h, eta = sp.symbols("mu h eta", real=True)
    v = D - c
    # ln E_eta exp(a (mu + sqrt(v) eta)^2 + h (mu + sqrt(v) eta)): complete the square in eta
    A = sp.Rational(1, 2) - a * v
    B = sp.sqrt(v) * (2 * a * mu + h)
    lnZ = a * mu ** 2 + h * mu + B ** 2 / (4 * A) - sp.log(2 * A) / 2
    # E over mu ~ N(0, c), h ~ N(0, 2 qh) independent: replace mu^2 -> c, h^2 -> 2 qh, odd moments -> 0
    poly = sp.Poly(sp.expand(lnZ), mu, h)
    G = 0
    for (i, j), coeff in poly.terms():
        moment_mu = c ** (i // 2) * sp.factorial2(i - 1) if i % 2 == 0 else 0
        moment_h = (2 * qh) ** (j // 2) * sp.factorial2(j - 1) if j % 2 == 0 else 0
        G += coeff * moment_mu * moment_h
    return sp.simplify(G), (a, qh, D, c)


def linear_saddle():
    """The RS saddle of the one-hidden-layer linear network solved in closed form.

    Returns a dict with the free energy P(beta) at the saddle, the spherical linear closed form with c = C_W C_v
    (C_b = 0), and their difference simplified (0 for every alpha)."""
    G, (a, qh, D, c) = linear_layer_term()
    alpha, d, q, dh, qh1 = sp.symbols("alpha d q dh qh1", real=True)
    # last layer: dh = qh = beta^2 C_v / (2 alpha) so a = 0 (the stationarity in d_L, q_L)
    top = beta ** 2 * C_v / (2 * alpha)
    G1 = G.subs({a: 0, qh: top, D: C_W, c: C_W * q0})
    S = sp.Rational(1, 2) * (sp.log(1 - q0) + q0 / (1 - q0)) + beta ** 2 / 2 * C_v * (d - q) \
        + alpha * (-(top * d - top * q) + G1)
    S = sp.simplify(S)
    cc = sp.Symbol("c", positive=True)
    q_star = 1 + (1 - sp.sqrt(1 + 4 * beta ** 2 * cc)) / (2 * beta ** 2 * cc)
    spherical = sp.Rational(1, 2) * (beta ** 2 * cc * (1 - q0) + q0 / (1 - q0) + sp.log(1 - q0))
    eq = sp.simplify(sp.diff(S, q0))
    return {"action": S, "q0_equation": eq,
            "difference": sp.simplify((S - spherical).subs(cc, C_W * C_v)),
            "q0": q_star.subs(cc, C_W * C_v)}


# -- LaTeX ----------------------------------------------------------------------------------------------

def landscape_latex_document(L: int = 2) -> str:
    """A standalone LaTeX document: the model, the replicated action, its RS and 1RSB forms at n -> 0, the
    stationarity conditions, the alpha -> infinity reduction and the exact linear case."""
    from fieldnet import __version__
    from fieldnet.export.latex import latex

    rs_S, rs_s = rs_action(L)
    rsb_S, _ = rsb1_action(L)
    rs_vars = [q0] + [v for key in ("d", "q", "dh", "qh") for v in rs_s[key]]
    eqs = stationarity(rs_S, rs_vars)
    lim_rs, lim_rsb = replica_limit("rs"), replica_limit("1rsb")
    lin = linear_saddle()
    G_lin, _ = linear_layer_term()
    rows = "\\\\\n".join(rf"\frac{{\partial S}}{{\partial {latex(v)}}} &= {latex(e)}" for v, e in eqs.items())
    parts = [r"\documentclass[11pt]{article}", r"\usepackage[margin=2cm]{geometry}", r"\usepackage{amsmath,amssymb}",
             r"\allowdisplaybreaks", r"\begin{document}",
             rf"\section*{{fieldnet: the input landscape of a random MLP, replica theory ($L = {L}$ hidden layers)}}",
             rf"Generated by fieldnet {__version__} from its symbolic engine; do not edit by hand. "
             r"Set-up reconstructed for Winer \& Hanin, arXiv:2503.23982 (the paper's own equations were not available).",
             r"\subsection*{Model}",
             r"Inputs $x \in S^{N-1}(\sqrt N)$; hidden widths $N_l = \alpha_l N$; "
             r"$z^1 = \sqrt{C_W} W^1 x/\sqrt N + b^1$, $z^l = \sqrt{C_W} W^l \phi(z^{l-1})/\sqrt{N_{l-1}} + b^l$, "
             r"$f = \sqrt{C_v}\, v\cdot\phi(z^L)/\sqrt{N_L} + b_v$ with standard normal $W, v$, $\mathrm{Var}\, b = C_b$, "
             r"$\mathrm{Var}\, b_v = C_{bv}$; $H(x) = \sqrt N f(x)$; Gibbs weight $e^{-\beta H}$ on the uniform probability "
             r"measure of the sphere; $u = H/N$, $P = \lim \frac1N \mathbb E \ln Z$, $s = P + \beta u$.",
             r"\subsection*{Replicated action}",
             r"\[ \frac1N \ln \mathbb E Z^n = \operatorname{extr} \Big[ \tfrac12 \ln\det Q^0 + \tfrac{\beta^2}{2}\sum_{ab}(C_v Q^L_{ab} + C_{bv})"
             r" + \sum_{l} \alpha_l\Big( -\operatorname{tr} \hat Q^l Q^l + \ln \mathbb E_{z\sim\mathcal N(0, C_W Q^{l-1} + C_b)}"
             r" e^{\phi(z)^{\mathsf T} \hat Q^l \phi(z)} \Big)\Big] \]",
             r"with $Q^0_{ab} = x^a\cdot x^b/N$, $Q^l_{ab} = \phi(z^l_a)\cdot\phi(z^l_b)/N_l$.",
             r"\subsection*{Parisi ansatz, $n \to 0$}",
             rf"RS ($Q = (d, q)$): $\frac1n \ln\det Q \to {latex(lim_rs['logdet'])}$, "
             rf"$\frac1n\sum_{{ab}} Q_{{ab}} \to {latex(lim_rs['sum'])}$, $\frac1n \operatorname{{tr}} \hat Q Q \to {latex(lim_rs['trace'])}$.",
             rf"1RSB ($Q = (d, q_1, q_0)$, blocks of size $m$): $\frac1n \ln\det Q \to {latex(lim_rsb['logdet'])}$, "
             rf"$\frac1n\sum_{{ab}} Q_{{ab}} \to {latex(lim_rsb['sum'])}$, $\frac1n \operatorname{{tr}}\hat Q Q \to {latex(lim_rsb['trace'])}$.",
             r"Layer term (Hubbard--Stratonovich on $\phi^{\mathsf T}\hat Q\phi = (\hat d - \hat q_1)\sum_a\phi_a^2 + "
             r"(\hat q_1 - \hat q_0)\sum_B(\sum_{a\in B}\phi_a)^2 + \hat q_0(\sum_a\phi_a)^2$, checked by the engine on explicit replicas): "
             r"$G_l(a, \hat q, D, c) = \mathbb E_{\zeta, y} \ln \mathbb E_\eta\, e^{a\phi(z)^2 + \sqrt{2\hat q}\, y\, \phi(z)}$, "
             r"$z = \sqrt c\,\zeta + \sqrt{D - c}\,\eta$, $a = \hat d - \hat q$ (RS); for 1RSB "
             r"$G_l = \frac1m \mathbb E_0 \ln \mathbb E_1 Z^m$ with the fields split over the two levels.",
             r"\subsection*{RS action}", f"\\begin{{multline*}}\nS = {latex(rs_S)}\n\\end{{multline*}}",
             r"\subsection*{RS stationarity conditions}", "\\begin{align*}\n" + rows + "\n\\end{align*}",
             r"The derivatives of $G_l$ are tilted averages: $\partial_{a} G = \mathbb E\langle\phi^2\rangle$, "
             r"$\partial_{\hat q} G = -\mathbb E\langle\phi\rangle^2$ (Stein's lemma in $y$), "
             r"$\partial_D G = \frac12\mathbb E[Z_{\mu\mu}/Z]$, $\partial_c G = -\frac12\mathbb E[(Z_\mu/Z)^2]$ (heat equation in "
             r"the centre $\mu = \sqrt c\,\zeta$); the numerics solve them forward (overlaps) and backward (conjugates).",
             r"\subsection*{1RSB action}", f"\\begin{{multline*}}\nS = {latex(rsb_S)}\n\\end{{multline*}}",
             r"\subsection*{$\alpha \to \infty$}",
             r"$\hat Q^l = O(1/\alpha)$ and $\alpha_l(-\operatorname{tr}\hat Q Q + G_l) \to 0$ at the saddle; $Q^l$ follows the NNGP map and "
             r"$S \to \frac12[\beta^2(\xi(1) - \xi(q_0)) + \frac{q_0}{1-q_0} + \ln(1-q_0)]$, $\xi(q) = K_{L+1}(q) - K_{L+1}(0)$: "
             r"the spherical mixed $p$-spin model.",
             r"\subsection*{Exact linear case ($\phi(z) = z$, one hidden layer, $C_b = 0$)}",
             rf"Layer term in closed form: $G = {latex(G_lin)}$.",
             rf"At the saddle of the conjugates: $S = {latex(lin['action'])}$; "
             rf"$S - S_{{\mathrm{{sph}}}}(c = C_W C_v) = {latex(lin['difference'])}$ for every $\alpha$, so "
             rf"$q_0 = {latex(lin['q0'])}$, $u = -\frac{{\sqrt{{1 + 4\beta^2 c}} - 1}}{{2\beta}}$, "
             r"$s(u) = \frac12\ln(1 - u^2/c)$, $u_{\mathrm{GS}} = -\sqrt{c}$.",
             r"\end{document}", ""]
    return "\n\n".join(parts)
