"""fieldnet's infinite-width kernels against neural-tangents' analytic kernels.

Reference data: ``tests/data/nt_reference.npz`` (+ ``nt_reference.json``), written by
``tests/reference/make_nt_reference.py`` with neural-tangents 0.6.5 in float64 (rerun it with
``/work/ntenv/bin/python tests/reference/make_nt_reference.py``). Each group stores the NNGP
kernel and NTK of every layer l = 1 .. L_max + 1 (layer l from the truncated network
``stax.serial(*[Dense, Act] * (l - 1), Dense)``); a depth-L fieldnet network is compared on all
of its L + 1 layers against the first L + 1 stored entries.

The inputs are N = 6 vectors of dimension 5: rows 0-3 are generic, row 4 = 2.5 * row 0 and
row 5 = -row 1 (correlation rho = +1 and -1). Kernels are pairwise, so the generic block
[0:4, 0:4] is checked on its own (``test_generic_inputs``) and the full matrix, with the
degenerate pairs, separately (``test_parallel_and_antiparallel_inputs``).

Tolerance (``RTOL = 1e-6``): the acceptance criterion of the issue, "kernels agree with
neural-tangents' analytic kernels on the same inputs (relu, erf, sin, gelu, abs; several depths
and variances) to 1e-6 relative" — neural-tangents' own ReLU-family NTK can carry errors up to
about 1e-7 (its stored diagonal and the Gram matrix's diagonal differ by a rounding unit, and
arccos has an infinite slope at rho = 1), so nothing much tighter is meaningful against it.
Two measures, both at RTOL, per layer and per kernel:
  * per matrix: max |fieldnet - nt| / max |nt|;
  * elementwise: |fieldnet - nt| <= RTOL * max(|nt|, FLOOR * max |nt|), so that entries that are
    exactly or nearly zero (e.g. a ReLU kernel of anti-parallel inputs) are held to an absolute
    error of RTOL * FLOOR of the matrix scale rather than to a relative one.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import fieldnet as fn

DATA = Path(__file__).parent / "data" / "nt_reference.npz"
GENERATOR = Path(__file__).parent / "reference" / "make_nt_reference.py"

RTOL = 1e-6     # the acceptance (see the module docstring)
FLOOR = 1e-3    # elementwise: relative to max(|nt|, FLOOR * max|nt|)
GENERIC = slice(0, 4)  # rows 0-3: no two inputs parallel or anti-parallel

_DATA = np.load(DATA)
META = json.loads(str(_DATA["metadata"]))
X = _DATA["X"]
GROUPS = META["groups"]

# History: before commit c714b7c the ReLU family failed test_parallel_and_antiparallel_inputs
# without bias (arccos(rho) and sqrt(K_aa K_bb - K_ab^2) were rounded inconsistently at |rho| = 1:
# NTK errors up to 5e-5, NaN -> DivergenceError for x and -x); the generic block always passed.


def network(group: dict, depth: int) -> fn.DeepNetwork:
    """The fieldnet network matching ``group``'s first ``depth + 1`` neural-tangents Dense layers."""
    nl = depth + 1
    widths = group["widths"]
    return fn.DeepNetwork(
        depth, group["activation"],
        weight_var=[w * w for w in group["W_std"][:nl]],                          # C_W = W_std**2
        bias_var=[0.0 if b is None else b * b for b in group["b_std"][:nl]],     # C_b = b_std**2
        input_dim=group["input_dim"],
        widths=None if widths is None else widths[:depth],                       # Dense out_dims
        parameterization=group["parameterization"])


def reference(group: dict, depth: int, which: str) -> np.ndarray:
    return _DATA[f"{group['id']}_{which}"][:depth + 1]


def errors(got: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(per-matrix, elementwise-with-floor) relative error, maximised over layers."""
    got, ref = np.asarray(got, dtype=float), np.asarray(ref, dtype=float)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    scale = np.max(np.abs(ref), axis=(-2, -1), keepdims=True)
    diff = np.abs(got - ref)
    per_matrix = float(np.max(diff / scale))
    elementwise = float(np.max(diff / np.maximum(np.abs(ref), FLOOR * scale)))
    return per_matrix, elementwise


def _check(got, ref, what: str) -> None:
    per_matrix, elementwise = errors(got, ref)
    if not (per_matrix <= RTOL and elementwise <= RTOL):
        diff = np.abs(np.asarray(got) - ref) / np.max(np.abs(ref), axis=(-2, -1), keepdims=True)
        layer, a, b = np.unravel_index(np.argmax(diff), diff.shape)
        raise AssertionError(
            f"{what}: max relative difference {per_matrix:.3g} (per matrix), {elementwise:.3g} (elementwise) "
            f"> {RTOL:g}; worst at layer {layer + 1}, entry ({a}, {b}): fieldnet {got[layer, a, b]!r}, "
            f"neural-tangents {ref[layer, a, b]!r}")


def _cases():
    out = []
    for g in GROUPS:
        for depth in g["depths"]:
            out.append(pytest.param(g, depth,
                                    id=f"{g['id']}-{g['activation'].replace(' ', '')}-{g['parameterization']}"
                                       f"-b{g['b_std'][0]}-L{depth}"))
    return out


def _compare(group: dict, depth: int, rows: slice) -> None:
    res = fn.kernels(network(group, depth), X[rows])
    _check(res.nngp, reference(group, depth, "nngp")[:, rows, rows], f"{group['id']} NNGP")
    if group["expect"] == "nngp_and_ntk":
        _check(res.ntk, reference(group, depth, "ntk")[:, rows, rows], f"{group['id']} NTK")
    else:
        # neural-tangents 'standard' with b_std=None trains no bias; fieldnet's 'standard' always
        # does (lambda_b = 1): at layer 1 the NTKs differ by exactly 1, and fieldnet's is larger
        ref = reference(group, depth, "ntk")[:, rows, rows]
        np.testing.assert_allclose(res.ntk[0] - ref[0], 1.0, rtol=0, atol=1e-12)
        assert np.all(res.ntk - ref > 0.5)


def test_reference_metadata():
    assert META["neural_tangents_version"] == "0.6.5"
    assert X.shape == (6, 5) and X.dtype == np.float64
    np.testing.assert_array_equal(X[4], 2.5 * X[0])
    np.testing.assert_array_equal(X[5], -X[1])
    acts = {g["activation"] for g in GROUPS}
    assert {"relu", "erf", "sin", "gelu", "abs"} <= acts
    assert {"ntk", "standard"} == {g["parameterization"] for g in GROUPS}
    for g in GROUPS:
        n = g["max_depth"] + 1
        assert _DATA[f"{g['id']}_nngp"].shape == (n, 6, 6) == _DATA[f"{g['id']}_ntk"].shape
        assert len(g["W_std"]) == len(g["b_std"]) == n
    # neural-tangents' bias conventions, as recorded by the generator
    bias = META["bias_none_vs_zero"]
    assert bias["ntk"]["max_abs_diff_ntk"] == 0 and bias["ntk"]["max_abs_diff_nngp"] == 0
    assert bias["standard"]["max_abs_diff_nngp"] == 0 and bias["standard"]["layer1_ntk_zero_minus_none"] == 1


@pytest.mark.parametrize("group, depth", _cases())
def test_generic_inputs(group, depth):
    """Rows 0-3 (no parallel pairs): every group and depth, NNGP and NTK of every layer."""
    _compare(group, depth, GENERIC)


@pytest.mark.parametrize("group, depth", _cases())
def test_parallel_and_antiparallel_inputs(group, depth):
    """All six rows, including x_4 = 2.5 x_0 (rho = +1) and x_5 = -x_1 (rho = -1)."""
    _compare(group, depth, slice(None))


def test_layer1_is_exact():
    """Layer 1 is affine in the Gram matrix: no activation, so both sides agree to rounding."""
    for g in GROUPS:
        res = fn.kernels(network(g, 1), X)
        for which, got in (("nngp", res.nngp[0]), ("ntk", res.ntk[0])):
            if which == "ntk" and g["expect"] != "nngp_and_ntk":
                continue
            ref = reference(g, 1, which)[0]
            assert np.max(np.abs(got - ref)) <= 1e-14 * np.max(np.abs(ref)), (g["id"], which)


# --- live comparison, only where neural-tangents is importable (not in CI) ------------------

LIVE = [("relu", "ntk, small bias"), ("erf", "ntk, large variances"), ("sin", "standard, with bias"),
        ("gelu", "standard, b_std=0"), ("abs", "ntk, small bias"), ("abrelu(1.2, -0.4)", "ntk, small bias")]


@pytest.mark.parametrize("activation, label", LIVE)
def test_live_neural_tangents(activation, label):
    pytest.importorskip("neural_tangents")
    spec = importlib.util.spec_from_file_location("make_nt_reference", GENERATOR)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)  # enables jax float64
    group = next(g for g in GROUPS if g["activation"] == activation and g["label"] == label)
    depth = 3
    nngp, ntk = zip(*(gen.layer_kernels(group, X, l) for l in range(1, depth + 2)))
    nngp, ntk = np.stack(nngp), np.stack(ntk)
    # the stored reference is what this neural-tangents computes (exactly, for the same version)
    atol = 0 if gen.nt.__version__ == META["neural_tangents_version"] else RTOL
    np.testing.assert_allclose(nngp, reference(group, depth, "nngp"), rtol=atol, atol=0)
    np.testing.assert_allclose(ntk, reference(group, depth, "ntk"), rtol=atol, atol=0)
    res = fn.kernels(network(group, depth), X)
    _check(res.nngp, nngp, "live NNGP")
    _check(res.ntk, ntk, "live NTK")


def measured_table() -> list[tuple]:
    """(id, activation, label, depth, nngp/ntk errors on the generic block and on all rows)."""
    rows = []
    for g in GROUPS:
        for depth in g["depths"]:
            out = [g["id"], g["activation"], g["label"], depth]
            for sel in (GENERIC, slice(None)):
                try:
                    res = fn.kernels(network(g, depth), X[sel])
                except fn.FieldnetError as exc:
                    out += [f"{type(exc).__name__}"] * 2
                    continue
                for which, got in (("nngp", res.nngp), ("ntk", res.ntk)):
                    if which == "ntk" and g["expect"] != "nngp_and_ntk":
                        out.append("n/a")
                        continue
                    pm, el = errors(got, reference(g, depth, which)[:, sel, sel])
                    out.append(f"{pm:.1e}/{el:.1e}")
            rows.append(tuple(out))
    return rows


if __name__ == "__main__":  # print the measured differences (per-matrix/elementwise)
    print("id  | activation | variances | L | generic nngp | generic ntk | all-rows nngp | all-rows ntk")
    for row in measured_table():
        print(" | ".join(map(str, row)))
