"""Write ``tests/data/nt_reference.npz`` (+ ``nt_reference.json``): neural-tangents' analytic kernels.

The numbers come from neural-tangents 0.6.5 (jax 0.4.23, float64) and are checked against
fieldnet by ``tests/test_neural_tangents.py``. fieldnet is *not* imported here: neural-tangents
needs numpy < 2, so this script runs in its own virtual environment and only writes data.
Rerun it from the repository root with

    /work/ntenv/bin/python tests/reference/make_nt_reference.py

(any interpreter with ``neural-tangents==0.6.5`` and ``jax`` works; the script refuses another
neural-tangents version unless ``--any-version`` is given). Output is deterministic.

What is stored
--------------
* ``X``: N = 6 inputs of dimension n_0 = 5 (seeded normals; row 4 = 2.5 * row 0 and
  row 5 = -row 1, so the pairs (0, 4) and (1, 5) sit at correlation rho = +1 and -1).
* For every group ``gNN``: ``gNN_nngp`` and ``gNN_ntk``, each (L_max + 1, N, N), where entry
  [l - 1] is layer l computed with the *truncated* network
  ``stax.serial(*[Dense, Act] * (l - 1), Dense)`` (l = 1 .. L_max + 1). A depth-L network's
  kernels are the first L + 1 entries, so one group serves every depth L <= L_max.
* ``metadata``: a JSON string (also written, pretty-printed, to ``nt_reference.json``) with one
  record per group: fieldnet activation string, the neural-tangents layer, per-layer W_std and
  b_std (``null`` = ``b_std=None``, no bias), parameterization, the Dense out_dims (= fieldnet's
  hidden widths n_1 .. n_{L_max}), the depths the test checks, and what each record means.

Conventions (neural-tangents 0.6.5 ``stax.Dense`` kernel_fn, read from its source):
* fieldnet C_W = W_std**2, C_b = b_std**2 (0 for ``b_std=None``).
* ``parameterization='ntk'``: nngp' = W_std^2 nngp + b_std^2, ntk' = nngp' + W_std^2 ntk; ``b_std=None``
  and ``b_std=0.0`` give identical kernels (checked below) = fieldnet with bias_var=0.
* ``parameterization='standard'``: nngp' as above (width-independent);
  ntk' = n_in * nngp + W_std^2 * ntk + (1 if b_std is not None else 0), with nngp, ntk the
  *incoming* kernels and n_in the incoming channel count (n_0 for the first Dense, else the
  previous Dense's out_dim). fieldnet's ``parameterization='standard'`` (lambda_W = n_{l-1},
  lambda_b = 1, biases always trained) matches ``b_std=0.0``; ``b_std=None`` drops the +1 at
  every layer. Groups with ``b_std=None`` under 'standard' are stored to pin that difference.
* ``ABRelu(a, b)`` is ``a * min(x, 0) + b * max(x, 0)`` (a = slope for x < 0), so fieldnet's
  ``abrelu(a, b)`` (a x for x > 0, b x for x < 0) is ``stax.ABRelu(b, a)``;
  ``LeakyRelu(alpha) = ABRelu(alpha, 1)`` = fieldnet ``leaky_relu(alpha)``.
"""

from __future__ import annotations

import json
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

NT_VERSION = "0.6.5"
HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(os.path.dirname(HERE), "data")
SEED = 20240611
N, N0 = 6, 5

# fieldnet activation string -> (neural-tangents layer factory, its description, deepest L stored)
ACTIVATIONS = {
    "relu": (lambda: stax.Relu(), "stax.Relu()", 8),
    "erf": (lambda: stax.Erf(), "stax.Erf()", 5),
    "sin": (lambda: stax.Sin(), "stax.Sin()", 5),
    "gelu": (lambda: stax.Gelu(approximate=False), "stax.Gelu(approximate=False)", 5),
    "abs": (lambda: stax.Abs(), "stax.Abs()", 5),
    "leaky_relu(0.1)": (lambda: stax.LeakyRelu(0.1), "stax.LeakyRelu(0.1)", 5),
    # fieldnet abrelu(a, b) = a x (x > 0), b x (x < 0)  ==  stax.ABRelu(b, a)
    "abrelu(1.2, -0.4)": (lambda: stax.ABRelu(-0.4, 1.2), "stax.ABRelu(-0.4, 1.2)", 5),
}

# hidden widths n_1 .. n_8 (Dense out_dims) for the standard parameterization
WIDTHS_A = (16, 9, 25, 12, 20, 8, 30, 14)
WIDTHS_B = (64, 64, 64, 64, 64, 64, 64, 64)

# (label, parameterization, W_std, b_std, widths); W_std / b_std a scalar or one per Dense layer
VARIANCES = [
    ("ntk, no bias", "ntk", 1.4, None, None),
    ("ntk, small bias", "ntk", 1.1, 0.5, None),
    ("ntk, large variances", "ntk", 1.8, 1.0, None),
    ("standard, b_std=0", "standard", 1.2, 0.0, WIDTHS_A),
    ("standard, with bias", "standard", 1.5, 0.4, WIDTHS_B),
]
# extra groups: layer-dependent variances, and 'standard' with b_std=None (no trained bias)
PER_LAYER_W = (1.0, 1.5, 1.2, 0.9, 1.3, 1.1, 1.4, 1.0, 1.2)
PER_LAYER_B = (0.2, 0.0, 0.4, 0.1, 0.3, 0.0, 0.5, 0.2, 0.1)
EXTRA = [
    ("relu", "ntk, per-layer variances", "ntk", PER_LAYER_W, PER_LAYER_B, None),
    ("erf", "ntk, per-layer variances", "ntk", PER_LAYER_W[:6], PER_LAYER_B[:6], None),
    ("gelu", "standard, per-layer variances", "standard", PER_LAYER_W[:6], PER_LAYER_B[:6], WIDTHS_A),
    ("relu", "standard, b_std=None (no bias)", "standard", 1.3, None, WIDTHS_A),
    ("erf", "standard, b_std=None (no bias)", "standard", 1.3, None, WIDTHS_A),
]


def make_inputs() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((N, N0))
    X[4] = 2.5 * X[0]   # rho(0, 4) = +1
    X[5] = -X[1]        # rho(1, 5) = -1
    return X


def _per_layer(v, n):
    if v is None or np.isscalar(v):
        return [None if v is None else float(v)] * n
    assert len(v) >= n, (v, n)
    return [float(t) for t in v[:n]]


def group_specs() -> list[dict]:
    specs = []
    for act, (_, nt_desc, lmax) in ACTIVATIONS.items():
        for label, param, w, b, widths in VARIANCES:
            specs.append(_spec(act, nt_desc, lmax, label, param, w, b, widths))
    for act, label, param, w, b, widths in EXTRA:
        _, nt_desc, lmax = ACTIVATIONS[act]
        specs.append(_spec(act, nt_desc, lmax, label, param, w, b, widths))
    for i, s in enumerate(specs):
        s["id"] = f"g{i:02d}"
    return specs


def _spec(act, nt_desc, lmax, label, param, w, b, widths) -> dict:
    nl = lmax + 1
    w_std, b_std = _per_layer(w, nl), _per_layer(b, nl)
    standard_no_bias = param == "standard" and any(v is None for v in b_std)
    return {
        "activation": act,                      # fieldnet syntax
        "nt_activation": nt_desc,
        "label": label,
        "parameterization": param,
        "max_depth": lmax,
        "depths": sorted({d for d in (1, 3, 5, lmax) if d <= lmax}),
        "W_std": w_std,                         # fieldnet weight_var = W_std**2 per layer
        "b_std": b_std,                         # fieldnet bias_var = b_std**2, None -> 0
        "widths": None if widths is None else list(widths[:lmax]),  # n_1 .. n_Lmax
        "input_dim": N0,
        # fieldnet's 'standard' always trains biases (lambda_b = 1): equals NT only for b_std != None
        "expect": "nngp_only" if standard_no_bias else "nngp_and_ntk",
    }


def network_layers(spec: dict, n_layers: int) -> list:
    """``[Dense, Act] * (n_layers - 1) + [Dense]`` for the first ``n_layers`` weight layers."""
    act_factory = ACTIVATIONS[spec["activation"]][0]
    layers = []
    for i in range(n_layers):
        out_dim = 1 if (i == n_layers - 1 or spec["widths"] is None) else spec["widths"][i]
        layers.append(stax.Dense(out_dim, W_std=spec["W_std"][i], b_std=spec["b_std"][i],
                                 parameterization=spec["parameterization"]))
        if i < n_layers - 1:
            layers.append(act_factory())
    return layers


def layer_kernels(spec: dict, X: np.ndarray, n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """(nngp, ntk) of the network truncated after ``n_layers`` Dense layers, float64 (N, N)."""
    _, _, kernel_fn = stax.serial(*network_layers(spec, n_layers))
    k = kernel_fn(jax.numpy.asarray(X, dtype=jax.numpy.float64), None, ("nngp", "ntk"))
    nngp, ntk = np.asarray(k.nngp), np.asarray(k.ntk)
    assert nngp.dtype == np.float64 and ntk.dtype == np.float64
    return nngp, ntk


def all_layers(spec: dict, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [layer_kernels(spec, X, l) for l in range(1, spec["max_depth"] + 2)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def bias_convention_findings(X: np.ndarray) -> dict:
    """How neural-tangents treats b_std=None vs b_std=0.0 (relu, depth 3, W_std = 1.3)."""
    out = {}
    for param in ("ntk", "standard"):
        base = dict(activation="relu", parameterization=param, widths=list(WIDTHS_A[:3]), max_depth=3)
        none = all_layers(dict(base, W_std=[1.3] * 4, b_std=[None] * 4), X)
        zero = all_layers(dict(base, W_std=[1.3] * 4, b_std=[0.0] * 4), X)
        out[param] = {
            "max_abs_diff_nngp": _max_abs(none[0], zero[0]),
            "max_abs_diff_ntk": _max_abs(none[1], zero[1]),
            "layer1_ntk_zero_minus_none": float(np.max(zero[1][0] - none[1][0])),
        }
    assert out["ntk"]["max_abs_diff_nngp"] == 0 and out["ntk"]["max_abs_diff_ntk"] == 0
    assert out["standard"]["max_abs_diff_nngp"] == 0 and out["standard"]["layer1_ntk_zero_minus_none"] == 1.0
    out["summary"] = ("parameterization='ntk': b_std=None and b_std=0.0 give identical nngp and ntk. "
                      "parameterization='standard': identical nngp; ntk with b_std=0.0 adds +1 per Dense layer "
                      "(the bias gradient, learning rate 1) which b_std=None omits, e.g. layer 1: "
                      "ntk(0.0) - ntk(None) = 1. fieldnet (standard, bias_var=0) matches b_std=0.0.")
    return out


def standard_convention_check(X: np.ndarray) -> dict:
    """Verify ntk' = n_in * nngp_in + W_std^2 ntk_in + 1 on one 'standard' network (relu, b_std=0.4)."""
    spec = dict(activation="relu", parameterization="standard", widths=list(WIDTHS_A[:2]), max_depth=2,
                W_std=[1.5] * 3, b_std=[0.4] * 3)
    nngp, ntk = all_layers(spec, X)
    gram = X @ X.T / X.shape[1]
    err1 = _max_abs(ntk[0], N0 * gram + 1.0)
    # layer 2 from layer 1: need E[phi phi] (relu arc-cosine) and E[phi' phi'] of K^(1)
    d = np.sqrt(np.diag(nngp[0]))
    rho = np.clip(nngp[0] / np.outer(d, d), -1, 1)
    th = np.arccos(rho)
    e_pp = np.outer(d, d) * (np.sin(th) + (np.pi - th) * rho) / (2 * np.pi)
    e_dd = (np.pi - th) / (2 * np.pi)
    pred2 = WIDTHS_A[0] * e_pp + 1.5 ** 2 * e_dd * ntk[0] + 1.0
    err2 = _max_abs(ntk[1], pred2) / float(np.max(np.abs(ntk[1])))
    assert err1 < 1e-12 and err2 < 1e-6, (err1, err2)
    return {"layer1_abs_err": err1, "layer2_rel_err": err2,
            "rule": "ntk^(l) = n_{l-1} * E[phi phi]^(l-1) + W_std^2 * E[phi' phi'] * ntk^(l-1) + 1 "
                    "(b_std not None), n_0 for l = 1 with E[phi phi]^(0) = x.x'/n_0"}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if nt.__version__ != NT_VERSION and "--any-version" not in argv:
        print(f"neural-tangents {nt.__version__} found; the stored reference is from {NT_VERSION} "
              "(pass --any-version to write anyway)", file=sys.stderr)
        return 1
    X = make_inputs()
    specs = group_specs()
    arrays = {"X": X}
    for spec in specs:
        nngp, ntk = all_layers(spec, X)
        # the truncated networks reproduce the full network's output layer
        full = layer_kernels(spec, X, spec["max_depth"] + 1)
        assert _max_abs(full[0], nngp[-1]) == 0 and _max_abs(full[1], ntk[-1]) == 0
        assert np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk)), spec
        arrays[f"{spec['id']}_nngp"] = nngp
        arrays[f"{spec['id']}_ntk"] = ntk
    meta = {
        "description": "neural-tangents analytic kernels for tests/test_neural_tangents.py; "
                       "gNN_nngp[l-1], gNN_ntk[l-1] = layer l of stax.serial(*[Dense, Act]*(l-1), Dense)",
        "generator": "tests/reference/make_nt_reference.py",
        "neural_tangents_version": nt.__version__,
        "jax_version": jax.__version__,
        "numpy_version": np.__version__,
        "dtype": "float64 (jax_enable_x64)",
        "seed": SEED,
        "inputs": {"N": N, "n_0": N0, "scaled_copy": "X[4] = 2.5 X[0] (rho = +1)",
                   "negated_copy": "X[5] = -X[1] (rho = -1)"},
        "mapping": {
            "weight_var": "W_std**2 (per layer)",
            "bias_var": "b_std**2, 0 for b_std=None",
            "leaky_relu(alpha)": "stax.LeakyRelu(alpha) = stax.ABRelu(alpha, 1)",
            "abrelu(a, b)": "stax.ABRelu(b, a): NT's ABRelu(a, b) = a*min(x,0) + b*max(x,0)",
            "gelu": "stax.Gelu(approximate=False)",
            "standard": "fieldnet DeepNetwork(..., parameterization='standard', widths=Dense out_dims, "
                        "input_dim=n_0); NT ntk' = n_in*nngp_in + W_std^2*ntk_in + (1 if b_std is not None)",
        },
        "bias_none_vs_zero": bias_convention_findings(X),
        "standard_parameterization_check": standard_convention_check(X),
        "groups": specs,
    }
    arrays["metadata"] = np.array(json.dumps(meta, sort_keys=True))
    os.makedirs(DATA_DIR, exist_ok=True)
    path = os.path.join(DATA_DIR, "nt_reference.npz")
    np.savez_compressed(path, **arrays)
    with open(os.path.join(DATA_DIR, "nt_reference.json"), "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(specs)} groups)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
