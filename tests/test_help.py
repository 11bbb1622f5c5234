"""The help text is the registry's: `nndsl ops`, `nndsl ops NAME` and the tables of
docs/language.md sections 4 and 5 are rendered from the op entries, so they cannot drift."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from nndsl import NndslError
from nndsl.help import markdown_tables, op_help, ops_listing, spellings
from nndsl.ops import REGISTRY, user_functions

ROOT = Path(__file__).resolve().parent.parent


def docs_tables() -> dict:
    """{heading: table} for every Markdown table in sections 4 and 5 of docs/language.md."""
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    sections = text[text.index("## 4. "):text.index("## 6. ")]
    tables: dict = {}
    heading = None
    for block in re.split(r"\n\s*\n", sections):
        lines = block.strip().splitlines()
        if lines and lines[0].startswith("#"):
            heading = re.sub(r"^#+\s*(\d+\.\s*)?", "", lines[0])
        elif lines and all(line.startswith("|") for line in lines):
            assert heading not in tables, f"two tables under '{heading}'"
            tables[heading] = "\n".join(lines)
    return tables


def test_docs_tables_are_the_generated_ones():
    tables = markdown_tables()
    assert list(tables) == ["Elementwise", "Along the last axis", "Reductions and layout", "Losses"]
    assert docs_tables() == tables, ("docs/language.md sections 4 and 5 are out of date: "
                                     "paste the tables `python -m nndsl.help` prints")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_op_has_its_text(name):
    op = REGISTRY[name]
    assert op.doc, name
    if op.callable:
        assert op.signature and op.formula and op.derivative, name
        assert op.signature.startswith(f"{name}("), name


def test_listing_has_every_callable_function_with_its_doc():
    listing = ops_listing()
    for name in user_functions():
        assert len(re.findall(rf"(?:^  |, ){re.escape(name)}\(", listing, re.M)) == 1, name
    flat = " ".join(listing.split())
    for op in REGISTRY.values():
        if op.callable:
            assert " ".join(f"{', '.join(spellings(op))} {op.doc}".split()) in flat, op.name
    assert re.search(r"^  sigmoid\(z\), σ\(z\) +logistic sigmoid", listing, re.M)
    groups = [line for line in listing.splitlines() if line and not line.startswith(" ")]
    assert groups[:4] == ["Elementwise", "Along the last axis", "Reductions and layout", "Losses"]
    losses = listing[listing.index("\nLosses\n"):listing.index("\nMade by")]
    assert "mse(y, t)" in losses and "perceptron(y, t)" in losses and "relu(z)" not in losses
    made = listing[listing.index("\nMade by"):]
    assert "matmul" in made and "accumulate" in made and "relu" not in made
    assert all(len(line) <= 100 for line in listing.splitlines())


def test_relu_help():
    text = op_help("relu")
    assert text.startswith("relu: rectified linear unit\n")
    for words in ["usage           relu(z)", "max(0, z)", "at z = 0 it is 0 (as torch.relu)",
                  "shape           the shape of its argument: [3] → [3]; [2, 3] → [2, 3]; [] → []",
                  "differentiable  yes", "stable form     none"]:
        assert words in text, words
    (onnx,) = [line for line in text.splitlines() if line.strip().startswith("ONNX")]
    assert onnx.split() == ["ONNX", "Relu"]


def test_help_by_alias_is_the_op_help():
    assert op_help("σ") == op_help("sigmoid")
    assert "sigmoid(z), σ(z)" in op_help("σ")


def test_unknown_name_suggests_the_closest():
    with pytest.raises(NndslError, match=r"unknown op 'sigma'; did you mean 'sigmoid' \(or 'σ'\)\?"):
        op_help("sigma")
    with pytest.raises(NndslError, match="did you mean 'relu'"):
        op_help("ReLU")
    with pytest.raises(NndslError, match="nndsl ops"):
        op_help("qqqq")


def test_bce_help_names_its_stable_form():
    text = op_help("bce")
    assert "bce(sigmoid(z), t) is computed as bce_logits(z, t)" in text
    assert "clamped at 1e-12" in text and "one scalar per sample" in text
    assert "bce(sigmoid(z), t) is computed as bce_logits(z, t)" in op_help("bce_logits")
    assert "log(sigmoid(z)) is computed as log_sigmoid(z)" in op_help("sigmoid")


def test_help_of_ops_made_by_notation_and_by_the_differentiator():
    matmul = op_help("matmul")
    assert "a b, a · b" in matmul and "[2, 3], [3] → [2]" in matmul and "MatMul" in matmul
    assert "not [3], []: joins vectors or higher-rank tensors along their last axis" in op_help("concat")
    assert "made by the differentiator" in op_help("accumulate")
    assert "differentiable  no" in op_help("step")
    assert "except with respect to k" in op_help("sparse_cross_entropy")
    assert "Gather" in op_help("index") and "(subscripts [0])" in op_help("index")
    assert "Transpose" in op_help("transpose")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_op_has_help(name):
    text = op_help(name)
    assert text.startswith(f"{name}: ")
    assert all(len(line) <= 100 for line in text.splitlines())
    assert re.search(r"^  ONNX +\S", text, re.M)


def test_help_without_onnx_says_how_to_get_the_mapping(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "onnx", None)
    (line,) = [line for line in op_help("relu").splitlines() if line.strip().startswith("ONNX")]
    assert "pip install 'nndsl[onnx]'" in line
