"""Expression nodes of the symbolic engine.

* :class:`LayerQuantity` — a quantity indexed by layer (or time) and input indices, e.g. the
  NNGP kernel entry ``K^{(l)}_{ab}`` or a per-layer hyperparameter ``C_W^{(l+1)}``.
* :class:`InputOverlap` — the normalised input Gram entry ``x_a . x_b / n_0``.
* :class:`GaussianExpectation` — ``E_{z ~ N(0, Sigma)} f(z_1, ..., z_k)``, left unevaluated until a
  rule (Wick, closed-form table) evaluates it. Its derivative with respect to anything its
  covariance depends on follows Price's theorem (Gaussian integration by parts):

      d<f>/dSigma_ij = <d_i d_j f>   (i != j, Sigma_ij = Sigma_ji as one coordinate)
      d<f>/dSigma_ii = (1/2) <d_i^2 f>

  so ``sympy.diff`` of a recursion differentiates through expectations correctly.
"""

from __future__ import annotations

import sympy as sp


def _as_symbol_tuple(indices):
    return sp.Tuple(*[sp.Symbol(i) if isinstance(i, str) else sp.sympify(i) for i in indices])


class LayerQuantity(sp.Expr):
    """``name^{(layer)}_{indices}``; a two-index quantity is symmetric (kernels, covariances).

    ``LayerQuantity('K', l, ('a', 'b'))`` is the kernel entry K^(l)_ab. Two-index quantities
    (kernels) are symmetric, so K_ba is stored as K_ab (indices sorted by name).
    """

    is_commutative = True
    is_real = True
    _diff_wrt = True

    def __new__(cls, name, layer, indices=()):
        idx = _as_symbol_tuple(indices)
        if len(idx) == 2 and sp.default_sort_key(idx[1]) < sp.default_sort_key(idx[0]):
            idx = sp.Tuple(idx[1], idx[0])
        name = name if isinstance(name, sp.Symbol) else sp.Symbol(name)
        return sp.Expr.__new__(cls, name, sp.sympify(layer), idx)

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def layer(self):
        return self.args[1]

    @property
    def indices(self):
        return tuple(self.args[2])

    def at_layer(self, layer) -> "LayerQuantity":
        return LayerQuantity(self.name, layer, self.indices)

    @property
    def free_symbols(self):
        return self.layer.free_symbols

    def _eval_is_positive(self):
        return None

    def _sympystr(self, printer):
        idx = "".join(str(i) for i in self.indices)
        return f"{self.name}{idx}[{printer._print(self.layer)}]" if idx else f"{self.name}[{printer._print(self.layer)}]"


class InputOverlap(sp.Expr):
    """The normalised input overlap ``x_a . x_b / n_0`` (symmetric in a, b)."""

    is_commutative = True
    is_real = True

    def __new__(cls, a, b):
        a, b = _as_symbol_tuple((a, b))
        if sp.default_sort_key(b) < sp.default_sort_key(a):
            a, b = b, a
        return sp.Expr.__new__(cls, a, b)

    @property
    def free_symbols(self):
        return set()

    def _sympystr(self, printer):
        return f"(x{self.args[0]}.x{self.args[1]}/n0)"


class GaussianExpectation(sp.Expr):
    """Unevaluated ``E_{z ~ N(0, covariance)} integrand(z)``.

    ``variables`` are the bound integration variables (plain symbols such as ``z_a``), and
    ``covariance`` is a symmetric k x k matrix of expressions. The node is linear in its
    integrand and evaluates through :func:`fieldnet.symbolic.expectation.evaluate`.
    """

    is_commutative = True
    is_real = True

    def __new__(cls, integrand, variables, covariance):
        variables = sp.Tuple(*variables)
        covariance = sp.ImmutableMatrix(covariance)
        if covariance.shape != (len(variables), len(variables)):
            raise ValueError("covariance must be k x k for k integration variables")
        if covariance != covariance.T:
            raise ValueError("covariance must be symmetric")
        integrand = sp.sympify(integrand)
        return sp.Expr.__new__(cls, integrand, variables, covariance)

    @property
    def integrand(self):
        return self.args[0]

    @property
    def variables(self):
        return tuple(self.args[1])

    @property
    def covariance(self) -> sp.ImmutableMatrix:
        return self.args[2]

    @property
    def free_symbols(self):
        inner = self.integrand.free_symbols - set(self.variables)
        return inner | self.covariance.free_symbols

    def _eval_subs(self, old, new):
        if old in self.variables:
            return self
        return None

    def _eval_derivative(self, s):
        """Price's theorem, applied through every covariance entry that depends on ``s``."""
        f, zs, cov = self.integrand, self.variables, self.covariance
        result = sp.S.Zero
        for i in range(len(zs)):
            for j in range(i, len(zs)):
                d_entry = sp.diff(cov[i, j], s)
                if d_entry == 0:
                    continue
                if i == j:
                    inner = sp.S.Half * sp.diff(f, zs[i], 2)
                else:
                    inner = sp.diff(f, zs[i], zs[j])
                result += d_entry * GaussianExpectation(inner, zs, cov)
        inner_dependence = sp.diff(f, s)
        if inner_dependence != 0:
            result += GaussianExpectation(inner_dependence, zs, cov)
        return result

    def doit(self, **hints):
        from fieldnet.symbolic.expectation import evaluate_node

        node = GaussianExpectation(self.integrand.doit(**hints), self.variables, self.covariance)
        return evaluate_node(node)

    def _sympystr(self, printer):
        cov = printer._print(self.covariance.tolist())
        return f"E[{printer._print(self.integrand)}; {cov}]"


def expectation_nodes(expr) -> list:
    """The distinct :class:`GaussianExpectation` nodes in ``expr``, in a stable order."""
    nodes = {n for n in sp.preorder_traversal(expr) if isinstance(n, GaussianExpectation)}
    return sorted(nodes, key=sp.default_sort_key)

