"""The computation graph: a networkx.DiGraph whose nodes are registry ops.

Node attributes: `op` (registry name), `shape` (per-sample tuple), `batched` (whether the value
carries the batch axis at run time), `name` (the bound name or None), `span` (line, column,
end line, end column), `scope` (the chain of inlined functions, "" at top level), `call` (the
line:column of each of those calls, so that two calls of one function are told apart) and
`role` ("forward" or "backward"); constants carry `value`, gradient nodes `grad_of`.
Edge attribute `arg` is the argument position; `positions` lists every position at which the
consumer reads that value (a DiGraph has one edge per pair, and `x * x` reads x twice).
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from .errors import NndslError, Span
from .ops import REGISTRY, ShapeError, fmt_shape


def arguments(graph: nx.DiGraph, node) -> list:
    """The node's arguments in order."""
    slots: dict[int, object] = {}
    for src, _, data in graph.in_edges(node, data=True):
        for pos in data["positions"]:
            slots[pos] = src
    return [slots[i] for i in range(len(slots))]


def span_of(graph: nx.DiGraph, node) -> Span | None:
    span = graph.nodes[node].get("span")
    return Span(*span) if span else None


class GraphBuilder:
    """Adds registry-op nodes to a graph, inferring each node's shape from its op's rule."""

    def __init__(self, graph: nx.DiGraph | None = None, role: str = "forward"):
        self.graph = graph if graph is not None else nx.DiGraph()
        self.role = role
        self.next_id = max(self.graph.nodes, default=-1) + 1

    def add(self, opname: str, *args, span: Span | None = None, name: str | None = None, scope: str = "", call: str = "",
            shape: tuple | None = None, batched: bool | None = None, what: str | None = None, **attrs):
        op = REGISTRY[opname]
        nodes = self.graph.nodes
        if shape is None:
            try:
                shape = tuple(op.shape(*[nodes[a]["shape"] for a in args], **{k: attrs[k] for k in op.attrs}))
            except ShapeError as err:
                raise NndslError(f"shape mismatch in {what or describe_op(opname)}: {err}", span) from None
        if batched is None:
            batched = not op.unbatched and any(nodes[a]["batched"] for a in args)
        node = self.next_id
        self.next_id += 1
        self.graph.add_node(node, op=opname, shape=shape, batched=batched, name=name,
                            span=span.as_tuple() if span else None, scope=scope, call=call, role=self.role,
                            **attrs)
        for pos, a in enumerate(args):
            if self.graph.has_edge(a, node):
                self.graph.edges[a, node]["positions"] += (pos,)
            else:
                self.graph.add_edge(a, node, arg=pos, positions=(pos,))
        return node

    def const(self, value, span: Span | None = None, **attrs):
        value = np.asarray(value, dtype=np.float64)
        return self.add("const", shape=value.shape, batched=False, value=value, span=span, **attrs)


def describe_op(opname: str) -> str:
    symbol = REGISTRY[opname].symbol
    return f"'{symbol}'" if symbol else f"{opname}()"


def shape_text(graph: nx.DiGraph, node) -> str:
    return fmt_shape(graph.nodes[node]["shape"])
