"""Network specifications: plain, validated data (DESIGN.md section 1).

Conventions (standard parameterization, RDLT arXiv:2106.10165):

    z^(1)_i   = b^(1)_i   + sum_j W^(1)_ij x_j,            W^(1)_ij ~ N(0, C_W^(1) / n_0)
    z^(l+1)_i = b^(l+1)_i + sum_j W^(l+1)_ij phi(z^(l)_j),  W^(l+1)_ij ~ N(0, C_W^(l+1) / n_l)
    b^(l)_i ~ N(0, C_b^(l))

A network of depth L has L hidden layers and a linear readout: preactivations z^(1) .. z^(L+1),
the same as neural-tangents' ``stax.serial(*[Dense, Act] * L, Dense)`` with
C_W = W_std^2 and C_b = b_std^2.

NTK learning rates (THEORY.md section 0): H = sum_mu lambda_mu dz/dtheta_mu dz/dtheta_mu with
rate lambda_b for biases and lambda_W / n_{l-1} for W^(l).
  * ``parameterization="ntk"`` (default; neural-tangents' ``'ntk'``): lambda_W = eta C_W, lambda_b = eta C_b,
    so Theta^(1) = K^(1) at eta = 1;
  * ``parameterization="standard"`` (neural-tangents' ``'standard'``): lambda_W^(l) = eta n_{l-1},
    lambda_b = eta. The infinite-width NTK then depends on the widths, which must be given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from fieldnet.errors import ParameterError, require
from fieldnet.symbolic.activations import Activation, get_activation

PARAMETERIZATIONS = ("ntk", "standard")


def _per_layer(value, count: int, name: str, *, positive: bool) -> tuple:
    """A scalar or a sequence of ``count`` finite numbers, validated, as a tuple of floats."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        values = (float(value),) * count
    else:
        try:
            values = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise ParameterError(f"{name}: expected a number or one number per weight layer, got {value!r}") from None
        require(len(values) == count, name,
                f"expected one value per weight layer ({count} = depth + 1), got {len(values)}")
    for i, v in enumerate(values):
        where = "" if len(set(values)) == 1 else f" (layer {i + 1})"
        require(math.isfinite(v), name, f"must be finite, got {v}{where}")
        if positive:
            require(v > 0, name, f"must be > 0, got {v}{where}")
        else:
            require(v >= 0, name, f"must be >= 0, got {v}{where}")
    return values


def _check_int(value, name: str, minimum: int) -> int:
    require(isinstance(value, int) and not isinstance(value, bool) or (
        isinstance(value, float) and value.is_integer()), name, f"must be an integer, got {value!r}")
    require(int(value) >= minimum, name, f"must be >= {minimum}, got {value}")
    return int(value)


@dataclass(frozen=True)
class DeepNetwork:
    """A deep fully connected network: ``depth`` hidden layers and a linear readout.

    Parameters
    ----------
    depth : int
        Number of hidden layers L >= 0; preactivations z^(1) .. z^(L+1).
    activation : str, sympy expression or Activation
        ``"relu"``, ``"leaky_relu(0.1)"``, ``"x*erf(x)"``, ... (see :mod:`fieldnet.symbolic.activations`).
    weight_var, bias_var : float or sequence of L+1 floats
        C_W > 0 and C_b >= 0, one value or one per weight layer (index 0 is layer 1).
    input_dim : int, optional
        n_0; checked against the data when given.
    widths : int or sequence of L ints, optional
        Hidden widths n_1 .. n_L (for Monte Carlo, finite-width corrections, and the NTK under
        the standard parameterization). The infinite-width kernels do not need them.
    parameterization : {"ntk", "standard"}
        How the NTK's learning rates scale (see the module docstring).
    learning_rate : float
        The global rate eta multiplying every lambda.
    """

    depth: int
    activation: Activation
    weight_var: tuple
    bias_var: tuple
    input_dim: int | None = None
    widths: tuple | None = None
    parameterization: str = "ntk"
    learning_rate: float = 1.0

    def __init__(self, depth, activation="relu", weight_var=1.0, bias_var=0.0, input_dim=None,
                 widths=None, parameterization="ntk", learning_rate=1.0):
        depth = _check_int(depth, "depth", 0)
        set_ = object.__setattr__
        set_(self, "depth", depth)
        set_(self, "activation", get_activation(activation))
        set_(self, "weight_var", _per_layer(weight_var, depth + 1, "weight_var", positive=True))
        set_(self, "bias_var", _per_layer(bias_var, depth + 1, "bias_var", positive=False))
        set_(self, "input_dim", None if input_dim is None else _check_int(input_dim, "input_dim", 1))
        if widths is not None:
            if isinstance(widths, (int, float)) and not isinstance(widths, bool):
                widths = (widths,) * depth
            widths = tuple(_check_int(w, "widths", 1) for w in widths)
            require(len(widths) == depth, "widths", f"expected {depth} hidden widths (one per hidden layer), got {len(widths)}")
        set_(self, "widths", widths)
        require(parameterization in PARAMETERIZATIONS, "parameterization",
                f"must be one of {', '.join(PARAMETERIZATIONS)}, got {parameterization!r}")
        set_(self, "parameterization", parameterization)
        lr = float(learning_rate)
        require(math.isfinite(lr) and lr > 0, "learning_rate", f"must be > 0, got {learning_rate}")
        set_(self, "learning_rate", lr)

    @property
    def n_layers(self) -> int:
        """Number of weight layers, L + 1."""
        return self.depth + 1

    def ntk_rates(self, input_dim: int | None = None) -> tuple[tuple, tuple]:
        """(lambda_W^(l), lambda_b^(l)) for l = 1 .. L+1."""
        eta = self.learning_rate
        if self.parameterization == "ntk":
            return tuple(eta * c for c in self.weight_var), tuple(eta * c for c in self.bias_var)
        n0 = input_dim or self.input_dim
        require(n0 is not None, "input_dim", "required for parameterization='standard' (lambda_W^(1) = eta n_0)")
        require(self.widths is not None or self.depth == 0, "widths",
                "required for parameterization='standard': its NTK scales with the layer widths")
        fan_in = (n0,) + (self.widths or ())
        return tuple(eta * n for n in fan_in), (eta,) * self.n_layers

    def with_widths(self, widths: int | Sequence[int]) -> "DeepNetwork":
        return DeepNetwork(self.depth, self.activation, self.weight_var, self.bias_var, self.input_dim,
                           widths, self.parameterization, self.learning_rate)

    @property
    def uniform(self) -> bool:
        """True when C_W and C_b are the same for every layer."""
        return len(set(self.weight_var)) == 1 and len(set(self.bias_var)) == 1

    def describe(self) -> str:
        cw = self.weight_var[0] if len(set(self.weight_var)) == 1 else list(self.weight_var)
        cb = self.bias_var[0] if len(set(self.bias_var)) == 1 else list(self.bias_var)
        return (f"deep network: depth L = {self.depth} (preactivations z^(1)..z^({self.depth + 1})), "
                f"activation {self.activation.name}, C_W = {cw}, C_b = {cb}, "
                f"{self.parameterization} parameterization")


ARCHITECTURES = ("recurrent", "deep")
INPUT_MODES = ("first", "every")


@dataclass(frozen=True)
class RecurrentNetwork:
    """A shared-weight recurrent network or its deep counterpart (Segadlo et al. arXiv:2112.05589).

    Time steps t = 0 .. T (index 0 is the first preactivation; THEORY.md section 7 counts from 1):

        recurrent:  h^0 = U x^(0) + b,   h^t = W phi(h^{t-1}) + b + U x^(t)          (one W, b, U for all t)
        deep:       h^0 = U^0 x^(0) + b^0,  h^t = W^t phi(h^{t-1}) + b^t + U^t x^(t)  (independent per step)

    W_ij ~ N(0, C_W/n), b_i ~ N(0, C_b), U_ik ~ N(0, C_U/n_0); width n for every step. With
    ``input_mode="first"`` x^(t) = 0 for t >= 1 (the deep net is then an ordinary MLP with T hidden
    layers and first-layer weight variance C_U); with ``"every"`` an input is fed at every step.

    Parameters
    ----------
    activation : str, sympy expression or Activation
    steps : int
        T >= 1: the number of recurrent updates (arrays have T + 1 time slices).
    weight_var, bias_var, input_var : float
        C_W > 0, C_b >= 0, C_U > 0.
    input_mode : {"first", "every"}
    architecture : {"recurrent", "deep"}
    """

    activation: Activation
    steps: int
    weight_var: float
    bias_var: float
    input_var: float
    input_mode: str = "first"
    architecture: str = "recurrent"

    def __init__(self, activation="tanh", steps=3, weight_var=1.0, bias_var=0.0, input_var=1.0,
                 input_mode="first", architecture="recurrent"):
        set_ = object.__setattr__
        set_(self, "activation", get_activation(activation))
        set_(self, "steps", _check_int(steps, "steps", 1))
        for name, value, positive in (("weight_var", weight_var, True), ("bias_var", bias_var, False),
                                      ("input_var", input_var, True)):
            set_(self, name, _per_layer(value, 1, name, positive=positive)[0])
        require(input_mode in INPUT_MODES, "input_mode", f"must be one of {', '.join(INPUT_MODES)}, got {input_mode!r}")
        require(architecture in ARCHITECTURES, "architecture",
                f"must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")
        set_(self, "input_mode", input_mode)
        set_(self, "architecture", architecture)

    @property
    def shared(self) -> bool:
        """True for the recurrent architecture (one W, b, U for every step)."""
        return self.architecture == "recurrent"

    def with_architecture(self, architecture: str) -> "RecurrentNetwork":
        """The same network with the other architecture (``"recurrent"`` or ``"deep"``)."""
        return RecurrentNetwork(self.activation, self.steps, self.weight_var, self.bias_var, self.input_var,
                                self.input_mode, architecture)

    def deep_equivalent(self) -> DeepNetwork:
        """For ``input_mode="first"``: the DeepNetwork whose layer l = t + 1 is step t of the deep architecture
        (depth T, C_W^(1) = C_U, C_W^(l) = C_W for l >= 2, C_b for every layer)."""
        require(self.input_mode == "first", "input_mode", "a DeepNetwork takes input at the first layer only")
        return DeepNetwork(self.steps, self.activation, (self.input_var,) + (self.weight_var,) * self.steps,
                           self.bias_var)

    def describe(self) -> str:
        return (f"{self.architecture} network: steps T = {self.steps} (h^0..h^{self.steps}), activation "
                f"{self.activation.name}, C_W = {self.weight_var}, C_b = {self.bias_var}, C_U = {self.input_var}, "
                f"input at {'the first step' if self.input_mode == 'first' else 'every step'}")
