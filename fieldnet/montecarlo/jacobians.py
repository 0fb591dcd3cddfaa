"""Monte Carlo of averaged partial-Jacobian norms (APJN) of real finite-width networks (numpy, seeded).

The networks are those of :mod:`fieldnet.analysis.jacobians` with explicit weights, hidden width n
for every layer z^(1) .. z^(L+1) and one input x of dimension n_0:

    z^(1)   = W^(1) x + b^(1),                        W^(1)_ij ~ N(0, C_W / n_0)
    z^(l+1) = mu z^(l) + W^(l+1) phi(y^(l)) + b^(l+1),   W^(l+1)_ij ~ N(0, C_W / n),  b ~ N(0, C_b)

with y = z, mu = 0 (``layernorm=None``); y = LN(z), mu = 0 (``"pre"``); y = LN(z), mu = ``residual``
(``"pre-residual"``); LN(z) = (z - mean z) / std z over the n neurons (population std, no gain/bias).

Per network the APJN (1/n) ||d z^(l) / d z^(l0)||_F^2 is estimated without forming the n x n
Jacobian: with P probe vectors v_p ~ N(0, I_n) at layer l0 (Hutchinson), E_v ||J v||^2 = ||J||_F^2,
so (1/(P n)) sum_p ||J^{l0,l} v_p||^2 is unbiased for every l at once. J v is pushed forward with
the same weights as the network:

    u^(l+1) = mu u^(l) + W^(l+1) [phi'(y^(l)) * (dy/dz) u^(l)],   (dy/dz) u = (u - mean u - y mean(y u)) / std z

(dy/dz = identity without LayerNorm). Means and standard errors are across networks (each network's
probes and neurons averaged first). Network k draws, from its own stream
``SeedSequence(seed).spawn(n_networks)[k]``: W^(1), b^(1), ..., W^(l0), b^(l0), the probes, then the
remaining W, b, as standard normals, so results do not depend on ``chunk_size``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fieldnet.analysis.jacobians import LAYERNORMS
from fieldnet.errors import ParameterError, require
from fieldnet.montecarlo.deep import activation_functions
from fieldnet.montecarlo.stats import mean_and_sem
from fieldnet.symbolic.activations import get_activation

_CHUNK_BYTES = 32 * 2 ** 20


@dataclass(frozen=True)
class JacobianEnsemble:
    """Layers l = l0 .. L+1; APJN and the empirical variance (1/n) sum_i z_i^2, mean and sem over networks."""

    layers: np.ndarray
    apjn_mean: np.ndarray
    apjn_sem: np.ndarray
    kernel_mean: np.ndarray
    kernel_sem: np.ndarray
    n_networks: int
    width: int
    probes: int
    seed: object


def _int(value, name, minimum):
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    require(ok and int(value) >= minimum, name, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _layernorm(z):
    """(y, std) with y = (z - mean) / std over the last axis."""
    centred = z - z.mean(axis=-1, keepdims=True)
    std = np.sqrt((centred ** 2).mean(axis=-1, keepdims=True))
    return centred / std, std


def sample_partial_jacobians(activation, weight_var, bias_var, depth, width, n_networks, x, *, l0=1,
                             layernorm=None, residual=1.0, probes=4, seed=0,
                             chunk_size=None) -> JacobianEnsemble:
    """APJN J^{l0,l} (l = l0 .. depth+1) of ``n_networks`` random networks of the given width.

    ``x`` is the input (a 1-D array of length n_0), so K^(1) = C_b + C_W |x|^2 / n_0."""
    act = get_activation(activation)
    cw, cb = float(weight_var), float(bias_var)
    require(math.isfinite(cw) and cw > 0, "weight_var", f"must be > 0, got {weight_var!r}")
    require(math.isfinite(cb) and cb >= 0, "bias_var", f"must be >= 0, got {bias_var!r}")
    depth = _int(depth, "depth", 1)
    width = _int(width, "width", 2)
    n_networks = _int(n_networks, "n_networks", 2)
    probes = _int(probes, "probes", 1)
    l0 = _int(l0, "l0", 1)
    require(l0 <= depth + 1, "l0", f"must be <= depth + 1 = {depth + 1}, got {l0}")
    require(layernorm in LAYERNORMS, "layernorm", f"must be one of {LAYERNORMS}, got {layernorm!r}")
    mu = float(residual) if layernorm == "pre-residual" else 0.0
    require(math.isfinite(mu), "residual", f"must be finite, got {residual!r}")
    x = np.asarray(x, dtype=float)
    require(x.ndim == 1 and x.size >= 1 and bool(np.all(np.isfinite(x))), "x",
            f"expected a finite 1-D input vector, got shape {x.shape}")
    if seed is not None:
        require(isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0, "seed",
                f"expected None or a non-negative integer, got {seed!r}")
    phi, dphi = activation_functions(act)
    chunk = chunk_size or max(1, _CHUNK_BYTES // (8 * width * (width + x.size + probes + 4)))
    chunk = _int(chunk, "chunk_size", 1)

    streams = np.random.SeedSequence(seed).spawn(n_networks)
    n_layers = depth + 1
    apjn = np.empty((n_networks, n_layers - l0 + 1))
    kern = np.empty((n_networks, n_layers))
    for start in range(0, n_networks, chunk):
        gens = [np.random.default_rng(s) for s in streams[start:start + chunk]]
        a, k = _chunk(gens, x, cw, cb, n_layers, width, l0, layernorm, mu, probes, phi, dphi)
        apjn[start:start + chunk], kern[start:start + chunk] = a, k
    if not (np.all(np.isfinite(apjn)) and np.all(np.isfinite(kern))):
        raise ParameterError("weight_var: the sampled networks overflow (non-finite preactivations or Jacobians)")
    a_mean, a_sem = mean_and_sem(apjn)
    k_mean, k_sem = mean_and_sem(kern)
    return JacobianEnsemble(np.arange(l0, n_layers + 1), a_mean, a_sem, k_mean, k_sem, n_networks, width,
                            probes, seed)


def _draw(gens, shape):
    out = np.empty((len(gens),) + shape)
    for k, rng in enumerate(gens):
        rng.standard_normal(out=out[k])
    return out


def _chunk(gens, x, cw, cb, n_layers, n, l0, layernorm, mu, probes, phi, dphi):
    """Per-network APJN (B, L+2-l0) and (1/n) sum z^2 (B, L+1) for one chunk of networks."""
    B = len(gens)
    sw1, sw, sb = math.sqrt(cw / x.size), math.sqrt(cw / n), math.sqrt(cb)
    z = sw1 * (_draw(gens, (n, x.size)) @ x) + sb * _draw(gens, (n,))   # (B, n)
    kern = [np.mean(z * z, axis=1)]
    apjn, u = [], None
    for l in range(1, n_layers):
        if l == l0:
            u = _draw(gens, (n, probes))                                    # (B, n, P)
            apjn.append(np.ones(B))
        if layernorm is None:
            y, du = z, u
        else:
            y, std = _layernorm(z)
            if u is not None:
                du = (u - u.mean(axis=1, keepdims=True)
                      - y[:, :, None] * (y[:, :, None] * u).mean(axis=1, keepdims=True)) / std[:, :, None]
        w, b = _draw(gens, (n, n)), _draw(gens, (n,))
        h = phi(y)[:, :, None]
        stack = h if u is None else np.concatenate([h, dphi(y)[:, :, None] * du], axis=2)
        out = sw * (w @ stack)
        z = mu * z + out[:, :, 0] + sb * b
        if u is not None:
            u = mu * u + out[:, :, 1:]
            apjn.append(np.mean(u * u, axis=(1, 2)))
        kern.append(np.mean(z * z, axis=1))
    if l0 == n_layers:
        apjn.append(np.ones(B))
    return np.stack(apjn, axis=1), np.stack(kern, axis=1)
