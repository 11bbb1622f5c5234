"""Rewrites: stable fused ops for fragile compositions (pass 4), and a simpler backward graph.

`rewrite_stable`: an op's registry entry lists, in `stable`, which producer of its first argument
it fuses with: `bce(sigmoid(z), t)` becomes `bce_logits(z, t)`, `log(softmax(z))` becomes
`log_softmax(z)`, and so on; an entry (producer's op, op) makes the producer another function of
its argument: `sparse_cross_entropy(softmax(z), k)` becomes `nll(log_softmax(z), k)`, whose
gradient reads that log_softmax. The producer stays in the graph only while something else reads it.

`simplify_backward`: what the gradient rules write generically and a hand-written step would not
compute: a value computed already (a common subexpression: the sigmoid a fused loss's gradient
needs, when the forward pass has it), a product with the constant 1 or a sum with 0 (an op's
`units` in the registry), and a `broadcast_like` whose consumer broadcasts its operands anyway.
Then what nothing needs goes.
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from .graph import GraphBuilder, arguments, attributes, topological_order
from .interpreter import needed
from .ops import REGISTRY


def rewrite_stable(graph: nx.DiGraph) -> nx.DiGraph:
    nodes = attributes(graph)
    for node in topological_order(graph):
        attrs = nodes[node]
        fused = REGISTRY[attrs["op"]].stable
        if not fused:
            continue
        args = arguments(graph, node)
        inner = args[0]
        while graph.nodes[inner]["op"] == "identity":      # look through aliases (`q = p`)
            (inner,) = arguments(graph, inner)
        fused_op = fused.get(graph.nodes[inner]["op"])
        if fused_op is None:
            continue
        (z,) = arguments(graph, inner)
        if isinstance(fused_op, tuple):         # (producer's op, op): the op reads another function of z
            inner_op, fused_op = fused_op
            z = converted(graph, inner, inner_op) if inner == args[0] else None
            if z is None:
                inner_attrs = graph.nodes[inner]
                z = GraphBuilder(graph).add(inner_op, *arguments(graph, inner), span=inner_attrs["span"],
                                            scope=inner_attrs["scope"], call=inner_attrs["call"])
        for a in set(args):
            graph.remove_edge(a, node)
        for pos, a in enumerate([z] + args[1:]):
            if graph.has_edge(a, node):
                graph.edges[a, node]["positions"] += (pos,)
            else:
                graph.add_edge(a, node, arg=pos, positions=(pos,))
        attrs["op"] = fused_op
        if graph.out_degree(args[0]) == 0 and graph.nodes[args[0]]["name"] is None:
            graph.remove_node(args[0])
    return graph


def converted(graph: nx.DiGraph, node, op: str):
    """`node` itself made an `op` of the same arguments, if nothing else reads it and it has no
    name (a value the program names keeps its op); else None."""
    attrs = graph.nodes[node]
    if graph.out_degree(node) != 1 or attrs["name"] is not None:
        return None
    attrs["op"] = op
    return node


def simplify_backward(graph: nx.DiGraph, keep: list) -> nx.DiGraph:
    """Removes redundant backward nodes in place; `keep` (the objective and the gradients) stay."""
    kept = set(keep)
    nodes = attributes(graph)
    seen: dict = {}                               # what a node computes -> the first node computing it
    # Only backward nodes are looked up in `seen`, so a node of an op no backward node has is
    # never found there, and neither is a leaf (each is its own): their keys are not computed.
    backward_ops = {attrs["op"] for attrs in nodes.values() if attrs.get("role") == "backward"}
    for node in topological_order(graph):
        attrs = nodes[node]
        op = REGISTRY[attrs["op"]]
        if op.leaf:
            continue
        if attrs.get("role") != "backward" or node in kept:
            if attrs["op"] in backward_ops:
                seen.setdefault(computation(graph, node), node)
            continue
        key = computation(graph, node)
        if key in seen and "grad_of" not in attrs:    # computed already: read that instead
            redirect(graph, node, seen[key])
            continue
        if not (attrs["op"] == "const" and "grad_of" in attrs):   # the seed ∂objective/∂objective = 1
            seen.setdefault(key, node)                          # stays apart from the rules' constants
        if attrs["op"] == "broadcast_like":
            bypass_broadcast(graph, node, key[1][0])
            continue
        if "grad_of" in attrs or not op.units:   # a value's gradient stays in the graph, as drawn
            continue
        args = key[1]
        for position, unit in op.units.items():
            other = args[1 - position]
            if is_constant(graph, args[position], unit) and same_layout(graph, other, node):
                redirect(graph, node, other)
                break
    alive = needed(graph, keep)
    graph.remove_nodes_from([n for n, attrs in nodes.items() if n not in alive and attrs.get("role") == "backward"])
    return graph


def computation(graph: nx.DiGraph, node) -> tuple:
    """What a node computes, as a key: equal keys, equal values (common subexpressions). Leaves
    are their own; a constant is its value."""
    attrs = attributes(graph)[node]
    op = REGISTRY[attrs["op"]]
    if op.leaf:
        return ("leaf", node)
    static = tuple([attrs[a] for a in op.attrs]) if op.attrs else ()
    if attrs["op"] == "const":
        value = np.asarray(attrs["value"])
        static = (value.shape, value.tobytes())
    return (attrs["op"], tuple(arguments(graph, node)), static, attrs["shape"], attrs["batched"])


def is_constant(graph: nx.DiGraph, node, value: float) -> bool:
    attrs = attributes(graph)[node]
    return attrs["op"] == "const" and np.shape(attrs["value"]) == () and float(attrs["value"]) == value


def same_layout(graph: nx.DiGraph, a, b) -> bool:
    nodes = attributes(graph)
    x, y = nodes[a], nodes[b]
    return x["shape"] == y["shape"] and x["batched"] == y["batched"]


def redirect(graph: nx.DiGraph, node, other) -> None:
    """Every reader of `node` reads `other` instead; `node` goes."""
    for _, consumer, data in list(graph.out_edges(node, data=True)):
        reroute(graph, node, other, consumer, data["positions"])
    graph.remove_node(node)


def reroute(graph: nx.DiGraph, old, new, consumer, positions: tuple) -> None:
    graph.remove_edge(old, consumer)
    if graph.has_edge(new, consumer):
        edge = graph.edges[new, consumer]
        edge["positions"] = tuple(sorted(edge["positions"] + positions))
        edge["arg"] = edge["positions"][0]
    else:
        graph.add_edge(new, consumer, arg=positions[0], positions=positions)


def bypass_broadcast(graph: nx.DiGraph, node, x) -> None:
    """An elementwise consumer of `broadcast_like(x, ref)` reads x itself when its result keeps
    its shape and batch: the consumer broadcasts as well."""
    for _, consumer, data in list(graph.out_edges(node, data=True)):
        c = graph.nodes[consumer]
        if not REGISTRY[c["op"]].elementwise:
            continue
        others = [a for a in arguments(graph, consumer) if a != node]
        shapes = [graph.nodes[a]["shape"] for a in others] + [graph.nodes[x]["shape"]]
        batched = any(graph.nodes[a]["batched"] for a in others) or graph.nodes[x]["batched"]
        if np.broadcast_shapes(*shapes) == c["shape"] and batched == c["batched"]:
            reroute(graph, node, x, consumer, data["positions"])
