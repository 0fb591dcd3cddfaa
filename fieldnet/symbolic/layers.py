"""Layers as small objects that know their own kernel map (in the style of neural-tangents' stax).

A kernel state is a dict ``{'K': M, 'Theta': M}`` of symmetric 2 x 2 sympy matrices over the
input pair (a, b): M = [[M_aa, M_ab], [M_ab, M_bb]]. Each layer maps a state to a state:

* :class:`Dense` (produces preactivation layer ``layer``):
      K' = C_b + C_W K,
      Theta' = K' + C_W Theta               (NTK parameterization, lambda = C)
      Theta' = 1 + n_{l-1} K + C_W Theta    (standard parameterization, lambda_W = n_{l-1}, lambda_b = 1)
* :class:`Nonlinearity` (elementwise phi):
      K'_ab = <phi(z_a) phi(z_b)>_K,   Theta'_ab = <phi'(z_a) phi'(z_b)>_K Theta_ab
  the averages over (z_a, z_b) ~ N(0, K restricted to {a, b}); the diagonal entries are
  one-dimensional averages.

The global learning rate eta multiplies the NTK as a whole and is applied by the numeric side.
Composing ``Nonlinearity`` then ``Dense`` gives the layer-to-layer recursion.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from fieldnet.symbolic.expectation import gaussian_expectation
from fieldnet.symbolic.nodes import InputOverlap, LayerQuantity

A, B = sp.symbols("a b")
PAIR = (A, B)
Z = {A: sp.Symbol("z_a", real=True), B: sp.Symbol("z_b", real=True)}
PHI = sp.Function("phi")
X = sp.Symbol("x", real=True)


def layer_param(name: str, layer, per_layer: bool):
    """A hyperparameter: C_W^{(layer)} when per-layer values matter, else the plain symbol C_W."""
    return LayerQuantity(name, layer) if per_layer else sp.Symbol(name, positive=name != "C_b")


def quantity_matrix(name: str, layer) -> sp.ImmutableMatrix:
    """[[Q_aa, Q_ab], [Q_ab, Q_bb]] of LayerQuantity entries at ``layer``."""
    return sp.ImmutableMatrix(2, 2, lambda i, j: LayerQuantity(name, layer, (PAIR[i], PAIR[j])))


def input_state() -> dict:
    """Before the first layer: K = x_a . x_b / n_0, and no NTK yet."""
    return {"K": sp.ImmutableMatrix(2, 2, lambda i, j: InputOverlap(PAIR[i], PAIR[j])),
            "Theta": sp.zeros(2, 2)}


@dataclass(frozen=True)
class Dense:
    """Affine layer producing preactivation layer ``layer`` (an integer or ``l + 1``)."""

    layer: object
    parameterization: str = "ntk"
    per_layer: bool = False

    def kernel_map(self, state: dict) -> dict:
        cw = layer_param("C_W", self.layer, self.per_layer)
        cb = layer_param("C_b", self.layer, self.per_layer)
        k_in, t_in = state["K"], state["Theta"]
        k_out = sp.ImmutableMatrix(2, 2, lambda i, j: cb + cw * k_in[i, j])
        if self.parameterization == "ntk":
            # Theta' = lambda_b + lambda_W K + C_W Theta with lambda = C, written through K'
            k_ref = quantity_matrix("K", self.layer)
            t_out = sp.ImmutableMatrix(2, 2, lambda i, j: k_ref[i, j] + cw * t_in[i, j])
        else:
            fan_in = LayerQuantity("n", self.layer - 1)
            t_out = sp.ImmutableMatrix(2, 2, lambda i, j: 1 + fan_in * k_in[i, j] + cw * t_in[i, j])
        return {"K": k_out, "Theta": t_out}


@dataclass(frozen=True)
class Nonlinearity:
    """Elementwise activation; ``phi`` is a sympy expression in :data:`X` (or the generic phi(x))."""

    phi: sp.Expr = PHI(X)
    evaluate: bool = True

    def kernel_map(self, state: dict) -> dict:
        k, theta = state["K"], state["Theta"]
        dphi = sp.diff(self.phi, X)
        nngp = sp.ImmutableMatrix(2, 2, lambda i, j: self.average(self.phi, i, j, k))
        slope = sp.ImmutableMatrix(2, 2, lambda i, j: self.average(dphi, i, j, k))
        ntk = sp.ImmutableMatrix(2, 2, lambda i, j: slope[i, j] * theta[i, j])
        return {"K": nngp, "Theta": ntk}

    def average(self, f, i: int, j: int, k: sp.Matrix):
        """<f(z_i) f(z_j)> over the Gaussian with covariance K restricted to {i, j}."""
        zi, zj = Z[PAIR[i]], Z[PAIR[j]]
        if i == j:
            return gaussian_expectation(f.subs(X, zi) ** 2, (zi,), [[k[i, i]]], evaluate=self.evaluate)
        cov = [[k[i, i], k[i, j]], [k[j, i], k[j, j]]]
        return gaussian_expectation(f.subs(X, zi) * f.subs(X, zj), (zi, zj), cov, evaluate=self.evaluate)


def compose(state: dict, *layers) -> dict:
    """Apply kernel maps left to right."""
    for layer in layers:
        state = layer.kernel_map(state)
    return state
