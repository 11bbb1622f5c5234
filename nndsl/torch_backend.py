"""The PyTorch backend: nndsl's forward graph lowered to a `torch.fx.GraphModule`.

PyTorch is an optional extra (`pip install 'nndsl[torch]'`), imported only here and only when
asked for. What each op becomes is the `torch` slot of its registry entry (`torch=` in its
`defop`, nndsl/ops/), a function `(t, *tensors) -> tensor` of the `Lowering` context below. Only the
forward graph is lowered: gradients come from torch.autograd, so PyTorch's optimizers,
DistributedDataParallel and devices apply to the lowered module as to any other.

The lowered module keeps nndsl's run-time layout: every input is fed with a leading batch axis
(one sample is a batch of one), parameters and constants have none. Its parameters are the
model's `param`s, in a ParameterDict `params` under their own names; constants are buffers
(`const_NODE`), so `.to(device, dtype)` moves everything. `forward(*inputs)` takes the inputs
positionally, in the order of the module's `input_names`, and returns one tensor per target,
in the order of `output_names`.
"""
from __future__ import annotations

import numpy as np

from .errors import NndslError
from .graph import arguments, attributes, span_of, topological_order
from .interpreter import index_readers, needed
from .layout import NodeFacts, pad_key
from .ops import REGISTRY, class_indices

BACKENDS = ("numpy", "torch")
DEVICES = ("cpu", "cuda", "mps")
INSTALL = "pip install 'nndsl[torch]'"


def require_torch(why: str = "--backend torch"):
    """The torch module, or a one-line error that says how to install it."""
    try:
        import torch
    except ImportError:
        raise NndslError(f"{why} needs PyTorch, which is not installed: {INSTALL}") from None
    return torch


def check_backend(backend: str, device: str | None) -> tuple[str, str | None]:
    """(backend, device) as given, checked: an unknown name, a device without the torch backend,
    or a device this machine lacks is an error."""
    if backend not in BACKENDS:
        raise NndslError(f"unknown backend {backend!r} (backends: {', '.join(BACKENDS)})")
    if device is None:
        if backend == "torch":
            require_torch()
        return backend, None
    if device.split(":")[0] not in DEVICES:
        raise NndslError(f"unknown device {device!r} (devices: {', '.join(DEVICES)}, e.g. cuda:1)")
    if backend != "torch":
        raise NndslError(f"--device {device} runs on PyTorch: add --backend torch")
    torch = require_torch()
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise NndslError(f"--device {device}: CUDA is not available here (this PyTorch "
                         f"{'has no CUDA support' if torch.version.cuda is None else 'finds no GPU'}); use --device cpu")
    if kind == "cuda" and ":" in device:
        index = device.split(":")[1]
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise NndslError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise NndslError(f"--device {device}: Apple's MPS is not available here; use --device cpu")
    return backend, device


def torch_dtype(dtype, device=None):
    """The torch dtype of a model's dtype, on `device` (MPS has no float64)."""
    torch = require_torch()
    name = np.dtype(dtype).name
    if name == "float64" and str(device or "").startswith("mps"):
        raise NndslError("--dtype float64: Apple's MPS computes in float32 alone; use --dtype float32 or --device cpu")
    return {"float32": torch.float32, "float64": torch.float64}[name]


# ---- lowering ------------------------------------------------------------------------------
class Lowering(NodeFacts):
    """What an op's `torch` mapping sees for one node: its static facts, `torch`, `F`, and the
    leaves (`input()`, `parameter()`, `constant()`) as fx proxies."""

    def __init__(self, builder: "Builder", node, attrs: dict, arg_shapes: tuple, arg_batched: tuple):
        super().__init__(node, attrs, arg_shapes, arg_batched)
        self.builder = builder
        self.torch = builder.torch
        self.F = builder.torch.nn.functional

    def aligned(self, *xs) -> list:
        """Operands laid out for broadcasting per sample (nndsl.layout)."""
        return [x if not p else x[pad_key(p)] for x, p in zip(xs, self.pads())]

    def input(self):
        return self.builder.placeholders[self.node]

    def parameter(self):
        return self.builder.get_attr(f"params.{self.attrs['name']}")

    def constant(self):
        name = f"const_{self.node}"
        value = np.asarray(self.attrs["value"], dtype=self.builder.dtype)
        self.builder.root.register_buffer(name, self.torch.from_numpy(value.copy()))
        return self.builder.get_attr(name)


class Builder:
    def __init__(self, torch, root, dtype):
        self.torch, self.root, self.dtype = torch, root, dtype
        self.fx = torch.fx.Graph()
        self.tracer = torch.fx.proxy.GraphAppendingTracer(self.fx)
        self.placeholders = {}

    def proxy(self, fx_node):
        return self.torch.fx.Proxy(fx_node, self.tracer)

    def get_attr(self, target: str):
        return self.proxy(self.fx.get_attr(target))


def lower(graph, targets: dict, inputs: dict, params: dict, dtype=np.float32):
    """A torch.fx.GraphModule computing `targets` ({output name: node}) of `graph` (any graph
    of registry ops) from the inputs among `inputs` ({name: node}) that the targets need;
    `params` ({name: array}) gives the parameters' values, as float tensors of `dtype`."""
    torch = require_torch()
    dtype = np.dtype(dtype)
    keep = needed(graph, list(targets.values()))
    order = topological_order(graph, keep)
    nodes = attributes(graph)
    root = torch.nn.Module()
    used_params = [nodes[n]["name"] for n in order if nodes[n]["op"] == "param"]
    root.params = torch.nn.ParameterDict({
        name: torch.nn.Parameter(torch.from_numpy(np.array(params[name], dtype=dtype))) for name in params
        if name in used_params})
    b = Builder(torch, root, dtype)
    input_names = [name for name, node in inputs.items() if node in keep]
    for name in input_names:
        b.placeholders[inputs[name]] = b.proxy(b.fx.placeholder(name))
    values = {}
    for node in order:
        attrs = nodes[node]
        op = REGISTRY[attrs["op"]]
        if op.torch is None:
            raise NndslError(f"op '{op.name}' has no PyTorch mapping")
        args = arguments(graph, node)
        t = Lowering(b, node, attrs, tuple(nodes[a]["shape"] for a in args), tuple(nodes[a]["batched"] for a in args))
        xs = [values[a] for a in args]
        if op.elementwise:
            xs = t.aligned(*xs)
        out = op.torch(t, *xs)
        if not op.unbatched and not attrs["batched"] and any(t.arg_batched):
            out = out.sum(dim=0)                    # a batch-reduced node: the sum over samples
        values[node] = out
    b.fx.output(tuple(values[n].node for n in targets.values()))
    module = torch.fx.GraphModule(root, b.fx, class_name="Lowered")
    module.params = root.params                     # the ParameterDict itself, not fx's plain copy
    module.input_names = input_names
    module.output_names = list(targets)
    return module


# ---- running a model -------------------------------------------------------------------------
class TorchRunner:
    """A model's forward graph on PyTorch: `run`, `loss` and `grad` as the NumPy interpreter
    gives them (arrays in, NumPy arrays out), each target set lowered once and cached."""

    def __init__(self, model, device: str | None):
        self.torch = require_torch()
        self.model = model
        self.device = self.torch.device(device or "cpu")
        self.dtype = torch_dtype(model.dtype, device)
        self.modules: dict = {}

    def module(self, graph, targets: dict):
        key = (id(graph), tuple(targets.items()))
        module = self.modules.get(key)
        if module is None:
            model = self.model
            module = lower(graph, targets, model.inputs, model.init(0), model.dtype)
            module = self.modules[key] = module.to(self.device)
        return module

    def tensors(self, module, params: dict | None, data: dict) -> tuple[list, bool, int]:
        """Loads `params` into the module: (the inputs it reads as tensors with the batch axis,
        whether the data was one sample, the batch size)."""
        model = self.model
        checked = model.check_params(params)
        feeds, single = model.feeds(data)
        missing = [n for n in module.input_names if model.inputs[n] not in feeds]
        if missing:
            raise model.error(f"no data for input '{missing[0]}'", missing[0],
                              hint=f"give it with -i {missing[0]}=VALUE or --data")
        check_class_indices(model, feeds)
        with self.torch.no_grad():
            for name, p in module.params.items():
                p.copy_(self.torch.from_numpy(checked[name]))
        batch = max((len(v) for v in feeds.values()), default=1)
        return [self.torch.from_numpy(feeds[model.inputs[n]]).to(self.device) for n in module.input_names], single, batch

    def evaluate(self, graph, targets: list, params: dict | None, data: dict) -> list:
        """NumPy values of `targets` (nodes of a forward graph), as Model.evaluate gives them."""
        module = self.module(graph, {f"t{i}": n for i, n in enumerate(targets)})
        xs, single, _ = self.tensors(module, params, data)
        with self.torch.no_grad():
            outs = module(*xs)
        values = [out.detach().cpu().numpy() for out in outs]
        if single:
            values = [v[0] if graph.nodes[t]["batched"] else v for t, v in zip(targets, values)]
        return [np.array(v, dtype=self.model.dtype) for v in values]

    def grad(self, params: dict | None, wrt: tuple, data: dict) -> tuple[float, dict]:
        """The batch-mean loss and its gradients with respect to `wrt` (parameters, inputs or
        named values), by torch.autograd through the lowered objective graph."""
        model = self.model
        graph, objective = model.objective_graph()
        inner = [n for n in wrt if n not in model.params and n not in model.inputs]
        targets = {"objective": objective, **{n: model.lowered.named[n] for n in inner}}
        module = self.module(graph, targets)
        xs, single, batch = self.tensors(module, params, data)
        for name, x in zip(module.input_names, xs):
            x.requires_grad_(name in wrt)
        outs = module(*xs)
        loss, values = outs[0], dict(zip(inner, outs[1:]))
        leaves = []
        for name in wrt:
            if name in model.params:
                leaves.append(module.params[name] if name in module.params else None)
            elif name in model.inputs:
                leaves.append(xs[module.input_names.index(name)] if name in module.input_names else None)
            else:
                leaves.append(values[name])
        live = [x for x in leaves if x is not None and x.requires_grad]
        found = iter(self.torch.autograd.grad(loss, live, allow_unused=True) if live and loss.requires_grad
                     else [None] * len(live))
        grads = {}
        for name, leaf in zip(wrt, leaves):
            g = next(found) if leaf is not None and leaf.requires_grad else None
            shape = model.shape(name)
            batched = model.graph.nodes[model.lowered.named[name]]["batched"]
            if g is None:
                value = np.zeros(((batch,) if batched else ()) + shape, dtype=model.dtype)
            else:
                value = np.array(g.detach().cpu().numpy(), dtype=model.dtype)
            grads[name] = value[0] if single and batched else value
        return float(loss.detach().cpu()), grads


def check_class_indices(model, feeds: dict) -> None:
    """Class indices fed from data are checked before torch sees them, with nndsl's message."""
    graph = model.graph
    fed, _ = index_readers(graph, topological_order(graph))
    first = {}                                  # (input, class count) -> its first reader, located as NumPy's
    for reader, key in fed.items():
        first.setdefault(key, reader)
    for (source, classes), reader in first.items():
        if source in feeds:
            try:
                class_indices(feeds[source], classes)
            except FloatingPointError as err:
                raise NndslError(str(err), span_of(graph, reader), filename=model.filename,
                                 source=model.program.source) from None
