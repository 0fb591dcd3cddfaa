"""Command line: outputs and one-line errors (exit status 2, no traceback)."""

import subprocess
import sys

import numpy as np
import pytest

from fieldnet import DeepNetwork, kernels
from fieldnet.cli import main


@pytest.fixture
def inputs(tmp_path):
    X = np.random.default_rng(3).standard_normal((4, 6))
    path = tmp_path / "X.npy"
    np.save(path, X)
    return X, path


def test_kernel_writes_every_layer(inputs, tmp_path, capsys):
    X, path = inputs
    out = tmp_path / "K.npz"
    rc = main(["kernel", "--inputs", str(path), "--activation", "erf", "--depth", "3",
               "--weight-var", "1.5", "--bias-var", "0.1", "--out", str(out)])
    assert rc == 0 and "wrote" in capsys.readouterr().out
    data = np.load(out)
    assert set(data) == {"nngp", "ntk"}
    assert data["nngp"].shape == (4, 4, 4) and data["nngp"].dtype == np.float64
    ref = kernels(DeepNetwork(3, "erf", weight_var=1.5, bias_var=0.1), X)
    np.testing.assert_array_equal(data["nngp"], ref.nngp)
    np.testing.assert_array_equal(data["ntk"], ref.ntk)


def test_kernel_last_only_and_per_layer_variances(inputs, tmp_path):
    X, path = inputs
    out = tmp_path / "K.npz"
    assert main(["kernel", "--inputs", str(path), "--activation", "relu", "--depth", "2", "--weight-var", "2,1.5,1",
                 "--last-only", "--out", str(out)]) == 0
    data = np.load(out)
    ref = kernels(DeepNetwork(2, "relu", weight_var=[2, 1.5, 1]), X)
    np.testing.assert_allclose(data["nngp"], ref.nngp[-1], rtol=1e-14)
    np.testing.assert_allclose(data["ntk"], ref.ntk[-1], rtol=1e-14)


def test_step_ntk_diverges_but_nngp_only_works(inputs, tmp_path, capsys):
    _, path = inputs
    out = tmp_path / "K.npz"
    assert main(["kernel", "--inputs", str(path), "--activation", "step", "--depth", "2", "--out", str(out)]) == 2
    assert "diverges" in capsys.readouterr().err
    assert main(["kernel", "--inputs", str(path), "--activation", "step", "--depth", "2", "--nngp-only",
                 "--out", str(out)]) == 0
    assert set(np.load(out)) == {"nngp"}


def test_derive_and_latex(tmp_path, capsys):
    assert main(["derive", "--activation", "relu"]) == 0
    text = capsys.readouterr().out
    assert "Kab[l + 1]" in text and "closed form" in text
    assert main(["derive", "--activation", "tanh", "--latex"]) == 0
    assert "\\begin{align*}" in capsys.readouterr().out
    out = tmp_path / "d.tex"
    assert main(["latex", "--activation", "gelu", "--out", str(out)]) == 0
    assert out.read_text().startswith("\\documentclass")


def _bad_cases(tmp_path):
    nan = np.ones((3, 2))
    nan[1, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "vec.npy", np.ones(3))
    np.savez(tmp_path / "arch.npz", X=np.ones((2, 2)))
    (tmp_path / "junk.npy").write_text("not an array")
    good = tmp_path / "good.npy"
    np.save(good, np.ones((2, 3)))
    base = ["kernel", "--activation", "relu", "--depth", "2", "--out", str(tmp_path / "o.npz")]
    return [
        (["kernel", "--inputs", str(tmp_path / "missing.npy"), *base[1:]], "no such file"),
        (["kernel", "--inputs", str(tmp_path / "nan.npy"), *base[1:]], "NaN"),
        (["kernel", "--inputs", str(tmp_path / "vec.npy"), *base[1:]], "shape (N, n_0)"),
        (["kernel", "--inputs", str(tmp_path / "arch.npz"), *base[1:]], ".npz"),
        (["kernel", "--inputs", str(tmp_path / "junk.npy"), *base[1:]], "cannot read"),
        (["kernel", "--inputs", str(good), *base[1:], "--weight-var", "-1"], "--weight-var: must be > 0"),
        (["kernel", "--inputs", str(good), *base[1:], "--bias-var", "-0.5"], "--bias-var: must be >= 0"),
        (["kernel", "--inputs", str(good), "--activation", "foo", "--depth", "2", "--out", "o.npz"], "--activation: unknown"),
        (["kernel", "--inputs", str(good), *base[1:], "--weight-var", "1,2"], "one value per weight layer"),
        (["kernel", "--inputs", str(good), "--activation", "relu", "--depth", "two", "--out", "o.npz"], "--depth"),
        (["kernel", "--inputs", str(good), "--activation", "relu", "--depth", "2",
          "--out", str(tmp_path / "nowhere" / "o.npz")], "does not exist"),
        (["kernel", "--inputs", str(good), *base[1:], "--parameterization", "standard"], "--widths: required"),
        (["kernel", "--inputs", str(good), "--activation", "exp", "--depth", "12", "--weight-var", "4",
          "--out", str(tmp_path / "o.npz")], "not finite"),
        (["nonsense"], "invalid choice"),
    ]


def test_bad_input_gives_one_line_and_status_2(tmp_path, capsys):
    for argv, words in _bad_cases(tmp_path):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert words in err, (argv, err)
        assert err.count("\n") == 1 and err.startswith("fieldnet: error:"), err


def test_console_script_has_no_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "fieldnet.cli", "kernel", "--inputs", str(tmp_path / "none.npy"),
                          "--activation", "relu", "--depth", "1", "--out", str(tmp_path / "o.npz")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "no such file" in run.stderr


def test_derivations_check_reports_stale(tmp_path, capsys):
    assert main(["derivations", "--out", str(tmp_path), "--check"]) == 1
    assert "stale or missing" in capsys.readouterr().err


def test_demo_runs_and_checks_itself(capsys):
    from fieldnet.demo import run_demo

    out = run_demo(print_=lambda *a: None)
    np.testing.assert_allclose(out["ntk_ratio"], 1.0, rtol=1e-13)  # critical relu: Theta^(l) = l K^(1)
