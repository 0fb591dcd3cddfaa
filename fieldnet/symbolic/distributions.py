"""Distributional calculus for kinked and discontinuous activations.

sympy differentiates ``Piecewise`` branch by branch, so the jump of a discontinuous function (and
the kink of a piecewise-linear one, at second order) contributes no delta function. Gaussian
averages need the distributional derivative — Price's theorem applied to relu's second
derivative is the step's delta kernel — so activations are normalised on the way in:

* :func:`piecewise_to_heaviside` rewrites Piecewise((e_0, x < b_1), (e_1, x < b_2), ..., (e_n, True))
  as e_0 + sum_i (e_i - e_{i-1}) Heaviside(x - b_i) (values at the breakpoints do not matter under
  a Gaussian), whose sympy derivatives carry the delta terms;
* :func:`normalize_deltas` makes every delta term's coefficient a constant with
  g(x) delta^(k)(x - b) = sum_j (-1)^j C(k, j) g^(j)(b) delta^(k-j)(x - b), so x delta(x) = 0 and
  x delta'(x) = -delta(x).
"""

from __future__ import annotations

import sympy as sp

from fieldnet.errors import ActivationError


def piecewise_to_heaviside(expr, x):
    """Replace every Piecewise in ``expr`` (conditions on ``x`` alone) by its Heaviside form."""
    return expr.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: _convert(e, x))


def _convert(pw: sp.Piecewise, x):
    points = set()
    for _, cond in pw.args:
        if cond in (sp.true, sp.false):
            continue
        if cond.free_symbols - {x}:
            raise ActivationError(f"activation: Piecewise condition {cond} must depend on x alone")
        try:
            region = cond.as_set()
        except (NotImplementedError, TypeError, ValueError) as exc:
            raise ActivationError(f"activation: cannot find the breakpoints of the condition {cond}") from exc
        points |= {p for p in region.boundary if p.is_finite}
    bps = sorted(points, key=lambda p: float(p))
    if not bps:
        return pw.args[0][0] if pw.args[0][1] == sp.true else pw
    probes = [bps[0] - 1] + [(lo + hi) / 2 for lo, hi in zip(bps, bps[1:])] + [bps[-1] + 1]
    pieces = [_piece_at(pw, x, p) for p in probes]
    out = pieces[0]
    for b, before, after in zip(bps, pieces, pieces[1:]):
        jump = sp.simplify(after - before)
        if jump != 0:
            out += jump * sp.Heaviside(x - b)
    return out


def _piece_at(pw: sp.Piecewise, x, point):
    for value, cond in pw.args:
        truth = cond.subs(x, point) if cond not in (sp.true, sp.false) else cond
        if truth == sp.true:
            return value
    raise ActivationError(f"activation: the Piecewise {pw} is undefined near x = {point}")


def normalize_deltas(expr):
    """Rewrite g(x) delta^(k)(x - b) so that every delta term has a constant coefficient."""
    if not expr.has(sp.DiracDelta):
        return expr
    out = sp.S.Zero
    for term in sp.Add.make_args(sp.expand(expr)):
        deltas = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.DiracDelta)]
        if len(deltas) != 1:
            out += term
            continue
        delta = deltas[0]
        arg, order = delta.args[0], (int(delta.args[1]) if len(delta.args) > 1 else 0)
        var = arg.free_symbols
        if len(var) != 1 or not arg.is_polynomial(*var) or sp.degree(arg, *var) != 1:
            out += term
            continue
        var = next(iter(var))
        if sp.diff(arg, var) != 1:
            out += term
            continue
        point = var - arg
        g = term / delta
        if g.has(sp.DiracDelta):
            out += term
            continue
        for j in range(order + 1):
            coeff = sp.diff(g, var, j).subs(var, point)
            if coeff != 0:
                out += (-1) ** j * sp.binomial(order, j) * coeff * sp.DiracDelta(arg, order - j)
    return out
