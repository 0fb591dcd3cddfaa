"""Evaluation of Gaussian-expectation nodes (DESIGN.md section 3).

Rules, in order, applied term by term after using linearity:

1. a term that is a polynomial in the integration variables -> Wick / Isserlis;
2. a product of one-variable factors that all lie in one closed-form family
   (:mod:`fieldnet.symbolic.closed_forms`) -> that family's closed form;
3. otherwise the term stays inside an unevaluated :class:`GaussianExpectation`, which the numeric
   side integrates by quadrature.

Variables a term does not depend on are integrated out (marginalised) first. A variable carrying
two factors that no family can multiply, e.g. erf(z)^2, is duplicated into a perfectly
correlated pair, so the pair formulas also serve single-input moments.

Price's theorem (derivatives with respect to covariance entries) lives on the node itself, see
:meth:`fieldnet.symbolic.nodes.GaussianExpectation._eval_derivative`.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from fieldnet.symbolic.closed_forms import FAMILIES, generic_covariance
from fieldnet.symbolic.distributions import normalize_deltas
from fieldnet.symbolic.nodes import GaussianExpectation
from fieldnet.symbolic.wick import polynomial_expectation


_UNIT = sp.Symbol("x", real=True)  # the variable the families match one-variable functions in


def gaussian_expectation(integrand, variables, covariance, evaluate=True):
    """E_{z ~ N(0, covariance)} integrand(z) — closed form where the rules give one."""
    node = GaussianExpectation(integrand, variables, covariance)
    return evaluate_node(node) if evaluate else node


def evaluate(expr):
    """Evaluate every expectation node inside ``expr`` as far as the rules allow."""
    return expr.replace(lambda e: isinstance(e, GaussianExpectation), evaluate_node)


@lru_cache(maxsize=4096)
def evaluate_node(node: GaussianExpectation):
    variables, cov = node.variables, node.covariance
    if node.integrand.has(sp.DiracDelta):
        node = GaussianExpectation(normalize_deltas(node.integrand), variables, cov)
        if node.integrand == 0:
            return sp.S.Zero
    whole = _evaluate_term(node.integrand, variables, cov)  # keeps products such as gelu(u) gelu(v) intact
    if whole is not None:
        return whole
    closed = sp.S.Zero
    for term in sp.Add.make_args(sp.expand(node.integrand)):
        value = _evaluate_term(term, variables, cov)
        if value is None:
            return node  # all or nothing: a half-evaluated average reads worse and saves no quadrature
        closed += value
    return closed


def _factor_by_variable(term, variables):
    """(constant, {variable: [factors]}) or None if some factor mixes variables."""
    const = sp.S.One
    factors: dict = {}
    for factor in sp.Mul.make_args(term):
        used = factor.free_symbols & set(variables)
        if not used:
            const *= factor
        elif len(used) == 1:
            var = next(iter(used))
            if factor.is_Pow and factor.exp.is_Integer and factor.exp > 0 and not factor.base.is_polynomial(var):
                factors.setdefault(var, []).extend([factor.base] * int(factor.exp))
            else:
                factors.setdefault(var, []).append(factor)
        else:
            return None
    return const, factors


def _evaluate_term(term, variables, cov):
    split = _factor_by_variable(term, variables)
    if split is None:
        return None
    const, factors = split
    used = [v for v in variables if v in factors]
    if not used:
        return const
    idx = [variables.index(v) for v in used]
    sub_cov = sp.ImmutableMatrix([[cov[i, j] for j in idx] for i in idx])
    functions = tuple(sp.Mul(*factors[v]) for v in used)
    if all(f.is_polynomial(v) for f, v in zip(functions, used)):
        return const * polynomial_expectation(sp.Mul(*functions), used, sub_cov)
    value = _family_expectation(functions, tuple(used), sub_cov)
    if value is None:
        value = _duplicated_expectation(factors, used, idx, cov)
    return None if value is None else const * value


def _family_expectation(functions, used, sub_cov):
    """Closed form from one family for a product of one-variable functions, or None."""
    k = len(functions)
    canon = tuple(f.subs(v, _UNIT) for f, v in zip(functions, used))
    result = _family_expectation_generic(canon)
    if result is None:
        return None
    generic = generic_covariance(k)
    return result.subs({generic[i, j]: sub_cov[i, j] for i in range(k) for j in range(i, k)}, simultaneous=True)


@lru_cache(maxsize=4096)
def _family_expectation_generic(canon):
    """The closed form in generic covariance symbols (cached across layers and inputs)."""
    k = len(canon)
    for family in FAMILIES:
        if k > family.max_vars:
            continue
        reps = [family.match(f, _UNIT) for f in canon]
        if any(r is None for r in reps):
            continue
        value = family.expectation(tuple(reps), generic_covariance(k))
        if value is not None:
            return value
    return None


def _duplicated_expectation(factors, used, idx, cov):
    """For one variable carrying several factors, split them into two groups f1 * f2 and use the
    pair formula with a perfectly correlated pair: E[f1(z) f2(z)] = E[f1(u) f2(v)], u = v."""
    if len(used) != 1:
        return None
    var = used[0]
    atoms = []
    for factor in factors[var]:
        if factor.is_Pow and factor.exp.is_Integer and 0 < factor.exp <= 8:
            atoms.extend([factor.base] * int(factor.exp))
        else:
            atoms.append(factor)
    if not 2 <= len(atoms) <= 8:
        return None
    var_ = cov[idx[0], idx[0]]
    s = sp.Symbol("s", positive=True)  # simplify the single-input form with a positive variance
    pair_cov = sp.ImmutableMatrix([[s, s], [s, s]])
    seen = set()
    for mask in range(1, 2 ** (len(atoms) - 1)):
        first = sp.Mul(*[a for i, a in enumerate(atoms) if mask >> i & 1])
        second = sp.Mul(*[a for i, a in enumerate(atoms) if not mask >> i & 1])
        if (first, second) in seen:
            continue
        seen.add((first, second))
        value = _family_expectation((first, second), (var, var), pair_cov)
        if value is not None:
            value = value.replace(lambda e: e.is_Pow and e.exp.is_Rational and not e.exp.is_Integer,
                                  lambda e: sp.Pow(sp.expand(e.base), e.exp))
            return sp.simplify(value).subs(s, var_)
    return None
