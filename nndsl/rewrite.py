"""Pass 4, rewrite: replace numerically fragile compositions by their stable fused ops.

An op's registry entry lists, in `stable`, which producer of its first argument it fuses with:
`bce(sigmoid(z), t)` becomes `bce_logits(z, t)`, `log(softmax(z))` becomes `log_softmax(z)`, and
so on. The producer stays in the graph only while something else still reads it.
"""
from __future__ import annotations

import networkx as nx

from .graph import arguments, topological_order
from .ops import REGISTRY


def rewrite_stable(graph: nx.DiGraph) -> nx.DiGraph:
    for node in topological_order(graph):
        attrs = graph.nodes[node]
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
