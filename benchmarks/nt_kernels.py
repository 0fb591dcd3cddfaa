"""neural-tangents side of the benchmark: NNGP + NTK of the output layer, float64, on CPU.

Runs inside the neural-tangents virtual environment (``benchmarks/setup_nt_env.sh``), never in
fieldnet's: neural-tangents 0.6.5 imports TensorFlow and needs numpy < 2. ``bench_kernels.py``
starts it as a subprocess, one process per configuration, so that the reported peak memory
(VmHWM, see :func:`peak_rss_mib`) is this configuration's alone. fieldnet is not imported here.

    python nt_kernels.py --inputs X.npy --activation relu --depth 10 --weight-var 2 --bias-var 0.1 \\
        --repeats 3 --out-dir DIR --json result.json

The network is fieldnet's ``DeepNetwork(depth=L)``: ``stax.serial(*[Dense, Act] * L, Dense)``,
NTK parameterization, ``W_std = sqrt(C_W)``, ``b_std = sqrt(C_b)`` (the mapping validated by
``tests/test_neural_tangents.py``). Activations: ``relu`` -> ``stax.Relu()``, ``erf`` ->
``stax.Erf()`` (closed forms), ``tanh`` -> ``stax.ElementwiseNumerical(jnp.tanh, deg=25)``
(Gauss-Hermite, 25 x 25 nodes per pair, the derivative by ``jax.grad``).

Closed forms run as one jitted ``kernel_fn(x, None, ('nngp', 'ntk'))``. ``ElementwiseNumerical``
materialises a (deg, deg, N, N) array per layer (5 GB at N = 1000, 80 GB at N = 4000), so it runs
through ``nt.batch`` in blocks of ``--batch-size`` x ``--batch-size`` inputs (``auto``: the
largest divisor of N up to 200, about 200 MB per (deg, deg, B, B) array). ``--rows R`` computes
only ``kernel_fn(X[:R], X)``, R / N of the work in identical blocks: ``warm_median_scaled_s``
is then the warm time times N / R (at N = 1000, depth 3: 41.9 s scaled from 200 rows against
42.3 s for the full matrix).

Timing: the first call (tracing, XLA compilation and the computation) and then ``--repeats``
warm calls, each until the result is on the host as a numpy array; fewer warm calls when
``--max-warm-seconds`` is exceeded (at least one). The JSON holds the timings, the peak RSS, the
CPU time, the symmetry defect max|K - K^T| / max|K| (of the square part with ``--rows``) and the
count of non-finite entries of each Gram matrix; ``--out-dir`` receives ``nngp.npy`` and ``ntk.npy`` (the last call's result).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings

from measure import cpu_seconds, peak_rss_mib  # noqa: E402 (benchmarks/ is the script's folder)

T_START = time.perf_counter()

NT_VERSION = "0.6.5"
ACTIVATIONS = ("relu", "erf", "tanh")
GH_DEGREE = 25


def auto_batch_size(n: int, cap: int = 200) -> int:
    for b in range(min(cap, n), 0, -1):
        if n % b == 0:
            return b
    return 1


def symmetry_defect(k) -> float:
    import numpy as np

    scale = float(np.max(np.abs(k)))
    return float(np.max(np.abs(k - k.T))) / scale if scale > 0 else 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", required=True, help=".npy file, shape (N, n_0), float64")
    ap.add_argument("--activation", required=True, choices=ACTIVATIONS)
    ap.add_argument("--depth", type=int, required=True, help="hidden layers L (L + 1 Dense layers)")
    ap.add_argument("--weight-var", type=float, required=True, help="C_W = W_std**2")
    ap.add_argument("--bias-var", type=float, required=True, help="C_b = b_std**2")
    ap.add_argument("--repeats", type=int, default=3, help="warm calls after the first (default 3)")
    ap.add_argument("--max-warm-seconds", type=float, default=math.inf,
                    help="stop the warm calls once they have taken this long (at least one is made)")
    ap.add_argument("--batch-size", default="auto",
                    help="'auto' (tanh: largest divisor of N <= 200; closed forms: no batching), "
                         "0 for no batching, or a divisor of N")
    ap.add_argument("--rows", type=int, default=0,
                    help="compute only the first ROWS rows of the Gram matrices, kernel_fn(X[:ROWS], X) "
                         "(a multiple of the batch size; the work is then ROWS/N of the full matrix and the "
                         "reported *_scaled_s times are multiplied by N/ROWS); 0: the full matrix")
    ap.add_argument("--out-dir", help="write nngp.npy and ntk.npy here")
    ap.add_argument("--json", help="write the measurements here (also printed to stdout)")
    ap.add_argument("--any-version", action="store_true", help="accept a neural-tangents other than 0.6.5")
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore")  # ElementwiseNumerical warns on construction
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    import neural_tangents as nt
    from neural_tangents import stax

    if nt.__version__ != NT_VERSION and not args.any_version:
        print(f"neural-tangents {nt.__version__} found, the benchmark is defined for {NT_VERSION} "
              "(--any-version to run anyway)", file=sys.stderr)
        return 2
    t_import = time.perf_counter() - T_START
    rss_import = peak_rss_mib()

    X = np.load(args.inputs)
    if X.ndim != 2 or X.dtype != np.float64:
        print(f"--inputs: expected a float64 array (N, n_0), got {X.dtype} {X.shape}", file=sys.stderr)
        return 2
    n = X.shape[0]

    def act():
        if args.activation == "relu":
            return stax.Relu()
        if args.activation == "erf":
            return stax.Erf()
        return stax.ElementwiseNumerical(jnp.tanh, deg=GH_DEGREE)

    w_std, b_std = math.sqrt(args.weight_var), math.sqrt(args.bias_var)
    layers = []
    for _ in range(args.depth):
        layers += [stax.Dense(1, W_std=w_std, b_std=b_std, parameterization="ntk"), act()]
    layers.append(stax.Dense(1, W_std=w_std, b_std=b_std, parameterization="ntk"))
    _, _, kernel_fn = stax.serial(*layers)

    if args.batch_size == "auto":
        batch = auto_batch_size(n) if args.activation == "tanh" else 0
    else:
        batch = int(args.batch_size)
        if batch and n % batch:
            print(f"--batch-size: {batch} does not divide N = {n}", file=sys.stderr)
            return 2
    if batch and batch < n:
        # nt.batch jits the per-block kernel function itself
        fn = nt.batch(kernel_fn, batch_size=batch, device_count=0, store_on_device=False)
    else:
        batch = 0
        fn = jax.jit(kernel_fn, static_argnames=("get",))

    x = jnp.asarray(X, dtype=jnp.float64)
    rows = args.rows if 0 < args.rows < n else 0
    if rows and batch and rows % batch:
        print(f"--rows: {rows} is not a multiple of the batch size {batch}", file=sys.stderr)
        return 2
    x1, x2 = (x[:rows], x) if rows else (x, None)

    def compute():
        k = fn(x1, x2, ("nngp", "ntk"))
        return np.asarray(k.nngp), np.asarray(k.ntk)   # blocks until the result is on the host

    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    nngp, ntk = compute()
    first = time.perf_counter() - t0
    warm = []
    while len(warm) < args.repeats and (not warm or sum(warm) < args.max_warm_seconds):
        del nngp, ntk
        t0 = time.perf_counter()
        nngp, ntk = compute()
        warm.append(time.perf_counter() - t0)
    cpu = cpu_seconds() - cpu0
    assert nngp.dtype == np.float64 and ntk.dtype == np.float64 and nngp.shape == (rows or n, n)
    scale = n / rows if rows else 1.0
    square = slice(0, rows or n)

    result = {
        "tool": "neural-tangents",
        "versions": {"neural_tangents": nt.__version__, "jax": jax.__version__, "numpy": np.__version__},
        "layer": {"relu": "stax.Relu()", "erf": "stax.Erf()",
                  "tanh": f"stax.ElementwiseNumerical(jnp.tanh, deg={GH_DEGREE})"}[args.activation],
        "n": n, "depth": args.depth, "weight_var": args.weight_var, "bias_var": args.bias_var,
        "batch_size": batch,
        "rows": rows or n,
        "work_fraction": 1.0 / scale,
        "import_s": t_import,
        "first_call_s": first,
        "warm_s": warm,
        "warm_median_s": statistics.median(warm) if warm else None,
        "warm_median_scaled_s": statistics.median(warm) * scale if warm else None,
        "cpu_s_per_call": cpu / (1 + len(warm)),
        "peak_rss_after_import_mib": rss_import,
        "peak_rss_mib": peak_rss_mib(),
        "nonfinite": {"nngp": int(np.size(nngp) - np.count_nonzero(np.isfinite(nngp))),
                      "ntk": int(np.size(ntk) - np.count_nonzero(np.isfinite(ntk)))},
        "symmetry_defect": {"nngp": symmetry_defect(nngp[:, square]), "ntk": symmetry_defect(ntk[:, square])},
        "loadavg_end": list(os.getloadavg()),
    }
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
        np.save(os.path.join(args.out_dir, "nngp.npy"), nngp)
        np.save(os.path.join(args.out_dir, "ntk.npy"), ntk)
        result["out_dir"] = os.path.abspath(args.out_dir)
    text = json.dumps(result, indent=1)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
