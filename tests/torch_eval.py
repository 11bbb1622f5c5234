"""An independent evaluator of nndsl's forward graph in PyTorch: every node computed sample by
sample with the per-sample torch reference of its op (tests/oracles.py), gradients by
torch.autograd. It shares nothing with nndsl's kernels or gradient rules."""
from __future__ import annotations

import networkx as nx
import numpy as np
import torch

from nndsl.graph import arguments

from oracles import CASES


def torch_loss_and_grads(model, params: dict, data: dict, wrt=None):
    """(batch-mean loss, {name: gradient}) of `model` computed by torch in float64."""
    graph = model.graph
    loss_node = model.lowered.loss[1]
    wrt = list(model.params) if wrt is None else list(wrt)
    leaves = {name: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True) for name, v in params.items()}
    inputs = {}
    batch = None
    for name, value in data.items():
        value = np.asarray(value, dtype=np.float64)
        node = model.inputs[name]
        if value.shape == graph.nodes[node]["shape"]:
            value = value[None]
        batch = value.shape[0]
        inputs[name] = torch.tensor(value, requires_grad=name in wrt)
    order = [n for n in nx.topological_sort(graph) if n in nx.ancestors(graph, loss_node) | {loss_node}]
    total = 0
    for b in range(batch):
        env = {}
        for node in order:
            attrs = graph.nodes[node]
            op = attrs["op"]
            if op == "param":
                env[node] = leaves[attrs["name"]]
            elif op == "input":
                env[node] = inputs[attrs["name"]][b]
            elif op == "const":
                env[node] = torch.tensor(attrs["value"], dtype=torch.float64)
            else:
                env[node] = CASES[op].torch(*[env[a] for a in arguments(graph, node)])
        total = total + env[loss_node]
    loss = total / batch
    tensors = [leaves[n] if n in leaves else inputs[n] for n in wrt]
    if not loss.requires_grad:                     # nothing differentiable reaches the loss
        grads = [None] * len(tensors)
    else:
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    out = {}
    for name, t, g in zip(wrt, tensors, grads):
        g = torch.zeros_like(t) if g is None else g
        out[name] = g.numpy()
    return loss.item(), out
