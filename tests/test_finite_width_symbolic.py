"""Finite-width recursions on the symbolic side: derivation, closed forms, asymptotics, LaTeX."""

import numpy as np
import pytest
import sympy as sp

from fieldnet.export.latex import latex
from fieldnet.symbolic import finite_width as fw
from fieldnet.symbolic.asymptotics import kstar_zero_asymptotics, scale_invariant_solution
from fieldnet.symbolic.expectation import evaluate
from fieldnet.symbolic.nodes import GaussianExpectation

a, b, c, d = fw.symbols("a", "b", "c", "d")
L = sp.Symbol("l", integer=True, positive=True)
K1s = sp.Symbol("K_1", positive=True)
lw = fw.LAMBDA_W


def test_generic_single_input_recursions_have_the_theory_structure():
    """THEORY 4.1: V' = C_W^2 Var(phi^2) + r chi_par^2 V, K1' = r[chi_par K1 + (C_W/2) d^2<phi^2>/dK^2 V],
    with chi_par = C_W <phi'^2 + phi phi''> (Price) -- derived, for a generic phi."""
    rec = fw.ntk_finite_width_recursion(None)
    v_new = rec.update[fw.vertex((a, a), (a, a), fw.LAYER + 1)]
    v_old = fw.vertex((a, a), (a, a))
    chi = sp.diff(v_new, v_old) / fw.RATIO
    k = fw.kernel((a, a))
    z = fw.zvar(a)
    phi = fw.phi_of(None, a)
    chi_par = fw.C_W * GaussianExpectation(sp.diff(phi, z) ** 2 + phi * sp.diff(phi, z, 2), (z,), [[k]])
    assert sp.simplify(chi - chi_par ** 2) == 0
    source = v_new.subs(v_old, 0)
    avg = lambda f: GaussianExpectation(f, (z,), [[k]])
    assert sp.simplify(source - fw.C_W ** 2 * (avg(phi ** 4) - avg(phi ** 2) ** 2)) == 0
    k1 = rec.update[fw.kernel((a, a), fw.LAYER + 1, "K1")]
    assert sp.simplify(sp.diff(k1, fw.kernel((a, a), name="K1")) - fw.RATIO * chi_par) == 0


def test_relu_jacobian_and_hessian_are_the_price_averages():
    """J_(ab)(ab) = C_W (pi - theta)/(2 pi) = C_W <phi'_a phi'_b>; d^2/dK_ab^2 = C_W <delta delta> = C_W/(2 pi sqrt(det))."""
    J = fw.kernel_jacobian("relu", (a, b))
    H = fw.kernel_hessian("relu", (a, b))
    kaa, kab, kbb = fw.kernel((a, a)), fw.kernel((a, b)), fw.kernel((b, b))
    vals = {kaa: 1.3, kbb: 0.7, kab: 0.4, fw.C_W: 2.0}
    theta = np.arccos(0.4 / np.sqrt(1.3 * 0.7))
    assert float(J[(a, b)].subs(vals)) == pytest.approx(2 * (np.pi - theta) / (2 * np.pi), rel=1e-14)
    assert float(H[((a, b), (a, b))].subs(vals)) == pytest.approx(2 / (2 * np.pi * np.sqrt(1.3 * 0.7 - 0.16)), rel=1e-14)
    # J and H against finite differences of the mean-field map itself
    k_new, _ = fw.mean_field_map("relu", (a, b))
    xs = sp.symbols("x0:3")
    f = sp.lambdify(xs, k_new.subs({fw.C_W: 2.0, fw.C_B: 0}).xreplace(dict(zip((kaa, kab, kbb), xs))))
    h = 1e-5
    fd = (f(1.3 + h, 0.4, 0.7) - f(1.3 - h, 0.4, 0.7)) / (2 * h)
    assert float(J[(a, a)].subs(vals)) == pytest.approx(fd, rel=1e-8)
    fd2 = (f(1.3 + h, 0.4 + h, 0.7) - f(1.3 + h, 0.4 - h, 0.7) - f(1.3 - h, 0.4 + h, 0.7) + f(1.3 - h, 0.4 - h, 0.7)) / (4 * h * h)
    assert float(H[((a, a), (a, b))].subs(vals)) == pytest.approx(fd2, rel=1e-5)


def test_vertex_update_is_symmetric_and_uses_only_sub_pairs():
    upd = fw.vertex_update("erf", (a, b), (c, d))
    used = {q for q in upd.atoms(fw.LayerQuantity) if q.name == "V"}
    assert len(used) == 9 and all(set(q.indices[:2]) <= {a, b} and set(q.indices[2:]) <= {c, d} for q in used)
    assert fw.vertex((b, a), (d, c)) == fw.vertex((c, d), (a, b)) == fw.vertex((a, b), (c, d))
    assert sp.simplify(upd - fw.vertex_update("erf", (d, c), (b, a))) == 0


def test_recursions_print_and_export_latex():
    rec = fw.finite_width_recursion("relu")
    text = str(rec)
    assert "Vabcd[l + 1]" in text and "K1ab[l + 1]" in text and "r[l]" in text
    tex = rec.latex()
    assert r"V^{(l + 1)}_{abcd}" in tex and r"r^{(l)}" in tex and r"\arccos" in tex
    ntk = fw.ntk_finite_width_recursion("tanh")
    assert r"\left\langle" in latex(ntk.update[fw.kernel((a, a), fw.LAYER + 1, "H1")])
    assert ntk.unevaluated()  # tanh: averages left for quadrature


@pytest.mark.parametrize("name, rho4, cw", [("relu", 2, 2), ("linear", 1, 1), ("leaky_relu(0.5)", sp.Rational(34, 25), sp.Rational(8, 5))])
def test_scale_invariant_closed_forms_match_theory(name, rho4, cw):
    """THEORY 4.5 and 5.4 at criticality: V = (l-1)(3 rho4 - 1) K^2, K1 = 0, Theta = l lambda_W A2 K, H1 = 0, ..."""
    sol = scale_invariant_solution(name)
    A2 = 1 / sol.critical_weight_var
    r4 = sol.rho4
    assert r4 == rho4 and sol.critical_weight_var == cw
    assert sp.simplify(sol["V"] - (L - 1) * (3 * r4 - 1) * K1s ** 2) == 0
    assert sol["K1"] == 0 and sol["H1"] == 0
    assert sp.simplify(sol["Theta"] - L * lw * A2 * K1s) == 0
    assert sp.simplify(sol["F"] - r4 * lw * A2 * K1s ** 2 * L * (L - 1) / 2) == 0
    assert sp.simplify(sol["D"] - (2 * r4 - 1) * lw * A2 * K1s ** 2 * L * (L - 1)) == 0
    assert sp.simplify(sol["B"] - r4 * lw ** 2 * A2 ** 2 * K1s ** 2 * (L - 1) * L * (2 * L - 1) / 6) == 0
    A_th = lw ** 2 * A2 ** 2 * K1s ** 2 * ((5 * r4 - 3) * (L - 1) * L * (2 * L - 1) / 6 + (r4 - 1) * L * (L - 1) / 2)
    assert sp.simplify(sol["A"] - A_th) == 0


def test_relu_ntk_relative_variance():
    assert sp.simplify(scale_invariant_solution("relu").ntk_relative_variance() - (L - 1) * (11 * L - 4) / (3 * L)) == 0
    assert scale_invariant_solution("tanh") is None


@pytest.mark.parametrize("name, a1", [("tanh", -2), ("erf", -2), ("sin", -1)])
def test_kstar_zero_asymptotics_from_taylor_coefficients(name, a1):
    """THEORY 4.5: K ~ 1/(-a1 l), V ~ 2/(3 a1^2 l) (V/K^2 -> 2l/3, kurtosis 2l/n), K1 -> 1/(3 a1)."""
    asy = kstar_zero_asymptotics(name)
    assert asy.a1 == a1 and asy.source == 2
    assert sp.simplify(asy.K - 1 / (-a1 * L)) == 0
    assert sp.simplify(asy.V - sp.Rational(2, 3) / (a1 ** 2 * L)) == 0
    assert sp.simplify(asy.K1 - sp.Rational(1, 3) / a1) == 0
    assert sp.simplify(asy.kurtosis_coefficient - 2 * L) == 0


def test_kstar_zero_rejects_other_classes():
    from fieldnet.errors import ParameterError

    with pytest.raises(ParameterError, match="activation"):
        kstar_zero_asymptotics("cos")
    with pytest.raises(ParameterError, match="a1"):
        kstar_zero_asymptotics("x + x**3")
