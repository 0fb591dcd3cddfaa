"""Wick / Isserlis: exact Gaussian moments of polynomials.

For z ~ N(0, Sigma) the moment E[prod_i z_i^{k_i}] is the sum over perfect pairings of the
multiset of variables, each pair (i, j) contributing Sigma_ij. We evaluate it with Stein's
recursion E[z_i g(z)] = sum_j Sigma_ij E[d_j g(z)], memoised on the exponent tuple, which is
the pairing sum without enumerating pairings.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp


def moment(exponents: tuple, cov: sp.Matrix) -> sp.Expr:
    """E[prod_i z_i^{exponents[i]}] for z ~ N(0, cov)."""
    cov = sp.ImmutableMatrix(cov)
    k = len(exponents)
    if cov.shape != (k, k):
        raise ValueError("cov must be k x k for k exponents")

    @lru_cache(maxsize=None)
    def rec(exps: tuple) -> sp.Expr:
        total = sum(exps)
        if total == 0:
            return sp.S.One
        if total % 2:
            return sp.S.Zero
        i = next(idx for idx, e in enumerate(exps) if e)
        rest = list(exps)
        rest[i] -= 1
        result = sp.S.Zero
        for j in range(k):
            if rest[j] == 0 or cov[i, j] == 0:
                continue
            reduced = list(rest)
            reduced[j] -= 1
            result += cov[i, j] * rest[j] * rec(tuple(reduced))
        return result

    return sp.expand(rec(tuple(int(e) for e in exponents)))


def polynomial_expectation(poly_expr, variables, cov, mean=None) -> sp.Expr:
    """E[p(z)] for a polynomial p in ``variables`` and z ~ N(mean, cov) (mean zero by default)."""
    variables = list(variables)
    expr = sp.sympify(poly_expr)
    if mean is not None:
        expr = expr.subs({v: v + m for v, m in zip(variables, mean)}, simultaneous=True)
    poly = sp.Poly(sp.expand(expr), *variables)
    cov = sp.ImmutableMatrix(cov)
    return sum((coeff * moment(monom, cov) for monom, coeff in poly.terms()), sp.S.Zero)
