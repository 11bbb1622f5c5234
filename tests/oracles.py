"""Independent references for every op in the registry: NumPy for values, torch for gradients.

A reference is written for ONE sample (no batch axis); tests apply it sample by sample, so the
runtime's batching is checked too. `test_every_op_has_a_reference` fails as soon as an op is
added to the registry without a line here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

LEAVES = {"input", "param", "const"}


@dataclass
class Case:
    numpy: object                      # per-sample reference: (*arrays) -> array
    shapes: tuple                      # per-sample shapes of the arguments
    torch: object = None               # per-sample torch function, for gradient comparison
    domains: tuple = ()                # per argument: normal positive prob unit sign index binary
    no_grad: tuple = ()                # argument positions without a gradient
    smooth: bool = True                # finite differences are meaningful at random points
    explicit: dict = field(default_factory=dict)   # shape/batched given to the builder
    # More argument shapes, checked as `shapes` is: for a loss, operands of different per-sample
    # rank and with size-1 axes, the prediction smaller than the target and the other way round.
    broadcasts: tuple = ()


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def log_softmax(z):
    return z - z.max(-1, keepdims=True) - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def broadcast(fn):
    """A torch loss of operands of one shape, applied to operands that broadcast."""
    return lambda y, t: fn(*torch.broadcast_tensors(y, t))


def classes(p, t):
    """A cross entropy's reduction: sum over the class axis, mean over the other per-sample axes."""
    return (t * p).sum(-1).mean()


# Operand shapes of a loss beside its own: either side smaller, size-1 axes both ways, scalars.
PAIRWISE = (((3,), (2, 3)), ((2, 3), (3,)), ((1, 3), (2, 3)), ((2, 3), (2, 1)), ((1, 3), (2, 1)),
            ((), (3,)), ((3,), ()))
CLASSWISE = (((4,), (2, 4)), ((2, 4), (4,)), ((1, 4), (2, 4)), ((2, 4), (2, 1)), ((2, 1), (1, 4)),
             ((4,), ()))


def scatter(g, x):
    """The gradient of x[1:, -1]: g in those places, zeros elsewhere."""
    out = np.zeros(x.shape)
    out[1:, -1] = g
    return out


def torch_scatter(g, x):
    out = torch.zeros(x.shape, dtype=g.dtype)
    out[1:, -1] = g
    return out


T = torch
F = torch.nn.functional

CASES = {
    "add": Case(np.add, ((3,), (2, 3)), lambda a, b: a + b),
    "sub": Case(np.subtract, ((2, 3), (3,)), lambda a, b: a - b),
    "mul": Case(np.multiply, ((3,), ()), lambda a, b: a * b),
    "div": Case(np.divide, ((3,), (3,)), lambda a, b: a / b, domains=("normal", "positive")),
    "neg": Case(np.negative, ((4,),), lambda a: -a),
    "pow": Case(np.power, ((3,), (3,)), lambda a, b: a ** b, domains=("positive", "normal")),
    "max": Case(np.maximum, ((3,), (3,)), T.maximum),
    "min": Case(np.minimum, ((2, 3), (3,)), T.minimum),
    "tie_mask": Case(lambda a, b: (a > b) + 0.5 * (a == b), ((3,), (3,)), no_grad=(0, 1)),
    "relu": Case(lambda x: np.maximum(x, 0), ((5,),), T.relu),
    "sigmoid": Case(sigmoid, ((5,),), T.sigmoid),
    "sigmoid_grad": Case(lambda x: sigmoid(x) * (1 - sigmoid(x)), ((5,),),
                         lambda x: T.sigmoid(x) * (1 - T.sigmoid(x))),
    "tanh": Case(np.tanh, ((5,),), T.tanh),
    "step": Case(lambda x: (x > 0).astype(float), ((5,),), lambda x: (x > 0).to(x.dtype), no_grad=(0,)),
    "sign": Case(np.sign, ((5,),), T.sign, no_grad=(0,)),
    "softplus": Case(lambda x: np.log1p(np.exp(x)), ((5,),), F.softplus),
    "leaky_relu": Case(lambda x, s: np.where(x > 0, x, s * x), ((5,), ()),
                       lambda x, s: T.where(x > 0, x, s * x)),
    "identity": Case(lambda x: x, ((2, 2),), lambda x: x),
    "exp": Case(np.exp, ((4,),), T.exp),
    "log": Case(np.log, ((4,),), T.log, domains=("positive",)),
    "abs": Case(np.abs, ((4,),), T.abs),
    "sqrt": Case(np.sqrt, ((4,),), T.sqrt, domains=("positive",)),
    "log_sigmoid": Case(lambda x: np.log(sigmoid(x)), ((4,),), F.logsigmoid),
    "softmax": Case(softmax, ((2, 4),), lambda z: T.softmax(z, -1)),
    "log_softmax": Case(log_softmax, ((4,),), lambda z: T.log_softmax(z, -1)),
    "sum_last": Case(lambda x: x.sum(-1, keepdims=True), ((2, 3),), lambda x: x.sum(-1, keepdim=True)),
    "sum": Case(np.sum, ((2, 3),), T.sum),
    "mean": Case(np.mean, ((2, 3),), T.mean),
    "transpose": Case(np.transpose, ((2, 3),), lambda x: x.T),
    "matmul": Case(np.matmul, ((2, 3), (3,)), T.matmul),
    "outer": Case(np.outer, ((2,), (3,)), T.outer),
    "sum_to": Case(lambda x: x.sum(0), ((2, 3),), lambda x: x.sum(0), explicit={"shape": (3,)}),
    "broadcast_like": Case(lambda x, r: np.broadcast_to(x, np.broadcast_shapes(x.shape, r.shape)), ((3,), (2, 3)),
                           lambda x, r: torch.broadcast_tensors(x, r)[0], no_grad=(1,),
                           broadcasts=(((2, 1), (3,)), ((2, 3), (3,)), ((), (2,)))),
    "batch_size": Case(None, ((3,),), no_grad=(0,)),          # checked in test_batch_size
    "batch_sum": Case(None, ((3,),)),                          # batch-level: tests/test_source_export.py
    "unbroadcast": Case(None, ((2, 3), (3,)), no_grad=(1,)),    # batch-level: tests/test_source_export.py
    "index": Case(lambda x: x[1:, -1], ((3, 4),), lambda x: x[1:, -1], explicit={"subscripts": "[1:, -1]"}),
    "index_grad": Case(scatter, ((2,), (3, 4)), torch_scatter, no_grad=(1,), explicit={"subscripts": "[1:, -1]"}),
    "concat": Case(lambda a, b, c: np.concatenate([a, b, c], -1), ((2, 3), (2, 1), (2, 2)),
                   lambda a, b, c: torch.cat([a, b, c], -1)),
    "argmax": Case(lambda x: np.argmax(x, -1).astype(float), ((2, 4),), no_grad=(0,)),
    "accumulate": Case(lambda *xs: sum(xs), ((3,), (3,), (3,)), lambda *xs: sum(xs)),
    "one_hot": Case(lambda k, r: (np.arange(r.shape[-1]) == k).astype(float), ((), (4,)),
                    domains=("index", "normal"), no_grad=(0, 1)),
    "mse": Case(lambda y, t: np.mean((y - t) ** 2), ((3,), (3,)), broadcast(F.mse_loss), broadcasts=PAIRWISE),
    "mae": Case(lambda y, t: np.mean(np.abs(y - t)), ((3,), (3,)), broadcast(F.l1_loss), broadcasts=PAIRWISE),
    "bce": Case(lambda p, t: np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))), ((3,), (3,)),
                broadcast(F.binary_cross_entropy), domains=("prob", "unit"), broadcasts=PAIRWISE),
    "bce_logits": Case(lambda z, t: np.mean(-(t * np.log(sigmoid(z)) + (1 - t) * np.log(1 - sigmoid(z)))),
                       ((3,), (3,)), broadcast(F.binary_cross_entropy_with_logits), domains=("normal", "unit"),
                       broadcasts=PAIRWISE),
    "cross_entropy": Case(lambda p, t: -np.mean(np.sum(t * np.log(p), -1)), ((4,), (4,)),
                          lambda p, t: -classes(T.log(p), t), domains=("prob", "unit"), broadcasts=CLASSWISE),
    "cross_entropy_logits": Case(lambda z, t: -np.mean(np.sum(t * log_softmax(z), -1)), ((4,), (4,)),
                                 lambda z, t: -classes(T.log_softmax(z, -1), t), domains=("normal", "unit"),
                                 broadcasts=CLASSWISE),
    "sparse_cross_entropy": Case(lambda p, k: -np.log(p[int(k)]), ((4,), ()),
                                 lambda p, k: -T.log(p[int(k)]), domains=("prob", "index"), no_grad=(1,)),
    "nll": Case(lambda lp, k: -lp[int(k)], ((4,), ()), lambda lp, k: F.nll_loss(lp[None], k.long()[None]),
                domains=("normal", "index"), no_grad=(1,)),
    "nll_grad": Case(lambda g, lp, k: -g * (np.arange(lp.shape[-1]) == k), ((), (4,), ()),
                     lambda g, lp, k: -g * F.one_hot(k.long(), lp.shape[-1]).to(lp.dtype),
                     domains=("normal", "normal", "index"), no_grad=(1, 2)),
    "nll_log_softmax_grad": Case(
        lambda lp, k: np.exp(lp) - (np.arange(lp.shape[-1]) == k), ((4,), ()),
        lambda lp, k: T.exp(lp) - F.one_hot(k.long(), lp.shape[-1]).to(lp.dtype),
        domains=("normal", "index"), no_grad=(1,)),
    "hinge": Case(lambda y, t: np.mean(np.maximum(0, 1 - t * y)), ((3,), (3,)),
                  lambda y, t: T.clamp(1 - t * y, min=0).mean(), domains=("normal", "sign"), broadcasts=PAIRWISE),
    "squared_hinge": Case(lambda y, t: np.mean(np.maximum(0, 1 - t * y) ** 2), ((3,), (3,)),
                          lambda y, t: (T.clamp(1 - t * y, min=0) ** 2).mean(), domains=("normal", "sign"),
                          broadcasts=PAIRWISE),
    "perceptron": Case(lambda y, t: np.mean(np.maximum(0, -t * y)), ((3,), (3,)),
                       lambda y, t: T.clamp(-t * y, min=0).mean(), domains=("normal", "sign"), broadcasts=PAIRWISE),
}


def sample(domain: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    if domain == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "prob":
        x = rng.uniform(0.1, 0.9, shape)
        return x / x.sum(-1, keepdims=True) if len(shape) and shape[-1] == 4 else x
    if domain == "unit":
        return rng.uniform(0, 1, shape)
    if domain == "sign":
        return rng.choice([-1.0, 1.0], shape)
    if domain == "index":
        return rng.integers(0, 4, shape).astype(float)
    return rng.normal(0, 1, shape)


def data_for(model, batch: int = 3, seed: int = 0) -> dict:
    """The model's own data; inputs it has none for get random values of the declared shapes."""
    data = model.default_data()
    rng = np.random.default_rng(seed)
    for name, shape in model.input_shapes().items():
        if name not in data:
            data[name] = rng.normal(size=(batch,) + shape)
    return data
