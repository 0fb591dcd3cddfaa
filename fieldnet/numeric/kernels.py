"""Infinite-width kernels of a deep network over a dataset: the numeric driver.

    result = kernels(network, X)      # X of shape (N, n_0)
    result.nngp[l - 1]                # K^(l), shape (N, N), l = 1 .. L+1
    result.ntk[l - 1]                 # Theta^(l)

One interface, :class:`Backend`, evaluates the recursion. The default is the lowered numba path
(:class:`fieldnet.numeric.numba_backend.NumbaBackend`: generated, compiled and cached kernels);
the numpy reference path (:class:`fieldnet.numeric.numpy_backend.NumpyBackend`) stays available
and is what the numba path falls back to when an expression cannot be lowered. A backend receives the normalised Gram
matrix x_a . x_b / n_0 and the per-layer parameters and returns every layer's kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fieldnet.errors import ParameterError
from fieldnet.spec import DeepNetwork


class Backend(Protocol):
    name: str

    def run(self, network: DeepNetwork, gram: np.ndarray, layer_params: list, last_only: bool = False,
            quantities: tuple = ("K", "Theta")) -> dict:
        """{'K': ..., 'Theta': ...}, each (L+1, N, N), or (N, N) if ``last_only``."""


@dataclass(frozen=True)
class KernelResult:
    """NNGP kernel and NTK of every layer (or of the output layer only)."""

    network: DeepNetwork
    nngp: np.ndarray
    ntk: np.ndarray | None
    last_only: bool = False

    def layer(self, l: int) -> tuple[np.ndarray, np.ndarray]:
        """(K^(l), Theta^(l)) for 1 <= l <= L+1."""
        if self.last_only:
            raise ParameterError("layer: this result holds only the output layer (computed with last_only=True)")
        if not 1 <= l <= self.network.n_layers:
            raise ParameterError(f"layer: must be between 1 and {self.network.n_layers}, got {l}")
        return self.nngp[l - 1], None if self.ntk is None else self.ntk[l - 1]

    def save(self, path) -> None:
        """Write ``nngp`` and ``ntk`` (``ntk`` only if computed) to an ``.npz`` file, in the
        result's dtype (float64 unless computed with ``dtype=float32``)."""
        arrays = {"nngp": np.asarray(self.nngp)}
        if self.ntk is not None:
            arrays["ntk"] = np.asarray(self.ntk)
        np.savez(path, **arrays)


def validate_inputs(X, input_dim: int | None = None, name: str = "X") -> np.ndarray:
    """X as a float64 array of shape (N, n_0), finite, matching ``input_dim`` when given."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"{name}: expected a numeric array of shape (N, n_0)") from None
    if arr.ndim != 2:
        raise ParameterError(f"{name}: expected shape (N, n_0), got an array of shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ParameterError(f"{name}: needs at least one input and one feature, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ParameterError(f"{name}: contains NaN or infinite values (first at row {bad[0]}, column {bad[1]})")
    if input_dim is not None and arr.shape[1] != input_dim:
        raise ParameterError(f"{name}: has {arr.shape[1]} features but the network's input_dim is {input_dim}")
    return arr


def numeric_layer_params(network: DeepNetwork, input_dim: int) -> list[dict]:
    """Per layer: C_W, C_b and fan_in n_{l-1} (None where the width is not known)."""
    fan_in = (input_dim,) + (network.widths or (None,) * network.depth)
    return [{"C_W": cw, "C_b": cb, "fan_in": n}
            for cw, cb, n in zip(network.weight_var, network.bias_var, fan_in)]


def kernels(network: DeepNetwork, X, *, backend: Backend | None = None, last_only: bool = False,
            ntk: bool = True, dtype=np.float64) -> KernelResult:
    """NNGP kernel K^(l) and NTK Theta^(l) for every layer l = 1 .. L+1 on inputs X (N, n_0).

    ``last_only`` keeps only the output layer (arrays (N, N)); ``ntk=False`` skips the NTK (for
    activations whose NTK diverges, such as the step function). The NTK is scaled by the
    network's learning rate eta (it is linear in eta). ``dtype=numpy.float32`` returns float32
    arrays (half the memory; the recursion itself always runs in float64).
    """
    from fieldnet.numeric.numba_backend import NumbaBackend

    if not isinstance(network, DeepNetwork):
        raise ParameterError(f"network: expected a DeepNetwork, got {type(network).__name__}")
    X = validate_inputs(X, network.input_dim)
    if network.parameterization == "standard" and ntk:
        network.ntk_rates(X.shape[1])  # raises a clear error if widths are missing
    gram = X @ X.T / X.shape[1]
    if np.dtype(dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ParameterError(f"dtype: must be float64 or float32, got {dtype!r}")
    backend = backend or NumbaBackend()
    quantities = ("K", "Theta") if ntk else ("K",)
    out = backend.run(network, gram, numeric_layer_params(network, X.shape[1]), last_only=last_only,
                      quantities=quantities)
    nngp = np.asarray(out["K"], dtype=dtype)
    theta = (network.learning_rate * np.asarray(out["Theta"], dtype=np.float64)).astype(dtype, copy=False) \
        if ntk else None
    return KernelResult(network, nngp, theta, last_only)
