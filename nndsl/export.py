"""Graph export: DOT (and SVG/PNG through Graphviz), JSON, GraphML, ONNX, and as source (.nn,
LaTeX, Python: nndsl.source).

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
from .ops import REGISTRY, fmt_shape

SOURCE_FORMATS = ("nn", "latex", "python")      # the graph written back as source: nndsl.source
TEXT_FORMATS = ("dot", "svg", "json", "graphml") + SOURCE_FORMATS + ("torch",)   # torch: nndsl.export_torch
BINARY_FORMATS = ("png", "onnx")
FORMATS = TEXT_FORMATS + BINARY_FORMATS
EXTENSIONS = {"tex": "latex", "py": "python"}   # extensions that name a format of another name


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
# How a node looks: the defaults, then its role's colours and line, then its op's `look` (the registry).
NODE_DEFAULTS = dict(shape="ellipse", style="filled", fillcolor="#ffffff", color="#374151", fontcolor="#111827",
                     fontname="Helvetica", fontsize="10", margin="0.08,0.03", height="0.3")
ROLE_LOOK = {
    "forward": {},
    "backward": dict(fillcolor="#fff7f7", color="#b91c1c", fontcolor="#7f1d1d", line="dashed"),
    "gradient": dict(fillcolor="#fee2e2", color="#b91c1c", fontcolor="#7f1d1d", line="dashed", penwidth="2"),
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
    owner, tree = call_clusters(graph) if clusters else ({}, {})
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
    look = {**ROLE_LOOK[role], **REGISTRY[attrs["op"]].look}
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


def call_clusters(graph: nx.DiGraph) -> tuple[dict, dict]:
    """Which inlined call each forward node belongs to: ({node: cluster}, {cluster: (function
    name, parent cluster or None)}). A node's `call` lists the call sites of the chain of
    functions named by its `scope`, so each prefix of it is one call, nested in the shorter."""
    owner, tree = {}, {}
    for node, attrs in graph.nodes(data=True):
        if not attrs.get("call") or attrs["role"] != "forward":
            continue
        sites, names = attrs["call"].split("/"), attrs["scope"].split("/")
        owner[node] = attrs["call"]
        for depth in range(1, len(sites) + 1):
            tree.setdefault("/".join(sites[:depth]), (names[depth - 1], "/".join(sites[:depth - 1]) or None))
    ids = {key: i for i, key in enumerate(sorted(tree))}
    return ({n: ids[c] for n, c in owner.items()},
            {ids[c]: (name, ids.get(parent)) for c, (name, parent) in tree.items()})


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
    suffix = EXTENSIONS.get(suffix, suffix)
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
    if fmt == "torch":
        if grad:
            raise NndslError("--grad cannot be exported as a torch module: it holds the forward graph, and torch.autograd "
                             "gives its gradients; export the gradient program with --format python")
        from .export_torch import to_torch_source
        return to_torch_source(model, params)
    if fmt in SOURCE_FORMATS:
        from .source import export as source
        return source(model, fmt, grad)
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
