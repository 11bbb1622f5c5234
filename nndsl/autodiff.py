"""Pass 5, differentiate: reverse-mode gradients as a graph transform.

The backward graph is added to a copy of the forward graph, built from registry ops by each
op's gradient rules, so one interpreter runs both and the result can be differentiated again.
A value read by several consumers gets their contributions summed by an explicit `accumulate`
node. Broadcasting (and the batch axis) is undone in one place, `unbroadcast`.
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from .errors import NndslError
from .graph import GraphBuilder, arguments, attributes, copy_graph, span_of, topological_order
from .interpreter import needed
from .ops import REGISTRY, broadcast


class RuleBuilder:
    """What a gradient rule sees as `d`: `d.mul(a, b)` adds a `mul` node; floats become constants."""

    def __init__(self, builder: GraphBuilder):
        self.builder = builder
        # Where the forward node being differentiated is, which the nodes of its rules share:
        # its span as the graph stores it (a tuple, or None), its scope and its call.
        self.span = None
        self.scope = self.call = ""
        self.constants = {}             # float -> its node: one node per number (as CSE would leave it)

    def at(self, attrs: dict) -> None:
        """The rules that follow differentiate the node of attributes `attrs`."""
        self.span, self.scope, self.call = attrs.get("span"), attrs["scope"], attrs["call"]

    def __getattr__(self, opname):
        if opname not in REGISTRY:
            raise AttributeError(opname)

        def method(self, *args, like=None, **attrs):
            # Node ids are ints; a float is a constant (so rules write 1.0, never 1). `attrs` are
            # the op's static attributes (`subscripts` of an index).
            args = [self.const(a) if isinstance(a, float) else a for a in args]
            if like is not None:
                like = self.builder.nodes[like]
                attrs.update(shape=like["shape"], batched=like["batched"])
            return self.builder.add(opname, *args, span=self.span, scope=self.scope, call=self.call, **attrs)
        # Kept on the class, so that the rules' next `d.<op>` calls find it directly (they run
        # in the hot loop of differentiating); on an instance it would make a reference cycle.
        method.__name__ = opname
        setattr(RuleBuilder, opname, method)
        return getattr(self, opname)

    def attr(self, node, name: str):
        """A static attribute of a forward node (an index's `subscripts`)."""
        return self.builder.nodes[node][name]

    def const(self, value):
        if type(value) is float:
            node = self.constants.get(value)
            if node is None:
                node = self.constants[value] = self.builder.const(value, span=self.span, scope=self.scope,
                                                                  call=self.call)
            return node
        return self.builder.const(value, span=self.span, scope=self.scope, call=self.call)

    def shape(self, node) -> tuple:
        return self.builder.nodes[node]["shape"]

    def args(self, node) -> list:
        """The arguments of a node (a gradient node a rule reads, say)."""
        return arguments(self.builder.graph, node)


def batch_mean(builder: GraphBuilder, loss):
    """The training objective: the per-sample loss averaged over the batch."""
    span = span_of(builder.graph, loss)
    total = builder.add("sum_to", loss, shape=(), batched=False, span=span)
    count = builder.add("batch_size", loss, span=span)
    return builder.add("div", total, count, span=span, name="objective")


def differentiate(graph: nx.DiGraph, objective, wrt: list, copy: bool = True) -> tuple[nx.DiGraph, dict]:
    """Returns a copy of `graph` (or, with copy=False, `graph` itself) with the backward graph
    added, and {node in wrt: its gradient node}."""
    if graph.nodes[objective]["shape"] != () or graph.nodes[objective]["batched"]:
        raise ValueError("can only differentiate an unbatched scalar")
    if copy:
        graph = copy_graph(graph)
    builder = GraphBuilder(graph, role="backward")
    d = RuleBuilder(builder)
    nodes = builder.nodes
    relevant = needed(graph, [objective]) & downstream(graph, wrt)
    contributions: dict = {objective: [builder.const(1.0)]}    # the seed: a node of its own, never a rule's 1
    result = {}
    targets = set(wrt)
    for node in reversed(topological_order(graph, relevant)):
        parts = contributions.pop(node, None)
        if not parts:
            continue
        attrs = nodes[node]
        d.at(attrs)
        g = parts[0] if len(parts) == 1 else builder.add("accumulate", *parts, span=d.span, scope=d.scope, call=d.call)
        nodes[g].setdefault("grad_of", node)
        if node in targets:
            result[node] = g
        op = REGISTRY[attrs["op"]]
        args = arguments(graph, node)
        for pos, arg in enumerate(args):
            if arg not in relevant:
                continue
            try:
                rule = op.rule(pos)
            except LookupError:
                raise NndslError(f"no gradient rule for op '{op.name}'", span_of(graph, node)) from None
            if rule is None:
                continue
            first_new = builder.next_id
            part = rule(d, g, node, *args)
            contributions.setdefault(arg, []).append(unbroadcast(d, part, arg, fresh=part >= first_new))
    for node in wrt:
        if node not in result:
            attrs = nodes[node]
            d.at(attrs)
            zero = d.const(np.zeros(attrs["shape"]))
            result[node] = zero if not attrs["batched"] else builder.add("broadcast_like", zero, node, span=d.span)
            nodes[result[node]]["grad_of"] = node
    return graph, result


def downstream(graph: nx.DiGraph, sources) -> set:
    """Nodes a change of `sources` reaches through differentiable ops (gradients flow back there)."""
    seen = set(sources)
    stack = list(sources)
    succs, nodes = graph._succ, attributes(graph)     # networkx's own dicts, read: see nndsl.graph
    while stack:
        for succ in succs[stack.pop()]:
            if succ not in seen and REGISTRY[nodes[succ]["op"]].differentiable:
                seen.add(succ)
                stack.append(succ)
    return seen


def unbroadcast(d: RuleBuilder, part, target, fresh: bool):
    """Bring a gradient contribution to its target's shape and batch layout.

    The contribution is one value per element of the joint (broadcast) shape of the op's
    operands, but a rule may return it smaller than its target, or only broadcast-compatible
    with it (the gradient of bce(p, t) with respect to t reads only p). So it is first
    broadcast against the target, to their joint shape and batch layout, then summed down."""
    nodes = d.builder.nodes
    p, t = nodes[part], nodes[target]
    if p["shape"] == t["shape"] and p["batched"] == t["batched"]:
        return part
    if p["shape"] == t["shape"] and p["batched"] and not t["batched"] and fresh and REGISTRY[p["op"]].batch_reducible:
        p["batched"] = False          # batch-reduced: sums its per-sample values (g^T x is one matmul)
        return part
    if broadcast(p["shape"], t["shape"]) != p["shape"] or (t["batched"] and not p["batched"]):
        part = d.broadcast_like(part, target)
        p = nodes[part]
        if p["shape"] == t["shape"] and p["batched"] == t["batched"]:
            return part
    return d.sum_to(part, like=target)
