"""The slide's notation (SPEC section 3): ᵀ, superscript exponents, ⊙, indexing and slicing,
concat and argmax; slide symbols nndsl does not take name its spelling; and the commands that
let a user look inside (run --show, grad --wrt a hidden value, the values of small gradients)."""
from __future__ import annotations

import json
import textwrap

import networkx as nx
import numpy as np
import pytest
import torch

import nndsl
from nndsl.cli import main
from nndsl.fmt import format_source

DECLS = "input x[3]\ninput y\ninput t\nparam W1[4, 3]\nparam W2[4, 4]\nparam W3[2, 4]\nparam w[3]\nparam b\n" \
        "param v[4]\n"

# (pasted from a slide, its ASCII spelling)
FORMULAS = [
    ("f = 𝑾1 𝒙", "f = W1 x"),
    ("f = W2 max(0, W1 x)", "f = W2 max(0, W1 x)"),
    ("f = W3 max(0, W2 max(0, W1 x))", "f = W3 max(0, W2 max(0, W1 x))"),
    ("f = W3 · (W2 · (W1 · x))", "f = W3 @ (W2 @ (W1 @ x))"),
    ("f = step(wᵀx + b)", "f = step(transpose(w) x + b)"),
    ("f = sign(𝒘ᵀ𝒙 + b)", "f = sign(transpose(w) x + b)"),
    ("f = σ(vᵀ tanh(W1 x))", "f = sigmoid(transpose(v) tanh(W1 x))"),
    ("f = W1ᵀ W1 x", "f = transpose(W1) (W1 x)"),
    ("f = (wᵀx − y)²", "f = (transpose(w) x - y)^2"),
    ("f = 0.5 (y − wᵀx)² + b²", "f = 0.5 (y - transpose(w) x)^2 + b^2"),
    ("f = x⁻¹ ⊙ w³", "f = x^-1 * w^3"),
    ("f = (W1 x) ⊙ v", "f = (W1 x) * v"),
    ("f = W2[:, 0]ᵀ v", "f = transpose(W2[:, 0]) v"),
    ("f = x[0] W1[1:3, -1]", "f = x[0] (W1[1:3, -1])"),
]


def graph_of(line: str):
    return nndsl.compile(DECLS + line + "\n").graph


def same_graph(a, b) -> bool:
    return nx.is_isomorphic(a, b, node_match=lambda p, q: (p["op"], p["shape"]) == (q["op"], q["shape"]),
                            edge_match=lambda p, q: p["positions"] == q["positions"])


@pytest.mark.parametrize("pasted, ascii_", FORMULAS, ids=[f[1] for f in FORMULAS])
def test_a_pasted_formula_compiles_to_the_graph_of_its_ascii_spelling(pasted, ascii_):
    assert same_graph(graph_of(pasted), graph_of(ascii_))


def test_seed_formulas_with_slide_notation_give_numpys_values():
    model = nndsl.compile(DECLS + "output a = wᵀx\noutput c = (wᵀx − y)²\noutput d = x[0]\n"
                          "output e = W1[:, 0]\noutput g = x[1:]\noutput h = x[-1]\noutput k = x ⊙ w\n"
                          "output m = W1ᵀ\noutput n = x⁻¹\noutput q = concat(x, W1 x)\noutput r = argmax(W1 x)\n",
                          dtype="float64")
    params = model.init(seed=3)
    x, y = np.array([1.0, -2.0, 3.0]), 0.5
    out = model.run(params, x=x, y=y)
    W1, w = params["W1"], params["w"]
    np.testing.assert_allclose(out["a"], w @ x)
    np.testing.assert_allclose(out["c"], (w @ x - y) ** 2)
    assert out["d"] == 1.0 and out["h"] == 3.0
    np.testing.assert_allclose(out["e"], W1[:, 0])
    np.testing.assert_allclose(out["g"], x[1:])
    np.testing.assert_allclose(out["k"], x * w)
    np.testing.assert_allclose(out["m"], W1.T)
    np.testing.assert_allclose(out["n"], 1 / x)
    np.testing.assert_allclose(out["q"], np.concatenate([x, W1 @ x]))
    assert out["r"] == np.argmax(W1 @ x)


def test_an_index_is_never_a_product_with_a_literal():
    """`x[0]` on `input x[1]` used to be x times the literal [0]."""
    model = nndsl.compile("input x[1]\noutput y = x[0]\noutput z = x · [0]\n", dtype="float64")
    out = model.run(x=[7.0])
    assert out["y"] == 7.0 and out["z"] == 0.0


def test_indexing_and_concat_gradients_match_torch():
    src = """\
        input x[4]
        input t[3]
        param W[3, 4]
        param v[5]
        h = tanh(W x)
        z = concat(h[1:], x[0:2], h[:1] ⊙ x[3:])
        loss L = mse(z[:3] + v[1:4] + W[:, 2], t) + z[-1]² + vᵀ concat(h, x[:2])
        """
    model = nndsl.compile(textwrap.dedent(src), dtype="float64")
    params = model.init(seed=1)
    params["v"] = np.linspace(-1, 1, 5)
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    loss, grads = model.grad(params, wrt=["W", "v", "x"], x=x, t=t)
    W = torch.tensor(params["W"], requires_grad=True)
    v = torch.tensor(params["v"], requires_grad=True)
    X = torch.tensor(x, requires_grad=True)
    T = torch.tensor(t)
    h = torch.tanh(X @ W.T)
    z = torch.cat([h[:, 1:], X[:, 0:2], (h[:, 0] * X[:, -1])[:, None]], -1)
    per = ((z[:, :3] + v[1:4] + W[:, 2] - T) ** 2).mean(-1) + z[:, -1] ** 2 + torch.cat([h, X[:, :2]], -1) @ v
    per.mean().backward()
    assert loss == pytest.approx(per.mean().item(), rel=1e-12)
    for name, tensor in (("W", W), ("v", v), ("x", X)):
        np.testing.assert_allclose(grads[name], tensor.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("text, expected", [
    ("y = xᵀ[0] ⊙ x²", "y = xᵀ[0] ⊙ x²"),
    ("y = transpose(x)[0] * x^2", "y = transpose(x)[0] * x^2"),
    ("y = x ** 2 + x ²", "y = x^2 + x²"),
    ("y = ( x + 1 )²", "y = (x + 1)²"),
    ("y = x[ 1 : ] [0]", "y = x[1:][0]"),
    ("y = ([1, 2, 3])[0]", "y = ([1, 2, 3])[0]"),
    ("y = x · [1, 2, 3]", "y = x · [1, 2, 3]"),
    ("y = x ([1, 2, 3])", "y = x ([1, 2, 3])"),
    ("y = (x⁻¹)ᵀ", "y = (x⁻¹)ᵀ"),
    ("y = concat( x , x )[ -1 ]", "y = concat(x, x)[-1]"),
])
def test_fmt_keeps_the_users_notation(text, expected):
    assert format_source(f"input x[3]\n{text}\n") == f"input x[3]\n{expected}\n"


# ---- slide symbols: what to write instead --------------------------------------------------------
@pytest.mark.parametrize("line, expected", [
    ("y = 2 × x", "m.nn:2:7: error: '×' is not nndsl notation: write * for the elementwise product, or · "
                  "(or juxtaposition) for the matrix product\n    y = 2 × x\n          ^"),
    ("y = ∑(x)", "m.nn:2:5: error: '∑' is not nndsl notation: write sum(...)\n    y = ∑(x)\n        ^"),
    ("y = Σ(x)", "m.nn:2:5: error: unknown function 'Σ'; write sum(...)\n    y = Σ(x)\n        ^"),
    ("y = ½ x", "m.nn:2:5: error: '½' is not nndsl notation: write 0.5\n    y = ½ x\n        ^"),
    ("y = e^x", "m.nn:2:5: error: 'e' is not bound: write exp(x) for e^x\n    y = e^x\n        ^^^"),
    ("y = x^T x", "m.nn:2:5: error: 'T' is not bound: the transpose is written xᵀ or transpose(x), not x^T\n"
                  "    y = x^T x\n        ^^^"),
    ("y = softmax(x, axis=0)", "m.nn:2:16: error: softmax() takes no keyword arguments: give its arguments by "
                               "position (`axis =` is not nndsl notation)\n    y = softmax(x, axis=0)\n"
                               "                   ^^^^^"),
    ("y = exp(softmax(x, axis=0))", "m.nn:2:20: error: softmax() takes no keyword arguments: give its arguments "
                                    "by position (`axis =` is not nndsl notation)\n    y = exp(softmax(x, axis=0))\n"
                                    "                       ^^^^^"),
    ("y = sigma(x)", "m.nn:2:5: error: unknown function 'sigma'; did you mean 'sigmoid' (or 'σ')?\n"
                     "    y = sigma(x)\n        ^^^^^"),
    ("y = ReLU(x)", "m.nn:2:5: error: unknown function 'ReLU'; did you mean 'relu'?\n    y = ReLU(x)\n        ^^^^"),
    ("y = ln(x)", "m.nn:2:5: error: unknown function 'ln'; write log(...)\n    y = ln(x)\n        ^^"),
    ("y = x[3]", "m.nn:2:5: error: shape mismatch in index: index 3 is out of range for axis 0, which has size 3\n"
                 "    y = x[3]\n        ^^^^"),
    ("y = x[0.5]", "m.nn:2:7: error: an index is a whole number, not 0.5\n    y = x[0.5]\n          ^^^"),
    ("y = x[0, 1]", "m.nn:2:5: error: shape mismatch in index: 2 subscripts for a value of shape [3], which has "
                    "1 axis\n    y = x[0, 1]\n        ^^^^^^^"),
    ("y = x [1, 2, 3]", "m.nn:2:5: error: shape mismatch in index: 3 subscripts for a value of shape [3], which "
                        "has 1 axis; a `[` after a name is an index (as in Python): for a product with an array "
                        "literal write x · [...]\n    y = x [1, 2, 3]\n        ^^^^^^^^^^^"),
    ("y = x[2:1]", "m.nn:2:5: error: shape mismatch in index: 2:1 selects nothing of axis 0, which has size 3\n"
                   "    y = x[2:1]\n        ^^^^^^"),
    ("y = concat(x, 2)", "m.nn:2:5: error: shape mismatch in concat(): joins vectors or higher-rank tensors along "
                         "their last axis, not scalars: [3], []\n    y = concat(x, 2)\n        ^^^^^^^^^^^^"),
])
def test_slide_symbols_name_the_nndsl_spelling(line, expected):
    with pytest.raises(nndsl.NndslError) as info:
        nndsl.compile(f"input x[3]\n{line}\n", filename="m.nn")
    assert info.value.render() == expected


def test_a_bound_T_is_a_power():
    model = nndsl.compile("dim T = 3\ninput x\noutput y = x^T\n", dtype="float64")
    assert model.run(x=2.0)["y"] == 8.0


# ---- looking inside --------------------------------------------------------------------------------
def test_run_show_prints_hidden_values(capsys):
    assert main(["run", "models/xor.nn", "--show", "h"]) == 0
    out = capsys.readouterr().out
    assert "h  [4, 4]" in out and "p  [4]" in out
    assert main(["run", "models/xor.nn", "--show", "hh"]) == 2
    assert "cannot show 'hh': the model has no value of that name; did you mean 'h'?" in capsys.readouterr().err


def test_grad_with_respect_to_a_hidden_value_is_the_lectures_delta():
    """δ of the hidden layer: dE/dh = (1/B) w2 (p − t) ⊙ ... for the XOR model, checked by hand."""
    model = nndsl.load("models/xor.nn", dtype="float64")
    params, data = model.init(), model.default_data()
    _, grads = model.grad(params, wrt=["h"], **data)
    h = np.tanh(data["x"] @ params["W1"].T + params["b1"])
    p = 1 / (1 + np.exp(-(h @ params["w2"] + params["b2"])))
    np.testing.assert_allclose(grads["h"], np.outer(p - data["t"], params["w2"]) / 4, rtol=1e-12)


def test_grad_table_shows_small_gradients(capsys):
    assert main(["grad", "models/backprop_1d.nn"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["gradient", "shape", "norm", "min", "max", "values"]
    assert lines[2].split() == ["w", "[]", "2", "2", "2", "2"]
    assert main(["grad", "models/perceptron.nn"]) == 0
    assert "[-0.3125, -0.5]" in capsys.readouterr().out


def test_grad_check_of_a_hidden_value_is_refused(capsys):
    assert main(["grad", "models/xor.nn", "--wrt", "h", "--check"]) == 2
    assert "--check perturbs parameters and inputs; 'h' is a value computed from them" in capsys.readouterr().err


# ---- command-line details ----------------------------------------------------------------------------
def test_an_unknown_flag_shows_the_commands_usage(capsys):
    with pytest.raises(SystemExit) as info:
        main(["grad", "models/xor.nn", "--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: nndsl grad ") and err.endswith("nndsl grad: error: unrecognized arguments: --bogus\n")


def test_export_suffix_and_format_must_agree(tmp_path, capsys):
    assert main(["export", "models/xor.nn", "-o", str(tmp_path / "g.svg"), "--format", "dot"]) == 2
    assert capsys.readouterr().err == f"error: -o {tmp_path / 'g.svg'} names the format svg, but --format says dot\n"
    assert main(["export", "models/xor.nn", "-o", str(tmp_path / "g.svg")]) == 0
    assert (tmp_path / "g.svg").read_text().lstrip().startswith("<?xml")


def test_check_json_for_editors(tmp_path, capsys):
    assert main(["check", "models/xor.nn", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["model"] == "xor" and doc["parameters"] == 17
    assert {"name": "p", "op": "sigmoid", "shape": [], "params": 0, "role": "output"}.items() <= doc["values"][-2].items()
    bad = tmp_path / "bad.nn"
    bad.write_text("input x\ny = x +\n")
    assert main(["check", str(bad), "--format", "json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["error"]["span"] == [2, 8, 2, 9]
    assert doc["error"]["message"] == "expected an expression after '+', found end of line"


def test_ops_command(capsys):
    assert main(["ops"]) == 0
    listing = capsys.readouterr().out
    assert "relu(z)" in listing and "sigmoid(z), σ(z)" in listing and "concat(a, b, ...)" in listing
    assert main(["ops", "relu"]) == 0
    detail = capsys.readouterr().out
    assert detail.startswith("relu: ") and "ONNX            Relu" in detail
    assert main(["ops", "sigma"]) == 2
    assert capsys.readouterr().err == "error: unknown op 'sigma'; did you mean 'sigmoid' (or 'σ')?\n"
