"""ONNX export: the forward graph as an ONNX model (opset 17), parameters as initializers.

ONNX is an optional extra (`pip install 'nndsl[onnx]'`); `onnx` is imported only when a model
is exported. What each op becomes is the `onnx` field of its registry entry in nndsl/ops/: a
function `(e, *inputs) -> output` where `inputs` and `output` are ONNX value names and `e` is
the `Emitter` below, which adds ONNX nodes and constants and knows the node's static facts.

Values keep nndsl's run-time layout: a batched value has a leading symbolic axis "B" before its
per-sample shape, an unbatched one (a parameter, a constant) has not. So mappings reduce over
negative axes, and the exporter itself does the two layout steps the interpreter does in
`ops.kernel`: before an elementwise op it aligns batched operands of lower per-sample rank
(`[B]` with `[n]` is `[B, 1]` with `[n]`), and after a node whose arguments carry the batch
but whose value does not, it sums over the batch axis.
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from .errors import NndslError
from .graph import arguments, span_of, topological_order
from .interpreter import needed
from .layout import NodeFacts
from .ops import REGISTRY

OPSET = 17
IR_VERSION = 8                     # the IR version that came with opset 17 (onnx 1.12)
BATCH = "B"                        # the symbolic batch dimension
AXES_AS_INPUT = {"ReduceSum"}      # at opset 17 the other Reduce* ops take `axes` as an attribute


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise NndslError("ONNX export needs the onnx package: pip install 'nndsl[onnx]'") from None
    return onnx


class Emitter(NodeFacts):
    """What an op's `onnx` mapping sees: `e("Add", a, b)` adds an ONNX node, returns its output.

    Static facts, as the interpreter's KernelInfo: `shape` and `batched` of the node, and
    `arg_shapes`, `arg_batched` of its arguments (per-sample shapes); `attrs`, the node's
    graph attributes; `elem_type`, the ONNX element type of every float value.
    """

    def __init__(self, exporter: "OnnxExporter", node, attrs: dict, arg_shapes: tuple, arg_batched: tuple,
                 base: str):
        super().__init__(node, attrs, arg_shapes, arg_batched)
        self.exporter = exporter
        self.elem_type = exporter.elem_type
        self.dtype = exporter.dtype
        self.base = base
        self.nodes: list = []          # the ONNX nodes this mapping added
        self.initializers: list = []   # and its constants
        self.count = 0

    # ---- building ----------------------------------------------------------------------
    def fresh(self) -> str:
        self.count += 1
        return f"{self.base}/{self.count}"

    def __call__(self, op_type: str, *inputs: str, **attributes) -> str:
        out = self.fresh()
        self.nodes.append(self.exporter.helper.make_node(op_type, list(inputs), [out], name=out, **attributes))
        return out

    def const(self, value, dtype=None) -> str:
        """A constant initializer: floats in the model's dtype unless `dtype` says otherwise."""
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.fresh()
        self.initializers.append(self.exporter.numpy_helper.from_array(array, name))
        return name

    def ints(self, values) -> str:
        """An int64 vector constant, as Unsqueeze, Squeeze and ReduceSum take their axes."""
        return self.const(list(values), dtype=np.int64)

    # ---- small compositions --------------------------------------------------------------
    def cast(self, x: str) -> str:
        """A boolean (or integer) value as the model's float type."""
        return self("Cast", x, to=self.elem_type)

    def unsqueeze(self, x: str, axes) -> str:
        return self("Unsqueeze", x, self.ints(axes))

    def squeeze(self, x: str, axes) -> str:
        return self("Squeeze", x, self.ints(axes))

    def reduce(self, op_type: str, x: str, axes, keepdims: bool = False) -> str:
        """A Reduce* node over `axes` (never empty: ONNX would reduce over every axis)."""
        axes = list(axes)
        if not axes:
            return x
        if op_type in AXES_AS_INPUT:
            return self(op_type, x, self.ints(axes), keepdims=int(keepdims))
        return self(op_type, x, axes=axes, keepdims=int(keepdims))

    def aligned(self, *xs: str) -> list:
        """Operands laid out for broadcasting: a batched operand of lower per-sample rank gets
        size-1 axes after its batch axis (the rule of `ops.aligned`)."""
        pads = self.pads()
        return [self.unsqueeze(x, range(1, 1 + pad)) if pad else x for x, pad in zip(xs, pads)]

    def per_sample_axes(self) -> list:
        """The negative axes of the widest argument's per-sample shape."""
        rank = max((len(s) for s in self.arg_shapes), default=0)
        return list(range(-rank, 0))

    # ---- leaves --------------------------------------------------------------------------
    def graph_input(self) -> str:
        name = self.attrs["name"]
        self.exporter.add_input(self.node, name, self.value_shape())
        return name

    def parameter(self) -> str:
        name = self.attrs["name"]
        self.exporter.add_parameter(name)
        return name

    def value_shape(self) -> list:
        return ([BATCH] if self.batched else []) + list(self.shape)

    # ---- the result ------------------------------------------------------------------------
    def finish(self, out: str, name: str) -> str:
        """Give the mapping's result the value name `name`."""
        if out == name:
            return out
        produced = [n for n in self.nodes if out in n.output]
        inits = [t for t in self.initializers if t.name == out]
        if not produced and not inits:        # the mapping passed an input through
            self.nodes.append(self.exporter.helper.make_node("Identity", [out], [name], name=name))
            return name
        for n in self.nodes:
            n.input[:] = [name if i == out else i for i in n.input]
            n.output[:] = [name if o == out else o for o in n.output]
        for t in inits:
            t.name = name
        return name


class OnnxExporter:
    def __init__(self, params: dict, dtype):
        require_onnx()
        from onnx import helper, numpy_helper
        self.helper = helper
        self.numpy_helper = numpy_helper
        self.params = params
        self.dtype = np.dtype(dtype)
        self.elem_type = helper.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes: list = []
        self.initializers: list = []
        self.inputs: list = []          # (node, value_info)

    def add_input(self, node, name: str, shape: list) -> None:
        self.inputs.append((node, self.helper.make_tensor_value_info(name, self.elem_type, shape)))

    def add_parameter(self, name: str) -> None:
        value = np.asarray(self.params[name], dtype=self.dtype)
        self.initializers.append(self.numpy_helper.from_array(value, name))

    def build(self, graph: nx.DiGraph, targets: dict, title: str, doc: str = ""):
        """An ONNX ModelProto computing `targets` ({output name: node}) of `graph`."""
        helper = self.helper
        order = topological_order(graph, needed(graph, list(targets.values())))
        taken = {graph.nodes[n]["name"] for n in order if graph.nodes[n]["name"]} | set(targets)
        values: dict = {}
        used: set = set()
        shapes: dict = {}
        for node in order:
            attrs = graph.nodes[node]
            op = REGISTRY[attrs["op"]]
            if op.onnx is None:
                raise NndslError(f"op '{op.name}' has no ONNX mapping", span_of(graph, node))
            args = arguments(graph, node)
            name = attrs["name"]
            if not name or name in used:
                name = unique(f"{name or op.name}_{node}", taken)
            e = Emitter(self, node, attrs, tuple(graph.nodes[a]["shape"] for a in args),
                        tuple(graph.nodes[a]["batched"] for a in args), name)
            inputs = [values[a] for a in args]
            if op.elementwise:
                inputs = e.aligned(*inputs)
            out = op.onnx(e, *inputs)
            if not op.unbatched and not attrs["batched"] and any(e.arg_batched):
                out = e.reduce("ReduceSum", out, [0])       # a batch-reduced node: sum over samples
            values[node] = e.finish(out, name)
            used.add(name)
            self.nodes.extend(e.nodes)
            self.initializers.extend(e.initializers)
            shapes[values[node]] = e.value_shape()
        outputs = []
        for out_name, node in targets.items():
            if values[node] != out_name:
                self.nodes.append(helper.make_node("Identity", [values[node]], [out_name], name=out_name))
                shapes[out_name] = shapes[values[node]]
            outputs.append(helper.make_tensor_value_info(out_name, self.elem_type, shapes[out_name]))
        leaves = {t.name for t in self.initializers} | {v.name for _, v in self.inputs} | set(targets)
        value_info = [helper.make_tensor_value_info(n, self.elem_type, s)
                      for n, s in shapes.items() if n not in leaves]
        inputs = [v for _, v in sorted(self.inputs, key=lambda pair: pair[0])]
        onnx_graph = helper.make_graph(self.nodes, title, inputs, outputs, initializer=self.initializers,
                                       value_info=value_info, doc_string=doc)
        from . import __version__
        proto = helper.make_model(onnx_graph, producer_name="nndsl", producer_version=__version__,
                                  opset_imports=[helper.make_opsetid("", OPSET)], doc_string=doc)
        proto.ir_version = IR_VERSION
        return proto


def unique(name: str, taken: set) -> str:
    candidate, k = name, 1
    while candidate in taken:
        candidate, k = f"{name}_{k}", k + 1
    taken.add(candidate)
    return candidate


def to_onnx(model, params: dict | None = None):
    """The model's forward graph as an onnx.ModelProto: its outputs and, when it declares one,
    its per-sample loss are the graph outputs; parameters (default: the declared initialisers,
    seed 0) are initializers; batched inputs and values have the symbolic leading axis "B"."""
    params = model.check_params(params)
    targets = dict(model.outputs)
    if model.loss_name is not None:
        targets.setdefault(model.loss_name, model.lowered.loss[1])
    doc = f"exported by nndsl from {model.filename}; batch axis '{BATCH}'; opset {OPSET}"
    try:
        return graph_to_onnx(model.graph, targets, params, dtype=model.dtype, title=model.name or "nndsl", doc=doc)
    except NndslError as err:
        raise err.located(model.filename, model.program.source) from None


def graph_to_onnx(graph: nx.DiGraph, targets: dict, params: dict, *, dtype=np.float32, title: str = "nndsl",
                  doc: str = ""):
    """Any graph of registry ops (a backward graph too) as ONNX computing `targets`, {output
    name: node}; `params` holds the value of every `param` node, by name."""
    return OnnxExporter(params, dtype).build(graph, targets, title, doc)
