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


# The passes over big graphs read networkx's own dicts (`graph._node`: {node: attributes};
# `graph._pred`, `graph._succ`: {node: {neighbour: edge attributes}}): its views
# (`graph.nodes[n]`, `graph.pred[n]`) cost several Python calls per access, which over tens of
# thousands of nodes added up to a good part of the time spent compiling. Only GraphBuilder.add
# and copy_graph write them, exactly as networkx's add_node, add_edge and copy would.
def attributes(graph: nx.DiGraph) -> dict:
    """{node: its attribute dict}, the graph's own (changing an attribute changes the graph)."""
    return graph._node


def arguments(graph: nx.DiGraph, node) -> list:
    """The node's arguments in order."""
    pred = graph._pred[node]
    if len(pred) == 1:                  # one argument, or one value read at every position
        for src, data in pred.items():
            return [src] * len(data["positions"])
    if len(pred) == 2:                  # the binary ops: two values, most often each read once
        (a, a_data), (b, b_data) = pred.items()
        a_positions, b_positions = a_data["positions"], b_data["positions"]
        if len(a_positions) == 1 and len(b_positions) == 1:
            return [a, b] if a_positions[0] == 0 else [b, a]
    out = [None] * sum([len(data["positions"]) for data in pred.values()])
    for src, data in pred.items():
        for pos in data["positions"]:
            out[pos] = src
    return out


def topological_order(graph: nx.DiGraph, nodes=None) -> list:
    """`nodes` (every node by default) in exactly the order of
    `networkx.topological_sort(graph.subgraph(nodes))`, several times faster than on the view.

    The order must be networkx's own: the backward graph's node ids follow it, and so does the
    order in which diagnostics meet nodes. networkx sorts by generations (Kahn): first the nodes
    without predecessors among `nodes`, then each generation's successors in turn as their last
    predecessor is taken. A subgraph view iterates its node set, built as below, when that set is
    less than half the graph, and the graph's nodes in order otherwise; a node's successors
    always in the order their edges were added."""
    succ, pred = graph._succ, graph._pred
    keep = set(succ) if nodes is None else set(filter(succ.__contains__, nodes))
    whole = len(keep) == len(succ)      # every node is kept: no need to ask which
    candidates = keep if 2 * len(keep) < len(succ) else [n for n in graph if n in keep]
    waiting = {}                        # node -> predecessors not yet taken
    ready = []
    for node in candidates:
        count = len(pred[node]) if whole else len(keep.intersection(pred[node]))
        if count:
            waiting[node] = count
        else:
            ready.append(node)
    order = []
    while ready:
        generation, ready = ready, []
        for node in generation:
            for child in succ[node]:
                if whole or child in keep:
                    left = waiting[child] - 1
                    if left:
                        waiting[child] = left
                    else:
                        del waiting[child]
                        ready.append(child)
        order += generation
    if waiting:
        raise nx.NetworkXUnfeasible("the graph has a cycle")
    return order


def copy_graph(graph: nx.DiGraph) -> nx.DiGraph:
    """`graph.copy()`: the same nodes, edges and attribute dicts (each copied), in the same order,
    built straight into networkx's dicts (half the time of its add_nodes_from and add_edges_from,
    which check each node and edge)."""
    new = graph.__class__()
    new.graph.update(graph.graph)
    succ, pred, nodes = new._succ, new._pred, new._node
    for node, attrs in graph._node.items():
        succ[node], pred[node], nodes[node] = {}, {}, attrs.copy()
    for source, targets in graph._succ.items():
        out = succ[source]
        for target, data in targets.items():
            out[target] = pred[target][source] = data.copy()
    return new


def span_of(graph: nx.DiGraph, node) -> Span | None:
    span = graph.nodes[node].get("span")
    return Span(*span) if span else None


# The graphs are big enough that their memory, more than Python, bounds the passes over them: the
# tuples every edge read at one position and every node of a shape would hold alike are shared.
READ_AT = ((0,), (1,))


class GraphBuilder:
    """Adds registry-op nodes to a graph, inferring each node's shape from its op's rule."""

    def __init__(self, graph: nx.DiGraph | None = None, role: str = "forward"):
        self.graph = graph if graph is not None else nx.DiGraph()
        self.nodes = attributes(self.graph)
        self.succ, self.pred = self.graph._succ, self.graph._pred
        self.role = role
        self.next_id = max(self.graph.nodes, default=-1) + 1
        self.shapes: dict = {}          # shape -> the one tuple the nodes of that shape share

    def add(self, opname: str, *args, span: Span | None = None, name: str | None = None, scope: str = "", call: str = "",
            shape: tuple | None = None, batched: bool | None = None, what: str | None = None, **attrs):
        op = REGISTRY[opname]
        nodes = self.nodes
        if shape is None:
            shapes = [nodes[a]["shape"] for a in args]
            try:
                if op.attrs:
                    shape = tuple(op.shape(*shapes, **{k: attrs[k] for k in op.attrs}))
                else:
                    shape = tuple(op.shape(*shapes))
            except ShapeError as err:
                span = Span(*span) if type(span) is tuple else span
                raise NndslError(f"shape mismatch in {what or describe_op(opname)}: {err}", span) from None
        if batched is None and op.batched_rule is not None:
            batched = op.batched_rule([nodes[a]["batched"] for a in args])
        elif batched is None:
            batched = False
            if not op.unbatched:
                for a in args:
                    if nodes[a]["batched"]:
                        batched = True
                        break
        shape = self.shapes.setdefault(shape, shape)
        node = self.next_id
        self.next_id += 1
        # What graph.add_node and graph.add_edge would do, in the same order, without their checks
        # (the node is new, its arguments are nodes, and each edge is new): half the time of
        # building the nodes of a big graph. Nothing networkx cached about the graph holds.
        succ, pred = self.succ, self.pred
        succ[node], pred[node] = {}, {}
        nodes[node] = {"op": opname, "shape": shape, "batched": batched, "name": name,
                       "span": span if span is None or type(span) is tuple else span.as_tuple(), "scope": scope,
                       "call": call, "role": self.role, **attrs}
        nx._clear_cache(self.graph)
        if len(args) == 1 or (len(args) == 2 and args[0] != args[1]):     # the common cases
            for pos, a in enumerate(args):
                succ[a][node] = pred[node][a] = {"arg": pos, "positions": READ_AT[pos]}
            return node
        positions: dict = {}            # argument -> where it is read, in order of first reading
        for pos, a in enumerate(args):
            positions[a] = positions.get(a, ()) + (pos,)
        for a, where in positions.items():
            succ[a][node] = pred[node][a] = {"arg": where[0], "positions": where}
        return node

    def const(self, value, span: Span | None = None, **attrs):
        value = np.asarray(value, dtype=np.float64)
        return self.add("const", shape=value.shape, batched=False, value=value, span=span, **attrs)


def describe_op(opname: str) -> str:
    symbol = REGISTRY[opname].symbol
    return f"'{symbol}'" if symbol else f"{opname}()"


def shape_text(graph: nx.DiGraph, node) -> str:
    return fmt_shape(graph.nodes[node]["shape"])
