"""Reverse mode: nndsl's gradients against torch.autograd (float64, 1e-6 relative) on every model
in models/ and on generated programs, plus stability, depth and second order."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nndsl
from nndsl.cli import main

from torch_eval import torch_loss_and_grads

MODELS = [p for p in sorted((Path(__file__).resolve().parent.parent / "models").glob("*.nn"))
          if nndsl.load(p).loss_name is not None]      # forward-only examples: see test_models.py


def model_data(model, rng, batch=8):
    """The model's own data (at most `batch` samples) or random data of the declared shapes."""
    data = model.default_data()
    out = {}
    for name, shape in model.input_shapes().items():
        if name in data:
            value = np.asarray(data[name])
            out[name] = value[:batch] if value.ndim > len(shape) else value
        else:
            out[name] = rng.normal(size=(batch,) + shape)
    return out


def assert_close_relative(ours, theirs, rtol=1e-6):
    scale = max(1.0, float(np.max(np.abs(theirs), initial=0.0)))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_models_gradients_match_torch(path):
    model = nndsl.load(path, dtype="float64")
    rng = np.random.default_rng(0)
    params = {k: v + rng.normal(0, 0.1, v.shape) for k, v in model.init(0).items()}
    data = model_data(model, rng)
    loss, grads = model.grad(params, **data)
    t_loss, t_grads = torch_loss_and_grads(model, params, data)
    assert loss == pytest.approx(t_loss, rel=1e-6)
    assert grads.keys() == t_grads.keys() == model.params.keys() and grads
    for name in grads:
        assert_close_relative(grads[name], t_grads[name])


# ---- generated programs ---------------------------------------------------------------------
UNARY = ["tanh", "sigmoid", "softplus", "relu", "abs", "identity", "exp", "leaky"]
BINARY = ["+", "-", "*", "max", "min", "matmul"]


@st.composite
def programs(draw):
    """A random DAG: values reused by several consumers, weights shared between layers."""
    n = draw(st.integers(1, 3))
    n_weights = draw(st.integers(1, 3))
    lines = [f"input x[{n}]", "input t"] + [f"param W{i}[{n}, {n}] = normal(0.7)" for i in range(n_weights)]
    lines += ["param b[%d] = normal(0.5)" % n]
    values = ["x", "b"]
    for k in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            fn = draw(st.sampled_from(UNARY))
            a = draw(st.sampled_from(values))
            expr = f"leaky_relu({a}, 0.1)" if fn == "leaky" else f"{fn}(0.5 {a})" if fn == "exp" else f"{fn}({a})"
        else:
            op = draw(st.sampled_from(BINARY))
            a, c = draw(st.sampled_from(values)), draw(st.sampled_from(values))
            if op == "matmul":
                expr = f"W{draw(st.integers(0, n_weights - 1))} {a}"
            elif op in ("max", "min"):
                expr = f"{op}({a}, {c})"
            else:
                expr = f"{a} {op} {c}"
        lines.append(f"h{k} = {expr}")
        values.append(f"h{k}")
    used = draw(st.lists(st.sampled_from(values[2:]), min_size=1, max_size=3))
    lines.append(f"loss L = mse(sum({' + '.join(used)}), t)")
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.integers(0, 2**16))
def test_generated_programs_match_torch(source, seed):
    model = nndsl.compile(source, dtype="float64")
    rng = np.random.default_rng(seed)
    params = model.init(seed)
    n = model.shape("x")[0]
    data = {"x": rng.normal(size=(4, n)), "t": rng.normal(size=4)}
    loss, grads = model.grad(params, **data)
    t_loss, t_grads = torch_loss_and_grads(model, params, data)
    assert loss == pytest.approx(t_loss, rel=1e-6, abs=1e-12)
    for name in grads:
        assert_close_relative(grads[name], t_grads[name])
    x_loss, x_grads = model.grad(params, wrt=["x"], **data)
    _, tx = torch_loss_and_grads(model, params, data, wrt=["x"])
    assert_close_relative(x_grads["x"], tx["x"])


def test_fan_out_is_summed_by_explicit_accumulation_nodes():
    model = nndsl.compile("input x[2]\ninput t[2]\nparam W[2, 2]\nh = tanh(W x)\ny = W h + h\n"
                          "loss L = mse(y, t)\n", dtype="float64")
    graph, _, grads = model.gradient_graph(("W",))
    accumulations = [n for n, d in graph.nodes(data=True) if d["op"] == "accumulate"]
    assert graph.nodes[grads["W"]]["op"] == "accumulate"           # W is read twice
    # exactly two: the gradients of W (read by `W x` and `W h`) and of h (read by `W h` and `+ h`)
    assert sorted(graph.nodes[graph.nodes[n]["grad_of"]]["name"] for n in accumulations) == ["W", "h"]
    assert all(len(list(graph.predecessors(n))) == 2 for n in accumulations)
    rng = np.random.default_rng(0)
    params = model.init(0)
    data = {"x": rng.normal(size=(3, 2)), "t": rng.normal(size=(3, 2))}
    ours = model.grad(params, **data)[1]["W"]
    assert_close_relative(ours, torch_loss_and_grads(model, params, data)[1]["W"])


def test_one_dimensional_example_is_exact():
    m = nndsl.compile("input x\ninput y\nparam w = 1\nŷ = x · w\nloss L = 0.5 (ŷ − y)^2\n")
    loss, grads = m.grad(None, x=2.0, y=1.0)
    assert (loss, float(grads["w"])) == (0.5, 2.0)


# ---- stability -------------------------------------------------------------------------------
F = torch.nn.functional
T_SOFT = np.array([[0.0, 1.0], [1.0, 0.0], [0.3, 0.7]])
K = np.array([1.0, 0.0, 1.0])

# Each source, with the batch-mean loss it means written with torch's own stable functions
# (logits in, never a probability), so the reference is finite at |z| = 1e4 too.
STABLE = {
    "bce": ("input z[2]\ninput t[2]\nloss L = bce(sigmoid(z), t)\n",
            lambda z: F.binary_cross_entropy_with_logits(z, torch.tensor(T_SOFT), reduction="none").mean(1).mean()),
    "cross_entropy": ("input z[2]\ninput t[2]\nloss L = cross_entropy(softmax(z), t)\n",
                      lambda z: F.cross_entropy(z, torch.tensor(T_SOFT))),
    "sparse": ("input z[2]\ninput k\nloss L = sparse_cross_entropy(softmax(z), k)\n",
               lambda z: F.cross_entropy(z, torch.tensor(K).long())),
    "log_softmax": ("input z[2]\ninput t[2]\nloss L = -sum(t * log(softmax(z)))\n",
                    lambda z: -(torch.tensor(T_SOFT) * F.log_softmax(z, -1)).sum(1).mean()),
    "log_sigmoid": ("input z[2]\ninput t[2]\nloss L = -sum(t * log(sigmoid(z)))\n",
                    lambda z: -(torch.tensor(T_SOFT) * F.logsigmoid(z)).sum(1).mean()),
}


@pytest.mark.parametrize("key", STABLE)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stable_forms_are_finite_and_correct_at_1e4(key, dtype):
    source, reference = STABLE[key]
    model = nndsl.compile(source, dtype=dtype)
    z = np.array([[1e4, -1e4], [-1e4, 1e4], [3.0, -2.0]])
    data = {"z": z, **({"t": T_SOFT} if "input t" in source else {"k": K})}
    loss, grads = model.grad(None, wrt=["z"], **data)
    zt = torch.tensor(z, requires_grad=True)
    ref = reference(zt)
    (ref_grad,) = torch.autograd.grad(ref, zt)
    assert np.isfinite(ref.item()) and ref.item() > 1e3     # the 1e4 rows cost thousands
    assert loss == pytest.approx(ref.item(), rel=1e-6)
    np.testing.assert_allclose(grads["z"], ref_grad.numpy(), rtol=1e-5, atol=1e-7)
    # and on moderate logits, tests/torch_eval.py's evaluator of the rewritten graph agrees
    small = {k: v[2:] for k, v in data.items()}
    loss_small, grads_small = model.astype("float64").grad(None, wrt=["z"], **small)
    t_small = torch_loss_and_grads(model.astype("float64"), {}, small, wrt=["z"])
    assert loss_small == pytest.approx(t_small[0], rel=1e-9)
    assert_close_relative(grads_small["z"], t_small[1]["z"])


def test_bce_of_sigmoid_at_1e4_has_the_exact_value_and_gradient():
    m = nndsl.compile("input z\ninput t\nloss L = bce(sigmoid(z), t)\n", dtype="float64")
    loss, g = m.grad(None, wrt=["z"], z=np.array([1e4, -1e4]), t=np.array([0.0, 0.0]))
    assert loss == pytest.approx(1e4 / 2)            # sample 1 costs 1e4, sample 2 costs 0
    np.testing.assert_allclose(g["z"], [0.5, 0.0])   # (sigmoid(z) - t) / batch


# ---- depth and second order ------------------------------------------------------------------
@pytest.mark.slow
def test_a_2000_layer_tanh_chain_differentiates():
    lines = ["input x", "input t", "param a = 0.9"] + ["h0 = x"]
    lines += [f"h{i} = tanh(a h{i - 1})" for i in range(1, 2001)]
    lines += ["loss L = mse(h2000, t)"]
    model = nndsl.compile("\n".join(lines) + "\n", dtype="float64")
    x, t = np.array([0.5, 1.0]), np.array([0.0, 0.0])
    loss, grads = model.grad(None, x=x, t=t)
    # by hand: forward through the chain, then back, accumulating a's gradient at every layer
    hs = [x]
    for _ in range(2000):
        hs.append(np.tanh(0.9 * hs[-1]))
    g = 2 * (hs[-1] - t) / 2                      # d(batch mean of (h - t)^2)/dh
    da = 0.0
    for i in range(2000, 0, -1):
        g = g * (1 - hs[i] ** 2)
        da += np.sum(g * hs[i - 1])
        g = g * 0.9
    assert loss == pytest.approx(np.mean((hs[-1] - t) ** 2), rel=1e-12)
    assert grads["a"] == pytest.approx(da, rel=1e-9) and da != 0
    nested = "tanh(" * 2000 + "x" + ")" * 2000
    deep = nndsl.compile(f"input x\ninput t\nloss L = mse({nested}, t)\n", dtype="float64")
    loss, grads = deep.grad(None, wrt=["x"], x=0.5, t=0.0)
    h, dx = 0.5, 1.0
    for _ in range(2000):
        h = np.tanh(h)
        dx *= 1 - h * h
    assert loss == pytest.approx(h * h, rel=1e-12)
    assert grads["x"] == pytest.approx(2 * h * dx, rel=1e-9) and dx != 0


def test_hessian_vector_product_matches_finite_differences_of_gradients():
    model = nndsl.compile("input x[3]\ninput t\nparam W[4, 3] = normal(0.5)\nparam v[4] = normal(0.5)\n"
                          "loss L = mse(v · tanh(W x), t)\n", dtype="float64")
    rng = np.random.default_rng(0)
    params = model.init(0)
    data = {"x": rng.normal(size=(5, 3)), "t": rng.normal(size=5)}
    direction = {k: rng.normal(size=v.shape) for k, v in params.items()}
    hvp = model.hvp(params, direction, **data)
    eps = 1e-5
    plus = model.grad({k: params[k] + eps * direction[k] for k in params}, **data)[1]
    minus = model.grad({k: params[k] - eps * direction[k] for k in params}, **data)[1]
    for name in params:
        np.testing.assert_allclose(hvp[name], (plus[name] - minus[name]) / (2 * eps), rtol=1e-6, atol=1e-8)


# ---- the command -----------------------------------------------------------------------------
MODEL = "input x[2]\ninput t\nparam w[2] = [0.5, -1]\nparam b = 0.1\nloss L = mse(tanh(w · x + b), t)\n" \
        "data x = [[1, 2], [3, 4], [0, 1]]\ndata t = [0, 1, 0]\n"


def test_grad_command_table_json_npz_and_check(tmp_path, capsys):
    path = tmp_path / "m.nn"
    path.write_text(MODEL)
    assert main(["grad", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert "gradient check passed" in out and out.startswith("loss L = ")
    assert main(["grad", str(path), "--format", "json", "--wrt", "x,b", "-o", str(tmp_path / "g.npz")]) == 0
    import json
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["gradients"]) == {"x", "b"}
    saved = np.load(tmp_path / "g.npz")
    model = nndsl.load(path)
    loss, expected = model.grad(None, wrt=["x", "b"], **model.default_data())
    assert doc["loss"] == pytest.approx(loss, rel=1e-6)
    np.testing.assert_allclose(doc["gradients"]["b"], expected["b"], rtol=1e-6)
    np.testing.assert_allclose(saved["b"], expected["b"], rtol=1e-6)
    np.testing.assert_allclose(saved["x"], expected["x"], rtol=1e-6)
    assert saved["x"].shape == (3, 2)


def test_grad_check_fails_above_tolerance(tmp_path, capsys):
    path = tmp_path / "m.nn"
    path.write_text(MODEL)
    # central differences are never exact (errors ~1e-10 here), so a tolerance of 0 fails
    assert main(["grad", str(path), "--check", "--tol", "0"]) == 1
    out = capsys.readouterr().out
    assert out.count("  FAIL\n") == 2 and "gradient check FAILED: tolerance 0 " in out
    path.write_text("input x\ninput t\nparam w = 0\nloss L = mse(relu(w x), t)\ndata x = [1]\ndata t = [1]\n")
    assert main(["grad", str(path), "--check"]) == 1       # relu's kink at 0: 0 (torch) vs 0.5 (numeric)
    assert "FAIL" in capsys.readouterr().out


def test_grad_without_loss_is_an_error(tmp_path, capsys):
    path = tmp_path / "m.nn"
    path.write_text("input x\ny = 2 x\n")
    assert main(["grad", str(path), "-i", "x=1"]) == 2
    assert capsys.readouterr().err == f"{path}: error: the model declares no loss; add one with: loss L = ...\n"
