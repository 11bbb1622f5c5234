"""The Python API: `nndsl.load`, `nndsl.compile` and the `Model` they return."""
from __future__ import annotations

import functools
from pathlib import Path

import networkx as nx
import numpy as np

from . import syntax as S
from .autodiff import batch_mean, differentiate
from .data import parse_value, read_data_file
from .errors import NndslError
from .graph import GraphBuilder, span_of
from .initializers import draw, parse_init
from .interpreter import execute, needed, schedule
from .lower import lower
from .ops import fmt_shape
from .parser import parse, read_source
from .resolve import resolve
from .rewrite import rewrite_stable
from .settings import KEYS, merge, statement_layer, value_node


def compile(source: str, dims: dict | None = None, *, filename: str = "<string>", dtype="float32") -> "Model":
    """Compile .nn source text: parse, resolve, lower, rewrite."""
    try:
        program = parse(source, filename)
        resolved = resolve(program, dims)
        lowered = lower(resolved)
        inits = {st.name: parse_init(st, resolved.shapes[st.name])
                 for st in program.statements if isinstance(st, S.ParamStmt)}
        train_layer = statement_layer(resolved.train)
        merge([train_layer])                   # `check` validates the training settings too
    except NndslError as err:
        raise err.located(filename, source) from None
    rewrite_stable(lowered.graph)
    return Model(program, resolved, lowered, inits, np.dtype(dtype))


def load(path, dims: dict | None = None, *, dtype="float32") -> "Model":
    source = read_source(path)
    return compile(source, dims, filename=str(path), dtype=dtype)


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
        self.outputs: dict = lowered.outputs
        self.loss_name = lowered.loss[0] if lowered.loss else None
        self._plans: dict = {}
        self._grad_graphs: dict = {}

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
        return Model(self.program, self.resolved, self.lowered, self.inits, dtype)

    def error(self, message: str, name: str | None = None) -> NndslError:
        """An error located at the declaration of `name` in the model file."""
        span = span_of(self.graph, self.lowered.named[name]) if name in self.lowered.named else None
        return NndslError(message, span, filename=self.filename, source=self.program.source)

    # ---- parameters --------------------------------------------------------------------
    def init(self, seed: int = 0) -> dict:
        """Initial parameters from the declared initialisers; reproducible from `seed`."""
        return {name: draw(self.inits[name], name, shape, seed).astype(self.dtype)
                for name, shape in self.param_shapes().items()}

    def check_params(self, params: dict | None, source: str = "parameters") -> dict:
        params = self.init() if params is None else params
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
        data = {}
        shapes = self.input_shapes()
        for path, span in self.resolved.data_files:
            try:
                data.update(read_data_file(path, shapes))
            except NndslError as err:
                if err.span is not None:
                    raise
                where = f"{err.filename}: " if err.filename else ""
                raise NndslError(f"data file {where}{err.message}", span, filename=self.filename,
                                 source=self.program.source) from None
        data.update({name: value for name, (value, _) in self.resolved.data_inline.items()})
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
            shape = self.graph.nodes[node]["shape"]
            array = np.asarray(value, dtype=self.dtype)
            if array.shape == shape:
                feeds[node], sizes[name] = array[None], None
            elif array.shape[1:] == shape:
                feeds[node], sizes[name] = array, array.shape[0]
            else:
                raise self.error(f"data for input '{name}' has shape {fmt_shape(array.shape)}; expected "
                                 f"{fmt_shape(shape)} for one sample or {fmt_shape(('B',) + shape)} for a batch", name)
        batches = {n: b for n, b in sizes.items() if b is not None}
        if len(set(batches.values())) > 1 or (batches and len(batches) != len(sizes)):
            described = ", ".join(f"'{n}' has " + ("one sample" if b is None else f"{b} sample" + "s" * (b != 1))
                                  for n, b in sizes.items())
            raise NndslError(f"inputs disagree on the batch: {described}")
        return feeds, not batches

    # ---- running -----------------------------------------------------------------------
    def plan(self, key, graph, targets):
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = schedule(graph, targets, self.dtype)
        return plan

    @functools.cached_property
    def loss_inputs(self) -> set:
        """The input nodes the loss depends on."""
        return {n for n in needed(self.graph, [self.lowered.loss[1]]) if self.graph.nodes[n]["op"] == "input"}

    def evaluate(self, key, graph, targets: list, params: dict | None, data: dict, extra: dict | None = None) -> list:
        """Values of `targets` in `graph` (plan cached under `key`): parameters and data checked,
        and a single sample's results without the batch axis. `extra` feeds further leaves."""
        params = self.check_params(params)
        feeds, single = self.feeds(data)
        plan = self.plan(key, graph, targets)
        self.require_data(plan, feeds)
        feeds.update({self.params[n]: v for n, v in params.items()})
        feeds.update(extra or {})
        try:
            values = execute(plan, graph, feeds)
        except NndslError as err:
            raise err.located(self.filename, self.program.source) from None
        if single:
            values = [v[0] if graph.nodes[t]["batched"] else v for t, v in zip(targets, values)]
        return values

    def run(self, params: dict | None = None, **inputs) -> dict:
        """Forward evaluation: {output name: array}, plus the per-sample loss when its inputs are given."""
        targets = dict(self.outputs)
        given = {self.inputs[n] for n in inputs if n in self.inputs}
        if self.loss_name is not None and self.loss_inputs <= given:
            targets[self.loss_name] = self.lowered.loss[1]
        values = self.evaluate(("run", tuple(targets)), self.graph, list(targets.values()), params, inputs)
        return dict(zip(targets, values))

    def objective_graph(self):
        """The forward graph with the batch-mean objective added: (graph, objective node)."""
        cached = self._grad_graphs.get("objective")
        if cached is None:
            self.require_loss()
            graph = self.graph.copy()
            cached = self._grad_graphs["objective"] = (graph, batch_mean(GraphBuilder(graph), self.lowered.loss[1]))
        return cached

    def require_loss(self):
        if self.loss_name is None:
            raise NndslError("the model declares no loss; add one with: loss L = ...", filename=self.filename)

    def loss(self, params: dict | None = None, **data) -> float:
        """The batch-mean loss alone."""
        graph, objective = self.objective_graph()
        (value,) = self.evaluate("objective", graph, [objective], params, data)
        return float(value)

    def require_data(self, plan, feeds):
        names = {node: name for name, node in self.inputs.items()}
        missing = [names[n] for n in plan.leaves if n in names and n not in feeds]
        if missing:
            raise self.error(f"no data for input '{missing[0]}' (give it with -i {missing[0]}=VALUE or --data)",
                             missing[0])

    def gradient_graph(self, wrt: tuple):
        """The forward graph with the backward graph added: (graph, objective node, {name: grad node})."""
        cached = self._grad_graphs.get(wrt)
        if cached is None:
            graph, objective = self.objective_graph()
            nodes = [self.lowered.named[name] for name in wrt]
            graph, grads = differentiate(graph, objective, nodes)
            cached = self._grad_graphs[wrt] = (graph, objective, {n: grads[self.lowered.named[n]] for n in wrt})
        return cached

    def grad(self, params: dict | None = None, wrt=None, **data) -> tuple[float, dict]:
        """The batch-mean loss and its gradients: (float, {name: array}) for every parameter or `wrt`."""
        wrt = tuple(self.params) if wrt is None else tuple(wrt)
        for name in wrt:
            if name not in self.params and name not in self.inputs:
                raise NndslError(f"--wrt {name}: not a parameter or input of the model "
                                 f"(parameters: {', '.join(self.params) or 'none'}; inputs: {', '.join(self.inputs) or 'none'})")
        graph, objective, grads = self.gradient_graph(wrt)
        loss, *values = self.evaluate(("grad", wrt), graph, [objective] + list(grads.values()), params, data)
        return float(loss), dict(zip(grads, values))

    def hvp(self, params: dict, vector: dict, **data) -> dict:
        """Hessian-vector product of the batch-mean loss: the gradient of (grad · vector), by
        differentiating the backward graph a second time."""
        wrt = tuple(self.params)
        key = ("hvp", wrt)
        cached = self._grad_graphs.get(key)
        if cached is None:
            graph, objective, grads = self.gradient_graph(wrt)
            graph = graph.copy()
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
    def train(self, params: dict | None = None, *, data: dict | None = None, val_data: dict | None = None,
              checkpoint=None, checkpoint_every: int | None = None, resume=None, on_epoch=None, **keywords):
        """Trains the parameters (SPEC section 10): returns (trained parameters, History).

        Keywords named like a setting of the `train` statement (`lr`, `epochs`, `batch`,
        `optimizer="adam"`, `schedule="inverse(0.01)"`, `until="correct"` or a tolerance, ...)
        override the model's own; any other keyword is an input (or pass `data={...}`). Without
        data, the model's `data` statements are used. `params` are not changed.
        """
        from .training import Trainer
        data = dict(data or {})
        overrides = {}
        for key, value in keywords.items():
            if key in KEYS and key not in self.inputs:
                overrides[key] = value
            elif key in KEYS:
                raise NndslError(f"'{key}' names both a training setting and an input of the model: "
                                 "pass the input in data={...}")
            else:
                data[key] = value
        settings = self.train_settings([overrides])
        if params is None:
            params = self.init(settings.seed)
        trainer = Trainer(self, settings, params, data or self.default_data(), val_data)
        if resume is not None:
            trainer.restore(resume)
        trainer.run(on_epoch=on_epoch, checkpoint=(lambda t: t.save(checkpoint)) if checkpoint else None,
                    checkpoint_every=checkpoint_every or 1)
        if checkpoint and trainer.history.stopped != "nonfinite":
            trainer.save(checkpoint)
        return trainer.result(), trainer.history
