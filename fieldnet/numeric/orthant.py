"""Exact Gaussian averages of relu-family monomials in up to four variables.

    values = moments(a, s, covs)     # M(a, s; C_p) for every covariance C_p in covs (P, k, k)

    M(a, s; C) = E_{z ~ N(0, C)} [ prod_i z_i^{a_i} Theta(z_i)^{s_i} ],   k <= 4, a_i in 0..6, s_i in {0, 1}

(Theta the Heaviside step; its value at 0 does not matter for a variable of positive variance, and is 1/2
for a variable of zero variance, as in :mod:`fieldnet.numeric.codegen`). relu networks need exactly these:
phi = z Theta(z), phi' = Theta(z), phi^2 = z^2 Theta(z), ... :func:`relu_family_terms` writes a factor
g(x) = p0(x) + Theta(x) p1(x) and :func:`relu_family_average` expands a product of such factors, one per
variable, into these monomials. Errors are about 1e-13 of the scale prod_i C_ii^{a_i / 2} (1e-15 absolute
for 4-variable orthant probabilities; tests/test_orthant.py), so values much smaller than the scale (e.g.
relu(z1) relu(z2) at correlation -1 + 1e-9) have larger relative errors, as the input C itself only
determines them that well. About 0.1 ms per 4-variable average, some 300 times faster than the general
integrator :mod:`fieldnet.numeric.products`.

**Representation.** C = L L^T with the rows l_i of L (pivoted Cholesky), z_i = l_i . u, u ~ N(0, 1).
Covariances are dot products, conditioning is a projection, and angles between rows are computed as
atan2(|l_i| |l_j - (l_i.l_j / |l_i|^2) l_i|, l_i . l_j), accurate for nearly parallel rows.

**Stein reduction (Gaussian integration by parts).** For a != 0 pick i with a_i > 0 and write
z^a Theta^s = z_i g(z); then E[z_i g(z)] = sum_j C_ij E[d_j g(z)], with (a' = a - e_i)

    d_j (z_j^{a'_j} Theta(z_j)^{s_j}) = a'_j z_j^{a'_j - 1} Theta(z_j)^{s_j}    (a'_j > 0),
                                      = delta(z_j)                                (a'_j = 0, s_j = 1),

    M(a, s; C) = sum_j C_ij [ a'_j M(a' - e_j, s; C)  +  [a'_j = 0] s_j N(0; 0, C_jj) M_j(a'_{-j}, s_{-j}; C|j) ],

where N(0; 0, v) = 1 / sqrt(2 pi v) and M_j is the same kind of average over the other variables given
z_j = 0: zero mean, covariance C|j = C - C[:, j] C[j, :] / C_jj (rows projected orthogonally to l_j).
For each step-variable set the averages for all a' <= a are filled into one table in increasing a
(the conditional tables recursively, the dimension dropping by one per level).

**Orthant probabilities** (a = 0; variables without a step marginalise out), with the angles theta_ij
(cos theta_ij = rho_ij) of the step variables:

    P_0 = 1,   P_1 = 1/2,   P_2 = (pi - theta_12) / (2 pi),   P_3 = (2 pi - theta_12 - theta_13 - theta_23) / (4 pi)

(Sheppard 1899; the 3-variable form e.g. in Childs 1967, Biometrika 54, 293). In four dimensions there is
no elementary form (Childs 1967); we integrate Plackett's identity (Plackett 1954, Biometrika 41, 351)

    d P_4 / d rho_ij = phi_2(0, 0; rho_ij) P_2(rho_{kl|ij})     ({k, l} the other two, rho_{kl|ij} the
                                                                   partial correlation given z_i = z_j = 0)

along R(t) = I + t (R - I), t in [0, 1], from P_4(I) = 1/16. With phi_2(0, 0; r) = 1 / (2 pi sqrt(1 - r^2))
the substitution t rho_ij = sin(theta) removes the square-root endpoint singularity of each pair's term:

    P_4 = 1/16 + sum_{i<j} 1/(2 pi) int_0^{asin rho_ij} P_2(rho_{kl|ij}(sin(theta) / rho_ij)) d theta .

The remaining integrands are smooth but for nearly singular R vary fast at t -> 1 (a conditional
correlation tends to +-1); they are summed with tanh-sinh quadrature (Takahasi & Mori 1974), halving the
step from 1/2 until, at 1/8 or below, a halving changes P_4 by at most 1e-10 relative (or 1e-17 absolute;
at most 1/128). Tanh-sinh roughly doubles its correct digits per halving, so the accepted estimate is good
to about 1e-15 absolute (measured against a step-1/512 rule: <= 6e-16 for random R, <= 4e-14 for R within
1e-8 of rank 2). The partial correlations are computed by Gram-Schmidt on the vectors of the variables
at t, not from the 2 x 2 Schur complement of R(t), whose cancellations cost up to 1e-3 relative when R is
nearly singular.

**Degenerate covariances** are reduced before they can produce 0/0: a variable of zero variance
(C_ii <= 1e-13 max_j C_jj at the top, or a conditional variance <= 1e-13 of the variance before the
conditioning) is z_i = 0: its monomial is 0 if a_i > 0 and Theta(0)^{s_i} = 2^{-s_i} otherwise. A variable
proportional to another (|l_i - c l_j|^2 <= 1e-13 |l_i|^2, z_i = c z_j) is merged into it:
z_i^{a_i} = c^{a_i} z_j^{a_i}, and Theta(z_i) = Theta(z_j) for c > 0, 1 - Theta(z_j) for c < 0
(Theta(z_j) (1 - Theta(z_j)) = 0 a.s.). Merging happens at every conditioning level too, so a linear
dependence z_l = alpha z_i + beta z_j shows up as a proportionality given z_i = 0 and never as a zero
conditional variance. Correlations 1 - 1e-12 are not merged and stay accurate (projected rows lose no digits).

All the work is in numba (``@njit(cache=True)``; the tables in m variables call those in m - 1);
:func:`moments` and :func:`moment_tables` validate their input and raise
:class:`~fieldnet.errors.ParameterError` naming the parameter.
"""

from __future__ import annotations

import math
from itertools import product as cartesian

import numpy as np
import sympy as sp
from numba import njit

from fieldnet.errors import DivergenceError, ParameterError

MAX_VARIABLES = 4
MAX_EXPONENT = 6
DEPENDENT = 1e-13      # relative (conditional) variance below which a variable is zero / proportional
TWO_PI = 2.0 * math.pi
ACCEPT = 1e-10         # tanh-sinh: accept level L (h = 2^-L / 2, L >= 2) when it moved P_4 by <= ACCEPT P_4


# ---------------------------------------------------------------- tanh-sinh nodes on (0, 1)

def _tanh_sinh_levels(h0=0.5, levels=6, tau_max=3.6):
    """Nodes x(tau) = 1 / (1 + exp(-pi sinh tau)) and weights dx/dtau at tau = k h, h = h0 / 2^L, |tau| <= tau_max,
    the new nodes of each level L (level 0: all k; L > 0: odd k), flat with the offsets of the levels."""
    xs, ws, starts = [], [], [0]
    for level in range(levels):
        h = h0 / 2 ** level
        n = int(tau_max / h)
        ks = np.arange(-n, n + 1) if level == 0 else np.arange(-n + (1 - n % 2), n + 1, 2)
        tau = ks * h
        x = 1.0 / (1.0 + np.exp(-math.pi * np.sinh(tau)))
        xc = 1.0 / (1.0 + np.exp(math.pi * np.sinh(tau)))
        xs.append(x)
        ws.append(math.pi * np.cosh(tau) * x * xc)
        starts.append(starts[-1] + x.size)
    return np.concatenate(xs), np.concatenate(ws), np.array(starts, dtype=np.int64), h0


TS_X, TS_W, TS_START, TS_H0 = _tanh_sinh_levels(levels=7)


# ---------------------------------------------------------------- geometry of the rows l_i

@njit(cache=True)
def _dot(u, v):
    total = 0.0
    for q in range(u.shape[0]):
        total += u[q] * v[q]
    return total


@njit(cache=True)
def _angle(u, v):
    """The angle between rows u and v (acos of their correlation), accurate for nearly parallel rows."""
    uu = _dot(u, u)
    uv = _dot(u, v)
    c = uv / uu
    perp = 0.0
    for q in range(u.shape[0]):
        d = v[q] - c * u[q]
        perp += d * d
    return math.atan2(math.sqrt(uu * perp), uv)


@njit(cache=True)
def factor_rows(cov):
    """Rows l_i with l_i . l_j = cov_ij: pivoted Cholesky, pivot = largest conditional / own variance;
    zero-variance variables (<= 1e-13 max diag) get zero rows, and the factorisation stops once every
    remaining conditional variance is <= 1e-13 of its own variance (those rows lie in the span)."""
    k = cov.shape[0]
    rows = np.zeros((k, k))
    work = cov.copy()
    scale = 0.0
    for i in range(k):
        scale = max(scale, cov[i, i])
    done = np.zeros(k, dtype=np.bool_)
    for i in range(k):
        if cov[i, i] <= DEPENDENT * scale:
            done[i] = True
    for col in range(k):
        pivot = -1
        best = DEPENDENT
        for i in range(k):
            if not done[i] and work[i, i] > best * cov[i, i]:
                best = work[i, i] / cov[i, i]
                pivot = i
        if pivot < 0:
            break
        done[pivot] = True
        root = math.sqrt(work[pivot, pivot])
        rows[pivot, col] = root
        for i in range(k):
            if not done[i]:
                rows[i, col] = work[i, pivot] / root
        for i in range(k):
            for j in range(k):
                if not done[i] and not done[j]:
                    work[i, j] -= rows[i, col] * rows[j, col]
    return rows


@njit(cache=True)
def _condition(rows, j):
    """The rows of the other variables given z_j = 0 (projected orthogonally to l_j); a row that loses
    all but 1e-13 of its squared length becomes exactly zero (z = 0 a.s. given z_j = 0)."""
    m, r = rows.shape
    out = np.empty((m - 1, r))
    lj = rows[j]
    jj = _dot(lj, lj)
    n = 0
    for q in range(m):
        if q == j:
            continue
        c = _dot(rows[q], lj) / jj
        before = _dot(rows[q], rows[q])
        after = 0.0
        for col in range(r):
            out[n, col] = rows[q, col] - c * lj[col]
            after += out[n, col] ** 2
        if after <= DEPENDENT * before:
            out[n, :] = 0.0
        n += 1
    return out


# ---------------------------------------------------------------- orthant probabilities

@njit(cache=True)
def _partial_correlation(units, i, j, k, l, t, vectors):
    """Correlation of w_k, w_l given w_i = w_j = 0, where w_a = sqrt(t) g_a . u + sqrt(1 - t) e_a . u'
    (g_a the unit rows ``units``: correlations I + t (R - I)). Computed by projecting the vectors of
    w_k, w_l off those of w_i, w_j (modified Gram-Schmidt), which keeps its digits when R is nearly
    singular (the explicit 2 x 2 Schur complement loses them to cancellation). ``vectors``: (4, r + 4) work."""
    r = units.shape[1]
    width = r + 4
    a_t, b_t = math.sqrt(t), math.sqrt(max(0.0, 1.0 - t))
    for n in range(4):
        a = (i, j, k, l)[n]
        for q in range(r):
            vectors[n, q] = a_t * units[a, q]
        for q in range(r, width):
            vectors[n, q] = 0.0
        vectors[n, r + a] = b_t
    for n in range(2):
        norm = math.sqrt(_dot(vectors[n], vectors[n]))
        if norm == 0.0:
            return 0.0
        for q in range(width):
            vectors[n, q] /= norm
        for later in range(n + 1, 4):
            overlap = _dot(vectors[later], vectors[n])
            for q in range(width):
                vectors[later, q] -= overlap * vectors[n, q]
    kk, ll = _dot(vectors[2], vectors[2]), _dot(vectors[3], vectors[3])
    if kk == 0.0 or ll == 0.0:
        return 0.0
    return min(1.0, max(-1.0, _dot(vectors[2], vectors[3]) / math.sqrt(kk * ll)))


@njit(cache=True)
def _plackett_integrand(units, r, alpha, x, vectors):
    """sum over pairs (i, j) of asin(r_ij) / (2 pi) P_2(r_{kl|ij}(t)), t = sin(alpha_ij x) / r_ij: the
    integrand of P_4 - 1/16 over x in [0, 1] (theta = alpha_ij x)."""
    total = 0.0
    for i in range(4):
        for j in range(i + 1, 4):
            if alpha[i, j] == 0.0:
                continue
            k = 0
            while k == i or k == j:
                k += 1
            l = k + 1
            while l == i or l == j:
                l += 1
            t = min(1.0, math.sin(alpha[i, j] * x) / r[i, j])
            rho = _partial_correlation(units, i, j, k, l, t, vectors)
            total += alpha[i, j] * (0.25 + math.asin(rho) / TWO_PI)
    return total / TWO_PI


@njit(cache=True)
def orthant4(units):
    """P(z_1..z_4 > 0), z_a = g_a . u for the unit rows g_a = ``units`` (no two parallel): Plackett's
    identity integrated with tanh-sinh, step halved until two estimates agree to 1e-12 relative (module docstring)."""
    r = units @ units.T
    alpha = np.zeros((4, 4))
    for i in range(4):
        for j in range(i + 1, 4):
            alpha[i, j] = math.asin(min(1.0, max(-1.0, r[i, j])))
    vectors = np.empty((4, units.shape[1] + 4))
    total = 0.0
    previous = 0.0
    h = TS_H0
    for level in range(TS_START.shape[0] - 1):
        for n in range(TS_START[level], TS_START[level + 1]):
            if TS_W[n] > 0.0:
                total += TS_W[n] * _plackett_integrand(units, r, alpha, TS_X[n], vectors)
        estimate = 0.0625 + total * h
        if level > 1 and abs(estimate - previous) <= max(ACCEPT * estimate, 1e-17):
            return estimate
        previous = estimate
        h *= 0.5
    return previous


@njit(cache=True)
def orthant_probability(rows, steps):
    """P(z_i > 0 for every i with steps[i] = 1), z_i = l_i . u (rows pairwise non-parallel, nonzero)."""
    idx = np.nonzero(steps)[0]
    n = idx.shape[0]
    if n == 0:
        return 1.0
    if n == 1:
        return 0.5
    if n == 2:
        return (math.pi - _angle(rows[idx[0]], rows[idx[1]])) / TWO_PI
    if n == 3:
        angles = (_angle(rows[idx[0]], rows[idx[1]]) + _angle(rows[idx[0]], rows[idx[2]])
                  + _angle(rows[idx[1]], rows[idx[2]]))
        return (TWO_PI - angles) / (2.0 * TWO_PI)
    units = np.empty((4, rows.shape[1]))
    for n in range(4):
        units[n] = rows[idx[n]] / math.sqrt(_dot(rows[idx[n]], rows[idx[n]]))
    return orthant4(units)


# ---------------------------------------------------------------- tables of M(a, s; C) for all a <= bounds

@njit(cache=True)
def _strides(bounds):
    strides = np.empty(bounds.shape[0], dtype=np.int64)
    size = 1
    for i in range(bounds.shape[0]):
        strides[i] = size
        size *= bounds[i] + 1
    return strides, size


@njit(cache=True)
def _decode(code, bounds, strides, a):
    for i in range(bounds.shape[0]):
        a[i] = (code // strides[i]) % (bounds[i] + 1)


@njit(cache=True)
def _drop(values, j):
    out = np.empty(values.shape[0] - 1, dtype=values.dtype)
    out[:j] = values[:j]
    out[j:] = values[j + 1:]
    return out


@njit(cache=True)
def _drop_rows(rows, j):
    out = np.empty((rows.shape[0] - 1, rows.shape[1]))
    out[:j] = rows[:j]
    out[j:] = rows[j + 1:]
    return out


@njit(cache=True)
def _zero_row(rows):
    for i in range(rows.shape[0]):
        if _dot(rows[i], rows[i]) == 0.0:
            return i
    return -1


@njit(cache=True)
def _parallel_pair(rows):
    """(i, j, c) with l_i = c l_j up to 1e-13 of |l_i|^2, i > j; (-1, -1, 0) if none."""
    m, r = rows.shape
    for i in range(m):
        for j in range(i):
            c = _dot(rows[i], rows[j]) / _dot(rows[j], rows[j])
            residual = 0.0
            for q in range(r):
                residual += (rows[i, q] - c * rows[j, q]) ** 2
            if residual <= DEPENDENT * _dot(rows[i], rows[i]):
                return i, j, c
    return -1, -1, 0.0


@njit(cache=True)
def _table_with_zero_variable(sub, bounds, z, step):
    """The table when z_z = 0 a.s., from the table ``sub`` of the other variables."""
    strides, size = _strides(bounds)
    sub_strides, _ = _strides(_drop(bounds, z))
    table = np.zeros(size)
    a = np.empty(bounds.shape[0], dtype=np.int64)
    theta0 = 0.5 if step else 1.0
    for code in range(size):
        _decode(code, bounds, strides, a)
        if a[z] > 0:
            continue
        sub_code = 0
        n = 0
        for q in range(bounds.shape[0]):
            if q != z:
                sub_code += a[q] * sub_strides[n]
                n += 1
        table[code] = theta0 * sub[sub_code]
    return table


@njit(cache=True)
def _table_with_merged_variable(sub, bounds, i, j, c, sub_bounds):
    """The table when z_i = c z_j, from the table ``sub`` over the other variables (z_j's exponent
    bound raised by bounds[i]; its step already set to what Theta(z_i) Theta(z_j)^{s_j} becomes)."""
    strides, size = _strides(bounds)
    sub_strides, _ = _strides(sub_bounds)
    table = np.empty(size)
    a = np.empty(bounds.shape[0], dtype=np.int64)
    for code in range(size):
        _decode(code, bounds, strides, a)
        sub_code = 0
        n = 0
        for q in range(bounds.shape[0]):
            if q == i:
                continue
            exponent = a[q] + a[i] if q == j else a[q]
            sub_code += exponent * sub_strides[n]
            n += 1
        table[code] = c ** a[i] * sub[sub_code]
    return table


@njit(cache=True)
def _stein_fill(rows, steps, bounds, base, subs, sub_offsets):
    """The table by the Stein reduction (module docstring) from the orthant probability ``base`` and the
    tables given z_j = 0 (subs[sub_offsets[j]:], for each step variable j)."""
    m = bounds.shape[0]
    strides, size = _strides(bounds)
    cov = np.empty((m, m))
    density = np.zeros(m)
    for i in range(m):
        for j in range(m):
            cov[i, j] = _dot(rows[i], rows[j])
        density[i] = 1.0 / math.sqrt(TWO_PI * cov[i, i])
    sub_strides = np.zeros((m, m), dtype=np.int64)      # sub_strides[j, q]: stride of q in the table given z_j
    for j in range(m):
        if steps[j]:
            s, _ = _strides(_drop(bounds, j))
            sub_strides[j, :j] = s[:j]
            sub_strides[j, j + 1:] = s[j:]
    table = np.empty(size)
    table[0] = base
    a = np.empty(m, dtype=np.int64)
    for code in range(1, size):
        _decode(code, bounds, strides, a)
        i = 0
        while a[i] == 0:
            i += 1
        a[i] -= 1                                       # a' = a - e_i
        value = 0.0
        for j in range(m):
            if a[j] > 0:
                value += cov[i, j] * a[j] * table[code - strides[i] - strides[j]]
            elif steps[j]:
                sub_code = sub_offsets[j]
                for q in range(m):
                    sub_code += a[q] * sub_strides[j, q]
                value += cov[i, j] * density[j] * subs[sub_code]
        table[code] = value
    return table


ZERO, MERGE, VANISH, STEIN = 0, 1, 2, 3     # how a table is reduced to tables in one variable fewer


@njit(cache=True)
def _reduction(rows, steps, bounds):
    """How the table of (rows, steps, bounds) follows from tables in one variable fewer (the children):
    (kind, i, j, c, child rows, child steps, child bounds) with kind
    ZERO: z_i = 0 (one child without i); MERGE: z_i = c z_j (child without i, z_j's bound raised; with
    c < 0 and Theta(z_i) two children, Theta(z_j) off and on); VANISH: Theta(z_i) Theta(z_j) = 0 a.s.;
    STEIN: one child per step variable j, given z_j = 0 (none when only a = 0 is needed)."""
    m, r = rows.shape
    kind, i, j, c = STEIN, -1, -1, 0.0
    n_children = 0
    i = _zero_row(rows)
    if i >= 0:
        kind, n_children = ZERO, 1
    else:
        i, j, c = _parallel_pair(rows)
        if i >= 0:
            kind, n_children = MERGE, 1
            if steps[i] and c < 0.0:
                kind, n_children = (VANISH, 0) if steps[j] else (MERGE, 2)
        elif _strides(bounds)[1] > 1:
            n_children = int(np.sum(steps))
    child_rows = np.empty((n_children, m - 1, r))
    child_steps = np.empty((n_children, m - 1), dtype=np.int64)
    child_bounds = np.empty((n_children, m - 1), dtype=np.int64)
    if kind == ZERO or kind == MERGE:
        for n in range(n_children):
            child_rows[n] = _drop_rows(rows, i)
            child_steps[n] = _drop(steps, i)
            child_bounds[n] = _drop(bounds, i)
        if kind == MERGE:
            jc = j if j < i else j - 1
            child_bounds[:, jc] += bounds[i]
            if steps[i]:
                child_steps[0, jc] = 1 if c > 0.0 else 0
            if n_children == 2:
                child_steps[1, jc] = 1
    else:
        n = 0
        for q in range(m if n_children else 0):
            if steps[q]:
                child_rows[n] = _condition(rows, q)
                child_steps[n] = _drop(steps, q)
                child_bounds[n] = _drop(bounds, q)
                n += 1
    return kind, i, j, c, child_rows, child_steps, child_bounds


@njit(cache=True)
def _child_offsets(child_bounds):
    offsets = np.zeros(child_bounds.shape[0] + 1, dtype=np.int64)
    for n in range(child_bounds.shape[0]):
        offsets[n + 1] = offsets[n] + _strides(child_bounds[n])[1]
    return offsets


@njit(cache=True)
def _combine(kind, i, j, c, rows, steps, bounds, child_bounds, subs, offsets):
    """The table of (rows, steps, bounds) from its children's tables subs[offsets[n]:offsets[n + 1]]."""
    if kind == ZERO:
        return _table_with_zero_variable(subs, bounds, i, steps[i])
    if kind == MERGE:
        sub = subs[:offsets[1]].copy()
        if child_bounds.shape[0] == 2:                  # Theta(c z_j) = 1 - Theta(z_j), c < 0
            sub -= subs[offsets[1]:offsets[2]]
        return _table_with_merged_variable(sub, bounds, i, j, c, child_bounds[0])
    if kind == VANISH:
        return np.zeros(_strides(bounds)[1])
    sub_offsets = np.zeros(bounds.shape[0], dtype=np.int64)
    n = 0
    for q in range(bounds.shape[0]):
        if steps[q] and child_bounds.shape[0]:
            sub_offsets[q] = offsets[n]
            n += 1
    return _stein_fill(rows, steps, bounds, orthant_probability(rows, steps), subs, sub_offsets)


# The tables in m variables call those in m - 1 (numba's cache cannot reload recursive functions,
# so each dimension has its own three-line level).

@njit(cache=True)
def _table_0(rows, steps, bounds):
    return np.ones(1)


@njit(cache=True)
def _table_1(rows, steps, bounds):
    kind, i, j, c, child_rows, child_steps, child_bounds = _reduction(rows, steps, bounds)
    offsets = _child_offsets(child_bounds)
    subs = np.empty(offsets[-1])
    for n in range(child_bounds.shape[0]):
        subs[offsets[n]:offsets[n + 1]] = _table_0(child_rows[n], child_steps[n], child_bounds[n])
    return _combine(kind, i, j, c, rows, steps, bounds, child_bounds, subs, offsets)


@njit(cache=True)
def _table_2(rows, steps, bounds):
    kind, i, j, c, child_rows, child_steps, child_bounds = _reduction(rows, steps, bounds)
    offsets = _child_offsets(child_bounds)
    subs = np.empty(offsets[-1])
    for n in range(child_bounds.shape[0]):
        subs[offsets[n]:offsets[n + 1]] = _table_1(child_rows[n], child_steps[n], child_bounds[n])
    return _combine(kind, i, j, c, rows, steps, bounds, child_bounds, subs, offsets)


@njit(cache=True)
def _table_3(rows, steps, bounds):
    kind, i, j, c, child_rows, child_steps, child_bounds = _reduction(rows, steps, bounds)
    offsets = _child_offsets(child_bounds)
    subs = np.empty(offsets[-1])
    for n in range(child_bounds.shape[0]):
        subs[offsets[n]:offsets[n + 1]] = _table_2(child_rows[n], child_steps[n], child_bounds[n])
    return _combine(kind, i, j, c, rows, steps, bounds, child_bounds, subs, offsets)


@njit(cache=True)
def _table_4(rows, steps, bounds):
    kind, i, j, c, child_rows, child_steps, child_bounds = _reduction(rows, steps, bounds)
    offsets = _child_offsets(child_bounds)
    subs = np.empty(offsets[-1])
    for n in range(child_bounds.shape[0]):
        subs[offsets[n]:offsets[n + 1]] = _table_3(child_rows[n], child_steps[n], child_bounds[n])
    return _combine(kind, i, j, c, rows, steps, bounds, child_bounds, subs, offsets)


@njit(cache=True)
def moment_table(rows, steps, bounds):
    """M(a, steps; C) for every a <= bounds (componentwise), C = rows rows^T; flat, a_0 fastest."""
    m = rows.shape[0]
    if m == 1:
        return _table_1(rows, steps, bounds)
    if m == 2:
        return _table_2(rows, steps, bounds)
    if m == 3:
        return _table_3(rows, steps, bounds)
    if m == 4:
        return _table_4(rows, steps, bounds)
    return _table_0(rows, steps, bounds)


@njit(cache=True)
def moments_batch(covs, exponents, steps, out):
    """out[p] = M(exponents[p], steps[p]; covs[p])."""
    for p in range(covs.shape[0]):
        table = moment_table(factor_rows(covs[p]), steps[p], exponents[p])
        out[p] = table[table.shape[0] - 1]


@njit(cache=True)
def tables_batch(covs, steps, bounds, out):
    """out[p, code(a)] = M(a, steps; covs[p]) for every a <= bounds (a_0 fastest)."""
    for p in range(covs.shape[0]):
        out[p] = moment_table(factor_rows(covs[p]), steps, bounds)


# ---------------------------------------------------------------- Python API

def _covariances(covs) -> np.ndarray:
    from fieldnet.numeric.products import check_covariances

    try:
        covs = np.asarray(covs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"covs: not an array of numbers ({exc})") from None
    if covs.ndim == 2:
        covs = covs[None]
    if covs.ndim != 3 or covs.shape[1] != covs.shape[2] or not 1 <= covs.shape[1] <= MAX_VARIABLES:
        raise ParameterError(f"covs: expected shape (P, k, k) or (k, k) with 1 <= k <= {MAX_VARIABLES}, "
                             f"got {covs.shape}")
    check_covariances(covs)
    return np.ascontiguousarray(covs)


def _integer_rows(values, name: str, P: int, k: int, low: int, high: int) -> np.ndarray:
    values = np.asarray(values)
    if values.size and not np.issubdtype(values.dtype, np.integer):
        if not (np.issubdtype(values.dtype, np.number) and np.all(np.isfinite(values))
                and np.all(values == np.round(values))):
            raise ParameterError(f"{name}: expected integers, got {values.dtype} values")
    if values.ndim == 1:
        values = np.broadcast_to(values, (P, values.size))
    if values.shape != (P, k):
        raise ParameterError(f"{name}: expected shape ({k},) or ({P}, {k}) to match covs, got {values.shape}")
    if values.size and (values.min() < low or values.max() > high):
        raise ParameterError(f"{name}: entries must lie in {low}..{high}, got {values.min()}..{values.max()}")
    return np.ascontiguousarray(values, dtype=np.int64)


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        bad = int(np.argmax(~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)))
        raise DivergenceError(f"covs[{bad}]: {what} is not finite (overflow for these variances)")
    return values


def moments(a, s, covs) -> np.ndarray:
    """M(a_p, s_p; covs[p]) = E_{z ~ N(0, covs[p])} prod_i z_i^{a_p,i} Theta(z_i)^{s_p,i} for p < P.

    covs: (P, k, k) or (k, k), symmetric PSD, k <= 4; a: exponents 0..6 and s: step flags 0/1, each of
    shape (k,) (the same for every p) or (P, k). Returns shape (P,)."""
    covs = _covariances(covs)
    P, k = covs.shape[:2]
    exponents = _integer_rows(a, "a", P, k, 0, MAX_EXPONENT)
    steps = _integer_rows(s, "s", P, k, 0, 1)
    out = np.empty(P)
    moments_batch(covs, exponents, steps, out)
    return _finite(out, "the average")


def moment_tables(s, bounds, covs) -> np.ndarray:
    """M(a, s; covs[p]) for every a <= bounds, shape (P, prod(bounds + 1)), a_0 varying fastest
    (entry sum_i a_i prod_{q<i} (bounds_q + 1)); one Stein table per covariance."""
    covs = _covariances(covs)
    P, k = covs.shape[:2]
    steps = _integer_rows(s, "s", 1, k, 0, 1)[0]
    bounds = _integer_rows(bounds, "bounds", 1, k, 0, MAX_EXPONENT)[0]
    out = np.empty((P, int(np.prod(bounds + 1))))
    tables_batch(covs, steps, bounds, out)
    return _finite(out, "a table entry")


# ---------------------------------------------------------------- relu-family factors

_STEP = sp.Dummy("Theta")


def _step_form(expr, x):
    """expr with Theta(x) replaced by the symbol _STEP (Max(0, x) = x Theta, Min(0, x) = x - x Theta,
    Abs(x) = x (2 Theta - 1), sign(x) = 2 Theta - 1); None when expr is not a polynomial in these."""
    if expr == x or expr.is_Number:
        return expr
    if isinstance(expr, sp.Heaviside):
        return _STEP if expr.args[0] == x else None
    if isinstance(expr, (sp.Max, sp.Min)):
        if set(expr.args) != {sp.S.Zero, x}:
            return None
        return x * _STEP if isinstance(expr, sp.Max) else x - x * _STEP
    if isinstance(expr, sp.Abs):
        return x * (2 * _STEP - 1) if expr.args[0] == x else None
    if isinstance(expr, sp.sign):
        return 2 * _STEP - 1 if expr.args[0] == x else None
    if isinstance(expr, sp.Pow):
        base = _step_form(expr.base, x)
        exponent = expr.exp
        if base is None or not (exponent.is_Integer and exponent >= 0):
            return None
        return base ** exponent
    if isinstance(expr, (sp.Add, sp.Mul)):
        args = [_step_form(arg, x) for arg in expr.args]
        return None if any(arg is None for arg in args) else expr.func(*args)
    return None


def relu_family_terms(factor, x=None):
    """(p0, p1) with factor(x) = sum_n p0[n] x^n + Theta(x) sum_n p1[n] x^n (sympy coefficients, lowest
    degree first), or None when the factor is not a polynomial in x, Max(0, x), Min(0, x), Abs(x),
    sign(x) and Heaviside(x), or has degree > 6. ``x`` defaults to the factor's one free symbol."""
    factor = sp.sympify(factor)
    if x is None:
        free = factor.free_symbols
        if len(free) > 1:
            raise ParameterError(f"factor: {factor} depends on several symbols {sorted(map(str, free))}")
        x = free.pop() if free else sp.Symbol("x", real=True)
    form = _step_form(factor, x)
    if form is None:
        return None
    poly = sp.Poly(sp.expand(form), x, _STEP)
    if poly.degree(x) > MAX_EXPONENT:
        return None
    p0 = [sp.S.Zero] * (MAX_EXPONENT + 1)
    p1 = [sp.S.Zero] * (MAX_EXPONENT + 1)
    for (n, m), coefficient in poly.terms():
        if coefficient.free_symbols:
            return None
        (p1 if m > 0 else p0)[n] += coefficient      # Theta^m = Theta for m >= 1
    return _trimmed(p0), _trimmed(p1)


def _trimmed(coefficients: list) -> list:
    while coefficients and coefficients[-1] == 0:
        coefficients.pop()
    return coefficients


def relu_family_average(factors, covs) -> np.ndarray:
    """E_{z ~ N(0, covs[p])} prod_i factors[i](z_i) for k = len(factors) relu-family factors (see
    :func:`relu_family_terms`); ParameterError if a factor is not of the family. Returns shape (P,)."""
    factors = tuple(factors)
    if not 1 <= len(factors) <= MAX_VARIABLES:
        raise ParameterError(f"factors: expected 1..{MAX_VARIABLES} factors, got {len(factors)}")
    covs = _covariances(covs)
    if covs.shape[1] != len(factors):
        raise ParameterError(f"covs: {covs.shape[1]} variables for {len(factors)} factors")
    parts = []
    for i, factor in enumerate(factors):
        terms = relu_family_terms(factor)
        if terms is None:
            raise ParameterError(f"factors[{i}]: {factor} is not a polynomial in x, Max(0, x) and Heaviside(x) "
                                 f"of degree <= {MAX_EXPONENT}")
        parts.append([np.array([float(c) for c in p], dtype=np.float64) for p in terms])
    total = np.zeros(covs.shape[0])
    for steps in cartesian((0, 1), repeat=len(factors)):
        coefficients = [parts[i][s] for i, s in enumerate(steps)]
        if any(c.size == 0 for c in coefficients):
            continue
        bounds = np.array([c.size - 1 for c in coefficients], dtype=np.int64)
        weights = coefficients[0]
        for c in coefficients[1:]:                     # a_0 fastest, as in the tables
            weights = np.multiply.outer(c, weights)
        table = moment_tables(np.array(steps), bounds, covs)
        total += table @ weights.ravel()
    return _finite(total[:, None], "the average")[:, 0]
