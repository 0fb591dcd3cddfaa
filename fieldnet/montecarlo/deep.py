"""Monte Carlo ensembles of explicit finite-width deep networks (numpy, seeded).

Conventions (identical to :mod:`fieldnet.spec` and THEORY.md sec. 0). A network of depth L has
hidden widths n_1 .. n_L (``network.widths``), an output width n_{L+1} (argument ``output_width``;
default n_L, or n_0 when L = 0) and preactivations z^(1) .. z^(L+1):

    z^(1)_{i;a}   = b^(1)_i   + sum_j W^(1)_ij x_{j;a},            W^(1)_ij ~ N(0, C_W^(1) / n_0)
    z^(l+1)_{i;a} = b^(l+1)_i + sum_j W^(l+1)_ij phi(z^(l)_{j;a}),  W^(l+1)_ij ~ N(0, C_W^(l+1) / n_l)
    b^(l)_i ~ N(0, C_b^(l)),  all independent;  phi(z^(0)) := x.

Per network and layer l = 1 .. L+1 two (N, N) statistics are recorded (array index l - 1):

* empirical NNGP   G^(l)_ab = (1/n_l) sum_i z^(l)_{i;a} z^(l)_{i;b};   E G^(l) = K^(l) + O(1/n).
* empirical NTK    H^(l)_{ii;ab} = sum_mu lambda_mu dz^(l)_{i;a}/dtheta_mu dz^(l)_{i;b}/dtheta_mu, with rate
  lambda_b^(m) for every bias and lambda_W^(m) / n_{m-1} for every weight of layer m (``network.ntk_rates``:
  lambda = eta C in the 'ntk' parameterization; lambda_W^(m) = eta n_{m-1}, lambda_b = eta in 'standard').
  It is computed by backpropagation through the explicit weights: with
  delta^(m)_{k;a} = dz^(l)_{i;a}/dz^(m)_{k;a} (delta^(l) = e_i, delta^(m-1) = phi'(z^(m-1)) * (W^(m)^T delta^(m))),

      H^(l)_{ii;ab} = sum_{m=1}^{l} (delta^(m)_a . delta^(m)_b)
                      * [lambda_b^(m) + lambda_W^(m) phi^(m-1)_a . phi^(m-1)_b / n_{m-1}],

  averaged over the first ``ntk_neurons`` neurons i of layer l (neurons are exchangeable, so this is
  unbiased);  E H^(l)_ii = Theta^(l) + O(1/n).  Layer 1 is deterministic: H^(1) = Theta^(1).

Means and standard errors are taken across networks (each network's neurons are averaged first,
since neurons of one network are correlated). Network k draws, from its own stream
``SeedSequence(seed).spawn(n_networks)[k]``, W^(1), b^(1), W^(2), b^(2), ... as standard normals in
that order, so results do not depend on ``chunk_size`` and the hidden weights do not depend on
``output_width``. Weights are scaled after each matrix product (scaling n x n matrices would cost as
much as drawing them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from fieldnet.errors import DivergenceError, ParameterError, require
from fieldnet.montecarlo.stats import mean_and_sem
from fieldnet.numeric.functions import numpy_function
from fieldnet.numeric.kernels import validate_inputs
from fieldnet.spec import DeepNetwork
from fieldnet.symbolic.activations import x as _x

_CHUNK_BYTES = 64 * 2 ** 20  # memory budget of one chunk of networks


@dataclass(frozen=True)
class EnsembleMoments:
    """Ensemble estimates for layers l = 1 .. L+1 (index l - 1), each of shape (L+1, N, N).

    ``*_mean`` is the average over networks of the per-network statistic, ``*_sem`` its standard
    error (sd across networks / sqrt(n_networks)). ``widths`` = (n_0, n_1, .., n_L, n_{L+1}).
    ``ntk_neurons[l-1]`` neurons of layer l were averaged for the NTK; ``seed`` is the validated seed
    the ensemble was drawn from. The per-network statistics
    (n_networks, L+1, N, N) are kept in ``*_samples`` when requested (``keep_samples=True``).
    The NTK fields are None when it was not computed.
    """

    nngp_mean: np.ndarray
    nngp_sem: np.ndarray
    ntk_mean: np.ndarray | None
    ntk_sem: np.ndarray | None
    n_networks: int
    widths: tuple
    ntk_neurons: tuple
    seed: object = None
    nngp_samples: np.ndarray | None = None
    ntk_samples: np.ndarray | None = None

    @property
    def depth(self) -> int:
        return len(self.widths) - 2

    def layer(self, l: int) -> tuple:
        """(nngp_mean, nngp_sem, ntk_mean, ntk_sem) of layer 1 <= l <= L+1."""
        require(1 <= l <= self.depth + 1, "layer", f"must be between 1 and {self.depth + 1}, got {l}")
        pick = (lambda a: None if a is None else a[l - 1])
        return tuple(pick(a) for a in (self.nngp_mean, self.nngp_sem, self.ntk_mean, self.ntk_sem))


@dataclass(frozen=True)
class _Layer:
    """Weight layer m: fan_in n_{m-1}, width n_m, weight/bias scales and NTK rates."""

    fan_in: int
    width: int
    scale_w: float   # sqrt(C_W / n_{m-1})
    scale_b: float   # sqrt(C_b)
    lam_w: float     # lambda_W^(m) (the per-weight rate is lam_w / n_{m-1})
    lam_b: float


# ----------------------------------------------------------------------------------------------
# validation


def _check_int(value, name: str, minimum: int) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    require(ok, name, f"must be an integer, got {value!r}")
    require(int(value) >= minimum, name, f"must be >= {minimum}, got {value}")
    return int(value)


def _check_seed(seed):
    """None, a non-negative int, or a non-empty tuple of them (SeedSequence entropy)."""
    if seed is None:
        return None
    parts = seed if isinstance(seed, tuple) else (seed,)
    ok = len(parts) > 0 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in parts)
    require(ok, "seed", f"expected None, a non-negative integer or a tuple of them, got {seed!r}")
    return tuple(int(v) for v in parts) if isinstance(seed, tuple) else int(seed)


def _hidden_widths(network: DeepNetwork) -> tuple:
    if network.depth == 0:
        return ()
    require(network.widths is not None, "widths",
            f"the network has {network.depth} hidden layer(s) but no widths: use network.with_widths(...)")
    return tuple(network.widths)


def _layers(network: DeepNetwork, widths: tuple) -> list[_Layer]:
    lam_w, lam_b = network.ntk_rates(widths[0])
    return [_Layer(widths[m - 1], widths[m], math.sqrt(cw / widths[m - 1]), math.sqrt(cb), lw, lb)
            for m, (cw, cb, lw, lb) in enumerate(zip(network.weight_var, network.bias_var, lam_w, lam_b), start=1)]


# ----------------------------------------------------------------------------------------------
# activation


@lru_cache(maxsize=64)
def activation_functions(activation, with_derivative: bool = True):
    """Vectorised numpy callables (phi, phi') from the sympy expression (phi' None if not asked).

    Heaviside(0) = 1/2; erf comes from scipy. A derivative containing a delta function (step,
    sign) raises :class:`DivergenceError`: the NTK of such a network is not defined.
    """
    phi = _lambdify(activation.expr, f"activation {activation.name}")
    if not with_derivative:
        return phi, None
    try:
        return phi, _lambdify(activation.derivative(), f"the derivative of activation {activation.name}")
    except DivergenceError as exc:
        raise DivergenceError(f"{exc}: the NTK is not defined (use compute_ntk=False for the NNGP alone)") from None


def _lambdify(expr, what):
    f = numpy_function(_x, expr, what)

    def apply(v: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.broadcast_to(np.asarray(f(v), dtype=np.float64), v.shape)

    return apply


# ----------------------------------------------------------------------------------------------
# one chunk of networks


def _allocate(layers: list[_Layer], chunk: int) -> list[tuple]:
    """Weight buffers for one chunk, reused across chunks (fresh pages cost as much as drawing)."""
    return [(np.zeros((chunk, lay.width, lay.fan_in)), np.zeros((chunk, lay.width))) for lay in layers]


def _draw(generators: list, buffers: list[tuple]) -> list[tuple]:
    """Standard-normal (W^(m) (B, n_m, n_{m-1}), b^(m) (B, n_m)) for m = 1 .. L+1, one stream per network."""
    B = len(generators)
    out = [(w[:B], b[:B]) for w, b in buffers]
    for k, rng in enumerate(generators):
        for w, b in out:
            rng.standard_normal(out=w[k])
            rng.standard_normal(out=b[k])
    return out


def _gram(a: np.ndarray) -> np.ndarray:
    """a_a . a_b / n over the last axis (neurons), symmetrised: (..., N, n) -> (..., N, N)."""
    g = a @ np.swapaxes(a, -1, -2) / a.shape[-1]
    return 0.5 * (g + np.swapaxes(g, -1, -2))


def _forward(X: np.ndarray, weights: list, layers: list[_Layer], phi, dphi):
    """Preactivations z^(m) (B, N, n_m) for m = 1 .. L+1 and, for m = 0 .. L, phi^(m) (phi^(0) = X)
    and phi'(z^(m)) (None for m = 0). Lists are indexed by m (z[0] is None)."""
    z, h, dh = [None], [X], [None]
    for m, ((w, b), lay) in enumerate(zip(weights, layers), start=1):
        zm = lay.scale_w * (h[m - 1] @ np.swapaxes(w, 1, 2)) + lay.scale_b * b[:, None, :]
        z.append(zm)
        if m < len(layers):
            h.append(phi(zm))
            dh.append(None if dphi is None else dphi(zm))
    return z, h, dh


def _ntk_of_layer(l: int, h_gram: list, dh: list, weights: list, layers: list[_Layer], neurons: int, B: int):
    """Empirical NTK H^(l)_{ii} averaged over neurons i < ``neurons`` of layer l: (B, N, N)."""
    lay = layers[l - 1]
    H = lay.lam_b + lay.lam_w * h_gram[l - 1]
    H = np.broadcast_to(H, (B,) + H.shape[-2:]).copy()
    if l == 1:
        return H
    w_l = weights[l - 1][0]
    # delta^(l-1)_{p;a,j} = phi'(z^(l-1)_{j;a}) W^(l)_{pj}: shape (B, P, N, n_{l-1})
    delta = lay.scale_w * w_l[:, :neurons, None, :] * dh[l - 1][:, None, :, :]
    for m in range(l - 1, 0, -1):
        s = (delta @ np.swapaxes(delta, -1, -2)).mean(axis=1)          # mean_i delta^(m)_a . delta^(m)_b
        s = 0.5 * (s + np.swapaxes(s, -1, -2))
        H += s * (layers[m - 1].lam_b + layers[m - 1].lam_w * h_gram[m - 1])
        if m > 1:
            P, N, n_m = delta.shape[1:]
            back = delta.reshape(B, P * N, n_m) @ weights[m - 1][0]   # (B, P N, n_{m-1})
            delta = layers[m - 1].scale_w * back.reshape(B, P, N, -1) * dh[m - 1][:, None, :, :]
    return H


def _chunk_statistics(X, generators, buffers, layers, phi, dphi, neurons):
    """Per-network empirical NNGP and NTK of every layer: two arrays (B, L+1, N, N) (NTK None if dphi is None)."""
    B = len(generators)
    weights = _draw(generators, buffers)
    z, h, dh = _forward(X, weights, layers, phi, dphi)
    nngp = np.stack([_gram(zm) for zm in z[1:]], axis=1)
    if dphi is None:
        return nngp, None
    h_gram = [_gram(hm) for hm in h]
    ntk = np.stack([_ntk_of_layer(l, h_gram, dh, weights, layers, neurons[l - 1], B)
                    for l in range(1, len(layers) + 1)], axis=1)
    return nngp, ntk


def _auto_chunk(layers: list[_Layer], N: int, neurons: tuple) -> int:
    """Networks per chunk so that weights, activations and backprop buffers fit in ``_CHUNK_BYTES``."""
    floats = sum(lay.width * (lay.fan_in + 1) + 4 * N * lay.width for lay in layers)
    floats += 3 * max(neurons) * N * max(lay.fan_in for lay in layers)
    return max(1, _CHUNK_BYTES // (8 * floats))


# ----------------------------------------------------------------------------------------------
# public entry points


def sample_ensemble(network: DeepNetwork, X, n_networks: int, *, output_width: int | None = None,
                    ntk_neurons: int = 4, seed=0, chunk_size: int | None = None, compute_ntk: bool = True,
                    keep_samples: bool = False) -> EnsembleMoments:
    """Empirical NNGP and NTK of every layer, averaged over ``n_networks`` independent random networks.

    Parameters
    ----------
    network : DeepNetwork with ``widths`` set (``network.with_widths(n)``) unless depth = 0.
    X : array (N, n_0) of inputs.
    n_networks : int >= 2, the number of independent networks (the standard errors are across them).
    output_width : width n_{L+1} of the readout, i.e. how many output neurons the NNGP averages
        (default n_L; n_0 when depth = 0). It does not enter the NTK rates.
    ntk_neurons : neurons i of each layer whose H_ii is computed and averaged (capped at the width).
    seed : None, a non-negative int or a tuple of them (numpy ``SeedSequence`` entropy).
    chunk_size : networks processed together (default: as many as fit in about 64 MB).
    compute_ntk : False skips the backpropagation (NNGP only).
    keep_samples : also return the per-network statistics.
    """
    require(isinstance(network, DeepNetwork), "network", f"expected a DeepNetwork, got {type(network).__name__}")
    X = validate_inputs(X, network.input_dim)
    n_networks = _check_int(n_networks, "n_networks", 2)
    hidden = _hidden_widths(network)
    out_w = _check_int(output_width, "output_width", 1) if output_width is not None else (
        hidden[-1] if hidden else X.shape[1])
    widths = (X.shape[1],) + hidden + (out_w,)
    neurons = tuple(min(_check_int(ntk_neurons, "ntk_neurons", 1), n) for n in widths[1:])
    chunk = None if chunk_size is None else _check_int(chunk_size, "chunk_size", 1)
    seed = _check_seed(seed)
    layers = _layers(network, widths)
    phi, dphi = activation_functions(network.activation, bool(compute_ntk))
    chunk = chunk or _auto_chunk(layers, X.shape[0], neurons)

    streams = np.random.SeedSequence(seed).spawn(n_networks)
    buffers = _allocate(layers, min(chunk, n_networks))
    nngp, ntk = [], []
    for start in range(0, n_networks, chunk):
        generators = [np.random.default_rng(s) for s in streams[start:start + chunk]]
        g, t = _chunk_statistics(X, generators, buffers, layers, phi, dphi, neurons)
        nngp.append(g)
        ntk.append(t)
    nngp = np.concatenate(nngp)
    ntk = np.concatenate(ntk) if compute_ntk else None
    _check_finite(nngp, ntk, network)
    nngp_mean, nngp_sem = mean_and_sem(nngp)
    ntk_mean, ntk_sem = mean_and_sem(ntk) if compute_ntk else (None, None)
    return EnsembleMoments(nngp_mean, nngp_sem, ntk_mean, ntk_sem, n_networks, widths, neurons, seed,
                           nngp if keep_samples else None, ntk if keep_samples and compute_ntk else None)


def width_scan(network: DeepNetwork, X, widths: Sequence[int], n_networks, *, seed=0,
               **kwargs) -> list[EnsembleMoments]:
    """:func:`sample_ensemble` at each uniform hidden width n in ``widths`` (output width n too).

    ``n_networks`` is one int or one per width; width k uses the seed (seed, k) (independent ensembles).
    Other keyword arguments go to :func:`sample_ensemble`.
    """
    try:
        widths = [_check_int(n, "widths", 1) for n in widths]
    except TypeError:
        raise ParameterError(f"widths: expected a sequence of integers, got {widths!r}") from None
    require(len(widths) >= 1, "widths", "need at least one width")
    counts = [n_networks] * len(widths) if isinstance(n_networks, (int, np.integer)) else list(n_networks)
    require(len(counts) == len(widths), "n_networks",
            f"expected one count per width ({len(widths)}), got {len(counts)}")
    require("output_width" not in kwargs, "output_width", "width_scan sets it to each hidden width n")
    seed = _check_seed(seed)
    base = () if seed is None else (seed if isinstance(seed, tuple) else (seed,))
    return [sample_ensemble(network.with_widths(n), X, m, seed=None if seed is None else base + (k,),
                            output_width=n, **kwargs)
            for k, (n, m) in enumerate(zip(widths, counts))]


def _check_finite(nngp, ntk, network) -> None:
    for name, arr in (("NNGP", nngp), ("NTK", ntk)):
        if arr is not None and not np.all(np.isfinite(arr)):
            layer = int(np.argwhere(~np.isfinite(arr))[0][1]) + 1
            raise DivergenceError(f"Monte Carlo {name} overflowed at layer {layer} ({network.describe()}): "
                                  "reduce the depth or the variances")
