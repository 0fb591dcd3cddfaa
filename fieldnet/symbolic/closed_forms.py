"""The table of closed-form Gaussian expectations, organised by function family.

Each family recognises a one-variable function by its *form*, not its name, so a user's
expression that falls in a family gets the closed form too:

* :class:`PiecewisePolynomial` — f(x) = P(x) for x > 0, Q(x) for x < 0 (P, Q polynomials), plus
  d * delta(x). Covers linear, relu, leaky relu, ABReLU, abs, step, sign, relu^k and their
  derivatives. Pair expectations are the arc-cosine kernels (Cho & Saul):

      <relu(u)^p relu(v)^q> = a^{p/2} b^{q/2} 2^{m/2} Gamma(1 + m/2) I_pq(theta) / (2 pi),  m = p + q,
      I_pq(theta) = int_{theta - pi/2}^{pi/2} cos^p(t) cos^q(t - theta) dt,  theta = arccos(c / sqrt(ab)).

* :class:`GaussianExponential` — f(x) = sum_j P_j(x) exp(alpha_j x^2 + beta_j x) (beta complex):
  sin, cos, exp, sinh, cosh, erf' and monomials. Any number of variables, by completing the
  square: E[P(z) e^{z^T A z + beta^T z}] = det(I - 2 Sigma A)^{-1/2} e^{beta^T Sigma' beta / 2}
  E_{N(Sigma' beta, Sigma')}[P], with Sigma' = (I - 2 Sigma A)^{-1} Sigma, then Wick.
* :class:`ErfFamily` — f(x) = c_0 + sum_j c_j erf(w_j x): Williams' arcsine kernel
  <erf(w u) erf(v v')> = (2/pi) arcsin(2 w v' c / sqrt((1 + 2 w^2 a)(1 + 2 v'^2 b))).
* :class:`GeluFamily` — the exact GELU x Phi(x) and its derivative (Tsuchida et al.,
  arXiv:2002.08517).

Each family works in generic covariance symbols and is cached; the caller substitutes the
actual covariance entries. Conventions: (u, v) ~ N(0, [[a, c], [c, b]]).
"""

from __future__ import annotations

from functools import lru_cache
from itertools import product

import sympy as sp

from fieldnet.symbolic.wick import polynomial_expectation

_t = sp.Symbol("t", real=True)
_xp = sp.Symbol("x_pos", positive=True)
_xn = sp.Symbol("x_neg", negative=True)
_RHO = sp.Symbol("rho", real=True)
_SA, _SB = sp.symbols("sqrt_a sqrt_b", positive=True)
_S = sp.Symbol("sqrt_det", positive=True)  # sqrt(ab - c^2)
_C = sp.Symbol("c", real=True)


def generic_covariance(k: int) -> sp.ImmutableMatrix:
    """k x k symmetric matrix of symbols s_ij, diagonal ones positive (for simplification)."""
    rows = []
    for i in range(k):
        row = []
        for j in range(k):
            lo, hi = min(i, j), max(i, j)
            row.append(sp.Symbol(f"s_{lo}{hi}", positive=(lo == hi), real=True))
        rows.append(row)
    return sp.ImmutableMatrix(rows)


class Family:
    """A family of one-variable functions with closed-form Gaussian expectations."""

    name = "family"
    max_vars = 2

    def match(self, f, x):  # pragma: no cover - interface
        """A hashable representation of f (a function of x), or None if f is not in the family."""
        raise NotImplementedError

    def expectation(self, reps: tuple, cov: sp.ImmutableMatrix) -> sp.Expr:  # pragma: no cover
        """E[prod_i f_i(z_i)] for z ~ N(0, cov), with ``reps`` from :meth:`match`."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# piecewise polynomials: the arc-cosine family


@lru_cache(maxsize=None)
def arc_cosine_integral(p: int, q: int) -> sp.Expr:
    """I_pq as a function of rho = cos(theta), in the symbol ``rho``."""
    theta = sp.Symbol("theta", positive=True)
    rho = _RHO
    integrand = sp.expand(sp.expand_trig(sp.cos(_t) ** p * sp.cos(_t - theta) ** q))
    value = sp.integrate(integrand, (_t, theta - sp.pi / 2, sp.pi / 2))
    value = sp.expand(sp.expand_trig(value))
    sin_t = sp.sqrt(1 - rho ** 2)
    value = value.subs({sp.sin(theta): sin_t, sp.cos(theta): rho}).subs(theta, sp.acos(rho))
    return sp.expand(value)


def _relu_moment(m: int) -> sp.Expr:
    """E[relu(g)^m] for g ~ N(0, 1); relu(g)^0 is the step Theta(g)."""
    return 2 ** sp.Rational(m, 2) * sp.gamma(sp.Rational(m + 1, 2)) / (2 * sp.sqrt(sp.pi))


def arc_cosine_kernel(p: int, q: int, a, b, c) -> sp.Expr:
    """<relu(u)^p relu(v)^q> for (u, v) ~ N(0, [[a, c], [c, b]])."""
    rho = _RHO
    m = p + q
    pref = a ** sp.Rational(p, 2) * b ** sp.Rational(q, 2) * 2 ** sp.Rational(m, 2) * sp.gamma(1 + sp.Rational(m, 2))
    return pref * arc_cosine_integral(p, q).subs(rho, c / sp.sqrt(a * b)) / (2 * sp.pi)


class PiecewisePolynomial(Family):
    """f = sum_m p_m relu(x)^m + sum_m q_m relu(-x)^m + d delta(x)."""

    name = "piecewise polynomial (arc-cosine)"
    max_vars = 2

    def match(self, f, x):
        f = sp.expand(f)
        delta = sp.S.Zero
        smooth = sp.S.Zero
        for term in sp.Add.make_args(f):
            deltas = [a for a in term.atoms(sp.DiracDelta)]
            if not deltas:
                smooth += term
                continue
            if deltas != [sp.DiracDelta(x)]:
                return None  # derivatives of delta, or a delta at another point
            coeff = sp.simplify(term / sp.DiracDelta(x))
            if coeff.has(x) and coeff.has(sp.DiracDelta, sp.Heaviside, sp.sign, sp.Piecewise, sp.Max, sp.Min, sp.Abs):
                return None
            delta += coeff.subs(x, 0)
        pos = sp.expand(smooth.subs(x, _xp))
        neg = sp.expand(smooth.subs(x, _xn))
        if not (pos.is_polynomial(_xp) and neg.is_polynomial(_xn)):
            return None
        if pos.free_symbols - {_xp} or neg.free_symbols - {_xn} or not delta.is_number:
            return None
        p_coeffs = sp.Poly(pos, _xp).all_coeffs()[::-1]
        # x < 0: Q(x) = sum_m q_m x^m = sum_m q_m (-1)^m relu(-x)^m
        q_coeffs = [c * (-1) ** m for m, c in enumerate(sp.Poly(neg, _xn).all_coeffs()[::-1])]
        return (tuple(p_coeffs), tuple(q_coeffs), sp.nsimplify(delta) if delta.is_Float else delta)

    def expectation(self, reps, cov):
        if len(reps) == 1:
            (p, q, d), var = reps[0], cov[0, 0]
            out = sum((coef * var ** sp.Rational(m, 2) * _relu_moment(m)
                       for coeffs in (p, q) for m, coef in enumerate(coeffs)), sp.S.Zero)
            return out + d / sp.sqrt(2 * sp.pi * var)
        (p1, q1, d1), (p2, q2, d2) = reps
        a, b, c = cov[0, 0], cov[1, 1], cov[0, 1]
        out = self._smooth_pair((p1, q1), (p2, q2)).subs(
            {_S: sp.sqrt(a * b - c ** 2), _C: c, _SA: sp.sqrt(a), _SB: sp.sqrt(b)}, simultaneous=True)
        # delta(u) g(v): the density of u at 0 times E[g(v) | u = 0], Var(v | u = 0) = b - c^2/a
        if d1 != 0:
            out += d1 * self.expectation(((p2, q2, 0),), sp.Matrix([[b - c ** 2 / a]])) / sp.sqrt(2 * sp.pi * a)
        if d2 != 0:
            out += d2 * self.expectation(((p1, q1, 0),), sp.Matrix([[a - c ** 2 / b]])) / sp.sqrt(2 * sp.pi * b)
        if d1 != 0 and d2 != 0:
            out += d1 * d2 / (2 * sp.pi * sp.sqrt(a * b - c ** 2))
        return out

    @staticmethod
    @lru_cache(maxsize=None)
    def _smooth_pair(f1, f2):
        """The non-delta part in sqrt(a) = SA, sqrt(b) = SB and rho, simplified."""
        out = sp.S.Zero
        for coeffs1, sign1 in zip(f1, (1, -1)):
            for coeffs2, sign2 in zip(f2, (1, -1)):
                for m, c1 in enumerate(coeffs1):
                    for n, c2 in enumerate(coeffs2):
                        if c1 != 0 and c2 != 0:
                            # relu(-v) = relu of a variable with correlation -rho
                            flipped = arc_cosine_integral(m, n).subs(_RHO, sign1 * sign2 * _RHO)
                            out += (c1 * c2 * _SA ** m * _SB ** n * 2 ** sp.Rational(m + n, 2)
                                    * sp.gamma(1 + sp.Rational(m + n, 2)) * flipped / (2 * sp.pi))
        out = out.replace(lambda e: isinstance(e, sp.acos) and e.args[0].could_extract_minus_sign(),
                          lambda e: sp.pi - sp.acos(-e.args[0]))
        out = sp.expand(out).subs(sp.sqrt(1 - _RHO ** 2), _S / (_SA * _SB))
        out = out.subs(_RHO, _C / (_SA * _SB))  # also inside acos: theta = acos(c / sqrt(ab))
        return sp.collect(sp.expand(out), [sp.acos(_C / (_SA * _SB)), _S], func=sp.factor)


# --------------------------------------------------------------------------------------------
# polynomial x exp(quadratic)


def _exp_exponent(factor, x):
    """The exponent of ``factor`` if it is exp(poly) or exp(poly)**n, else None."""
    if isinstance(factor, sp.exp):
        return factor.args[0]
    if factor.is_Pow and isinstance(factor.base, sp.exp) and factor.exp.is_number:
        return factor.base.args[0] * factor.exp
    if factor.is_Pow and factor.base == sp.E:
        return factor.exp
    return None


class GaussianExponential(Family):
    """f = sum_j P_j(x) exp(alpha_j x^2 + beta_j x); any number of variables."""

    name = "polynomial x exp(quadratic)"
    max_vars = 8

    def match(self, f, x):
        if not f.has(x):
            return ((f, sp.S.Zero, sp.S.Zero),)
        g = sp.expand(sp.powsimp(sp.expand(f.rewrite(sp.exp)), combine="exp"))
        groups: dict = {}
        for term in sp.Add.make_args(g):
            coeff, dep = term.as_independent(x, as_Add=False)
            poly, exponent = sp.S.One, sp.S.Zero
            for factor in sp.Mul.make_args(dep):
                e = _exp_exponent(factor, x)
                if e is not None:
                    exponent += e
                elif factor.is_polynomial(x):
                    poly *= factor
                else:
                    return None
            exponent = sp.expand(exponent)
            if not exponent.is_polynomial(x) or sp.degree(exponent, x) > 2:
                return None
            ep = sp.Poly(exponent, x)
            alpha, beta, gamma = (ep.coeff_monomial(x ** 2), ep.coeff_monomial(x), ep.coeff_monomial(1))
            if not (alpha.is_real and alpha.is_number):
                return None
            key = (alpha, beta)
            groups[key] = groups.get(key, sp.S.Zero) + coeff * sp.exp(gamma) * poly
        return tuple((sp.expand(p).subs(x, _t), a, b) for (a, b), p in sorted(groups.items(), key=sp.default_sort_key))

    def expectation(self, reps, cov):
        k = len(reps)
        zs = sp.symbols(f"y0:{k}", real=True)
        total = sp.S.Zero
        for choice in product(*reps):
            polys = [p.subs(_t, z) for (p, _, _), z in zip(choice, zs)]
            A = sp.diag(*[alpha for _, alpha, _ in choice])
            beta = sp.Matrix([bt for _, _, bt in choice])
            M = sp.eye(k) - 2 * cov * A
            cov_t = sp.simplify(M.inv() * cov) if A != sp.zeros(k) else sp.Matrix(cov)
            mean = cov_t * beta
            pref = sp.exp((beta.T * cov_t * beta)[0, 0] / 2) / sp.sqrt(M.det())
            total += pref * polynomial_expectation(sp.Mul(*polys), zs, cov_t, mean=list(mean))
        return _tidy_exponentials(total)


def _tidy_exponentials(expr):
    expr = sp.expand(sp.powsimp(sp.expand(expr), combine="exp"))
    if expr.has(sp.I):
        expr = sp.expand(sp.simplify(expr.rewrite(sp.cos)))
        expr = sp.simplify(expr)
    return sp.powsimp(sp.factor_terms(expr), combine="exp")


# --------------------------------------------------------------------------------------------
# erf: Williams' arcsine kernel


class ErfFamily(Family):
    """f = c_0 + sum_j c_j erf(w_j x)."""

    name = "erf (arcsine)"
    max_vars = 2

    def match(self, f, x):
        f = sp.expand(f)
        if not f.has(sp.erf):
            return None
        const, terms = sp.S.Zero, []
        for term in sp.Add.make_args(f):
            coeff, dep = term.as_independent(x, as_Add=False)
            if dep == 1:
                const += coeff
                continue
            if not isinstance(dep, sp.erf):
                return None
            w = sp.simplify(dep.args[0] / x)
            if w.has(x) or not w.is_real:
                return None
            terms.append((coeff, w))
        return (const, tuple(terms))

    def expectation(self, reps, cov):
        if len(reps) == 1:
            return reps[0][0]  # erf is odd: E[erf(w z)] = 0
        (c0, t1), (d0, t2) = reps
        a, b, c = cov[0, 0], cov[1, 1], cov[0, 1]
        out = c0 * d0
        for c1, w1 in t1:
            for c2, w2 in t2:
                arg = 2 * w1 * w2 * c / sp.sqrt((1 + 2 * w1 ** 2 * a) * (1 + 2 * w2 ** 2 * b))
                out += c1 * c2 * 2 / sp.pi * sp.asin(arg)
        return out


# --------------------------------------------------------------------------------------------
# GELU


def _gelu(x):
    return x * (1 + sp.erf(x / sp.sqrt(2))) / 2


class GeluFamily(Family):
    """kappa * gelu(x) or kappa * gelu'(x), gelu(x) = x Phi(x) (exact GELU)."""

    name = "GELU (Tsuchida et al.)"
    max_vars = 2

    def match(self, f, x):
        if not f.has(sp.erf) and not f.has(sp.exp):
            return None
        for order in (0, 1):
            ref = sp.diff(_gelu(x), x, order)
            ratio = sp.simplify(f / ref)
            if ratio.is_number and ratio != 0:
                return (order, ratio)
        return None

    def expectation(self, reps, cov):
        if len(reps) == 1:
            (order, kappa), var = reps[0], cov[0, 0]
            # Stein: E[z Phi(z)] = K E[N(z)] = K / sqrt(2 pi (1 + K)); E[Phi(z) + z N(z)] = 1/2
            return kappa * (var / sp.sqrt(2 * sp.pi * (1 + var)) if order == 0 else sp.S.Half)
        (o1, k1), (o2, k2) = reps
        if o1 != o2:
            return None
        a, b, c = cov[0, 0], cov[1, 1], cov[0, 1]
        delta = (1 + a) * (1 + b) - c ** 2
        s = sp.asin(c / sp.sqrt((1 + a) * (1 + b)))
        if o1 == 0:
            val = (c / 4 + c * s / (2 * sp.pi)
                   + (a * b + c ** 2 * (1 / (1 + a) + 1 / (1 + b) - 1)) / (2 * sp.pi * sp.sqrt(delta)))
        else:
            val = (sp.Rational(1, 4) + s / (2 * sp.pi)
                   + c * (1 / (1 + a) + 1 / (1 + b)) / (2 * sp.pi * sp.sqrt(delta))
                   + c / (2 * sp.pi * delta ** sp.Rational(3, 2)))
        return k1 * k2 * val


FAMILIES: tuple = (PiecewisePolynomial(), GaussianExponential(), ErfFamily(), GeluFamily())
