"""The ``fieldnet`` command line: a thin layer over the API.

    fieldnet demo
    fieldnet kernel --inputs X.npy --activation relu --depth 3 --weight-var 2 --bias-var 0 --out K.npz
    fieldnet derive --activation erf [--latex]
    fieldnet lower --activation tanh              (the generated numba source)
    fieldnet latex --activation tanh --out tanh.tex
    fieldnet derivations [--out derivations] [--check]
    fieldnet finite-width --inputs X.npy --activation tanh --depth 3 --weight-var 1 --out FW.npz [--ntk]
    fieldnet criticality --activation tanh [--weight-var 2.5] [--bias-var 0.1] [--json] [--plot FILE.png]
    fieldnet recurrent --inputs X.npy --activation tanh --steps 4 --weight-var 1.5 --bias-var 0.1 --out C.npz

Errors (missing file, wrong shape, NaN, negative variance, unknown activation) end the command
with exit status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fieldnet.errors import FieldnetError

_FLAG_NAMES = {"weight_var": "--weight-var", "bias_var": "--bias-var", "depth": "--depth", "X": "--inputs",
               "widths": "--widths", "parameterization": "--parameterization", "learning_rate": "--learning-rate",
               "activation": "--activation"}


class CliError(Exception):
    """An error reported as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CliError(f"{message} (see '{self.prog} --help')")


def _scalar_or_list(kind, what: str):
    """An argparse type: '2' -> 2; '2,1.5,1' -> [2, 1.5, 1] (one value per layer)."""

    def parse(text: str):
        try:
            values = [kind(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} or comma-separated {what}s, got {text!r}") from None
        return values[0] if len(values) == 1 else values

    return parse


_numbers = _scalar_or_list(float, "number")
_ints = _scalar_or_list(int, "integer")


def _add_network_args(p, need_depth=True):
    p.add_argument("--activation", required=True, help="relu, erf, tanh, leaky_relu(0.1), 'x*erf(x)', ...")
    if need_depth:
        p.add_argument("--depth", type=int, required=True, help="number of hidden layers L (output layer L+1)")
        p.add_argument("--weight-var", type=_numbers, default=1.0, help="C_W (one value, or one per weight layer)")
        p.add_argument("--bias-var", type=_numbers, default=0.0, help="C_b (one value, or one per weight layer)")
        p.add_argument("--widths", type=_ints, default=None, help="hidden widths (needed by --parameterization standard)")
        p.add_argument("--learning-rate", type=float, default=1.0, help="global NTK rate eta")
    p.add_argument("--parameterization", choices=("ntk", "standard"), default="ntk")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fieldnet", description="Field theory of wide neural networks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("demo", help="derive, solve and evaluate a deep ReLU network (a few seconds)")

    p = sub.add_parser("kernel", help="NNGP and NTK of every layer on a dataset")
    p.add_argument("--inputs", required=True, help="X.npy of shape (N, n_0)")
    _add_network_args(p)
    p.add_argument("--last-only", action="store_true", help="keep only the output layer: arrays of shape (N, N)")
    p.add_argument("--nngp-only", action="store_true", help="skip the NTK (e.g. step, whose NTK diverges)")
    p.add_argument("--float32", action="store_true", help="store float32 arrays (the recursion runs in float64)")
    p.add_argument("--out", required=True, help="OUT.npz with float64 'nngp' and 'ntk', shape (L+1, N, N)")

    p = sub.add_parser("derive", help="print the derived recursions")
    _add_network_args(p, need_depth=False)
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of text")

    p = sub.add_parser("lower", help="print the generated numba source of the mean-field recursion")
    _add_network_args(p, need_depth=False)
    p.add_argument("--nngp-only", action="store_true", help="lower K alone (no NTK)")

    p = sub.add_parser("latex", help="write a standalone LaTeX document of the derivation")
    _add_network_args(p, need_depth=False)
    p.add_argument("--out", required=True, help="FILE.tex")

    p = sub.add_parser("derivations", help="regenerate the derivations/ folder (or --check it)")
    p.add_argument("--out", default="derivations")
    p.add_argument("--check", action="store_true", help="exit 1 if any document is missing or stale")

    p = sub.add_parser("criticality", help="fixed points, susceptibilities, depth scales and phase at (C_W, C_b)")
    p.add_argument("--activation", required=True, help="relu, tanh, erf, gelu, 'x*erf(x)', ...")
    p.add_argument("--weight-var", type=float, default=None,
                   help="C_W = sigma_w^2 (default: the critical value at --bias-var)")
    p.add_argument("--bias-var", type=float, default=0.0, help="C_b = sigma_b^2 (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object (infinite depth scales: null)")
    p.add_argument("--plot", default=None, help="FILE.png: phase diagram and depth scales (needs matplotlib)")

    p = sub.add_parser("finite-width", help="1/n corrections: K0, K1, four-point vertex V (and NTK) of every layer")
    p.add_argument("--inputs", required=True, help="X.npy of shape (N, n_0)")
    _add_network_args(p)
    p.add_argument("--ntk", action="store_true", help="also Theta, H1 (L+1, N, N) and the NTK fluctuation tensors A, B, D, F "
                   "(L+1, N, N, N, N): A[l,a,b,c,d] = A_(ab)(cd), D[l,a,b,c,d] = D_(ab),(cd), B and F in the order "
                   "[l, a1, a3, a2, a4]")
    p.add_argument("--out", required=True, help="OUT.npz with float64 K0, K1 (L+1, N, N) and V (L+1, N, N, N, N)")
    _add_recurrent_parser(sub)
    _add_landscape_parser(sub)
    return parser


def _load_inputs(path: str) -> np.ndarray:
    file = Path(path)
    if not file.is_file():
        raise CliError(f"--inputs: no such file: {path}")
    try:
        data = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise CliError(f"--inputs: cannot read {path} as a .npy array ({exc})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        raise CliError(f"--inputs: {path} is an .npz archive; save X with numpy.save as .npy")
    return data


def _network(args):
    from fieldnet.spec import DeepNetwork

    return DeepNetwork(args.depth, args.activation, args.weight_var, args.bias_var, widths=args.widths,
                       parameterization=args.parameterization, learning_rate=args.learning_rate)


def _out_path(value) -> Path:
    """The --out file, whose folder must exist."""
    out = Path(value)
    if not out.parent.exists():
        raise CliError(f"--out: folder {out.parent} does not exist")
    return out


def _cmd_kernel(args):
    from fieldnet.numeric.kernels import kernels

    X = _load_inputs(args.inputs)
    net = _network(args)
    out = _out_path(args.out)
    dtype = np.float32 if args.float32 else np.float64
    result = kernels(net, X, last_only=args.last_only, ntk=not args.nngp_only, dtype=dtype)
    result.save(out)
    what = "nngp" if args.nngp_only else "nngp and ntk"
    print(f"wrote {out}: {what}, {np.dtype(dtype).name}, shape {result.nngp.shape} ({net.describe()})")


def _cmd_lower(args):
    from fieldnet.numeric.lowering import lowered_source

    print(lowered_source(args.activation, args.parameterization, ("K",) if args.nngp_only else ("K", "Theta")))


def _cmd_derive(args):
    from fieldnet.export.latex import recursion_latex
    from fieldnet.symbolic.recursions import mean_field_recursion
    from fieldnet.symbolic.solve import solve_single_input

    rec = mean_field_recursion(args.activation, args.parameterization)
    print(recursion_latex(rec) if args.latex else str(rec))
    if rec.unevaluated() and not args.latex:
        print(f"  ({len(rec.unevaluated())} Gaussian average(s) have no closed form: evaluated by quadrature)")
    sol = solve_single_input(args.activation) if args.parameterization == "ntk" else None
    if sol is not None:
        if args.latex:
            from fieldnet.export.latex import latex

            print(f"K^{{(l)}}_{{aa}} = {latex(sol.K)}\n\\Theta^{{(l)}}_{{aa}} = {latex(sol.Theta)}")
        else:
            print(f"  one input, closed form (chi = {sol.chi_definition}, K_1 = K^(1)_aa):")
            print(f"    K^(l)     = {sol.K}\n    Theta^(l) = {sol.Theta}")


def _cmd_latex(args):
    from fieldnet.export.latex import latex_document

    out = _out_path(args.out)
    out.write_text(latex_document(args.activation, args.parameterization))
    print(f"wrote {out}")


def _cmd_derivations(args):
    from fieldnet.export.derivations import stale_derivations, write_derivations

    if args.check:
        stale = stale_derivations(args.out)
        if stale:
            print(f"stale or missing in {args.out}: {', '.join(stale)} (run 'fieldnet derivations')",
                  file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    for path in write_derivations(args.out):
        print(f"wrote {path}")
    return 0


def _cmd_demo(args):
    from fieldnet.demo import run_demo

    run_demo()


def _cmd_criticality(args):
    import json

    from fieldnet.analysis.criticality import signal_propagation, signal_propagation_at_critical_line
    from fieldnet.analysis.universality import universality_class

    if args.plot is not None:
        if not Path(args.plot).parent.exists():
            raise CliError(f"--plot: folder {Path(args.plot).parent} does not exist")
        from fieldnet.analysis.plots import require_matplotlib

        try:
            require_matplotlib()  # fail before printing any result
        except FieldnetError as exc:
            raise CliError(f"--{exc}") from None
    critical = None
    if args.weight_var is None:  # the point of the critical line at this C_b
        result = signal_propagation_at_critical_line(args.activation, args.bias_var)
        critical = result.weight_var
    else:
        result = signal_propagation(args.activation, args.weight_var, args.bias_var)
    weight_var = result.weight_var
    out = result.as_dict()
    if critical is not None:
        out["critical_weight_var"] = critical
    uc = universality_class(args.activation)
    if args.json:
        out["universality_class"] = uc.name
        print(json.dumps(out))
    else:
        where = " (the critical line at this C_b)" if critical is not None else ""
        print(f"{result.activation} at C_W = {weight_var:.10g}, C_b = {args.bias_var:.10g}{where}")
        rows = [("q*", result.q_star), ("c*", result.c_star), ("chi_parallel", result.chi_parallel),
                ("chi_perp = chi_1", result.chi_perp), ("chi_c", result.chi_c), ("xi_q", result.xi_q),
                ("xi_c", result.xi_c)]
        for name, value in rows:
            print(f"  {name:<17}= {value:.10g}")
        print(f"  phase            = {result.phase}")
        print(f"  {uc.describe()}")
    if args.plot is not None:
        from fieldnet.analysis.plots import criticality_figure

        criticality_figure(args.activation, weight_var, args.bias_var, path=args.plot)
        print(f"wrote {args.plot}", file=sys.stderr if args.json else sys.stdout)


def _cmd_finite_width(args):
    from fieldnet.analysis.finite_width import finite_width

    X = _load_inputs(args.inputs)
    net = _network(args)
    out = _out_path(args.out)
    result = finite_width(net, X, ntk=args.ntk)
    result.save(out)
    keys = "K0, K1, V" + (", Theta, H1, A, B, D, F" if args.ntk else "")
    shapes = f"K0 shape {result.K0.shape}, V shape {result.V.shape}" + (
        f", A, B, D, F shape {result.A.shape} (B, F: [l, a1, a3, a2, a4])" if args.ntk else "")
    print(f"wrote {out}: {keys}, float64; {shapes} ({net.describe()}); "
          "E[z_a z_b] = K0 + K1/n_{l-1}, connected 4-pt = (V + 2 perms)/n_{l-1}")


COMMANDS = {"kernel": _cmd_kernel, "lower": _cmd_lower, "derive": _cmd_derive, "latex": _cmd_latex,
            "derivations": _cmd_derivations, "demo": _cmd_demo, "criticality": _cmd_criticality}
COMMANDS["finite-width"] = _cmd_finite_width


# ---------------------------------------------------------------- fieldnet recurrent (THEORY.md section 7)

def _add_recurrent_parser(sub):
    p = sub.add_parser("recurrent", help="two-time kernels C0, C1 of a shared-weight RNN or its deep counterpart")
    p.add_argument("--inputs", required=True,
                   help="X.npy: (N, n_0) with --input-mode first, (N, T+1, n_0) with --input-mode every")
    p.add_argument("--activation", required=True, help="tanh, erf, linear, ... (C1 needs a smooth activation)")
    p.add_argument("--steps", type=int, required=True, help="T: arrays hold h^0 .. h^T")
    p.add_argument("--weight-var", type=float, default=1.0, help="C_W (W_ij ~ N(0, C_W/n))")
    p.add_argument("--bias-var", type=float, default=0.0, help="C_b (b_i ~ N(0, C_b))")
    p.add_argument("--input-var", type=float, default=1.0, help="C_U (U_ik ~ N(0, C_U/n_0))")
    p.add_argument("--architecture", choices=("recurrent", "deep"), default="recurrent")
    p.add_argument("--input-mode", choices=("first", "every"), default="first")
    p.add_argument("--mean-field-only", action="store_true", help="write C0 only (e.g. for relu, whose C1 needs deltas)")
    p.add_argument("--latex", default=None, help="also write FILE.tex: the derived recursion and one-loop formulas")
    p.add_argument("--out", required=True, help="OUT.npz with float64 C0, C1 of shape (T+1, T+1, N, N)")


def _cmd_recurrent(args):
    from fieldnet.analysis.recurrent import recurrent_finite_width, recurrent_kernel
    from fieldnet.spec import RecurrentNetwork

    X = _load_inputs(args.inputs)
    out = _out_path(args.out)
    net = RecurrentNetwork(args.activation, args.steps, args.weight_var, args.bias_var, args.input_var,
                           args.input_mode, args.architecture)
    result = recurrent_kernel(net, X) if args.mean_field_only else recurrent_finite_width(net, X)
    result.save(out)
    keys = "C0" if args.mean_field_only else "C0, C1"
    print(f"wrote {out}: {keys}, float64, shape {result.C0.shape} [s, t, a, b] ({net.describe()}); "
          "E[(1/n) sum_i h^s_{i;a} h^t_{i;b}] = C0 + C1/n + O(1/n^2)")
    if args.latex:
        from fieldnet.symbolic.recurrent import recurrent_latex_document

        Path(args.latex).write_text(recurrent_latex_document(net.activation, net.architecture, net.input_mode))
        print(f"wrote {args.latex}")


COMMANDS["recurrent"] = _cmd_recurrent


# ---------------------------------------------------------------- fieldnet landscape (THEORY.md section 8)

def _add_landscape_parser(sub):
    p = sub.add_parser("landscape", help="replica theory of a random MLP as a Hamiltonian over its inputs on the sphere")
    p.add_argument("--activation", required=True, help="tanh, relu, sin, erf, linear, 'x*erf(x)', ...")
    p.add_argument("--depth", type=int, required=True, help="number of hidden layers L")
    p.add_argument("--weight-var", type=float, required=True, help="C_W (hidden layers; also the readout's C_v)")
    p.add_argument("--bias-var", type=float, default=0.0, help="C_b (default 0)")
    p.add_argument("--alpha", type=_numbers, default=None,
                   help="hidden widths N_l = alpha N (one value or one per layer); default: the alpha -> infinity limit")
    p.add_argument("--beta", type=float, default=None, help="inverse temperature for the RS overlap, energy and entropy")
    p.add_argument("--json", action="store_true", help="print one JSON object (infinite values: null)")
    p.add_argument("--plot", default=None, help="FILE.png: the entropy s(u) against the energy u (needs matplotlib)")


def _cmd_landscape(args):
    import json

    from fieldnet.landscape.summary import landscape_summary

    if args.plot is not None:
        if not Path(args.plot).parent.exists():
            raise CliError(f"--plot: folder {Path(args.plot).parent} does not exist")
        from fieldnet.analysis.plots import require_matplotlib

        try:
            require_matplotlib()
        except FieldnetError as exc:
            raise CliError(f"--{exc}") from None
    alpha = args.alpha
    if isinstance(alpha, (list, tuple)) and len(alpha) == 1:
        alpha = alpha[0]
    out = landscape_summary(args.activation, args.depth, args.weight_var, args.bias_var, alpha=alpha, beta=args.beta)
    if args.json:
        print(json.dumps(out))
    else:
        where = "alpha -> infinity" if alpha is None else f"alpha = {alpha}"
        print(f"landscape of H(x) = sqrt(N) f(x), x on the sphere |x|^2 = N: {out['network']}, {where}")
        for key, value in out.items():
            if key in ("network", "alpha"):
                continue
            text = f"{value:.10g}" if isinstance(value, float) else str(value)
            print(f"  {key:<34}= {text}")
    if args.plot is not None:
        from fieldnet.landscape.plots import entropy_figure

        entropy_figure(args.activation, args.depth, args.weight_var, args.bias_var, alpha=alpha, path=args.plot)
        print(f"wrote {args.plot}", file=sys.stderr if args.json else sys.stdout)


COMMANDS["landscape"] = _cmd_landscape
_FLAG_NAMES.update({"alpha": "--alpha", "beta": "--beta"})
_FLAG_NAMES.update({"steps": "--steps", "input_var": "--input-var", "input_mode": "--input-mode",
                    "architecture": "--architecture"})


def _flagify(message: str) -> str:
    head, sep, rest = message.partition(":")
    return f"{_FLAG_NAMES.get(head, head)}{sep}{rest}" if sep else message


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args) or 0
    except CliError as exc:
        print(f"fieldnet: error: {exc}", file=sys.stderr)
    except FieldnetError as exc:
        print(f"fieldnet: error: {_flagify(str(exc))}", file=sys.stderr)
    except OSError as exc:
        print(f"fieldnet: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
    except KeyboardInterrupt:
        print("fieldnet: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
