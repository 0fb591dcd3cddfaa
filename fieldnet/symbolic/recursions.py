"""Recursions as first-class objects (DESIGN.md section 4).

A :class:`Recursion` holds state quantities indexed by layer (``K``, ``Theta``, ...), their
initial values at layer 1 and their update from layer l to layer l + 1, as sympy expressions in
:class:`~fieldnet.symbolic.nodes.LayerQuantity` atoms. Updates are listed in evaluation order:
an update may use a quantity of layer l + 1 that an earlier update produced (the NTK update uses
K^(l+1)). For pair quantities the recursion stores the off-diagonal entry (a, b) and the
diagonal entry (a, a), whose averages are one-dimensional.

It prints (``str``), exports LaTeX (:meth:`Recursion.latex`), is solved in closed form where sympy
can (:mod:`fieldnet.symbolic.solve`), and is evaluated numerically by
:mod:`fieldnet.numeric` — the same object feeds all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from fieldnet.symbolic.activations import Activation, get_activation
from fieldnet.symbolic.layers import PAIR, PHI, X, Dense, Nonlinearity, compose, input_state, quantity_matrix
from fieldnet.symbolic.nodes import LayerQuantity, expectation_nodes

LAYER = sp.Symbol("l", integer=True, positive=True)
ENTRIES = ((0, 0), (0, 1))  # (a, a) and (a, b)


@dataclass(frozen=True)
class Recursion:
    """Layer-indexed recursion: ``initial[q]`` at layer 1 and ``update[q]`` from l to l + 1."""

    name: str
    quantities: tuple
    initial: dict
    update: dict
    activation: Activation | None = None
    covariances: tuple = ("K",)
    parameterization: str = "ntk"
    per_layer: bool = False
    notes: tuple = field(default=())

    def equations(self, which: str = "update") -> list:
        """``sympy.Eq`` objects, in evaluation order."""
        table = self.initial if which == "initial" else self.update
        return [sp.Eq(lhs, rhs) for lhs, rhs in table.items()]

    def entry(self, name: str, diagonal: bool = False, which: str = "update"):
        """The expression for quantity ``name`` (entry aa if ``diagonal`` else ab)."""
        layer = 1 if which == "initial" else LAYER + 1
        i, j = (0, 0) if diagonal else (0, 1)
        table = self.initial if which == "initial" else self.update
        return table[LayerQuantity(name, layer, (PAIR[i], PAIR[j]))]

    def unevaluated(self) -> list:
        """Expectation nodes that no closed form covers (they need quadrature)."""
        return expectation_nodes(sp.Tuple(*self.update.values(), *self.initial.values()))

    @property
    def closed_form(self) -> bool:
        return not self.unevaluated()

    def __str__(self) -> str:
        from fieldnet.export.text import recursion_text

        return recursion_text(self)

    def latex(self) -> str:
        from fieldnet.export.latex import recursion_latex

        return recursion_latex(self)


def mean_field_recursion(activation=None, parameterization: str = "ntk", per_layer: bool = False,
                         evaluate: bool = True) -> Recursion:
    """NNGP kernel K and NTK Theta of a deep fully connected network (THEORY.md section 1).

        K^(1)_ab = C_b + C_W x_a.x_b / n_0
        K^(l+1)_ab = C_b + C_W <phi(z_a) phi(z_b)>_{K^(l)}
        Theta^(1) = K^(1),  Theta^(l+1)_ab = K^(l+1)_ab + C_W <phi'(z_a) phi'(z_b)>_{K^(l)} Theta^(l)_ab   (ntk)
        Theta^(1) = 1 + n_0 x_a.x_b/n_0,  Theta^(l+1)_ab = 1 + n_l <phi_a phi_b> + C_W <phi'_a phi'_b> Theta^(l)_ab  (standard)

    ``activation=None`` keeps phi generic (an undefined function); with an activation, every
    average with a closed form is evaluated (``evaluate=False`` keeps them as nodes).
    """
    act = None if activation is None else get_activation(activation)
    phi = PHI(X) if act is None else act.expr.subs(sp.Symbol("x", real=True), X)
    state_l = {"K": quantity_matrix("K", LAYER), "Theta": quantity_matrix("Theta", LAYER)}
    nxt = compose(state_l, Nonlinearity(phi, evaluate=evaluate and act is not None),
                  Dense(LAYER + 1, parameterization, per_layer))
    first = compose(input_state(), Dense(1, parameterization, per_layer))
    quantities = ("K", "Theta")

    def table(state, layer):
        return {LayerQuantity(q, layer, (PAIR[i], PAIR[j])): state[q][i, j]
                for q in quantities for i, j in ENTRIES}

    notes = ("Standard parameterization: W^(l)_ij ~ N(0, C_W/n_{l-1}), b^(l)_i ~ N(0, C_b).",)
    return Recursion("deep mean field (NNGP and NTK)", quantities, table(first, 1), table(nxt, LAYER + 1),
                     act, ("K",), parameterization, per_layer, notes)
