"""Graph export: DOT (and SVG/PNG through Graphviz), JSON, GraphML and ONNX.

`export(model, fmt)` is what `nndsl export` calls. The graph exported is `model.graph`, or with
`grad=True` the forward graph with the backward graph added (`Model.gradient_graph` over every
parameter). Graph attributes record the model's interface: `model` (its name), `file`,
`inputs`, `params`, `outputs` and `loss` ({name: node}); with the backward graph also
`objective` (the batch-mean loss node) and `gradients` ({parameter name: gradient node}).

JSON is networkx's node-link form and GraphML is networkx's GraphML, each with every node,
edge and graph attribute; `read_json` and `read_graphml` give back a DiGraph whose attributes
have their original types. Encoding (docs/export.md):
- JSON: tuples (`shape`, `span`, `positions`) are arrays, None is null, an ndarray (a constant's
  `value`) is {"ndarray": nested list, "dtype": "float64"}.
- GraphML: a key whose values are all of one plain type (str, bool, int, float) is stored as
  that GraphML type; any other key (tuples, arrays, None, mixed types) stores each value as
  the JSON text above, and the graph attribute `nndsl_json` lists those keys.
"""
from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import networkx as nx
import numpy as np

from .errors import NndslError
from .graph import arguments
from .ops import fmt_shape

TEXT_FORMATS = ("dot", "svg", "json", "graphml")
BINARY_FORMATS = ("png", "onnx")
FORMATS = TEXT_FORMATS + BINARY_FORMATS


# ---- the graph and its interface ---------------------------------------------------------
def export_graph(model, grad: bool = False) -> nx.DiGraph:
    """A copy of the model's graph (with the backward graph if `grad`) carrying its interface."""
    if grad:
        graph, objective, grads = model.gradient_graph(tuple(model.params))
    else:
        graph = model.graph
    graph = graph.copy()
    graph.graph.update(model=model.name, file=model.filename, inputs=dict(model.inputs),
                       params=dict(model.params), outputs=dict(model.outputs),
                       loss=dict([model.lowered.loss]) if model.lowered.loss else {})
    if grad:
        graph.graph.update(objective=objective, gradients=dict(grads))
    return graph


# ---- DOT -----------------------------------------------------------------------------------
# How a node looks: the defaults, then its role's colours and line, then its op's shape and fill.
NODE_DEFAULTS = dict(shape="ellipse", style="filled", fillcolor="#ffffff", color="#374151", fontcolor="#111827",
                     fontname="Helvetica", fontsize="10", margin="0.08,0.03", height="0.3")
ROLE_LOOK = {
    "forward": {},
    "backward": dict(fillcolor="#fff7f7", color="#b91c1c", fontcolor="#7f1d1d", line="dashed"),
    "gradient": dict(fillcolor="#fee2e2", color="#b91c1c", fontcolor="#7f1d1d", line="dashed", penwidth="2"),
}
OP_LOOK = {
    "input": dict(shape="box", fillcolor="#dbeafe", color="#1d4ed8", line="rounded"),
    "param": dict(shape="box", fillcolor="#fde68a", color="#b45309", penwidth="2"),
    "const": dict(shape="box", fillcolor="#f3f4f6", color="#6b7280", fontsize="9"),
    "accumulate": dict(shape="octagon", fillcolor="#ede9fe", color="#6d28d9", fontcolor="#4c1d95"),
}
EDGE_LOOK = {
    "forward": dict(color="#4b5563"),
    "backward": dict(color="#dc2626", style="dashed"),
}
CLUSTER_LOOK = dict(style="rounded,filled", fillcolor="#f8fafc", color="#94a3b8", fontcolor="#475569")
GRAPH_DEFAULTS = dict(labelloc="t", fontname="Helvetica", fontsize="14", rankdir="TB", nodesep="0.25", ranksep="0.35")
EDGE_DEFAULTS = dict(fontname="Helvetica", fontsize="8", arrowsize="0.6")


def to_dot(graph: nx.DiGraph, clusters: bool = True) -> str:
    """Graphviz DOT text for a graph from `export_graph`: one node per value, labelled with its
    bound name, op and per-sample shape; edges in argument order; with `clusters`, the nodes
    of each inlined call of a user function grouped in a box named after the function."""
    meta = graph.graph
    outputs = set(meta.get("outputs", {}).values()) | set(meta.get("loss", {}).values())
    title = meta.get("model") or Path(meta.get("file") or "graph").stem
    has_backward = any(a["role"] == "backward" for _, a in graph.nodes(data=True))
    label = title + (" (forward and backward)" if has_backward else "")
    lines = [f"digraph {quote(title)} {{",
             f"  graph{attributes(dict(GRAPH_DEFAULTS, label=label))};",
             f"  node{attributes(NODE_DEFAULTS)};",
             f"  edge{attributes(EDGE_DEFAULTS)};"]
    order = list(nx.topological_sort(graph))
    owner, tree = call_clusters(graph, objective_nodes(graph)) if clusters else ({}, {})
    members: dict = {}
    for node in order:
        members.setdefault(owner.get(node), []).append(node)
    lines += emit_clusters(graph, members, tree, outputs)
    for node in order:
        args = arguments(graph, node)
        look = EDGE_LOOK[graph.nodes[node]["role"]]
        for pos, arg in enumerate(args):
            lines.append(f"  n{arg} -> n{node}{attributes(dict(look, label=str(pos)) if len(args) > 1 else look)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def node_line(graph: nx.DiGraph, node, outputs: set, indent: str) -> str:
    attrs = graph.nodes[node]
    role = "gradient" if attrs["role"] == "backward" and "grad_of" in attrs else attrs["role"]
    look = {**ROLE_LOOK[role], **OP_LOOK.get(attrs["op"], {})}
    line = look.pop("line", None)
    if line:
        look["style"] = f"{line},filled"
    if node in outputs:
        look["peripheries"] = "2"
    look["label"] = "\n".join(node_label(graph, node))
    look["tooltip"] = node_tooltip(graph, node)
    return f"{indent}n{node}{attributes(look)};"


def node_label(graph: nx.DiGraph, node) -> list:
    attrs = graph.nodes[node]
    lines = []
    if attrs["name"]:
        lines.append(attrs["name"])
    if "grad_of" in attrs and attrs["role"] == "backward":
        of = graph.nodes[attrs["grad_of"]]
        lines.append(f"∂/∂{of['name']}" if of["name"] else f"∂/∂({of['op']} #{attrs['grad_of']})")
    if "value" in attrs and np.size(attrs["value"]) <= 4:        # a small constant shows its value
        lines.append(const_text(attrs["value"]))
    else:
        lines.append(attrs["op"])
    lines.append(shape_label(attrs))
    return lines


def shape_label(attrs) -> str:
    """The per-sample shape, with the batch axis shown as a `B×` prefix on batched values."""
    return ("B×" if attrs["batched"] else "") + fmt_shape(attrs["shape"])


def const_text(value) -> str:
    value = np.asarray(value)
    if value.ndim == 0:
        return f"{float(value):g}"
    return np.array2string(value, separator=", ", formatter={"float_kind": lambda v: f"{v:g}"})


def node_tooltip(graph: nx.DiGraph, node) -> str:
    attrs = graph.nodes[node]
    where = f" at line {attrs['span'][0]}:{attrs['span'][1]}" if attrs["span"] else ""
    inside = f" in {attrs['scope']}()" if attrs["scope"] else ""
    return f"#{node} {attrs['op']} ({attrs['role']}){where}{inside}"


def emit_clusters(graph: nx.DiGraph, members: dict, tree: dict, outputs: set) -> list:
    """Node lines, each inside its (nested) cluster; `tree` maps cluster -> (label, parent)."""
    children: dict = {}
    for cluster, (_, parent) in sorted(tree.items()):
        children.setdefault(parent, []).append(cluster)
    lines = [node_line(graph, n, outputs, "  ") for n in members.get(None, [])]
    stack = [(c, False) for c in reversed(children.get(None, []))]
    depth = 1
    while stack:
        cluster, done = stack.pop()
        if done:
            depth -= 1
            lines.append("  " * depth + "}")
            continue
        indent = "  " * depth
        lines.append(f"{indent}subgraph cluster_{cluster} {{")
        lines.append(f"{indent}  graph{attributes(dict(CLUSTER_LOOK, label=tree[cluster][0] + '()'))};")
        lines += [node_line(graph, n, outputs, indent + "  ") for n in members.get(cluster, [])]
        depth += 1
        stack.append((cluster, True))
        stack.extend((c, False) for c in reversed(children.get(cluster, [])))
    return lines


def objective_nodes(graph: nx.DiGraph) -> set:
    """The nodes that average the per-sample loss over the batch (they carry the loss's scope)."""
    meta = graph.graph
    if meta.get("objective") is None or not meta.get("loss"):
        return set()
    (loss,) = meta["loss"].values()
    return (nx.ancestors(graph, meta["objective"]) | {meta["objective"]}) - nx.ancestors(graph, loss) - {loss}


def call_clusters(graph: nx.DiGraph, exclude: set = frozenset()) -> tuple[dict, dict]:
    """Which inlined call each forward node belongs to: ({node: cluster}, {cluster: (function
    name, parent cluster or None)}).

    `scope` names the chain of functions only, so two calls of one function share it; calls
    are told apart by structure. A call's body is a tree of fresh nodes in which a consumer's
    source span strictly contains its operand's (both lie in the function's body text), while
    the result of one call read by another call of the same function (`f(f(x))`) never lies
    strictly inside its reader. A call nested in `g` belongs to the call of `g` that reads its
    result, directly or through other calls nested in `g`; when `g`'s body is nothing but such
    calls, they form a call of `g` of their own. (Calls of such a `g` that feed each other
    directly share one box: the graph does not say where one ends.)
    """
    nodes = graph.nodes
    scoped = [n for n in graph if nodes[n]["scope"] and nodes[n]["role"] == "forward" and n not in exclude]
    link = {n: n for n in scoped}
    for u in scoped:
        for v in graph.successors(u):
            if v in link and nodes[v]["scope"] == nodes[u]["scope"] and inside(nodes[u]["span"], nodes[v]["span"]):
                link[find(link, u)] = find(link, v)
    calls: dict = {}
    for n in scoped:
        calls.setdefault(find(link, n), []).append(n)
    ids = {root: i for i, root in enumerate(sorted(calls, key=lambda r: min(calls[r])))}
    owner = {n: ids[find(link, n)] for n in scoped}
    scope_of = {ids[r]: nodes[r]["scope"] for r in calls}
    reach = {ids[r]: list(calls[r]) for r in calls}     # every node of the call, nested calls included
    parent_of: dict = {}

    def depth(cluster) -> int:
        return scope_of[cluster].count("/") + 1

    def at_depth(cluster, d):
        while depth(cluster) > d:
            cluster = parent_of[cluster]
        return cluster

    for d in range(max(map(depth, scope_of), default=1), 1, -1):        # innermost calls first
        level = [c for c in scope_of if depth(c) == d]
        outer = {c: scope_of[c].rpartition("/")[0] for c in level}
        siblings = {c: c for c in level}
        for c in level:
            for w in successors(graph, reach[c]):
                if w in owner and nodes[w]["scope"].startswith(outer[c] + "/"):
                    siblings[find(siblings, c)] = find(siblings, at_depth(owner[w], d))
        groups: dict = {}
        for c in level:
            groups.setdefault(find(siblings, c), []).append(c)
        for members in groups.values():
            scope = outer[members[0]]
            inner = [n for c in members for n in reach[c]]
            readers = [owner[w] for w in successors(graph, inner) if w in owner and nodes[w]["scope"] == scope]
            if readers:
                parent = min(readers)
            else:                                   # the call of `scope` is nothing but these calls
                parent = len(scope_of)
                scope_of[parent], reach[parent] = scope, []
            reach[parent] += inner
            for c in members:
                parent_of[c] = parent
    tree = {c: (scope.rpartition("/")[2], parent_of.get(c)) for c, scope in scope_of.items()}
    return owner, tree


def find(link: dict, n):
    """Union-find: the representative of n's set (halving paths as it goes)."""
    while link[n] != n:
        link[n] = link[link[n]]
        n = link[n]
    return n


def successors(graph: nx.DiGraph, sources) -> list:
    return [w for n in sources for w in graph.successors(n)]


def inside(inner, outer) -> bool:
    """Whether span `inner` lies strictly inside span `outer`."""
    if not inner or not outer:
        return False
    a, b = (tuple(inner[:2]), tuple(inner[2:])), (tuple(outer[:2]), tuple(outer[2:]))
    return b[0] <= a[0] and a[1] <= b[1] and a != b


def quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def attributes(look: dict) -> str:
    if not look:
        return ""
    return " [" + ", ".join(f"{k}={quote(v)}" for k, v in look.items()) + "]"


def render(dot_text: str, fmt: str) -> bytes:
    """SVG or PNG bytes from DOT text, through the Graphviz `dot` program."""
    dot = shutil.which("dot")
    if dot is None:
        raise NndslError(f"rendering {fmt} needs the Graphviz 'dot' program; "
                         "install it with: apt-get install graphviz (or brew install graphviz)")
    proc = subprocess.run([dot, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True)
    if proc.returncode != 0:
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit status {proc.returncode}"]
        raise NndslError(f"Graphviz 'dot' failed to render {fmt}: {reason[0]}")
    return proc.stdout


# ---- JSON and GraphML ------------------------------------------------------------------------
def encode_value(value):
    """An attribute value as JSON data: tuples -> lists, ndarrays -> {"ndarray", "dtype"}."""
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {str(k): encode_scalar(v) for k, v in value.items()}
    return encode_scalar(value)


def encode_scalar(value):
    if isinstance(value, (tuple, list)):
        return [v.item() if isinstance(v, np.generic) else v for v in value]
    return value.item() if isinstance(value, np.generic) else value


def decode_value(value):
    """The inverse of `encode_value`."""
    if isinstance(value, dict):
        if set(value) == {"ndarray", "dtype"}:
            return np.asarray(value["ndarray"], dtype=value["dtype"])
        return {k: decode_scalar(v) for k, v in value.items()}
    return decode_scalar(value)


def decode_scalar(value):
    return tuple(value) if isinstance(value, list) else value


def to_json(graph: nx.DiGraph) -> str:
    data = nx.node_link_data(graph, edges="edges")
    data["graph"] = {k: encode_value(v) for k, v in data["graph"].items()}
    for item in data["nodes"]:
        item.update({k: encode_value(v) for k, v in item.items() if k != "id"})
    for item in data["edges"]:
        item.update({k: encode_value(v) for k, v in item.items() if k not in ("source", "target")})
    return json.dumps(data, ensure_ascii=False) + "\n"


def read_json(source) -> nx.DiGraph:
    """A graph written by `to_json`, from JSON text or a path, with its attributes decoded."""
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) else source
    data = json.loads(text)
    graph = nx.node_link_graph(data, directed=True, multigraph=False, edges="edges")
    decode_attributes(graph, {"graph": list(graph.graph), "node": all_keys(graph.nodes.values()),
                              "edge": all_keys(d for _, _, d in graph.edges(data=True))})
    return graph


PLAIN = (str, bool, int, float)


def to_graphml(graph: nx.DiGraph) -> bytes:
    graph = graph.copy()
    encoded = {"graph": json_keys([graph.graph]), "node": json_keys(graph.nodes.values()),
               "edge": json_keys(d for _, _, d in graph.edges(data=True))}
    for where, dicts in (("graph", [graph.graph]), ("node", graph.nodes.values()),
                         ("edge", (d for _, _, d in graph.edges(data=True)))):
        for attrs in dicts:
            for key in encoded[where]:
                if key in attrs:
                    attrs[key] = json.dumps(encode_value(attrs[key]), ensure_ascii=False)
    graph.graph["nndsl_json"] = json.dumps(encoded)
    buffer = io.BytesIO()
    nx.write_graphml(graph, buffer, encoding="utf-8")
    return buffer.getvalue()


def read_graphml(source) -> nx.DiGraph:
    """A graph written by `to_graphml`, from a path or the GraphML bytes, with its attributes decoded."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    graph = nx.read_graphml(stream, node_type=int)
    if not isinstance(graph, nx.DiGraph):
        raise NndslError("not a directed GraphML graph written by nndsl")
    for key in ("node_default", "edge_default"):         # added by networkx's reader
        graph.graph.pop(key, None)
    encoded = json.loads(graph.graph.pop("nndsl_json", "{}"))
    for where, dicts in (("graph", [graph.graph]), ("node", graph.nodes.values()),
                         ("edge", (d for _, _, d in graph.edges(data=True)))):
        for attrs in dicts:
            for key in encoded.get(where, ()):
                if key in attrs:
                    attrs[key] = json.loads(attrs[key])
    decode_attributes(graph, encoded)
    return graph


def json_keys(dicts) -> list:
    """The keys whose values are not all of one plain GraphML type."""
    types: dict = {}
    for attrs in dicts:
        for key, value in attrs.items():
            types.setdefault(key, set()).add(type(value))
    return sorted(k for k, ts in types.items() if len(ts) != 1 or next(iter(ts)) not in PLAIN)


def all_keys(dicts) -> list:
    return sorted({k for attrs in dicts for k in attrs})


def decode_attributes(graph: nx.DiGraph, keys: dict) -> None:
    for where, dicts in (("graph", [graph.graph]), ("node", graph.nodes.values()),
                         ("edge", (d for _, _, d in graph.edges(data=True)))):
        for attrs in dicts:
            for key in keys.get(where, ()):
                if key in attrs:
                    attrs[key] = decode_value(attrs[key])


# ---- one entry point -------------------------------------------------------------------------
def format_of(path) -> str:
    """The format an output file's extension names; dot when there is none or it names none."""
    suffix = Path(path).suffix.lower().lstrip(".") if path else ""
    return suffix if suffix in FORMATS else "dot"


def export(model, fmt: str, *, grad: bool = False, params: dict | None = None, clusters: bool = True):
    """The model's graph in `fmt`: str for text formats, bytes for png and onnx."""
    if fmt not in FORMATS:
        raise NndslError(f"unknown export format '{fmt}' (formats: {', '.join(FORMATS)})")
    if fmt == "onnx":
        if grad:
            raise NndslError("--grad cannot be exported to ONNX: the ONNX file holds the forward graph "
                             "(outputs and loss) for inference; export the backward graph as dot, svg, png, "
                             "json or graphml")
        from .export_onnx import to_onnx
        return to_onnx(model, params).SerializeToString()
    graph = export_graph(model, grad)
    if fmt == "json":
        return to_json(graph)
    if fmt == "graphml":
        return to_graphml(graph).decode("utf-8")
    dot = to_dot(graph, clusters)
    if fmt == "dot":
        return dot
    image = render(dot, fmt)
    return image.decode("utf-8") if fmt in TEXT_FORMATS else image
