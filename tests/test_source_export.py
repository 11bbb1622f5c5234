"""Gradients as source: `nndsl export --format nn|latex|python`, with and without --grad.

Every model in models/ and generated programs round-trip: the forward .nn export compiles to an
isomorphic graph (same ops, shapes and batch layout); the backward .nn export and the Python
module reproduce `Model.grad` in float64; `fmt` leaves the .nn export unchanged; every LaTeX
equation renders with matplotlib's mathtext."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import nndsl
from nndsl.cli import main
from oracles import data_for
from nndsl.fmt import format_source
from nndsl.ops import REGISTRY, Form
from nndsl.source import export, latex_equations

ROOT = Path(__file__).resolve().parent.parent
PATHS = sorted((ROOT / "models").glob("*.nn"))
WITH_LOSS = [p for p in PATHS if nndsl.load(p).loss_name is not None and nndsl.load(p).params]
N_GENERATED = int(os.environ.get("NNDSL_GENERATED_EXPORT", "60"))


def params_for(model, seed: int = 1) -> dict:
    """Parameters away from zero, so that no gradient is trivially zero."""
    rng = np.random.default_rng(seed)
    return {n: rng.normal(size=s) for n, s in model.param_shapes().items()}


def same_graph(a: nx.DiGraph, b: nx.DiGraph) -> bool:
    def node_match(x, y):
        same = (x["op"], x["shape"], x["batched"]) == (y["op"], y["shape"], y["batched"])
        if same and x["op"] == "const":
            return np.array_equal(x["value"], y["value"])
        return same and x.get("subscripts") == y.get("subscripts")
    return nx.is_isomorphic(a, b, node_match=node_match,
                            edge_match=lambda e, f: e["positions"] == f["positions"])


def assert_grads(model, exported, params, data, what):
    loss, grads = model.grad(params, **data)
    out = exported.run(params, **data)
    assert abs(float(out["objective"]) - loss) <= 1e-12 * max(1, abs(loss)), what
    for name, g in grads.items():
        np.testing.assert_allclose(out[f"dL_d{name}"], g, rtol=1e-12, atol=1e-12, err_msg=f"{what}: {name}")


def check_model(model, data, what):
    model = model.astype("float64")
    params = params_for(model)
    forward = export(model, "nn")
    assert format_source(forward) == forward
    again = nndsl.compile(forward, dtype="float64")
    assert same_graph(model.graph, again.graph), f"{what}: the forward export compiles to another graph\n{forward}"
    assert set(again.outputs) == set(model.outputs)
    if model.loss_name is None or not model.params:
        return
    backward = export(model, "nn", grad=True)
    assert format_source(backward) == backward
    assert_grads(model, nndsl.compile(backward, dtype="float64"), params, data, f"{what}\n{backward}")


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_model_round_trips_as_nn(path):
    model = nndsl.load(path)
    check_model(model, data_for(model), path.name)


def import_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def batched(model, data: dict) -> dict:
    """The data with a leading batch axis everywhere (the Python module's layout)."""
    shapes = model.input_shapes()
    return {n: np.asarray(v, dtype=np.float64)[None] if np.shape(v) == shapes[n] else np.asarray(v, dtype=np.float64)
            for n, v in data.items()}


def check_python(model, data, tmp_path, what):
    model = model.astype("float64")
    params = params_for(model)
    grad = model.loss_name is not None and bool(model.params)
    text = export(model, "python", grad=grad)
    assert "nndsl" not in text.replace("nndsl export", "")
    path = tmp_path / f"exported_{abs(hash(what))}.py"
    path.write_text(text, encoding="utf-8")
    module = import_module(path)
    feeds = batched(model, data)
    needed = {n: v for n, v in feeds.items()}
    outputs = module.forward(params, **needed)
    ours = model.run(params, **feeds)
    for name in model.outputs:
        np.testing.assert_allclose(outputs[name], ours[name], rtol=1e-12, atol=1e-12, err_msg=f"{what}: {name}")
    if grad:
        loss, grads = module.grad(params, **feeds)
        want_loss, want = model.grad(params, **feeds)
        assert abs(loss - want_loss) <= 1e-12 * max(1, abs(want_loss)), what
        for name in want:
            np.testing.assert_allclose(grads[name], want[name], rtol=1e-12, atol=1e-12, err_msg=f"{what}: {name}")


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_model_python_module_reproduces_grad(path, tmp_path):
    model = nndsl.load(path)
    check_python(model, data_for(model), tmp_path, path.name)


def check_latex(model, what):
    from matplotlib.mathtext import MathTextParser
    parser = MathTextParser("path")
    grad = model.loss_name is not None and bool(model.params)
    text = export(model, "latex", grad=grad)
    equations = latex_equations(text)
    assert equations, what
    for equation in equations:
        try:
            parser.parse(f"${equation}$")
        except ValueError as err:
            raise AssertionError(f"{what}: mathtext cannot render ${equation}$: {err}") from None
    return text


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_model_latex_renders(path):
    check_latex(nndsl.load(path), path.name)


def test_backprop_1d_latex_is_the_lecture_derivation():
    text = export(nndsl.load(ROOT / "models" / "backprop_1d.nn"), "latex", grad=True)
    assert "\\hat{y} &= x\\,w" in text
    assert "\\frac{\\partial L}{\\partial w} &= \\sum_{b}" in text
    exported = nndsl.compile(export(nndsl.load(ROOT / "models" / "backprop_1d.nn"), "nn", grad=True))
    out = exported.run(None, **exported.default_data())
    assert float(out["dL_dw"]) == 2.0 and float(out["objective"]) == 0.5


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_op_has_its_printed_forms(name):
    printed = REGISTRY[name].printed
    assert printed is not None, f"op '{name}' has no printed forms: give its defop in nndsl/ops/ a printed=..."
    if not REGISTRY[name].leaf and name != "const":
        for lang in ("nn", "latex", "python"):
            form = getattr(printed, lang)
            assert isinstance(form, Form) or callable(form), (name, lang)


@pytest.mark.parametrize("seed", range(N_GENERATED))
def test_generated_program_round_trips(seed, tmp_path):
    from test_generated import generate
    program = generate(seed)
    model = nndsl.compile(program.source, dtype="float64")
    data = {n: np.asarray(v, dtype=np.float64) for n, v in program.data.items()}
    try:
        check_model(model, data, f"generated program {seed}")
        check_python(model, data, tmp_path, f"generated program {seed}")
    except Exception as err:
        raise AssertionError(f"generated program {seed} fails:\n{program.source}") from err


# Small programs for printer cases the first generated programs do not all reach.
CASES = {
    "loss_of_a_batched_scalar_target": "input t\nparam w[3]\nloss L = mae(w, t)\n",
    "cross_entropy_over_rows": "param W[2, 3]\ninput t[2, 3]\nloss L = cross_entropy(softmax(W), t)\n",
    "transposed_literal_transposed": "param w[2]\ninput x[2]\noutput y = w + x + ([1, 2]ᵀ)ᵀ\n",
    "named_constant_read_by_the_loss": "output o = [1, 2]\nparam w[2]\ninput t[2]\nloss L = mse(w * o, t)\n",
    "constant_read_twice_and_negated": "dim m = 3\ndef f(a) = min(a, a)\nparam w\ninput t\noutput y = -m\n"
                                       "loss L = mse(f(m) * w, t)\n",
    "broadcast_of_a_batched_vector": "input x[4]\nparam w[4]\nparam W[1, 4]\n"
                                     "loss L = bce(σ(x * w), 0.5 + 0.3 * tanh(W))\n",
    "product_with_a_transposed_group": "param W[2, 2]\ninput x[2]\noutput y = W · (-[[1, 2], [3, 4]])ᵀ + x\n",
    "product_after_a_name_exponent": "param A[2, 2]\nparam v\ninput x[2, 2]\ninput t[2, 2]\n"
                                     "loss L = mse((A * A + 1)^v · (x - A), t)\n",
    "max_and_min_of_a_batched_scalar_and_vector": "input s\ninput x[2]\nparam w[2]\ninput t[2]\n"
                                                  "loss L = mse(min(s, w * x) + max(w * x, s), t)\n",
    "sparse_cross_entropy_and_nll": "input x[3]\ninput k\nparam W[4, 3]\noutput p = softmax(W x)\n"
                                    "loss L = sparse_cross_entropy(p, k) + nll(log_softmax(W x), k)\n"
                                    "data x = [[1, 2, 3], [0, -1, 2], [3, 1, 0]]\ndata k = [0, 3, 1]\n",
}


@pytest.mark.parametrize("source", CASES.values(), ids=list(CASES))
def test_printer_case_round_trips(source, tmp_path):
    model = nndsl.compile(source, dtype="float64")
    data = data_for(model)
    check_model(model, data, source)
    check_python(model, data, tmp_path, source)


def test_cli_writes_each_format(tmp_path, capsys):
    path = ROOT / "models" / "xor.nn"
    for fmt, name in (("nn", "g.nn"), ("latex", "g.tex"), ("python", "g.py")):
        assert main(["export", str(path), "--grad", "-o", str(tmp_path / name)]) == 0
        assert (tmp_path / name).read_text(encoding="utf-8") == export(nndsl.load(path), fmt, grad=True)
    assert main(["export", str(path), "--format", "nn"]) == 0
    assert "h = tanh(W1 x + b1)" in capsys.readouterr().out


def test_cli_grad_without_a_loss_is_one_line_and_exit_2(capsys):
    assert main(["export", str(ROOT / "models" / "linear.nn"), "--grad", "--format", "nn"]) == 2
    err = capsys.readouterr().err
    assert "declares no loss" in err and "Traceback" not in err


def test_exported_gradient_program_is_fmt_clean_and_recompiles_under_grad():
    """The exported program is a model in its own right: its own grad is the original's."""
    model = nndsl.load(ROOT / "models" / "residual.nn", dtype="float64")
    exported = nndsl.compile(export(model, "nn", grad=True), dtype="float64")
    params, data = params_for(model), data_for(model)
    assert np.isclose(exported.grad(params, **data)[0], model.grad(params, **data)[0], rtol=1e-12)


def test_new_functions_compile_and_compute():
    model = nndsl.compile("input x[4]\ninput g[2]\noutput y = index_grad(g, x[1:3])\noutput z = unbroadcast(x, 0)\n"
                          "output n = batch_size(x)\noutput s = batch_sum(x)\noutput o = outer(g, x)\n", dtype="float64")
    x, g = np.arange(8.0).reshape(2, 4), np.ones((2, 2))
    out = model.run(None, x=x, g=g)
    np.testing.assert_array_equal(out["y"], [[0, 1, 1, 0], [0, 1, 1, 0]])
    assert out["z"] == 28 and out["n"] == 2
    np.testing.assert_array_equal(out["s"], x.sum(0))
    assert out["o"].shape == (2, 2, 4)
    with pytest.raises(nndsl.NndslError, match="takes an indexed value as its last argument"):
        nndsl.compile("input x[4]\ninput g[2]\ny = index_grad(g, x)\n")


def fenced_blocks(path: Path) -> list[str]:
    """The fenced code blocks of a markdown file, without their fences."""
    text = path.read_text(encoding="utf-8")
    return [block.split("\n", 1)[1] for block in text.split("```")[1::2]]


@pytest.mark.parametrize("doc, model, lang, first", [
    ("README.md", "xor", "nn", "# xor.nn: the forward and backward pass"),
    ("docs/export.md", "backprop_1d", "latex", "% backprop_1d.nn"),
    ("docs/export.md", "xor", "latex", "% xor.nn"),
])
def test_the_programs_shown_in_the_docs_are_what_export_writes(doc, model, lang, first):
    (shown,) = [b for b in fenced_blocks(ROOT / doc) if b.startswith(first)]
    assert shown == export(nndsl.load(ROOT / "models" / f"{model}.nn"), lang, grad=True)
