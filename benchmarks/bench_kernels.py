"""Benchmark: fieldnet's infinite-width NNGP + NTK against neural-tangents, CPU, float64.

    python benchmarks/bench_kernels.py            # full: N = 1000, 2000, 4000; depth 3, 10; relu, erf, tanh
    python benchmarks/bench_kernels.py --quick    # N = 1000, depth 3
    python benchmarks/bench_kernels.py --sizes 1000,2000 --depths 3 --activations relu,tanh

neural-tangents runs in its own virtual environment (``benchmarks/setup_nt_env.sh``; the
interpreter is ``$NT_VENV/bin/python``, default ``benchmarks/.venv-nt``), through
``benchmarks/nt_kernels.py``; fieldnet runs in this interpreter. Every measurement is a fresh
subprocess, so peak memory (VmHWM, see :func:`peak_rss_mib`) belongs to one tool and one configuration.

What is measured, per (activation, depth L, N), on the same seeded inputs (N x 64 normals; the
first N rows of one 4000 x 64 draw):

* the output layer's NNGP kernel and NTK (fieldnet ``kernels(..., last_only=True)``,
  neural-tangents ``kernel_fn(x, None, ('nngp', 'ntk'))``), NTK parameterization, float64;
* median wall time of warm calls (``--repeats``, fewer once ``--max-warm-seconds`` is used up)
  and the ratio neural-tangents / fieldnet;
* fieldnet's start-up, per (activation, depth) at the smallest N: a fresh process with empty
  ``FIELDNET_CACHE_DIR`` and ``NUMBA_CACHE_DIR`` (code generation and numba compilation), then a
  second fresh process reusing both caches: seconds from launching the interpreter until the
  kernel computation can start (``import fieldnet`` plus a two-input call that loads the compiled
  module) and until the first result;
* peak RSS of each tool's process (whole process: interpreter, imports, inputs, result);
* each tool's maximum relative error against an mpmath reference (30 digits,
  ``benchmarks/reference.py``) on a sample of entries: the off-diagonal entries of sampled pairs
  (a, b) and the diagonals (a, a), (b, b), NNGP and NTK separately;
* the largest difference between the two tools over the whole Gram matrix, max|f - nt| / max|nt|.

neural-tangents' tanh (``ElementwiseNumerical``, 25 x 25 Gauss-Hermite nodes per entry) costs
about 10^4 times fieldnet's per entry; above ``--nt-full-work`` (N^2 L) it computes only the first
200 rows, ``kernel_fn(X[:200], X)`` in nt.batch blocks of 200 x 200, and its time is scaled by
N / 200 — the blocks all cost the same, so this is exact up to the per-call overhead (marked
with a dagger in the table).

Results: ``benchmarks/results.json`` and ``benchmarks/results.md`` (the table is also printed).
"""

from __future__ import annotations

import time

T_START = time.perf_counter()
T_START_EPOCH = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402

from measure import cpu_seconds, peak_rss_mib  # noqa: E402 (benchmarks/ is the script's folder)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SEED = 20261123
DIM = 64
# activation: (C_W, C_b). tanh at C_W = 2, C_b = 0.05 is in the chaotic phase (chi_1 = 1.05) with
# fixed-point correlation c* = 0.744: correlations stay away from 1 at every depth (max 0.6 here).
SETTINGS = {"relu": (2.0, 0.1), "erf": (2.0, 0.1), "tanh": (2.0, 0.05)}
SAMPLE_PAIRS = {"relu": 16, "erf": 16, "tanh": 10}
SAMPLE_RANGE = 200      # sampled inputs come from the first 200 rows (inside NT's row slice)
NT_ROWS = 200           # rows computed by neural-tangents when a full run is too expensive
TINY = 2                # inputs of the call that loads (or compiles) the numba module


# ---------------------------------------------------------------------------------------------
# the fieldnet worker (a fresh process per measurement)

def fieldnet_worker(args) -> int:
    import fieldnet as fn

    t_import = time.perf_counter() - T_START
    rss_import = peak_rss_mib()
    X = np.load(args.inputs)
    net = fn.DeepNetwork(depth=args.depth, activation=args.activation, weight_var=args.weight_var,
                         bias_var=args.bias_var)
    t0 = time.perf_counter()
    fn.kernels(net, X[:TINY], last_only=True, ntk=True)       # generate + compile, or load the cache
    t_setup = time.perf_counter() - t0
    ready_epoch = time.time()
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    res = fn.kernels(net, X, last_only=True, ntk=True, dtype=np.float64)
    first = time.perf_counter() - t0
    warm = []
    while len(warm) < args.repeats and (not warm or sum(warm) < args.max_warm_seconds):
        del res
        t0 = time.perf_counter()
        res = fn.kernels(net, X, last_only=True, ntk=True, dtype=np.float64)
        warm.append(time.perf_counter() - t0)
    cpu = cpu_seconds() - cpu0
    nngp, ntk = res.nngp, res.ntk
    out = {
        "tool": "fieldnet",
        "n": X.shape[0], "depth": args.depth, "weight_var": args.weight_var, "bias_var": args.bias_var,
        "start_epoch": T_START_EPOCH,
        "import_s": t_import,
        "setup_s": t_setup,
        "ready_epoch": ready_epoch,
        "first_call_s": first,
        "warm_s": warm,
        "warm_median_s": statistics.median(warm) if warm else None,
        "cpu_s_per_call": cpu / (1 + len(warm)),
        "peak_rss_after_import_mib": rss_import,
        "peak_rss_mib": peak_rss_mib(),
        "nonfinite": {"nngp": int(nngp.size - np.count_nonzero(np.isfinite(nngp))),
                      "ntk": int(ntk.size - np.count_nonzero(np.isfinite(ntk)))},
        "symmetry_defect": {"nngp": float(np.max(np.abs(nngp - nngp.T))), "ntk": float(np.max(np.abs(ntk - ntk.T)))},
        "numba_threads": _numba_threads(),
        "loadavg_end": list(os.getloadavg()),
    }
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
        np.save(os.path.join(args.out_dir, "nngp.npy"), nngp)
        np.save(os.path.join(args.out_dir, "ntk.npy"), ntk)
        out["out_dir"] = os.path.abspath(args.out_dir)
    with open(args.json, "w") as fh:
        json.dump(out, fh, indent=1)
    return 0


def _numba_threads():
    try:
        import numba

        return numba.get_num_threads()
    except Exception:  # pragma: no cover
        return None


# ---------------------------------------------------------------------------------------------
# the driver

def run_worker(cmd, env=None, label="", timeout=None) -> dict:
    """Run one measurement subprocess; return its JSON (written to the --json path in cmd)."""
    json_path = cmd[cmd.index("--json") + 1]
    load = os.getloadavg()[0]
    launch = time.time()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise RuntimeError(f"{label}: worker failed with status {proc.returncode}: {' '.join(cmd)}")
    with open(json_path) as fh:
        out = json.load(fh)
    out["launch_epoch"] = launch
    out["loadavg_start"] = load
    out["process_wall_s"] = time.time() - launch
    if "ready_epoch" in out:
        out["ready_after_launch_s"] = out["ready_epoch"] - launch
        out["interpreter_start_s"] = out["start_epoch"] - launch
        out["first_result_after_launch_s"] = out["ready_after_launch_s"] + out["first_call_s"]
    return out


def entries(pairs):
    """The sampled entries: every (a, b) and the diagonals of its inputs, as index arrays."""
    idx = []
    for a, b in pairs:
        idx += [(a, b), (a, a), (b, b)]
    idx = list(dict.fromkeys(idx))
    return idx


def compare(out_dir, idx, ref):
    """Max relative error of the stored output-layer kernels at the entries ``idx`` against ``ref``."""
    res = {}
    for name in ("nngp", "ntk"):
        k = np.load(os.path.join(out_dir, f"{name}.npy"), mmap_mode="r")
        errs, normwise = [], []
        for (a, b) in idx:
            r = ref[name][(a, b)]
            v = float(k[a, b])
            errs.append((abs(v - r) / abs(r) if np.isfinite(v) else float("inf"), (a, b)))
            # relative to the scale of the 2 x 2 block: entries near 0 (cancellation) do not dominate
            normwise.append(abs(v - r) / np.sqrt(ref[name][(a, a)] * ref[name][(b, b)]) if np.isfinite(v) else float("inf"))
        worst = max(errs)
        off = [e for e, (a, b) in errs if a != b]
        diag = [e for e, (a, b) in errs if a == b]
        res[name] = {"max_rel_err": worst[0], "worst_entry": list(worst[1]),
                     "max_rel_err_offdiag": max(off) if off else None, "max_rel_err_diag": max(diag) if diag else None,
                     "median_rel_err": float(np.median([e for e, _ in errs])),
                     "max_normwise_err": max(normwise)}
    return res


def tools_difference(f_dir, nt_dir):
    """max|fieldnet - nt| / max|nt| over the rows neural-tangents computed."""
    out = {}
    for name in ("nngp", "ntk"):
        nt = np.load(os.path.join(nt_dir, f"{name}.npy"))
        f = np.load(os.path.join(f_dir, f"{name}.npy"), mmap_mode="r")[:nt.shape[0]]
        out[name] = float(np.max(np.abs(f - nt)) / np.max(np.abs(nt)))
    return out


def reference_values(activation, depth, X, pairs, cache):
    """{'nngp': {(i, j): float}, 'ntk': {...}} at the output layer L + 1, and the sampled correlations."""
    import mpmath as mp

    cw, cb = SETTINGS[activation]
    ref = {"nngp": {}, "ntk": {}}
    rho = []
    t0 = time.perf_counter()
    for a, b in pairs:
        layers = cache.layers(activation, cw, cb, X[a], X[b], depth + 1, label=f"{activation} pair ({a}, {b})")
        cache.save()
        out = layers[depth]
        for (i, j), kf, tf in (((a, b), "K_ab", "Theta_ab"), ((a, a), "K_aa", "Theta_aa"), ((b, b), "K_bb", "Theta_bb")):
            ref["nngp"][(i, j)] = float(out[kf])
            ref["ntk"][(i, j)] = float(out[tf])
        rho.append(float(out["K_ab"] / mp.sqrt(out["K_aa"] * out["K_bb"])))
    return ref, {"pairs": [list(p) for p in pairs], "output_correlation_min": min(rho),
                 "output_correlation_max": max(rho), "seconds": time.perf_counter() - t0}


def sample_pairs(k, limit, seed=SEED + 1):
    rng = np.random.default_rng(seed)
    idx = rng.choice(limit, size=2 * k, replace=False)
    return [(int(min(a, b)), int(max(a, b))) for a, b in zip(idx[0::2], idx[1::2])]


def machine_info():
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    return info


def versions():
    import numba
    import fieldnet

    commit = None
    try:
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or None
    except OSError:
        pass
    return {"fieldnet": fieldnet.__version__, "fieldnet_commit": commit, "numba": numba.__version__,
            "numpy": np.__version__}


def fmt(v, digits=3):
    """Times and ratios: 3 significant digits, no exponent."""
    if v is None:
        return "—"
    if abs(v) >= 10 ** digits:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def fmt_err(v):
    return "—" if v is None else f"{v:.1e}"


def markdown(results) -> str:
    lines = []
    lines.append("| activation | L | N | fieldnet warm (s) | NT warm (s) | NT / fieldnet | CPU s per call fieldnet / NT "
                 "| load avg fieldnet / NT | peak RSS fieldnet / NT (MiB) "
                 "| fieldnet max rel. err NNGP / NTK | NT max rel. err NNGP / NTK |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        f, nt = r["fieldnet"], r.get("nt")
        acc_f, acc_n = r["accuracy"]["fieldnet"], r["accuracy"].get("nt")
        cells = [r["activation"], str(r["depth"]), str(r["n"]), fmt(f["warm_median_s"])]
        if nt:
            dagger = "†" if nt.get("work_fraction", 1.0) < 1.0 else ""
            cells += [fmt(nt["warm_median_scaled_s"]) + dagger, fmt(r["ratio"]),
                      f"{fmt(f['cpu_s_per_call'])} / {fmt(nt['cpu_s_per_call'] / nt.get('work_fraction', 1.0))}{dagger}",
                      f"{f['loadavg_end'][0]:.1f} / {nt['loadavg_end'][0]:.1f}",
                      f"{f['peak_rss_mib']:.0f} / {nt['peak_rss_mib']:.0f}{dagger}"]
        else:
            cells += ["—", "—", f"{fmt(f['cpu_s_per_call'])} / —", f"{f['loadavg_end'][0]:.1f} / —",
                      f"{f['peak_rss_mib']:.0f} / —"]
        cells.append(f"{fmt_err(acc_f['nngp']['max_rel_err'])} / {fmt_err(acc_f['ntk']['max_rel_err'])}")
        cells.append(f"{fmt_err(acc_n['nngp']['max_rel_err'])} / {fmt_err(acc_n['ntk']['max_rel_err'])}"
                     if acc_n else "—")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("fieldnet start-up (fresh processes, N = %d): seconds from launching the interpreter until the kernel "
                 "computation starts / until the first result" % results["settings"]["startup_n"])
    lines.append("")
    lines.append("| activation | L | empty caches: ready / first result (s) | second process, cached: ready / first result (s) |")
    lines.append("|---|---|---|---|")
    for s in results["startup"]:
        c, w = s["cold"], s["cached"]
        lines.append(f"| {s['activation']} | {s['depth']} | {c['ready_after_launch_s']:.2f} / "
                     f"{c['first_result_after_launch_s']:.2f} | {w['ready_after_launch_s']:.2f} / "
                     f"{w['first_result_after_launch_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N = 1000 and depth 3 only")
    ap.add_argument("--sizes", default="1000,2000,4000")
    ap.add_argument("--depths", default="3,10")
    ap.add_argument("--activations", default="relu,erf,tanh")
    ap.add_argument("--repeats", type=int, default=3, help="warm calls per measurement (default 3)")
    ap.add_argument("--max-warm-seconds", type=float, default=45.0,
                    help="stop the warm calls once they have taken this long (at least one is made)")
    ap.add_argument("--nt-python", default=None,
                    help="neural-tangents interpreter (default $NT_VENV/bin/python, else benchmarks/.venv-nt/bin/python)")
    ap.add_argument("--no-nt", action="store_true", help="fieldnet only")
    ap.add_argument("--nt-full-work", type=float, default=3e6,
                    help="tanh: neural-tangents computes the full matrix only when N^2 L <= this (default 3e6); "
                         "otherwise the first 200 rows, time scaled by N/200")
    ap.add_argument("--workdir", default=None, help="scratch folder (inputs, kernels, caches); default: a temp dir")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--reference-cache", default=os.path.join(HERE, "reference_cache.json"))
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--md", default=os.path.join(HERE, "results.md"))
    ap.add_argument("--render", action="store_true", help="only rewrite --md (and print it) from the --out JSON")
    # worker mode (internal)
    ap.add_argument("--worker", choices=["fieldnet"], help=argparse.SUPPRESS)
    ap.add_argument("--inputs", help=argparse.SUPPRESS)
    ap.add_argument("--activation", help=argparse.SUPPRESS)
    ap.add_argument("--depth", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--weight-var", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--bias-var", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker == "fieldnet":
        return fieldnet_worker(args)
    if args.render:
        with open(args.out) as fh:
            results = json.load(fh)
        with open(args.md, "w") as fh:
            fh.write(_md_header(results) + markdown(results))
        print(markdown(results))
        return 0

    sizes = [1000] if args.quick else sorted(int(s) for s in args.sizes.split(","))
    depths = [3] if args.quick else sorted(int(s) for s in args.depths.split(","))
    acts = [a.strip() for a in args.activations.split(",")]
    for a in acts:
        if a not in SETTINGS:
            ap.error(f"--activations: {a!r} is not one of {', '.join(SETTINGS)}")
    nt_python = None
    if not args.no_nt:
        nt_python = args.nt_python or os.path.join(os.environ.get("NT_VENV") or os.path.join(HERE, ".venv-nt"),
                                                   "bin", "python")
        if not os.path.isfile(nt_python):
            ap.error(f"no neural-tangents interpreter at {nt_python}: run benchmarks/setup_nt_env.sh "
                     "(or set NT_VENV, or pass --no-nt)")
    sys.path.insert(0, HERE)
    from reference import ReferenceCache

    workdir = args.workdir or tempfile.mkdtemp(prefix="fieldnet-bench-")
    os.makedirs(workdir, exist_ok=True)
    X_all = np.random.default_rng(SEED).standard_normal((max(sizes), DIM))
    inputs = {}
    for n in sizes:
        inputs[n] = os.path.join(workdir, f"X_{n}.npy")
        np.save(inputs[n], np.ascontiguousarray(X_all[:n]))
    limit = min(SAMPLE_RANGE, min(sizes))
    cache = ReferenceCache(args.reference_cache)
    me = [sys.executable, os.path.abspath(__file__), "--worker", "fieldnet"]
    results = {
        "machine": machine_info(), "versions": versions(),
        "settings": {"sizes": sizes, "depths": depths, "activations": {a: dict(zip(("weight_var", "bias_var"),
                                                                                   SETTINGS[a])) for a in acts},
                     "input_dim": DIM, "seed": SEED, "dtype": "float64", "parameterization": "ntk",
                     "repeats": args.repeats, "max_warm_seconds": args.max_warm_seconds, "startup_n": sizes[0],
                     "nt_full_work": args.nt_full_work, "nt_rows": NT_ROWS, "sample_range": limit},
        "loadavg_start": list(os.getloadavg()),
        "startup": [], "runs": [], "reference": {},
    }
    if nt_python:
        results["versions"]["nt_python"] = nt_python
    t_begin = time.time()
    print(f"workdir {workdir}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)

    for act in acts:
        cw, cb = SETTINGS[act]
        pairs = sample_pairs(SAMPLE_PAIRS[act], limit)
        idx = entries(pairs)
        for depth in depths:
            t0 = time.perf_counter()
            ref, info = reference_values(act, depth, X_all, pairs, cache)
            results["reference"][f"{act}-L{depth}"] = dict(info, entries=len(idx))
            print(f"[{act} L={depth}] mpmath reference: {len(idx)} entries, {time.perf_counter() - t0:.1f} s "
                  f"(output correlations {info['output_correlation_min']:.3f} .. {info['output_correlation_max']:.3f})",
                  flush=True)
            # start-up: a fresh process on empty caches, then the cached processes below
            cache_root = os.path.join(workdir, f"cache-{act}-L{depth}")
            shutil.rmtree(cache_root, ignore_errors=True)
            env = dict(os.environ, FIELDNET_CACHE_DIR=os.path.join(cache_root, "fieldnet"),
                       NUMBA_CACHE_DIR=os.path.join(cache_root, "numba"))
            common = ["--activation", act, "--depth", str(depth), "--weight-var", str(cw), "--bias-var", str(cb)]
            n0 = sizes[0]
            cold = run_worker(me + common + ["--inputs", inputs[n0], "--repeats", "0",
                                             "--json", os.path.join(workdir, f"f-cold-{act}-{depth}.json")],
                              env=env, label="fieldnet cold")
            print(f"[{act} L={depth}] fieldnet, empty caches: import {cold['import_s']:.2f} s, generate+compile "
                  f"{cold['setup_s']:.2f} s, first result after {cold['first_result_after_launch_s']:.2f} s", flush=True)
            startup = {"activation": act, "depth": depth, "n": n0, "cold": cold}
            for n in sizes:
                label = f"{act} L={depth} N={n}"
                f_dir = os.path.join(workdir, f"f-{act}-{depth}-{n}")
                f = run_worker(me + common + ["--inputs", inputs[n], "--repeats", str(args.repeats),
                                              "--max-warm-seconds", str(args.max_warm_seconds), "--out-dir", f_dir,
                                              "--json", os.path.join(workdir, f"f-{act}-{depth}-{n}.json")],
                               env=env, label=f"fieldnet {label}")
                if n == n0:
                    startup["cached"] = f
                run = {"activation": act, "depth": depth, "n": n, "weight_var": cw, "bias_var": cb, "fieldnet": f,
                       "accuracy": {"fieldnet": compare(f_dir, idx, ref)}}
                msg = (f"[{label}] fieldnet warm {f['warm_median_s']:.3f} s (ready after "
                       f"{f['ready_after_launch_s']:.2f} s, {f['peak_rss_mib']:.0f} MiB)")
                if nt_python:
                    nt_dir = os.path.join(workdir, f"nt-{act}-{depth}-{n}")
                    cmd = [nt_python, os.path.join(HERE, "nt_kernels.py"), "--inputs", inputs[n]] + common + [
                        "--repeats", str(args.repeats), "--max-warm-seconds", str(args.max_warm_seconds),
                        "--out-dir", nt_dir, "--json", os.path.join(workdir, f"nt-{act}-{depth}-{n}.json")]
                    if act == "tanh" and n * n * depth > args.nt_full_work:
                        cmd += ["--rows", str(NT_ROWS)]
                    nt = run_worker(cmd, label=f"neural-tangents {label}")
                    run["nt"] = nt
                    run["ratio"] = nt["warm_median_scaled_s"] / f["warm_median_s"]
                    run["accuracy"]["nt"] = compare(nt_dir, idx, ref)
                    run["tools_difference"] = tools_difference(f_dir, nt_dir)
                    shutil.rmtree(nt_dir, ignore_errors=True)
                    msg += (f"; NT warm {nt['warm_median_scaled_s']:.3f} s"
                            f"{' (scaled from %d rows)' % nt['rows'] if nt['work_fraction'] < 1 else ''}, "
                            f"{nt['peak_rss_mib']:.0f} MiB; NT/fieldnet {run['ratio']:.2f}")
                shutil.rmtree(f_dir, ignore_errors=True)
                a = run["accuracy"]
                msg += (f"; max rel. err fieldnet {a['fieldnet']['nngp']['max_rel_err']:.1e} / "
                        f"{a['fieldnet']['ntk']['max_rel_err']:.1e}")
                if "nt" in a:
                    msg += f", NT {a['nt']['nngp']['max_rel_err']:.1e} / {a['nt']['ntk']['max_rel_err']:.1e}"
                print(msg + f"; load {os.getloadavg()[0]:.2f}", flush=True)
                results["runs"].append(run)
            results["startup"].append(startup)
            _write(results, args, t_begin)

    results["loadavg_end"] = list(os.getloadavg())
    _write(results, args, t_begin)
    text = markdown(results)
    print()
    print(text)
    if not args.keep and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _write(results, args, t_begin):
    results["wall_s"] = time.time() - t_begin
    tmp = args.out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(results, fh, indent=1)
        fh.write("\n")
    os.replace(tmp, args.out)
    if args.md and results["runs"] and results["startup"]:
        with open(args.md, "w") as fh:
            fh.write(_md_header(results) + markdown(results))


def _md_header(results) -> str:
    m, v, s = results["machine"], results["versions"], results["settings"]
    acts = ", ".join(f"{a} (C_W = {p['weight_var']}, C_b = {p['bias_var']})" for a, p in s["activations"].items())
    return (f"# fieldnet vs neural-tangents: NNGP + NTK of the output layer, float64, CPU\n\n"
            f"Generated by `python benchmarks/bench_kernels.py` (fieldnet {v['fieldnet']} at {v.get('fieldnet_commit')}, "
            f"numba {v['numba']}; neural-tangents 0.6.5, jax 0.4.23). Machine: {m.get('cpu', '?')}, "
            f"{m['cpu_count']} CPUs; load average {results['loadavg_start'][0]:.1f} at the start"
            f"{', %.1f at the end' % results['loadavg_end'][0] if 'loadavg_end' in results else ''}. "
            f"Inputs: N x {s['input_dim']} standard normals (seed {s['seed']}); {acts}; NTK parameterization. "
            f"Warm: median of up to {s['repeats']} calls after the first. † neural-tangents computed the first "
            f"{s['nt_rows']} rows only; its time is scaled by N / {s['nt_rows']} and its RSS is that of the slice. "
            f"Errors: max |x - ref| / |ref| over sampled entries against mpmath (30 digits). CPU: user + system "
            f"seconds per call (first and warm calls), scaled like the time for †; load avg: the machine's 1-minute "
            f"load average when each tool's process ended (other jobs included)."
            f"{(' ' + results['note']) if results.get('note') else ''}\n\n")


if __name__ == "__main__":
    sys.exit(main())
