"""Help on the built-in functions, read from the op registry alone.

`ops_listing()` is what `nndsl ops` prints, `op_help(name)` what `nndsl ops NAME` prints, and
`markdown_tables()` the tables of docs/language.md sections 4 and 5 (a test keeps the two equal).
Everything comes from the registry entries: the text slots `doc`, `signature`, `formula` and
`derivative`, and what the entry's shape rule and ONNX mapping do on small example shapes.
So a new op is documented where it is defined.
"""
from __future__ import annotations

import re
import textwrap
import unicodedata

import numpy as np

from .errors import NndslError, closest
from .ops import ALIASES, REGISTRY, Op, ShapeError, fmt_shape, lookup

# Example argument shapes for a shape rule: one shape for every argument; and for two arguments
# pairs that show broadcasting, a matrix product, a join and a mismatch.
SHAPES = ((3,), (2, 3), ())
PAIRS = (((3,), (3,)), ((2, 3), (3,)), ((2, 3), (2, 1)), ((3,), ()), ((2, 3), (3, 4)))
SHOWN = 4                                   # accepted examples the help shows; and 2 rejected
WIDTH = 100                                 # columns of the CLI's text
# Example values of the static attributes an op's shape rule and kernel read (`Op.attrs`).
ATTRS = {"subscripts": "[0]"}

ELEMENTWISE, LAST_AXIS, WHOLE, LOSSES = "Elementwise", "Along the last axis", "Reductions and layout", "Losses"
GROUPS = (ELEMENTWISE, LAST_AXIS, WHOLE, LOSSES)


# ---- what the registry says, and what its rules do ------------------------------------------
def find(name: str) -> Op:
    """The op called `name` (or an alias of it); an unknown name is an error with a suggestion."""
    op = lookup(name)
    if op is None:
        # every name an op goes by, and single-letter aliases spelled out (`sigma` for `σ`)
        known = {n: n for n in REGISTRY} | ALIASES
        known |= {unicodedata.name(a).split()[-1].lower(): ALIASES[a] for a in ALIASES
                  if len(a) == 1 and unicodedata.name(a, "")}
        close = closest(name, list(known))
        if close is not None:
            close = known[close]
            also = "".join(f" (or '{a}')" for a in aliases(close))
            raise NndslError(f"unknown op '{name}'; did you mean '{close}'{also}?")
        raise NndslError(f"unknown op '{name}' (`nndsl ops` lists the built-in functions)")
    return op


def aliases(name: str) -> list:
    return [alias for alias, target in ALIASES.items() if target == name]


def spellings(op: Op) -> list:
    """Every way a .nn file writes the op: its signature's alternatives (`transpose(a) or aᵀ`),
    then the same call under each alias (`σ(z)` for `sigmoid(z)`)."""
    forms = op.signature.split(" or ")
    for alias in aliases(op.name):
        forms += [alias + f[len(op.name):] for f in forms if f.startswith(op.name + "(")]
    return forms


def argument_names(op: Op) -> list:
    """The argument names of a call signature, `leaky_relu(z, slope)` -> [z, slope]; [] for notation."""
    match = re.fullmatch(rf"{re.escape(op.name)}\((.*)\)", op.signature.split(" or ")[0])
    return [a.strip() for a in match.group(1).split(",")] if match else []


def example_arity(op: Op) -> int:
    return 2 if op.arity is None else op.arity          # a variadic op, tried with two arguments


def attrs_of(op: Op) -> dict:
    return {k: ATTRS[k] for k in op.attrs}


def examples(op: Op) -> list:
    """The argument shapes the help tries on the op's shape rule (two arguments: the pairs first)."""
    n = example_arity(op)
    alike = [(s,) * n for s in SHAPES]
    return list(PAIRS) + [a for a in alike if a not in PAIRS] if n == 2 else alike


def traced(op: Op) -> tuple:
    """Argument shapes to trace the ONNX mapping with: the first the shape rule accepts of the
    same shape for every argument, largest rank first (a matrix shows the most), then the pairs."""
    n = example_arity(op)
    tried = [(s,) * n for s in sorted(SHAPES, key=len, reverse=True)] + (list(PAIRS) if n == 2 else [])
    return next(args for args in tried if not isinstance(result(op, args), ShapeError))


def result(op: Op, args: tuple):
    """The op's shape rule on `args`: the result shape, or the ShapeError it raises."""
    try:
        return tuple(op.shape(*args, **attrs_of(op)))
    except ShapeError as err:
        return err


def accepted(op: Op) -> list:
    """(argument shapes, result shape) for each example the shape rule accepts."""
    tried = [(args, result(op, args)) for args in examples(op)]
    return [(args, out) for args, out in tried if not isinstance(out, ShapeError)]


def family(op: Op) -> str:
    """The group an op is listed under, from its entry and its shape rule: elementwise ops; ops
    whose result keeps the leading axes of a [2, 3] argument (they work along the last axis);
    two-argument ops whose every result is a per-sample scalar (losses); the rest."""
    if op.elementwise:
        return ELEMENTWISE
    ok = accepted(op)
    if op.arity == 2 and ok and all(out == () for _, out in ok):
        return LOSSES
    out = result(op, ((2, 3),) * example_arity(op))
    if not isinstance(out, ShapeError) and out[:1] == (2,):
        return LAST_AXIS
    return WHOLE


def groups() -> dict:
    """{group: [op, ...]} of the callable ops, in registry order within each group."""
    out: dict = {g: [] for g in GROUPS}
    for op in REGISTRY.values():
        if op.callable:
            out[family(op)].append(op)
    return {g: ops for g, ops in out.items() if ops}


def shape_words(op: Op) -> list:
    """The shape rule in words: a summary when the examples show one, then the examples."""
    if example_arity(op) == 0:
        return ["no arguments: the shape it is declared with (a literal's own shape)"]
    if any(k not in ATTRS for k in op.attrs):
        return [f"depends on its attributes {', '.join(op.attrs)}"]
    tried = [(args, result(op, args)) for args in examples(op)]
    ok = [(args, out) for args, out in tried if not isinstance(out, ShapeError)]
    summary = ""
    if ok and all(out == () for _, out in ok):
        summary = "one scalar per sample"
    elif ok and all(len(set(args)) == 1 and out == args[0] for args, out in ok):
        summary = "the shape of its argument" + ("s" if example_arity(op) > 1 else "")
    elif ok and all(out == np.broadcast_shapes(*args) for args, out in ok):
        summary = "the arguments' broadcast shape (NumPy rules, per sample)"
    given = "".join(f" ({k} {ATTRS[k]})" for k in op.attrs)
    lines = [(summary + ": " if summary else "") + "; ".join(
        f"{', '.join(fmt_shape(a) for a in args)} → {fmt_shape(out)}" for args, out in ok[:SHOWN]) + given]
    lines += [f"not {', '.join(fmt_shape(a) for a in args)}: {out}" for args, out in tried
              if isinstance(out, ShapeError)][:2]
    return lines


def stable_words(op: Op) -> list:
    """The rewrites (`stable` slots) the op takes part in: as the outer op, the inner one or the
    fused one, each as `bce(sigmoid(z), t) is computed as bce_logits(z, t): ...`."""
    lines = []
    for outer in REGISTRY.values():
        rest = "".join(f", {a}" for a in argument_names(outer)[1:])
        for inner, fused in outer.stable.items():
            made, fused = fused if isinstance(fused, tuple) else (None, fused)   # (producer's op, op)
            if op.name in (outer.name, inner, fused, made):
                argument = f"{made}(z)" if made else "z"
                lines.append(f"{outer.name}({inner}(z){rest}) is computed as {fused}({argument}{rest}): "
                             f"{REGISTRY[fused].formula}")
    return lines or ["none"]


def differentiable_words(op: Op) -> str:
    if not op.differentiable:
        return "no: no gradient flows through it"
    names = argument_names(op)
    stopped = [names[i] if i < len(names) else f"argument {i + 1}"
               for i in range(example_arity(op)) if op.rule(i) is None]
    return f"yes, except with respect to {', '.join(stopped)}" if stopped else "yes"


def onnx_types(op: Op, batched: bool):
    """The ONNX op types the op's mapping emits on a one-op graph of example shapes, with
    batched (input) or per-sample (parameter) arguments; for a node-less result, what it is."""
    from .export_onnx import graph_to_onnx
    from .graph import GraphBuilder
    builder = GraphBuilder()
    params = {}
    if example_arity(op) == 0:
        out = builder.add(op.name, shape=(3,), batched=False, name="out", value=np.zeros(3))
        params["out"] = np.zeros(3)
    else:
        leaves = []
        for i, shape in enumerate(traced(op)):
            leaves.append(builder.add("input" if batched else "param", shape=shape, batched=batched, name=f"a{i}"))
            params[f"a{i}"] = np.full(shape, 0.5)
        out = builder.add(op.name, *leaves, name="out", **attrs_of(op))
    proto = graph_to_onnx(builder.graph, {"out": out}, params)
    types = list(dict.fromkeys(node.op_type for node in proto.graph.node))
    if types:
        return ", ".join(types)
    if any(i.name == "out" for i in proto.graph.input):
        return "no node, a graph input"
    return "no node, a constant"


def onnx_words(op: Op) -> str:
    if op.onnx is None:
        return "none: ONNX export cannot write this op"
    try:
        one = onnx_types(op, batched=False)
        many = one if example_arity(op) == 0 else onnx_types(op, batched=True)
    except NndslError as err:                       # onnx is not installed
        return f"unknown: {err.message}"
    return one if one == many else f"one sample: {one}; a batch: {many}"


# ---- what the CLI prints ---------------------------------------------------------------------
def ops_listing() -> str:
    """Every built-in function a .nn file can call, one line each (its spellings and what it
    computes), grouped as docs/language.md groups them; then the ops made by notation."""
    rows = {title: [(", ".join(spellings(op)), op.doc) for op in ops] for title, ops in groups().items()}
    width = max(len(s) for group in rows.values() for s, _ in group) + 4
    out = []
    for title, group in rows.items():
        out.append(title)
        out += [hanging(f"  {s}", doc, width) for s, doc in group]
        out.append("")
    others = [op.name for op in REGISTRY.values() if not op.callable]
    out.append("Made by notation or by the compiler, not called by name:")
    out += textwrap.wrap(", ".join(others), WIDTH, initial_indent="  ", subsequent_indent="  ")
    out += ["", "`nndsl ops NAME` shows one op in full: value, gradient, shapes, stable form and ONNX mapping."]
    return "\n".join(out)


def op_help(name: str) -> str:
    """One op (by name or alias) in full; an unknown name raises NndslError with a suggestion."""
    op = find(name)
    rows = [("usage", ", ".join(spellings(op))), ("value", op.formula), ("gradient", op.derivative)]
    if op.kink is not None:
        rows.append(("kink", "where it has no derivative the gradient above is used; grad --check names such points"))
    rows += [("shape", line) for line in shape_words(op)]
    rows += [("differentiable", differentiable_words(op))]
    rows += [("stable form", line) for line in stable_words(op)]
    rows += [("ONNX", onnx_words(op))]
    width = max(len(k) for k, _ in rows) + 4
    lines = [hanging(f"{op.name}: ", op.doc, len(op.name) + 2)]
    previous = None
    for key, value in rows:
        lines.append(hanging(f"  {key if key != previous else ''}", value, width))
        previous = key
    return "\n".join(lines)


def hanging(head: str, text: str, indent: int) -> str:
    """`head` padded to `indent` columns, then `text` wrapped to WIDTH under itself."""
    body = wrap(text, WIDTH - indent) or [""]
    return "\n".join([head.ljust(indent) + body[0]] + [" " * indent + line for line in body[1:]])


def wrap(text: str, width: int) -> list:
    """Lines of `text` at most `width` wide (unless a word is longer), broken after a `; ` where
    one fits, so that an example or a clause stays on one line."""
    lines, line = [], ""
    for unit in re.split(r"(?<=; )", text):
        if len(line) + len(unit.rstrip()) <= width:
            line += unit
            continue
        if line:
            lines.append(line.rstrip())
        parts = textwrap.wrap(unit, width, break_long_words=False, break_on_hyphens=False) or [""]
        lines += parts[:-1]
        line = parts[-1] + (" " if unit.endswith(" ") else "")
    return lines + [line.rstrip()] if line.strip() else lines


# ---- the documentation ------------------------------------------------------------------------
def cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_tables() -> dict:
    """{group title: its Markdown table} of the callable ops, as docs/language.md shows them
    under headings of those titles (sections 4 and 5)."""
    tables = {}
    for title, ops in groups().items():
        rows = ["| function | computes | value | gradient |", "|---|---|---|---|"]
        rows += [f"| {', '.join(f'`{s}`' for s in spellings(op))} | {cell(op.doc)} | {cell(op.formula)} "
                 f"| {cell(op.derivative)} |" for op in ops]
        tables[title] = "\n".join(rows)
    return tables


if __name__ == "__main__":                          # python -m nndsl.help: the tables to paste
    for heading, table in markdown_tables().items():
        print(f"### {heading}\n\n{table}\n")
