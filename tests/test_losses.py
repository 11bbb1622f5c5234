"""Every loss with operands of different per-sample shapes (SPEC section 4: the per-sample loss
is the mean over the broadcast elements of one sample): prediction smaller than the target and
target smaller than the prediction, size-1 axes both ways, each operand batched or not, fused
and unfused. Loss value and gradients with respect to both operands against torch.autograd in
float64; gradients have their operand's shape (with the batch axis where it is batched); the
ONNX export computes the same loss and, from the backward graph, the same gradients."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import nndsl
from nndsl.export_onnx import graph_to_onnx, to_onnx

from oracles import sample

F = torch.nn.functional
B = 5                      # a batch size no per-sample axis has, so a misaligned batch cannot pass


def elementwise(fn):
    """Per-sample torch reference of a pairwise loss: mean over the broadcast elements."""
    return lambda y, t: fn(*torch.broadcast_tensors(y, t)).mean()


def over_classes(fn):
    """Per-sample torch reference of a cross entropy: sum over the (broadcast) class axis, mean
    over the other per-sample axes."""
    return lambda p, t: fn(*torch.broadcast_tensors(p, t)).sum(-1).mean()


def bce(p, t):
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p))


# Operand shapes (prediction, target): either side of lower rank, size-1 axes in both directions.
PAIRWISE_SHAPES = [((3,), (2, 3)), ((2, 3), (3,)), ((3,), (1, 3)), ((1, 3), (3,)), ((1, 3), (2, 1)),
                   ((2, 1), (3,)), ((), (3,)), ((3,), ()), ((2, 1, 3), (4, 1))]
CLASS_SHAPES = [((3,), (2, 3)), ((2, 3), (3,)), ((3,), (1, 3)), ((1, 3), (2, 3)), ((2, 3), (2, 1)),
                ((2, 1), (3,)), ((3,), ()), ((2, 1, 3), (4, 3))]
SPARSE_SHAPES = [((4,), ())]

# name: (expression, prediction domain, target domain, per-sample torch reference, shapes)
LOSSES = {
    "mse": ("mse(y, t)", "normal", "normal", elementwise(lambda y, t: (y - t) ** 2), PAIRWISE_SHAPES),
    "mae": ("mae(y, t)", "normal", "normal", elementwise(lambda y, t: (y - t).abs()), PAIRWISE_SHAPES),
    "bce": ("bce(y, t)", "prob", "unit", elementwise(bce), PAIRWISE_SHAPES),
    "bce_logits": ("bce(sigmoid(y), t)", "normal", "unit",
                   elementwise(lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction="none")),
                   PAIRWISE_SHAPES),
    "hinge": ("hinge(y, t)", "normal", "sign", elementwise(lambda y, t: torch.clamp(1 - t * y, min=0)),
              PAIRWISE_SHAPES),
    "squared_hinge": ("squared_hinge(y, t)", "normal", "sign",
                      elementwise(lambda y, t: torch.clamp(1 - t * y, min=0) ** 2), PAIRWISE_SHAPES),
    "perceptron": ("perceptron(y, t)", "normal", "sign", elementwise(lambda y, t: torch.clamp(-t * y, min=0)),
                   PAIRWISE_SHAPES),
    "cross_entropy": ("cross_entropy(y, t)", "prob", "unit", over_classes(lambda p, t: -t * torch.log(p)),
                      CLASS_SHAPES),
    "cross_entropy_logits": ("cross_entropy(softmax(y), t)", "normal", "unit",
                             lambda z, t: over_classes(lambda q, t: -t * q)(torch.log_softmax(z, -1), t), CLASS_SHAPES),
    "sparse_cross_entropy": ("sparse_cross_entropy(y, t)", "prob", "index",
                             lambda p, k: -torch.log(p[int(k)]), SPARSE_SHAPES),
    "nll": ("nll(y, t)", "normal", "index", lambda lp, k: -lp[int(k)], SPARSE_SHAPES),
    "nll_log_softmax": ("sparse_cross_entropy(softmax(y), t)", "normal", "index",
                        lambda z, k: -torch.log_softmax(z, -1)[int(k)], SPARSE_SHAPES),
}
# Which operand is an input (batched) and which a parameter (never batched).
LAYOUTS = [("input", "input"), ("input", "param"), ("param", "input"), ("param", "param")]
CASES = [(loss, shapes, layout) for loss, spec in LOSSES.items() for shapes in spec[4] for layout in LAYOUTS]


def case_id(case):
    loss, (ys, ts), (yk, tk) = case
    return f"{loss}-{yk}{list(ys)}-{tk}{list(ts)}".replace(" ", "")


def declaration(kind: str, name: str, shape: tuple) -> str:
    return f"{kind} {name}" + (f"[{', '.join(map(str, shape))}]" if shape else "")


def loss_case(loss: str, shapes, layout, dtype="float64", seed=0):
    """(model, params, data, {name: value}, {name: batched}) for one case."""
    expression, y_domain, t_domain, _, _ = LOSSES[loss]
    source = "\n".join(["model m", declaration(layout[0], "y", shapes[0]), declaration(layout[1], "t", shapes[1]),
                        f"loss L = {expression}", ""])
    model = nndsl.compile(source, dtype=dtype)
    rng = np.random.default_rng(seed)
    values, batched = {}, {}
    for name, shape, kind, domain in zip("yt", shapes, layout, (y_domain, t_domain)):
        batched[name] = kind == "input"
        values[name] = sample(domain, ((B,) if batched[name] else ()) + shape, rng)
    params = {n: v for n, v in values.items() if not batched[n]}
    data = {n: v for n, v in values.items() if batched[n]}
    return model, params, data, values, batched


def torch_reference(loss: str, values: dict, batched: dict):
    """Per-sample losses, the batch-mean objective and its gradients, by torch.autograd."""
    fn = LOSSES[loss][3]
    tensors = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in values.items()}
    if not any(batched.values()):
        per_sample = fn(tensors["y"], tensors["t"])
        objective = per_sample
    else:
        per_sample = torch.stack([fn(*[tensors[n][b] if batched[n] else tensors[n] for n in "yt"]) for b in range(B)])
        objective = per_sample.mean()
    differentiable = [n for n in "yt" if not (LOSSES[loss][2] == "index" and n == "t")]
    grads = torch.autograd.grad(objective, [tensors[n] for n in differentiable])
    grads = dict(zip(differentiable, (g.numpy() for g in grads)))
    grads.setdefault("t", np.zeros_like(values["t"]))       # class indices: no gradient
    return per_sample.detach().numpy(), objective.item(), grads


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_loss_value_and_gradients_match_torch(case):
    loss, shapes, layout = case
    model, params, data, values, batched = loss_case(loss, shapes, layout)
    per_sample, objective, expected = torch_reference(loss, values, batched)

    value, grads = model.grad(params, wrt=["y", "t"], **data)
    np.testing.assert_allclose(value, objective, rtol=1e-12, atol=1e-14)
    if data:
        np.testing.assert_allclose(model.run(params, **data)["L"], per_sample, rtol=1e-12, atol=1e-14)
    for name in "yt":
        assert grads[name].shape == values[name].shape, name
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-10, atol=1e-13, err_msg=name)


def onnx_run(proto, data: dict) -> dict:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.asarray(data[i.name], dtype=np.float32) for i in session.get_inputs()}
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


@pytest.mark.parametrize("case", [c for c in CASES if "input" in c[2]], ids=case_id)
def test_onnx_loss_and_backward_graph_match_nndsl(case):
    loss, shapes, layout = case
    model, params, data, values, batched = loss_case(loss, shapes, layout, dtype="float32")
    proto = to_onnx(model, params)
    onnx.checker.check_model(proto, full_check=True)
    np.testing.assert_allclose(onnx_run(proto, data)["L"], model.run(params, **data)["L"], rtol=1e-5, atol=1e-6)

    graph, objective, grads = model.gradient_graph(("y", "t"))
    proto = graph_to_onnx(graph, {"objective": objective, "d_y": grads["y"], "d_t": grads["t"]}, params)
    got = onnx_run(proto, data)
    value, expected = model.grad(params, wrt=["y", "t"], **data)
    np.testing.assert_allclose(got["objective"], value, rtol=1e-5, atol=1e-6)
    for name in "yt":
        np.testing.assert_allclose(got[f"d_{name}"], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


# ---- the reported cases, with fixed values -------------------------------------------------------
W = np.array([0.3, -1.2, 0.7])
G = np.array([[0.5, 2.0, -0.4]])


def torch_grads(fn, *arrays):
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    value = fn(*tensors)
    return value.item(), [g.numpy() for g in torch.autograd.grad(value, tensors)]


@pytest.mark.parametrize("expression, reference", [
    ("bce(sigmoid(w), sigmoid(G))", lambda w, g: F.binary_cross_entropy(*torch.broadcast_tensors(
        torch.sigmoid(w), torch.sigmoid(g)))),
    ("cross_entropy(softmax(w), softmax(G))", lambda w, g: -(torch.softmax(g, -1) * torch.log_softmax(w, -1)).sum()),
])
def test_target_wider_than_prediction_gets_its_gradient(expression, reference):
    model = nndsl.compile(f"param w[3]\nparam G[1, 3]\nloss L = {expression}\n", dtype="float64")
    value, grads = model.grad({"w": W, "G": G}, wrt=["w", "G"])
    t_value, (t_w, t_G) = torch_grads(reference, W, G)
    assert value == pytest.approx(t_value, rel=1e-12)
    np.testing.assert_allclose(grads["w"], t_w, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads["G"], t_G, rtol=1e-10, atol=1e-14)
    assert np.abs(grads["G"]).max() > 1e-3


def test_target_computed_from_a_batch_broadcasts_against_a_smaller_prediction():
    model = nndsl.compile("input x\nparam v[3]\nparam Z[2, 3]\nloss L = bce(sigmoid(v), sigmoid(x Z))\n",
                          dtype="float64")
    x = np.array([0.5, -1.0, 2.0, 0.1])
    Z = np.array([[0.2, -0.4, 0.9], [1.1, 0.3, -0.7]])
    value, grads = model.grad({"v": W, "Z": Z}, wrt=["v", "Z", "x"], x=x)

    def reference(v, Z, x):
        t = torch.sigmoid(x[:, None, None] * Z)
        p = torch.sigmoid(v).expand_as(t)
        return F.binary_cross_entropy(p, t, reduction="none").mean((1, 2)).mean()

    t_value, t_grads = torch_grads(reference, W, Z, x)
    assert value == pytest.approx(t_value, rel=1e-12)
    for name, t_grad in zip(["v", "Z", "x"], t_grads):
        np.testing.assert_allclose(grads[name], t_grad, rtol=1e-10, atol=1e-14, err_msg=name)
