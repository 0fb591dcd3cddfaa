"""LaTeX export: the documents compile with pdflatex, and derivations/ is not stale."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import sympy as sp

from fieldnet.export.derivations import derivation_documents, stale_derivations
from fieldnet.export.latex import latex, latex_document
from fieldnet.symbolic.layers import PHI
from fieldnet.symbolic.nodes import GaussianExpectation, InputOverlap, LayerQuantity

ROOT = Path(__file__).resolve().parents[1]


def _pdflatex():
    exe = shutil.which("pdflatex")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex is missing in CI: .ci/run must install texlive-latex-base")
        pytest.skip("pdflatex not installed (CI installs it)")
    return exe


def test_printer_node_methods():
    l = sp.Symbol("l")
    za = sp.Symbol("z_a")
    K = LayerQuantity("K", l, ("b", "a"))
    assert latex(K) == "K^{(l)}_{ab}"
    assert latex(LayerQuantity("Theta", l + 1, ("a", "a"))) == r"\Theta^{(l + 1)}_{aa}"
    assert latex(K ** 2) == r"\left(K^{(l)}_{ab}\right)^{2}"
    assert latex(InputOverlap("a", "b")) == r"\frac{x_{a} \cdot x_{b}}{n_0}"
    node = GaussianExpectation(sp.diff(PHI(za), za) ** 2, (za,), [[LayerQuantity("K", l, ("a", "a"))]])
    assert latex(node) == r"\left\langle \left(\phi'\left(z_{a}\right)\right)^{2} \right\rangle_{K^{(l)}}"


def test_documents_state_conventions():
    doc = latex_document("relu")
    assert "C_W = W_{\\mathrm{std}}^2" in doc and "standard parameterization" in doc
    assert "\\arccos" in doc and "closed-form solution" in doc


def test_exported_documents_compile(tmp_path):
    exe = _pdflatex()
    docs = derivation_documents()
    docs["standard_relu.tex"] = latex_document("relu", "standard")
    docs["user_expression.tex"] = latex_document("x*erf(x) - x")
    for name, text in docs.items():
        (tmp_path / name).write_text(text)
        run = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", name], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, f"{name} failed to compile:\n{run.stdout[-2000:]}"
        assert (tmp_path / name.replace(".tex", ".pdf")).stat().st_size > 1000


def test_derivations_folder_is_up_to_date():
    stale = stale_derivations(ROOT / "derivations")
    assert not stale, f"stale derivations {stale}: regenerate with 'fieldnet derivations --out derivations'"
