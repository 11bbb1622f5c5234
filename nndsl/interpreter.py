"""Passes 6 and 7, schedule and execute: one small loop runs any graph, forward or backward.

`schedule` picks the nodes the targets need, orders them topologically (in networkx's order,
iteratively), specialises each node's kernel to its shapes and batch layout once, and records
after which step each value is read for the last time, so it can be dropped there. `execute`
is the loop.

A plan that runs a second time is compiled (`compile_plan`), once per batch size: its steps
become one straight-line Python function, a line per step and `del` after a value's last use, so
a training loop pays no interpretation per op; what depends on constants and the batch size
alone (B, 1/B) is computed while compiling (`fold`), and the results the caller will own are
made unshared at its end. Behind a model's guard, the checks of the arrays and the compiled plan
become one generated call (`entry`). The generated source holds slot numbers, positions and
registry op names only; nothing from a model file is ever part of it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import networkx as nx
import numpy as np

from .errors import NndslError
from .graph import arguments, attributes, span_of, topological_order
from .ops import REGISTRY, KernelInfo, class_indices, kernel



@dataclass
class Plan:
    steps: list          # (kernel, argument slots, output slot, slots to free afterwards, node)
    slots: dict          # node -> slot
    constants: list      # (slot, value) computed once
    leaves: dict         # node -> slot, for inputs and parameters that must be fed
    targets: list        # slots of the requested values
    size: int
    constant_ids: frozenset = frozenset()    # ids of the constants' arrays, which results must not be
    runs: int = 0                            # how often it ran; compiled when it runs again
    compiled: dict = None                    # (batch size, own's start, stop, step) -> feeds -> target values
    batch_only: frozenset = frozenset()      # steps whose value is the batch size's alone (`batch_only`)
    batch_leaf: object = None                # a batched leaf, whose feed tells the batch size
    index_checks: tuple = ()                 # (input node, class count, node reading it): checked when fed
    computed_indices: bool = False           # some class indices are computed: the kernels check them
    quiet: bool = False                      # runs with overflow warnings off (an op that `overflows`)


def needed(graph: nx.DiGraph, targets) -> set:
    seen = set(targets)
    stack = list(targets)
    preds = graph._pred                 # {node: {predecessor: edge attributes}}; see nndsl.graph
    while stack:
        for pred in preds[stack.pop()]:
            if pred not in seen:
                seen.add(pred)
                stack.append(pred)
    return seen


def index_readers(graph: nx.DiGraph, nodes) -> tuple[dict, bool]:
    """Where class indices are read (the `class_index` slot) among `nodes`: {reader: (the input
    node holding its indices, the class count)} for indices an input holds, which can be checked
    once as they are fed; and whether some reader's indices are computed by the model (checked
    where they are read)."""
    attrs_of = attributes(graph)
    readers = {name: op.class_index for name, op in REGISTRY.items() if op.class_index is not None}
    fed, computed = {}, False
    for node in nodes:
        rule = readers.get(attrs_of[node]["op"])
        if rule is None:
            continue
        args = arguments(graph, node)
        if attrs_of[args[rule[0]]]["op"] == "input":
            fed[node] = (args[rule[0]], (attrs_of[args[rule[1]]]["shape"] or (1,))[-1])
        else:
            computed = True
    return fed, computed


def schedule(graph: nx.DiGraph, targets: list, dtype=np.float32) -> Plan:
    dtype = np.dtype(dtype)
    order = topological_order(graph, needed(graph, targets))
    slots = {node: i for i, node in enumerate(order)}
    fed, computed_indices = index_readers(graph, order)
    nodes = attributes(graph)
    raw, constants, leaves = [], [], {}
    kernels = {}
    index_checks = {}                   # (input node, class count) -> the first node reading it
    batch_only = []
    quiet = False
    for slot, node in enumerate(order):
        attrs = nodes[node]
        op = REGISTRY[attrs["op"]]
        if op.leaf:
            leaves[node] = slot
            continue
        args = arguments(graph, node)
        if not args:
            constants.append((slot, kernel(op, KernelInfo(attrs["shape"], attrs["batched"], (), (), attrs, dtype))()))
            continue
        argattrs = [nodes[a] for a in args]
        arg_shapes, arg_batched = tuple([a["shape"] for a in argattrs]), tuple([a["batched"] for a in argattrs])
        checked = node in fed                   # indices an input holds are checked once, when fed
        if checked:
            index_checks.setdefault(fed[node], node)
        # Nodes alike in everything their kernel may read share it (the layers of a deep network).
        key = (op.name, attrs["shape"], attrs["batched"], arg_shapes, arg_batched,
               tuple([attrs[a] for a in op.attrs]) if op.attrs else (), checked)
        fn = kernels.get(key)
        if fn is None:
            fn = kernels[key] = kernel(op, KernelInfo(attrs["shape"], attrs["batched"], arg_shapes, arg_batched,
                                                      attrs, dtype, checked))
            quiet = quiet or op.overflows
        if op.batch_only:
            batch_only.append(len(raw))
        raw.append((fn, tuple([slots[a] for a in args]), slot, node))
    target_slots = [slots[t] for t in targets]
    last_use = {}
    for i, (_, args, _, _) in enumerate(raw):
        for a in args:
            last_use[a] = i
    keep = set(target_slots)
    frees: list[list] = [[] for _ in raw]
    for slot, i in last_use.items():
        if slot not in keep:
            frees[i].append(slot)
    steps = [(fn, args, out, tuple(free), node) for (fn, args, out, node), free in zip(raw, frees)]
    batch_leaf = next((node for node in leaves if nodes[node]["batched"]), None)
    return Plan(steps, slots, constants, leaves, target_slots, len(order),
                frozenset(id(v) for _, v in constants), quiet=quiet, batch_only=frozenset(batch_only), batch_leaf=batch_leaf,
                index_checks=tuple((leaf, n, node) for (leaf, n), node in index_checks.items()),
                computed_indices=computed_indices)


ALL = slice(None)


def execute(plan: Plan, graph: nx.DiGraph, feeds: dict, indices_checked: bool = False, own: slice = ALL) -> list:
    """Runs the plan; `feeds` maps every leaf node of the plan to its array. The first run
    interprets the steps; later runs call the compiled plan (an error there is found again by
    interpreting, which knows the step, and so the node and its source line). Class indices that
    inputs hold are checked first, once each, unless the caller has (`indices_checked`: the
    trainer checks its data once, before the first step). The targets `own` selects are arrays
    no one else holds (`owned`); the caller only reads the others (a loss it turns into a float)."""
    if plan.index_checks and not indices_checked:
        for leaf, n, node in plan.index_checks:
            try:
                class_indices(feeds[leaf], n)
            except FloatingPointError as err:
                raise NndslError(str(err), span_of(graph, node)) from None
    if plan.quiet:
        with np.errstate(over="ignore"):
            return run(plan, graph, feeds, own)
    return run(plan, graph, feeds, own)


def quiet(*plans: Plan):
    """The overflow setting plans holding an `overflows` op run under (σ(−1000) is 0, without a
    warning), for a caller that runs them many times through `run` (the trainer's loop)."""
    return np.errstate(over="ignore") if any(plan.quiet for plan in plans) else contextlib.nullcontext()


VARIANTS = 8          # compiled variants of a plan, one per batch size (an epoch's last batch is smaller)


def run(plan: Plan, graph: nx.DiGraph, feeds: dict, own: slice = ALL) -> list:
    """`execute` without the index checks and the overflow setting."""
    plan.runs += 1
    if plan.runs > 1:
        fn = variant(plan, feeds[plan.batch_leaf].shape[0] if plan.batch_leaf is not None else None, own)
        if fn is not None:
            try:
                return fn(feeds)
            except FloatingPointError:
                pass
    return interpret(plan, graph, feeds, own)


def variant(plan: Plan, batch: int | None, own: slice):
    """The plan compiled for `batch` and `own` (`compile_plan`), compiled now if need be; None
    once VARIANTS are compiled (an unusual caller: the plan is then interpreted)."""
    key = (batch, own.start, own.stop, own.step)
    if plan.compiled is None:
        plan.compiled = {}
    fn = plan.compiled.get(key)
    if fn is None and len(plan.compiled) < VARIANTS:
        fn = plan.compiled[key] = compile_plan(plan, batch, own)
    return fn


def entry(plan: Plan, leaves: list, own: slice):
    """The plan compiled for one batch size behind its guard, as one generated function
    (params, data) -> the target values (`own` selects those made arrays no one else holds).
    It returns None where the arrays are not exactly those `leaves` describe ((0 for a parameter
    or 1 for an input, name, node, dtype, shape) each: dicts of NumPy arrays of those dtypes and
    shapes, nothing else) or where a check fails (class indices, a kernel's FloatingPointError):
    the caller then takes the full path, which says what is wrong. Like the plan's, the source
    holds positions only: names, nodes, dtypes and shapes are passed in as values. None if the
    plan has no compiled variant to spare."""
    counts = [sum(1 for leaf in leaves if leaf[0] == side) for side in (0, 1)]
    at = {leaf[2]: i for i, leaf in enumerate(leaves)}
    if not set(plan.leaves) <= set(at) or (plan.batch_leaf is not None and not leaves[at[plan.batch_leaf]][4]):
        return None
    fn = variant(plan, leaves[at[plan.batch_leaf]][4][0] if plan.batch_leaf is not None else None, own)
    if fn is None:
        return None
    namespace = {"ndarray": np.ndarray, "run": fn, "check": class_indices, "errstate": np.errstate}
    lines = ["def entry(params, data):",
             f"    if type(params) is not dict or type(data) is not dict or len(params) != {counts[0]} "
             f"or len(data) != {counts[1]}:",
             "        return None"]
    for i, (side, name, node, dtype, shape) in enumerate(leaves):
        namespace.update({f"n{i}": name, f"f{i}": node, f"d{i}": dtype, f"s{i}": shape})
        lines += [f"    a{i} = {('params', 'data')[side]}.get(n{i})",
                  f"    if a{i}.__class__ is not ndarray or a{i}.shape != s{i} or (a{i}.dtype is not d{i} and a{i}.dtype != d{i}):",
                  "        return None"]
    lines.append(f"    feeds = {{{', '.join(f'f{i}: a{i}' for i in range(len(leaves)))}}}")
    lines.append("    try:")
    lines += [f"        check(a{at[leaf]}, {int(n)})" for leaf, n, _ in plan.index_checks]
    if plan.quiet:
        lines += ["        with errstate(over='ignore'):", "            return run(feeds)"]
    else:
        lines.append("        return run(feeds)")
    lines += ["    except FloatingPointError:", "        return None"]
    exec(compile("\n".join(lines), "<nndsl compiled entry>", "exec"), namespace)
    return namespace["entry"]


class BatchOf:
    """What a `batch_only` kernel reads of an argument: the shape's batch axis."""

    def __init__(self, batch: int):
        self.shape = (batch,)


def fold(plan: Plan, batch: int | None) -> tuple[dict, set]:
    """The values known before any feed for this batch size: the constants, then the steps that
    read only those or the batch size (1/B, the batch-mean's divisor). ({slot: value}, folded step
    indices)."""
    known = dict(plan.constants)
    folded = set()
    for i, (fn, args, out, _, _) in enumerate(plan.steps):
        if i in plan.batch_only and batch is not None:
            value = fn(*[BatchOf(batch)] * len(args))
        elif args and all(a in known for a in args):
            value = fn(*[known[a] for a in args])
        else:
            continue
        # A read-only array: a NumPy scalar (what ufuncs make of 0-d operands) would be converted
        # by every ufunc reading it, which costs twice as much as a 0-d array (`ops.number`).
        known[out] = value = np.array(value)
        value.flags.writeable = False
        folded.add(i)
    return known, folded


def compile_plan(plan: Plan, batch: int | None = None, own: slice = ALL):
    """The plan for one batch size as one straight-line function of the feeds: `v7 = k3(v2, v5)`
    per step, `del` after each value's last use, with what `fold` knows passed in as constants,
    returning the targets, those `own` selects made arrays no one else holds (`owned`, written
    out per target). Only slot numbers, node ids (ints) and registry op names (in comments) are
    written into the source; kernels and constants are passed in by name."""
    known, folded = fold(plan, batch)
    live = [step for i, step in enumerate(plan.steps) if i not in folded]
    read = {a for _, args, *_ in live for a in args} | set(plan.targets)
    namespace = {"ndarray": np.ndarray, "asarray": np.asarray}
    steps = [(f"v{slot}", f"feeds[{int(node)}]", (), "") for node, slot in plan.leaves.items()]
    for slot, value in known.items():
        if slot in read:
            namespace[f"c{slot}"] = value
            steps.append((f"v{slot}", f"c{slot}", (), ""))
    defined = set(plan.leaves.values()) | {slot for slot in known if slot in read}
    for i, (fn, args, out, free, node) in enumerate(live):
        namespace[f"k{i}"] = fn
        defined.add(out)
        steps.append((f"v{out}", f"k{i}({', '.join(f'v{a}' for a in args)})",
                      [f"v{slot}" for slot in free if slot in defined], ""))
    namespace["constant_ids"] = frozenset(id(namespace[f"c{slot}"]) for slot in known if slot in read)
    results = [f"v{t}" for t in plan.targets]
    owning = range(*own.indices(len(results)))
    # `owned`, per target: the caller's arrays, the constants and the results before are taken
    epilogue = ["taken = set(map(id, feeds.values()))"] if owning else []
    for j in owning:
        r = results[j] = f"r{j}"              # a name of its own: a target may be returned twice
        epilogue += [f"{r} = v{plan.targets[j]}",
                     f"if {r}.__class__ is not ndarray:",
                     f"    {r} = asarray({r})",
                     f"elif {r}.base is not None or id({r}) in taken or id({r}) in constant_ids:",
                     f"    {r} = {r}.copy()",
                     f"taken.add(id({r}))"]
    lines = straight_line("def run(feeds):", steps, f"[{', '.join(results)}]", epilogue)
    exec(compile("\n".join(lines), "<nndsl compiled plan>", "exec"), namespace)
    return namespace["run"]


def straight_line(header: str, steps, result: str, epilogue: list = ()) -> list:
    """A function's lines: `header`, then per step (name, expression, names read for the last
    time, comment) the line `name = expression  # comment` and a `del` of those names, then the
    lines of `epilogue` and `return result`. The compiled plan and the Python export
    (nndsl.source) both write with it."""
    lines = [header]
    for name, expression, free, comment in steps:
        lines.append(f"    {name} = {expression}" + (f"  # {comment}" if comment else ""))
        if free:
            lines.append(f"    del {', '.join(free)}")
    lines += [f"    {line}" for line in epilogue]
    lines.append(f"    return {result}")
    return lines


def interpret(plan: Plan, graph: nx.DiGraph, feeds: dict, own: slice = ALL) -> list:
    """The plan's steps, one at a time."""
    env = [None] * plan.size
    for slot, value in plan.constants:
        env[slot] = value
    for node, slot in plan.leaves.items():
        env[slot] = feeds[node]
    step = None
    try:
        for step in plan.steps:
            fn, args, out, free, _ = step
            if len(args) == 2:                  # most ops: spelled out, it is the hot path
                a, b = args
                env[out] = fn(env[a], env[b])
            elif len(args) == 1:
                env[out] = fn(env[args[0]])
            else:
                env[out] = fn(*[env[a] for a in args])
            if free:
                for slot in free:
                    env[slot] = None
    except FloatingPointError as err:           # raised by kernels for bad data (class indices)
        raise NndslError(str(err), span_of(graph, step[4])) from None
    return owned([env[t] for t in plan.targets], plan.constant_ids, feeds, own)


def owned(values: list, constant_ids: frozenset, feeds: dict, own: slice = ALL) -> list:
    """The values, those `own` selects each an array no one else holds: a constant the plan
    keeps, an array the caller fed in, a view of either (transpose, broadcast) or a value
    returned twice is copied; a NumPy scalar becomes a 0-d array. The list is changed in place."""
    taken = set(map(id, feeds.values()))         # the caller's arrays, then those already returned
    for j in range(*own.indices(len(values))):
        v = values[j]
        if type(v) is not np.ndarray:              # a NumPy scalar from a reduction: a 0-d array
            values[j] = v = np.asarray(v)
        # An array that owns its memory and is no constant, feed or earlier result is new:
        # read-only arrays are views (np.broadcast_to), constants or the caller's.
        elif v.base is not None or id(v) in constant_ids or id(v) in taken:
            values[j] = v = v.copy()
        taken.add(id(v))
    return values


def all_values(graph: nx.DiGraph, nodes, feeds: dict, dtype) -> dict:
    """{node: value} for every one of `nodes` (and nothing freed), in the order they run: for
    diagnostics, not for speed."""
    order = topological_order(graph, needed(graph, list(nodes)))
    order.sort(key=lambda n: graph.nodes[n].get("role") == "backward")     # forward first: still topological
    return dict(zip(order, execute(schedule(graph, order, dtype), graph, feeds)))


def first_nonfinite(graph: nx.DiGraph, values: dict):
    """The first node, in the order `values` were computed, whose value is NaN or infinite although
    its arguments are finite (PyTorch's anomaly detection, pointed at the source). None if none."""
    for node, value in values.items():
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            if all(np.all(np.isfinite(values[a])) for a in arguments(graph, node)):
                return node
    return None
