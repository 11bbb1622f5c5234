"""The Python API: `nndsl.load`, `nndsl.compile` and the `Model` they return."""
from __future__ import annotations

import functools
import gc
import os
import threading
from collections.abc import Mapping
from contextlib import contextmanager
from math import prod
from pathlib import Path

import networkx as nx
import numpy as np

from . import syntax as S
from .autodiff import batch_mean, differentiate
from .data import parse_value, read_data_file
from .errors import NndslError, closest, file_error
from .graph import GraphBuilder, attributes, copy_graph, span_of
from .initializers import draw, parse_init
from .interpreter import ALL, all_values, entry, execute, first_nonfinite, needed, schedule
from .lower import lower
from .ops import fmt_shape
from .parser import parse, read_source
from .resolve import batch_problem, resolve, shape_problem
from .rewrite import rewrite_stable, simplify_backward
from .settings import KEYS, merge, statement_layer, value_node
from .torch_backend import check_backend


DTYPES = ("float32", "float64")


# ---- building without the cyclic garbage collector ------------------------------------------
_pause_lock = threading.Lock()
_pauses = 0                             # sections running now, in any thread
_collector_was_enabled = False


@contextmanager
def collector_paused():
    """Runs a section that builds big structures (the syntax tree, graphs, plans) with Python's
    cyclic garbage collector paused, then moves what was built to the oldest generation.

    The collector scans every tracked object each time enough new ones have survived, so the
    million objects built for a model of 10,000 layers were each scanned again and again: close
    to half the time of compiling and differentiating it, and a growing share as models grow.
    Syntax trees, graphs and plans hold no reference cycles (reference counting frees them), so
    nothing needs collecting meanwhile, nor afterwards (`promote_young`). Nested and concurrent
    sections are counted: the collector comes back, as it was, when the last one ends."""
    global _pauses, _collector_was_enabled
    with _pause_lock:
        if _pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            resume = _pauses == 0 and _collector_was_enabled
            if resume:
                gc.enable()
        threshold = gc.get_threshold()[0]           # 0: automatic collection is off
        if resume and threshold and gc.get_count()[0] > threshold:
            promote_young()


def promote_young() -> None:
    """Moves every object of the young generations to the oldest, where a collection of them
    would have moved the survivors, without scanning them: that scan was about a tenth of the
    time of compiling and differentiating a deep chain, and found nothing to free. (Cyclic
    garbage among them, from the caller, is freed by the next full collection instead.)

    `gc.freeze` moves every tracked object to the permanent generation and `gc.unfreeze` moves
    that to the oldest; both just link lists. Objects someone else froze (a server about to
    fork, say) must stay frozen, so then the young generations are collected instead."""
    if gc.get_freeze_count():
        gc.collect(1)
        return
    gc.freeze()
    gc.unfreeze()


def compile(source: str, dims: dict | None = None, *, filename: str = "<string>", dtype="float32",
            backend: str = "numpy", device: str | None = None) -> "Model":
    """Compile .nn source text: parse, resolve, lower, rewrite. `backend` ("numpy" or "torch")
    and `device` ("cpu", "cuda", "mps"; torch only) say where `run`, `grad`, `loss` and `train`
    compute (see `Model.on`)."""
    dtype = check_dtype(dtype)
    backend, device = check_backend(backend, device)
    for name, value in (dims or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise NndslError(f"dims: '{name}' must be a positive whole number, not {value!r}")
    with collector_paused():
        try:
            program = parse(source, filename)
            if not program.statements:
                raise NndslError("the model is empty: it declares no inputs, parameters or values "
                                 "(see docs/language.md for a first model)", filename=filename)
            resolved = resolve(program, dims)
            lowered = lower(resolved)
            inits = {st.name: parse_init(st, resolved.shapes[st.name])
                     for st in program.statements if isinstance(st, S.ParamStmt)}
            train_layer = statement_layer(resolved.train)
            merge([train_layer])                   # `check` validates the training settings too
        except NndslError as err:
            raise err.located(filename, source) from None
        rewrite_stable(lowered.graph)
        model = Model(program, resolved, lowered, inits, np.dtype(dtype))
    model.backend, model.device = backend, device
    return model


def memory_limit() -> tuple[int, str]:
    """The most bytes one value may take: NNDSL_MEMORY_LIMIT (bytes, or with a K, M, G or T
    suffix), else half of this machine's physical memory. (limit, where it comes from)."""
    text = os.environ.get("NNDSL_MEMORY_LIMIT", "").strip()
    if text:
        units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
        number, unit = (text[:-1], units[text[-1].upper()]) if text[-1:].upper() in units else (text, 1)
        try:
            limit = float(number) * unit
        except ValueError:
            raise NndslError(f"NNDSL_MEMORY_LIMIT={text}: give a number of bytes, e.g. 8G") from None
        return int(limit), f"NNDSL_MEMORY_LIMIT={text}"
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2**30
    return total // 2, "half of this machine's memory; NNDSL_MEMORY_LIMIT sets it"


def size_text(count: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def check_memory(graph, dtype: np.dtype, batch: int = 1, filename: str | None = None, source: str | None = None) -> None:
    """Every value fits under the memory limit, before anything is allocated: per sample at compile
    time, and for a batch of `batch` samples before a run."""
    limit, why = memory_limit()
    for node, attrs in attributes(graph).items():
        count = prod(attrs["shape"]) * (batch if attrs["batched"] else 1)
        if count * dtype.itemsize > limit:
            what = f"'{attrs['name']}'" if attrs.get("name") else f"this {attrs['op']}"
            per = f"a batch of {batch} of " if attrs["batched"] and batch > 1 else ""
            raise NndslError(f"{what} would take {size_text(count * dtype.itemsize)} as {dtype.name} "
                             f"({per}shape {fmt_shape(attrs['shape'])}); the limit is {size_text(limit)} ({why})",
                             span_of(graph, node), filename=filename, source=source)


def check_dtype(dtype) -> np.dtype:
    try:
        value = np.dtype(dtype)
    except TypeError:
        value = None
    if value is None or value.name not in DTYPES:
        raise NndslError(f"dtype {dtype!r} is not supported: nndsl computes in float32 or float64")
    return value


def load(path, dims: dict | None = None, *, dtype="float32", backend: str = "numpy", device: str | None = None) -> "Model":
    source = read_source(path)
    return compile(source, dims, filename=str(path), dtype=dtype, backend=backend, device=device)


AFTER_LOSS = slice(1, None)          # grad's targets: the loss (read as a float), then the gradients (owned)

class Model:
    """A compiled network. `graph` is its networkx.DiGraph; arrays are exchanged as dicts by name."""

    def __init__(self, program, resolved, lowered, inits, dtype):
        self.program = program
        self.resolved = resolved
        self.lowered = lowered
        self.inits = inits
        self.dtype = np.dtype(dtype)
        self.graph: nx.DiGraph = lowered.graph
        self.inputs: dict = lowered.inputs
        self.params: dict = lowered.params
        self._all_params = tuple(self.params)
        self.outputs: dict = lowered.outputs
        self.loss_name = lowered.loss[0] if lowered.loss else None
        check_memory(self.graph, self.dtype, filename=self.filename, source=program.source)
        self._plans: dict = {}
        self._grad_graphs: dict = {}
        self._grad_calls: dict = {}          # wrt -> (plan key, graph, targets, names): grad's fast path
        self._checked: set = set()           # (graph, batch size) whose memory was checked
        self._guards: dict = {}              # plan key -> [Guard]

    # ---- facts -------------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        return self.resolved.model_name

    @property
    def filename(self) -> str:
        return self.program.filename

    def shape(self, name: str) -> tuple:
        return self.graph.nodes[self.lowered.named[name]]["shape"]

    def param_shapes(self) -> dict:
        return {name: self.graph.nodes[node]["shape"] for name, node in self.params.items()}

    def input_shapes(self) -> dict:
        return {name: self.graph.nodes[node]["shape"] for name, node in self.inputs.items()}

    @property
    def train_layer(self) -> dict:
        """The settings of the model's `train` statement, as {key: syntax node}."""
        return statement_layer(self.resolved.train)

    def train_settings(self, overrides: list | None = None):
        """The training settings: defaults, then the `train` statement, then each layer of
        `overrides` ({key: value or syntax node}), later layers winning."""
        layers = [{k: value_node(k, v, f"{k}=") for k, v in layer.items()} for layer in overrides or ()]
        try:
            return merge([self.train_layer] + layers)
        except NndslError as err:
            raise err.located(self.filename, self.program.source) from None

    def astype(self, dtype) -> "Model":
        """The same model computing in another dtype (float32 or float64)."""
        model = Model(self.program, self.resolved, self.lowered, self.inits, check_dtype(dtype))
        model.backend, model.device = self.backend, self.device
        return model

    # ---- backends: NumPy (the interpreter) or PyTorch (nndsl.torch_backend) ----------------
    backend = "numpy"
    device = None

    def on(self, backend: str = "torch", device: str | None = None) -> "Model":
        """The same model computing with `backend` on `device` (it shares the compiled graph)."""
        backend, device = check_backend(backend, device)
        model = Model(self.program, self.resolved, self.lowered, self.inits, self.dtype)
        model.backend, model.device = backend, device
        return model

    @functools.cached_property
    def torch_runner(self):
        """Runs the forward graph on PyTorch (nndsl.torch_backend): the torch backend's run and grad."""
        from .torch_backend import TorchRunner
        return TorchRunner(self, self.device)

    def to_torch(self, params: dict | None = None, *, loss: bool = True):
        """The forward graph as a torch.fx.GraphModule (a torch.nn.Module) whose parameters are
        the model's `param`s (`params`, default the declared initialisers), in its ParameterDict
        `params`: `forward(*inputs)` takes the inputs it reads (`input_names`, each with a
        leading batch axis) and returns the outputs and, with `loss`, the per-sample loss
        (`output_names`). It lives on the model's device."""
        from .torch_backend import lower, require_torch
        require_torch("to_torch")
        targets = dict(self.outputs)
        if loss and self.loss_name is not None:
            targets.setdefault(self.loss_name, self.lowered.loss[1])
        module = lower(self.graph, targets, self.inputs, self.check_params(params), self.dtype)
        return module.to(self.device or "cpu")

    def evaluate_on(self, key, graph, targets: list, params: dict | None, data: dict) -> list:
        """`evaluate` on the model's backend (the forward graph only)."""
        if self.backend == "torch":
            return self.torch_runner.evaluate(graph, targets, params, data)
        return self.evaluate(key, graph, targets, params, data)

    def error(self, message: str, name: str | None = None, hint: str | None = None) -> NndslError:
        """An error located at the declaration of `name` in the model file."""
        span = span_of(self.graph, self.lowered.named[name]) if name in self.lowered.named else None
        return NndslError(message, span, filename=self.filename, source=self.program.source, hint=hint)

    # ---- parameters --------------------------------------------------------------------
    def init(self, seed: int = 0) -> dict:
        """Initial parameters from the declared initialisers; reproducible from `seed`."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise NndslError(f"seed must be a whole number >= 0, not {seed!r}")
        return {name: draw(self.inits[name], name, shape, seed).astype(self.dtype)
                for name, shape in self.param_shapes().items()}

    def check_params(self, params: dict | None, source: str = "parameters") -> dict:
        params = self.init() if params is None else params
        if not isinstance(params, Mapping):
            raise NndslError(f"{source} must be a mapping of parameter names to arrays "
                             f"(as model.init() returns), not {type(params).__name__}", filename=self.filename)
        for name in params:
            if name not in self.params:
                close = closest(name, self.params) if isinstance(name, str) else None
                hint = f"; did you mean '{close}'?" if close else ""
                raise NndslError(f"{source} has a value for '{name}', which is not a parameter of the model{hint} "
                                 f"(parameters: {', '.join(self.params) or 'none'})")
        out = {}
        for name, shape in self.param_shapes().items():
            if name not in params:
                raise self.error(f"{source} has no value for parameter '{name}'", name)
            value = np.asarray(params[name], dtype=self.dtype)
            if value.shape != shape:
                raise self.error(f"{source}: parameter '{name}' has shape {fmt_shape(value.shape)}, "
                                 f"declared {fmt_shape(shape)}", name)
            out[name] = value
        return out

    # ---- data --------------------------------------------------------------------------
    def default_data(self) -> dict:
        """Arrays from the model's own `data` statements."""
        data, spans = {}, {}
        shapes = self.input_shapes()
        for path, span in self.resolved.data_files:
            try:
                arrays = read_data_file(path, shapes)
                for name, array in arrays.items():
                    if name in shapes:
                        problem = shape_problem(name, array.shape, shapes[name])
                        if problem:
                            raise file_error(path, problem)
            except NndslError as err:
                if err.span is not None:
                    raise
                where = f"{err.filename}: " if err.filename else ""
                raise NndslError(f"data file {where}{err.message}", span, filename=self.filename,
                                 source=self.program.source) from None
            data.update(arrays)
            spans.update(dict.fromkeys(arrays, span))
        for name, (value, span) in self.resolved.data_inline.items():
            data[name], spans[name] = value.copy(), span
        sizes = {name: None if np.shape(v) == shapes.get(name) else len(v) for name, v in data.items()}
        problem = batch_problem(sizes)
        if problem:
            raise NndslError(f"the data statements disagree: {problem.partition(': ')[2]}",
                             spans[list(data)[-1]], filename=self.filename, source=self.program.source)
        return data

    def read_data(self, path) -> dict:
        return read_data_file(Path(path), self.input_shapes())

    def parse_value(self, name: str, text: str) -> np.ndarray:
        if name not in self.inputs:
            raise NndslError(f"-i {name}=...: the model has no input '{name}' (inputs: {', '.join(self.inputs) or 'none'})")
        return parse_value(text, name, self.input_shapes())

    def feeds(self, data: dict) -> tuple[dict, bool]:
        """Inputs as arrays with a leading batch axis; whether the data was a single sample."""
        feeds, sizes = {}, {}
        for name, value in data.items():
            if name not in self.inputs:
                raise NndslError(f"the model has no input '{name}' (inputs: {', '.join(self.inputs) or 'none'})")
            node = self.inputs[name]
            array = np.asarray(value, dtype=self.dtype)
            problem = shape_problem(name, array.shape, self.graph.nodes[node]["shape"])
            if problem:
                raise self.error(problem, name)
            single = array.shape == self.graph.nodes[node]["shape"]
            feeds[node], sizes[name] = (array[None], None) if single else (array, array.shape[0])
        problem = batch_problem(sizes)
        if problem:
            raise NndslError(problem)
        return feeds, not any(b is not None for b in sizes.values())

    # ---- running -----------------------------------------------------------------------
    def check_memory(self, graph, batch: int) -> None:
        """`check_memory` of `graph` (the model's or one made from it) for a batch of `batch`
        samples, once per graph and batch size."""
        if (id(graph), batch) not in self._checked:
            check_memory(graph, self.dtype, batch, self.filename, self.program.source)
            self._checked.add((id(graph), batch))

    def plan(self, key, graph, targets):
        plan = self._plans.get(key)
        if plan is None:
            with collector_paused():
                plan = self._plans[key] = schedule(graph, targets, self.dtype)
        return plan

    @functools.cached_property
    def loss_inputs(self) -> set:
        """The input nodes the loss depends on."""
        return {n for n in needed(self.graph, [self.lowered.loss[1]]) if self.graph.nodes[n]["op"] == "input"}

    def evaluate(self, key, graph, targets: list, params: dict | None, data: dict, extra: dict | None = None,
                 own: slice = ALL) -> list:
        """Values of `targets` in `graph` (plan cached under `key`): parameters and data checked,
        and a single sample's results without the batch axis. `extra` feeds further leaves. The
        targets `own` selects are arrays no one else holds (`interpreter.owned`)."""
        plan = self._plans.get(key) or self.plan(key, graph, targets)
        # The guard: arrays of exactly the kinds, dtypes and shapes already checked for this plan
        # go straight in (no copies, no checks); anything else takes the full checks below.
        feeds, single, guard = None, False, None
        guards = self._guards.get(key)
        if guards is not None:
            for guard in guards:
                if guard.entry is not None and guard.own is own and not extra:
                    values = guard.entry(params, data)      # the guard and the compiled plan, in one call
                    if values is not None:
                        return values
                feeds = guard.feeds(params, data)
                if feeds is not None:
                    break
        if feeds is None:
            guard = None
            checked = self.check_params(params)
            feeds, single = self.feeds(data)
            batch = max((len(v) for v in feeds.values()), default=1)
            if batch > 1:                   # one sample: checked when the model was compiled
                self.check_memory(graph, batch)
            self.require_data(plan, feeds)
            feeds.update({self.params[n]: v for n, v in checked.items()})
            guard = Guard.of(self, params, data, feeds)
            if guard is not None and not single:
                guards = self._guards.setdefault(key, [])
                if len(guards) < 8:             # a few batch sizes (the last batch of an epoch is smaller)
                    guards.append(guard)
        if extra:
            feeds.update(extra)
        try:
            values = execute(plan, graph, feeds, own=own)
        except NndslError as err:
            raise err.located(self.filename, self.program.source) from None
        if guard is not None and guard.own is None and plan.compiled and not (extra or single):
            guard.entry, guard.own = entry(plan, guard.entries, own), own      # from the next call on
        if single:
            values = [np.asarray(v[0]) if graph.nodes[t]["batched"] else v for t, v in zip(targets, values)]
        return values

    def values(self, graph, targets: list, params: dict | None, data: dict) -> dict:
        """{node: value} of everything `targets` need in `graph`, in the order computed (for
        diagnostics: where a NaN arose, which kinks were hit)."""
        params = self.check_params(params)
        feeds, _ = self.feeds(data)
        feeds.update({self.params[n]: v for n, v in params.items()})
        try:
            return all_values(graph, targets, feeds, self.dtype)
        except NndslError as err:
            raise err.located(self.filename, self.program.source) from None

    def nonfinite_origin(self, graph, targets: list, params: dict | None, data: dict) -> NndslError | None:
        """A note located where the first non-finite value among what `targets` need arose."""
        values = self.values(graph, targets, params, data)
        node = first_nonfinite(graph, values)
        if node is None:
            return None
        attrs = graph.nodes[node]
        return NndslError(f"the first non-finite value ({attrs['op']}) appeared here", span_of(graph, node),
                          filename=self.filename, source=self.program.source)

    def run(self, params: dict | None = None, /, *, show=None, inputs: dict | None = None, **keywords) -> dict:
        """Forward evaluation: {output name: array}, plus the per-sample loss when its inputs are given,
        plus any named values in `show` (hidden layers, say). Inputs are keywords (`x=X`) or, for any
        name, the mapping `inputs={"x": X}` (an input called `show` goes there)."""
        inputs = merge_inputs(inputs, keywords)
        targets = dict(self.outputs)
        for name in [show] if isinstance(show, str) else show or ():
            targets[name] = self.named_node(name, "show")
        if not targets:
            raise NndslError("the model has nothing to output: declare one with `output NAME = ...`, "
                             "or bind a value", filename=self.filename)
        given = {self.inputs[n] for n in inputs if n in self.inputs}
        if self.loss_name is not None and self.loss_inputs <= given:
            targets[self.loss_name] = self.lowered.loss[1]
        values = self.evaluate_on(("run", tuple(targets)), self.graph, list(targets.values()), params, inputs)
        return dict(zip(targets, values))

    def named_node(self, name: str, purpose: str):
        """The node of a named value (an input, a parameter, a binding, an output or the loss)."""
        if name not in self.lowered.named:
            close = closest(name, self.lowered.named)
            hint = f"; did you mean '{close}'?" if close else ""
            raise NndslError(f"cannot {purpose} '{name}': the model has no value of that name{hint} "
                             f"(named values: {', '.join(self.lowered.named) or 'none'})")
        return self.lowered.named[name]

    def objective_graph(self):
        """The forward graph with the batch-mean objective added: (graph, objective node)."""
        cached = self._grad_graphs.get("objective")
        if cached is None:
            self.require_loss()
            with collector_paused():
                graph = copy_graph(self.graph)
                cached = self._grad_graphs["objective"] = (graph, batch_mean(GraphBuilder(graph), self.lowered.loss[1]))
        return cached

    def require_loss(self):
        if self.loss_name is None:
            raise NndslError("the model declares no loss; add one with: loss L = ...", filename=self.filename)

    def loss(self, params: dict | None = None, /, *, inputs: dict | None = None, **keywords) -> float:
        """The batch-mean loss alone."""
        data = merge_inputs(inputs, keywords)
        graph, objective = self.objective_graph()
        (value,) = self.evaluate_on("objective", graph, [objective], params, data)
        return float(value)

    def require_data(self, plan, feeds):
        names = {node: name for name, node in self.inputs.items()}
        missing = [names[n] for n in plan.leaves if n in names and n not in feeds]
        if missing:
            raise self.error(f"no data for input '{missing[0]}'", missing[0],
                             hint=f"give it with -i {missing[0]}=VALUE or --data")

    def gradient_graph(self, wrt: tuple):
        """The forward graph with the backward graph added: (graph, objective node, {name: grad node})."""
        cached = self._grad_graphs.get(wrt)
        if cached is None:
            self.require_loss()
            nodes = [self.lowered.named[name] for name in wrt]
            with collector_paused():
                graph = copy_graph(self.graph)      # one copy: the objective and the backward graph go in it
                objective = batch_mean(GraphBuilder(graph), self.lowered.loss[1])
                graph, grads = differentiate(graph, objective, nodes, copy=False)
                simplify_backward(graph, [objective, *grads.values()])
            cached = self._grad_graphs[wrt] = (graph, objective, {n: grads[self.lowered.named[n]] for n in wrt})
        return cached

    def grad(self, params: dict | None = None, /, *, wrt=None, inputs: dict | None = None,
             **keywords) -> tuple[float, dict]:
        """The batch-mean loss and its gradients: (float, {name: array}) for every parameter, or
        for the parameters and inputs named in `wrt`. An input named `wrt` goes in `inputs={...}`."""
        data = merge_inputs(inputs, keywords)
        wrt = self._all_params if wrt is None else (wrt,) if isinstance(wrt, str) else tuple(wrt)
        call = self._grad_calls.get(wrt)
        if call is None:
            self.require_loss()
            if not wrt:
                raise NndslError("nothing to differentiate with respect to: the model has no parameters, and wrt "
                                 "names no input" if not self.params else "wrt names no parameter or input")
            for name in wrt:
                self.named_node(name, "differentiate with respect to")
            if self.backend == "torch":             # torch.autograd through the lowered forward graph
                return self.torch_runner.grad(params, wrt, data)
            graph, objective, grads = self.gradient_graph(wrt)
            call = self._grad_calls[wrt] = (("grad", wrt), graph, [objective, *grads.values()], tuple(grads))
        key, graph, targets, names = call
        loss, *values = self.evaluate(key, graph, targets, params, data, own=AFTER_LOSS)     # the loss: a float
        return float(loss), dict(zip(names, values))

    def hvp(self, params: dict | None, vector: dict, /, *, inputs: dict | None = None, **keywords) -> dict:
        """Hessian-vector product of the batch-mean loss: the gradient of (grad · vector), by
        differentiating the backward graph a second time."""
        data = merge_inputs(inputs, keywords)
        if not self.params:
            raise NndslError("the model has no parameters: a Hessian-vector product needs some", filename=self.filename)
        wrt = tuple(self.params)
        key = ("hvp", wrt)
        cached = self._grad_graphs.get(key)
        if cached is None:
            graph, objective, grads = self.gradient_graph(wrt)
            with collector_paused():
                graph = copy_graph(graph)
                builder = GraphBuilder(graph, role="backward")
                terms = []
                directions = {}
                for name, g in grads.items():
                    v = builder.add("param", shape=self.shape(name), batched=False, name=f"v_{name}")
                    directions[name] = v
                    terms.append(builder.add("sum", builder.add("mul", g, v)))
                total = terms[0]
                for t in terms[1:]:
                    total = builder.add("add", total, t)
                params_nodes = [self.params[n] for n in wrt]
                graph, second = differentiate(graph, total, params_nodes)
            cached = self._grad_graphs[key] = (graph, [second[self.params[n]] for n in wrt], directions)
        graph, outs, directions = cached
        vector = self.check_params(vector, source="the direction")
        values = self.evaluate(key, graph, outs, params, data, {directions[n]: vector[n] for n in wrt})
        return dict(zip(wrt, values))

    # ---- training ----------------------------------------------------------------------
    def train(self, params: dict | None = None, /, *, inputs: dict | None = None, val_inputs: dict | None = None,
              checkpoint=None, checkpoint_every: int | None = None, resume=None, on_epoch=None, **keywords):
        """Trains the parameters (SPEC section 10): returns (trained parameters, History).

        Keywords named like a setting of the `train` statement (`lr`, `epochs`, `batch`,
        `optimizer="adam"`, `schedule="inverse(0.01)"`, `until="correct"` or a tolerance, ...)
        override the model's own; any other keyword is an input (or pass `inputs={...}`). Without
        inputs, the model's `data` statements are used. `params` are not changed.
        """
        if self.backend == "torch":
            from .torch_training import TorchTrainer as Trainer
        else:
            from .training import Trainer
        data = merge_inputs(inputs, {})
        if val_inputs is not None and not isinstance(val_inputs, Mapping):
            raise NndslError(f"val_inputs must be a mapping of input names to arrays, not {type(val_inputs).__name__}")
        overrides = {}
        for key, value in keywords.items():
            if key in KEYS and key not in self.inputs:
                overrides[key] = value
            elif key in KEYS:
                raise NndslError(f"'{key}' names both a training setting and an input of the model: "
                                 "pass the input in inputs={...}")
            else:
                data[key] = value
        settings = self.train_settings([overrides])
        if params is None:
            params = self.init(settings.seed)
        trainer = Trainer(self, settings, params, data or self.default_data(), val_inputs)
        if resume is not None:
            trainer.restore(resume)
        trainer.run(on_epoch=on_epoch, checkpoint=checkpoint, checkpoint_every=checkpoint_every or 1)
        return trainer.result(), trainer.history


def merge_inputs(inputs: dict | None, keywords: dict) -> dict:
    """Inputs given as a mapping and as keywords, one dict; a name given both ways is an error."""
    if inputs is not None and not isinstance(inputs, Mapping):
        raise NndslError(f"inputs must be a mapping of input names to arrays, not {type(inputs).__name__}")
    if not inputs:
        return keywords                 # a dict of its own already
    merged = dict(inputs)
    for name, value in keywords.items():
        if name in merged:
            raise NndslError(f"input '{name}' is given twice, as a keyword and in inputs={{...}}")
        merged[name] = value
    return merged


class Guard:
    """What passed the full checks once, as it was: parameters and data, each a NumPy array of a
    dtype and shape, each fed as it is (nothing was converted). `feeds` gives the feeds of
    arrays exactly like those, without copies or further checks; None for anything else (lists,
    numbers, other array types, other names, dtypes or shapes), which then takes the checks."""

    def __init__(self, params: list, data: list):
        self.sizes = (len(params), len(data))
        # (0 for a parameter or 1 for data, name, node, dtype, shape), in one list: the hot loop
        self.entries = [(0, *entry) for entry in params] + [(1, *entry) for entry in data]
        # `interpreter.entry`: these checks and the compiled plan as one function, for `own`
        # (made once; None if the plan has no variant to spare)
        self.entry, self.own = None, None

    @classmethod
    def of(cls, model: Model, params, data: dict, feeds: dict):
        if params is None or len(params) != len(model.params):
            return None
        expected = []
        for arrays, nodes in ((params, model.params), (data, model.inputs)):
            entries = []
            for name, value in arrays.items():
                node = nodes.get(name)
                if type(value) is not np.ndarray or node is None or feeds.get(node) is not value:
                    return None
                entries.append((name, node, value.dtype, value.shape))
            expected.append(entries)
        return cls(*expected)

    def feeds(self, params: dict | None, data: dict) -> dict | None:
        if type(params) is not dict or (len(params), len(data)) != self.sizes:
            return None
        feeds = {}
        sources = (params, data)
        for source, name, node, dtype, shape in self.entries:
            value = sources[source].get(name)
            if type(value) is not np.ndarray or value.shape != shape or (value.dtype is not dtype and value.dtype != dtype):
                return None
            feeds[node] = value
        return feeds
