"""Graph export: DOT renders with Graphviz, JSON and GraphML read back with networkx with every
attribute intact, and ONNX models pass the checker and compute what nndsl computes
(onnxruntime against `Model.run`, and every registry op on its own in every batch layout)."""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import networkx as nx
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import nndsl
import nndsl.export as export_mod
from nndsl import NndslError
from nndsl.cli import main
from nndsl.export import export, export_graph, read_graphml, read_json, to_dot, to_graphml, to_json
from nndsl.export_onnx import OPSET, graph_to_onnx, to_onnx
from nndsl.graph import GraphBuilder
from nndsl.interpreter import execute, schedule
from nndsl.ops import REGISTRY

from oracles import CASES, LEAVES, sample

ROOT = Path(__file__).parent.parent
TOL = 1e-5

# Small models exercising what the example models may not: every matrix-product layout, rank
# alignment of batched operands, unbatched outputs, every loss (fused or not), nested functions.
INLINE = {
    "products": """
        input x[3]
        input X[3, 2]
        input u[2]
        param W[4, 3]
        param w[3]
        param V[3, 5]
        param M[2, 3]
        a = W x                   # [m,n]·[B,n]
        b = w · x                 # [n]·[B,n]
        c = x V                   # [B,n]·[n,p]
        d = x · w                 # [B,n]·[n]
        e = W X                   # [m,n]·[B,n,p]
        f = w X                   # [n]·[B,n,p]
        g = X u                   # both batched [B,n,p]·[B,p]
        h = u · u                 # both batched dot
        i = x X                   # both batched [B,n]·[B,n,p]
        j = transpose(X) X        # both batched [B,p,n]·[B,n,p]
        k = X M                   # [B,n,p]·[p,q]
        output a; output b; output c; output d; output e; output f
        output g; output h; output i; output j; output k
    """,
    "elementwise": """
        input s
        input x[3]
        input Y[2, 3]
        param p[3]
        param q = 0.5
        a = s * x + Y             # [B] with [B,3] with [B,2,3]: aligned after the batch axis
        b = max(0, x - p) + min(x, s)
        c = leaky_relu(x, q) + step(x) + sign(x) + abs(x)
        d = sqrt(x * x + 1) + exp(-abs(x)) + log(1 + x * x) + x ^ 2 + (1 + x * x) ^ p
        e = softplus(x) + log(σ(x)) + tanh(x) + identity(x) - relu(x) / (2 + x * x)
        f = softmax(Y) + log(softmax(Y)) + log_softmax(x)
        g = sum(Y) + mean(x) + sum(s)
        h = transpose(Y) + sum(transpose(p))
        output a; output b; output c; output d; output e; output f; output g; output h
    """,
    "unbatched": """
        param W[2, 2] = [[1, 2], [3, 4]]
        output y = transpose(W) W + [[1, 0], [0, 1]]
    """,
    "bce": """
        input x[3]
        input t[3]
        param w[3]
        p = 0.5 + 0.4 tanh(w * x)
        loss L = bce(p, t)
        data t = [[0, 1, 1]]
    """,
    "bce_logits": """
        input x[3]
        input t
        param W[2, 3]
        output z = W x
        loss L = bce(σ(z), t)     # [B,2] with [B]: targets broadcast per sample
        data t = [0, 1]
    """,
    "cross_entropy": """
        input x[3]
        input t[4]
        param W[4, 3]
        z = W x
        p = exp(z) / sum(exp(z))
        loss L = cross_entropy(p, t)
    """,
    "cross_entropy_logits": """
        input X[2, 3]
        input t[4]
        param W[4, 3]
        z = transpose(W transpose(X))
        loss L = cross_entropy(softmax(z), t)
    """,
    "sparse": """
        input x[3]
        input k
        param W[4, 3]
        p = 0.25 + 0.2 tanh(W x)
        loss L = sparse_cross_entropy(p, k)
        data k = [0, 1, 2, 3]
    """,
    "sparse_logits": """
        input x[3]
        input k
        param W[4, 3]
        loss L = sparse_cross_entropy(softmax(W x), k)
        data k = [0, 1, 2, 3]
    """,
    "margins": """
        input x[3]
        input t
        param w[3]
        param b
        y = w · x + b
        loss L = hinge(y, t) + squared_hinge(y, t) + perceptron(y, t) + mse(y, t) + mae(y, t)
        data t = [-1, 1]
    """,
    "nested": """
        def affine(W, b, z) = W z + b
        def layer(W, b, z) = tanh(affine(W, b, z))
        def twice(z) = layer2(layer2(z))
        def layer2(z) = 2 z
        input x[2]
        param W1[3, 2]
        param b1[3]
        param W2[3, 3]
        param b2[3]
        h = layer(W1, b1, x)
        y = twice(layer(W2, b2, h))
        loss L = 0.5 sum(y * y)
    """,
}


def inline_model(name: str):
    source = "\n".join(line.strip() for line in INLINE[name].strip().splitlines())
    return nndsl.compile(f"model {name}\n{source}\n", filename=f"<{name}>")


MODEL_PATHS = sorted((ROOT / "models").glob("*.nn"))
MODELS = [f"inline:{name}" for name in INLINE] + [f"models/{p.name}" for p in MODEL_PATHS]


def get_model(key: str, dtype="float32"):
    if key.startswith("inline:"):
        model = inline_model(key.split(":", 1)[1])
        return model.astype(dtype) if dtype != "float32" else model
    return nndsl.load(ROOT / key, dtype=dtype)


LOSS_MODELS = [k for k in MODELS if get_model(k).loss_name is not None]


def random_data(model, batch: int, seed: int = 0) -> dict:
    """Random inputs of the declared shapes; an input whose own data are whole numbers (class
    indices, labels) draws from those values, so losses get the targets they expect."""
    rng = np.random.default_rng(seed)
    known = model.default_data()
    data = {}
    for name, shape in model.input_shapes().items():
        values = np.asarray(known.get(name, np.zeros(0)), dtype=np.float64)
        if values.size and np.all(values == np.round(values)):
            data[name] = rng.choice(np.unique(values), size=(batch,) + shape)
        else:
            data[name] = rng.normal(size=(batch,) + shape)
    return data


# ---- DOT ---------------------------------------------------------------------------------------
def render_svg(dot_text: str) -> str:
    proc = subprocess.run(["dot", "-Tsvg"], input=dot_text.encode(), capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"<svg" in proc.stdout
    return proc.stdout.decode()


def dot_nodes(dot_text: str) -> dict:
    """{node id: attribute text} of the node statements."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\s*n(\d+) \[(.*)\];$", dot_text, re.M)}


@pytest.mark.parametrize("key", MODELS)
def test_dot_renders_forward_and_backward(key):
    model = get_model(key)
    render_svg(to_dot(export_graph(model)))
    if model.loss_name is not None:
        render_svg(to_dot(export_graph(model, grad=True)))
        render_svg(to_dot(export_graph(model, grad=True), clusters=False))


@pytest.mark.parametrize("key", MODELS)
def test_dot_labels_name_op_and_shape_with_symbolic_batch(key):
    model = get_model(key)
    graph = export_graph(model, grad=model.loss_name is not None)
    nodes = dot_nodes(to_dot(graph))
    assert set(nodes) == set(graph.nodes)
    for node, attrs in graph.nodes(data=True):
        label = re.search(r'label="([^"]*)"', nodes[node]).group(1).split("\\n")
        assert label[-1] == ("B×" if attrs["batched"] else "") + "[" + ", ".join(map(str, attrs["shape"])) + "]"
        if attrs["name"]:
            assert label[0] == attrs["name"]
        if attrs["op"] != "const":
            assert label[-2] == attrs["op"]
        if attrs["role"] == "backward" and "grad_of" in attrs:
            assert any(line.startswith("∂/∂") for line in label)


def test_dot_styles_parameters_inputs_gradients_and_accumulations_apart():
    model = inline_model("nested")
    graph = export_graph(model, grad=True)
    nodes = dot_nodes(to_dot(graph))

    def kinds(predicate):
        return {nodes[n].split("label=")[0].replace('peripheries="2", ', "")    # outputs: a double border
                for n, a in graph.nodes(data=True) if predicate(a)}

    params = kinds(lambda a: a["op"] == "param")
    inputs = kinds(lambda a: a["op"] == "input")
    activations = kinds(lambda a: a["role"] == "forward" and a["op"] not in ("param", "input", "const"))
    gradients = kinds(lambda a: a["role"] == "backward" and "grad_of" in a and a["op"] not in ("accumulate", "const"))
    accumulations = kinds(lambda a: a["op"] == "accumulate")
    assert accumulations, "the model reads a value twice, so its backward graph sums gradients"
    for group in (params, inputs, activations, gradients, accumulations):
        assert len(group) == 1
    looks = [g.pop() for g in (params, inputs, activations, gradients, accumulations)]
    assert len(set(looks)) == 5
    assert "dashed" in looks[3]
    backward_edges = [line for line in to_dot(graph).splitlines() if "->" in line and "dashed" in line]
    assert len(backward_edges) == sum(1 for u, v in graph.edges if graph.nodes[v]["role"] == "backward" for _ in
                                      graph.edges[u, v]["positions"])


def test_dot_edges_follow_argument_order_and_label_positions():
    model = nndsl.compile("input x[2]\nparam W[2, 2]\nz = W x - x * x\noutput y = relu(z)\n")
    text = to_dot(export_graph(model))
    edges = re.findall(r"n(\d+) -> n(\d+)( \[.*\])?;", text)
    by_target: dict = {}
    for src, dst, look in edges:
        by_target.setdefault(int(dst), []).append((int(src), re.search(r'label="(\d+)"', look or "")))
    for node in model.graph:
        args = nndsl.graph.arguments(model.graph, node)
        got = by_target.get(node, [])
        assert [s for s, _ in got] == args
        if len(args) > 1:
            assert [int(m.group(1)) for _, m in got] == list(range(len(args)))
        else:
            assert all(m is None for _, m in got)


def test_dot_clusters_one_box_per_inlined_call():
    model = inline_model("nested")
    text = to_dot(export_graph(model))
    assert text.count('label="layer()"') == 2          # two calls of layer, two boxes
    assert text.count('label="affine()"') == 2         # each nested in its call of layer
    assert text.count('label="layer2()"') == 2
    assert text.count('label="twice()"') == 1
    # nesting: each affine box opens inside a layer box, each layer2 box inside the twice box
    stack, boxes = [], []
    for line in text.splitlines():
        if line.strip().startswith("subgraph cluster_"):
            stack.append(None)
        elif line.strip().startswith("graph [") and stack and stack[-1] is None:
            stack[-1] = re.search(r'label="(\w+)\(\)"', line).group(1)
            boxes.append((stack[-2] if len(stack) > 1 else None, stack[-1]))
        elif line.strip() == "}" and stack:
            stack.pop()
    assert not stack
    assert sorted(boxes, key=str) == sorted([(None, "layer"), ("layer", "affine"), (None, "layer"), ("layer", "affine"),
                                             (None, "twice"), ("twice", "layer2"), ("twice", "layer2")], key=str)
    assert "subgraph" not in to_dot(export_graph(model), clusters=False)
    # f(f(x)): two calls of one function feeding each other stay two boxes
    twice = nndsl.compile("def f(a) = relu(a)\ninput x[2]\ny = f(f(x))\n")
    assert to_dot(export_graph(twice)).count('label="f()"') == 2
    nested = nndsl.compile("def g(a) = relu(a)\ndef twice(z) = g(g(z))\ninput x[2]\ny = twice(twice(x))\n")
    text = to_dot(export_graph(nested))
    assert text.count('label="twice()"') == 2 and text.count('label="g()"') == 4
    # the nodes averaging the loss over the batch are no part of the function computing it
    in_function = nndsl.compile("def sq(a, b) = 0.5 (a - b)^2\ninput x\ninput t\nparam w\nloss L = sq(w x, t)\n")
    assert to_dot(export_graph(in_function, grad=True)).count('label="sq()"') == 1


# ---- JSON and GraphML --------------------------------------------------------------------------
def assert_same_graph(a: nx.DiGraph, b: nx.DiGraph):
    assert sorted(a.nodes) == sorted(b.nodes)
    assert sorted(a.edges) == sorted(b.edges)
    for where, left, right in [("node", a.nodes[n], b.nodes[n]) for n in a.nodes] + \
                              [("edge", a.edges[e], b.edges[e]) for e in a.edges] + [("graph", a.graph, b.graph)]:
        assert set(left) == set(right), (where, left, right)
        for key, value in left.items():
            other = right[key]
            if isinstance(value, np.ndarray):
                assert isinstance(other, np.ndarray) and other.dtype == value.dtype
                np.testing.assert_array_equal(other, value)
            else:
                assert type(other) is type(value) and other == value, (where, key, value, other)


@pytest.mark.parametrize("key, grad", [(k, False) for k in MODELS] + [(k, True) for k in LOSS_MODELS])
def test_json_and_graphml_round_trip_every_attribute(key, grad, tmp_path):
    model = get_model(key)
    graph = export_graph(model, grad)
    assert_same_graph(graph, read_json(to_json(graph)))
    path = tmp_path / "g.graphml"
    path.write_bytes(to_graphml(graph))
    assert_same_graph(graph, read_graphml(path))
    plain = nx.read_graphml(path)          # any GraphML reader sees the plain attributes as such
    some = next(iter(plain.nodes.values()))
    assert isinstance(some["op"], str) and isinstance(some["batched"], bool)


def test_json_is_networkx_node_link_with_documented_encoding():
    model = inline_model("unbatched")
    import json
    data = json.loads(to_json(export_graph(model)))
    assert set(data) >= {"directed", "multigraph", "graph", "nodes", "edges"}
    const = next(n for n in data["nodes"] if n["op"] == "const")
    assert const["value"] == {"ndarray": [[1.0, 0.0], [0.0, 1.0]], "dtype": "float64"}
    assert const["shape"] == [2, 2] and isinstance(const["span"], list) and const["name"] is None
    edge = data["edges"][0]
    assert isinstance(edge["positions"], list) and isinstance(edge["arg"], int)
    graph = nx.node_link_graph(data, edges="edges")         # plain networkx reads it too
    assert graph.number_of_nodes() == model.graph.number_of_nodes()


# ---- ONNX: whole models ------------------------------------------------------------------------
def onnx_session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def onnx_outputs(model, proto, data: dict) -> dict:
    session = onnx_session(proto)
    feeds = {i.name: np.asarray(data[i.name], dtype=np.float32) for i in session.get_inputs()}
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def compare(expected: dict, got: dict):
    assert set(expected) <= set(got)
    for name, value in expected.items():
        value = np.asarray(value)
        assert got[name].shape == value.shape, name
        np.testing.assert_allclose(got[name], value, rtol=TOL, atol=TOL, err_msg=name)


@pytest.mark.parametrize("key", MODELS)
def test_onnx_checks_and_matches_nndsl_on_a_batch_and_on_one_sample(key):
    model = get_model(key)
    params = model.init(seed=1)
    proto = to_onnx(model, params)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == OPSET
    names = [o.name for o in proto.graph.output]
    assert names[:len(model.outputs)] == list(model.outputs)
    if model.loss_name is not None:
        assert model.loss_name in names
    for i in proto.graph.input:
        assert i.type.tensor_type.shape.dim[0].dim_param == "B"
    assert {t.name for t in proto.graph.initializer} >= {
        n for n in model.params if any(n in node.input for node in proto.graph.node)}

    batch = random_data(model, batch=5, seed=2)
    compare(model.run(params, **batch), onnx_outputs(model, proto, batch))
    one = {name: value[0] for name, value in random_data(model, batch=1, seed=3).items()}
    expected = model.run(params, **one)
    got = onnx_outputs(model, proto, {name: value[None] for name, value in one.items()})
    targets = dict(model.outputs, **({model.loss_name: model.lowered.loss[1]} if model.loss_name else {}))
    got = {name: value[0] if model.graph.nodes[targets[name]]["batched"] else value for name, value in got.items()}
    compare(expected, got)


@pytest.mark.parametrize("key", LOSS_MODELS)
def test_onnx_of_the_backward_graph_matches_nndsl_gradients(key):
    """Not a CLI feature (export --grad refuses ONNX), but it runs every backward-only op's
    mapping on real gradient graphs."""
    model = get_model(key)
    params = model.init(seed=1)
    graph, objective, grads = model.gradient_graph(tuple(model.params))
    proto = graph_to_onnx(graph, {"objective": objective, **{f"d_{n}": g for n, g in grads.items()}}, params)
    onnx.checker.check_model(proto, full_check=True)
    data = random_data(model, batch=4, seed=5)
    loss, expected = model.grad(params, **data)
    got = onnx_outputs(model, proto, data)
    compare({"objective": np.float32(loss), **{f"d_{n}": g for n, g in expected.items()}}, got)


def test_onnx_stable_forms_stay_finite_for_large_logits():
    model = inline_model("sparse_logits")
    params = {"W": np.eye(4, 3, dtype=np.float32) * 1e4}
    data = {"x": np.array([[1.0, -1.0, 0.5], [-1.0, 1.0, 0.0]]), "k": np.array([1.0, 0.0])}
    got = onnx_outputs(model, to_onnx(model, params), data)
    compare(model.run(params, **data), got)
    assert np.all(np.isfinite(got["L"]))
    model = inline_model("bce_logits")
    params = {"W": np.array([[1e4, 0, 0], [-1e4, 0, 0]], dtype=np.float32)}
    data = {"x": np.array([[1.0, 0, 0], [-1.0, 0, 0]]), "t": np.array([0.0, 1.0])}
    got = onnx_outputs(model, to_onnx(model, params), data)
    compare(model.run(params, **data), got)
    assert np.all(np.isfinite(got["L"]))


def test_fused_ops_export_as_stable_onnx_forms():
    ops = {node.op_type for key in ("sparse_logits", "cross_entropy_logits", "bce_logits", "elementwise")
           for node in to_onnx(inline_model(key)).graph.node}
    assert {"LogSoftmax", "Softplus"} <= ops
    assert "Softmax" in ops                  # softmax itself, where the model asks for it
    sparse = {node.op_type for node in to_onnx(inline_model("sparse_logits")).graph.node}
    assert "Softmax" not in sparse and "Log" not in sparse


def test_onnx_matmul_over_a_batch_is_one_product_with_the_transposed_matrix():
    model = nndsl.compile("input x[3]\nparam W[4, 3]\noutput y = W x\n")
    nodes = [(n.op_type, list(n.input)) for n in to_onnx(model).graph.node]
    assert [op for op, _ in nodes] == ["Transpose", "MatMul"]
    assert nodes[1][1][0] == "x"


def test_onnx_float64():
    model = inline_model("products").astype("float64")
    params = model.init(seed=0)
    proto = to_onnx(model, params)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    data = random_data(model, batch=3)
    session = onnx_session(proto)
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {i.name: data[i.name] for i in session.get_inputs()})))
    for name, value in model.run(params, **data).items():
        np.testing.assert_allclose(got[name], value, rtol=1e-12, atol=1e-12)


def test_op_without_onnx_mapping_is_an_error_naming_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(REGISTRY, "tanh", dataclasses.replace(REGISTRY["tanh"], onnx=None))
    model = nndsl.compile("input x[2]\noutput y = tanh(x)\n", filename="m.nn")
    with pytest.raises(NndslError, match=r"op 'tanh' has no ONNX mapping"):
        to_onnx(model)
    path = tmp_path / "m.nn"
    path.write_text("input x[2]\noutput y = tanh(x)\n")
    assert main(["export", str(path), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "m.nn:2:12: error: op 'tanh' has no ONNX mapping" in err
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_missing_is_a_clear_error(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(NndslError, match=re.escape("ONNX export needs the onnx package: pip install 'nndsl[onnx]'")):
        to_onnx(inline_model("unbatched"))


def test_every_callable_op_has_an_onnx_mapping():
    missing = sorted(name for name, op in REGISTRY.items() if op.callable and op.onnx is None)
    assert not missing, f"ops a .nn file can call but ONNX export cannot write: {missing}"


# ---- ONNX: every op on its own, in every batch layout (the cases of tests/oracles.py) -----------
OPS = sorted(set(REGISTRY) - LEAVES)
LAYOUTS = ["batched", "param_first", "unbatched"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("opname", OPS)
def test_each_op_onnx_mapping_matches_the_interpreter(opname, layout):
    op = REGISTRY[opname]
    assert op.onnx is not None, f"op '{opname}' has no ONNX mapping (docs/export.md lists one for every op)"
    case = CASES[opname]
    rng = np.random.default_rng(0)
    builder = GraphBuilder()
    n = len(case.shapes)
    flags = {"batched": [True] * n, "param_first": [False] + [True] * (n - 1), "unbatched": [False] * n}[layout]
    leaves, feeds, params = [], {}, {}
    for i, (shape, batched) in enumerate(zip(case.shapes, flags)):
        name = f"a{i}"
        leaves.append(builder.add("input" if batched else "param", shape=shape, batched=batched, name=name))
        value = sample(case.domains[i] if case.domains else "normal", ((3,) if batched else ()) + shape, rng)
        (feeds if batched else params)[name] = value.astype(np.float32)
    explicit = dict(case.explicit)
    if "shape" in explicit:
        explicit["batched"] = any(flags)
    out = builder.add(opname, *leaves, name="out", **explicit)
    graph = builder.graph
    (expected,) = execute(schedule(graph, [out], np.float32), graph,
                          {node: (feeds if graph.nodes[node]["op"] == "input" else params)[graph.nodes[node]["name"]]
                           for node in leaves})
    proto = graph_to_onnx(graph, {"out": out}, params)
    onnx.checker.check_model(proto, full_check=True)
    session = onnx_session(proto)
    (got,) = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})
    np.testing.assert_allclose(got, np.broadcast_to(expected, got.shape), rtol=TOL, atol=TOL)
    assert got.shape == np.shape(expected)


def test_export_api_returns_text_or_bytes():
    model = inline_model("bce_logits")
    assert isinstance(export(model, "svg"), str) and isinstance(export(model, "dot", grad=True), str)
    assert export(model, "png").startswith(b"\x89PNG")
    assert isinstance(export(model, "onnx"), bytes)
    with pytest.raises(NndslError, match="unknown export format 'pdf'"):
        export(model, "pdf")


# ---- the command line --------------------------------------------------------------------------
@pytest.fixture
def xor() -> Path:
    return ROOT / "models" / "xor.nn"


@pytest.mark.parametrize("fmt, marker", [("dot", "digraph"), ("svg", "<svg"), ("json", '"nodes"'),
                                         ("graphml", "<graphml")])
@pytest.mark.parametrize("grad", [False, True], ids=["forward", "grad"])
def test_cli_text_formats_go_to_stdout(xor, capsys, fmt, marker, grad):
    assert main(["export", str(xor), "--format", fmt] + (["--grad"] if grad else [])) == 0
    out = capsys.readouterr().out
    assert marker in out
    assert ("backward" in out) == grad


@pytest.mark.parametrize("fmt", ["dot", "svg", "png", "json", "graphml", "onnx"])
def test_cli_writes_every_format_atomically(xor, tmp_path, capsys, fmt):
    out = tmp_path / f"graph.{fmt}"
    assert main(["export", str(xor), "--format", fmt, "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]          # no temporary file left
    data = out.read_bytes()
    if fmt == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    elif fmt == "onnx":
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    elif fmt == "json":
        assert read_json(out).number_of_nodes() == nndsl.load(xor).graph.number_of_nodes()
    elif fmt == "graphml":
        assert read_graphml(out).number_of_nodes() == nndsl.load(xor).graph.number_of_nodes()
    else:
        assert data.decode().lstrip().startswith("digraph" if fmt == "dot" else "<?xml")


def test_cli_format_from_the_output_extension(xor, tmp_path, capsys):
    assert main(["export", str(xor), "-o", str(tmp_path / "g.svg")]) == 0
    assert b"<svg" in (tmp_path / "g.svg").read_bytes()
    assert main(["export", str(xor), "-o", str(tmp_path / "g.gv")]) == 0
    assert (tmp_path / "g.gv").read_text().startswith("digraph")


@pytest.mark.parametrize("fmt", ["png", "onnx"])
def test_cli_binary_formats_need_an_output_file(xor, capsys, fmt):
    assert main(["export", str(xor), "--format", fmt]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == f"error: --format {fmt} is binary: give an output file with -o FILE.{fmt}"


def test_cli_onnx_carries_the_given_parameters(xor, tmp_path, capsys):
    model = nndsl.load(xor)
    params = model.init(seed=7)
    np.savez(tmp_path / "p.npz", **params)
    out = tmp_path / "m.onnx"
    assert main(["export", str(xor), "--format", "onnx", "--params", str(tmp_path / "p.npz"), "-o", str(out)]) == 0
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    for name, value in params.items():
        np.testing.assert_array_equal(stored[name], value)
    data = random_data(model, batch=4)
    compare(model.run(params, **data), onnx_outputs(model, onnx.load(str(out)), data))


def test_cli_onnx_refuses_grad(xor, tmp_path, capsys):
    assert main(["export", str(xor), "--format", "onnx", "--grad", "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--grad cannot be exported to ONNX" in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_cli_grad_needs_a_loss(tmp_path, capsys):
    path = tmp_path / "noloss.nn"
    path.write_text("input x[2]\nparam W[2, 2]\noutput y = W x\n")
    assert main(["export", str(path), "--grad"]) == 2
    assert capsys.readouterr().err.strip() == f"{path}: error: the model declares no loss; add one with: loss L = ..."


def test_cli_bad_model_and_bad_format(tmp_path, capsys):
    path = tmp_path / "bad.nn"
    path.write_text("input x[2]\ny = W x\n")
    assert main(["export", str(path)]) == 2
    assert "bad.nn:2:5: error: undefined name 'W'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(path), "--format", "pdf"])
    assert exit_info.value.code == 2


MISSING_DOT = ("error: rendering {} needs the Graphviz 'dot' program; "
               "install it with: apt-get install graphviz (or brew install graphviz)")


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_cli_missing_dot_is_explained(xor, tmp_path, capsys, monkeypatch, fmt):
    monkeypatch.setattr(export_mod.shutil, "which", lambda name, *a, **k: None)
    assert main(["export", str(xor), "--format", fmt, "-o", str(tmp_path / f"g.{fmt}")]) == 2
    assert capsys.readouterr().err.strip() == MISSING_DOT.format(fmt)
    assert not (tmp_path / f"g.{fmt}").exists()


def test_cli_missing_dot_on_path(xor, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))          # a folder without Graphviz
    assert main(["export", str(xor), "--format", "svg"]) == 2
    assert capsys.readouterr().err.strip() == MISSING_DOT.format("svg")
    assert main(["export", str(xor), "--format", "dot"]) == 0      # DOT text needs no Graphviz
    assert capsys.readouterr().out.startswith("digraph")


def test_graphviz_is_installed():
    assert shutil.which("dot"), "Graphviz 'dot' is needed by the export tests (apt-get install graphviz)"


def test_render_examples_script_exists_and_is_executable():
    script = ROOT / "docs" / "render_examples.sh"
    assert script.exists() and os.access(script, os.X_OK)
    assert "nndsl export models/xor.nn --format svg -o docs/xor.svg" in script.read_text()
