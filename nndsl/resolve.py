"""Pass 2, resolve: the statements of a program -> a symbol table.

Checks what can be checked without building the graph: every name bound once, `model` first,
dims and their `--set` overrides, sizes of declared shapes, one loss, no recursion among `def`s.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np

from . import syntax as S
from .errors import NndslError
from .ops import fmt_shape


@dataclass
class Resolved:
    program: S.Program
    model_name: str | None
    dims: dict                      # name -> int (after overrides)
    bound_at: dict                  # global name -> index of the statement that binds it
    defs: dict                      # name -> DefStmt
    shapes: dict                    # input/param name -> tuple of ints
    loss: S.LossStmt | None
    outputs: list                   # OutputStmt, in order
    train: S.TrainStmt | None = None
    data_files: list = field(default_factory=list)    # (Path, span)
    data_inline: dict = field(default_factory=dict)   # input name -> (ndarray, span)


def binding_statements(program: S.Program):
    """(index, name, name_span, statement) for every statement that binds a global name."""
    for i, st in enumerate(program.statements):
        if isinstance(st, (S.DimStmt, S.InputStmt, S.ParamStmt, S.BindStmt, S.LossStmt, S.DefStmt)):
            yield i, st.name, st.name_span, st
        elif isinstance(st, S.OutputStmt) and st.expr is not None:
            yield i, st.name, st.name_span, st


def resolve(program: S.Program, overrides: dict | None = None) -> Resolved:
    statements = program.statements
    for i, st in enumerate(statements):
        if isinstance(st, S.ModelStmt) and i > 0:
            raise NndslError("'model' must be the first statement", st.span)

    bound_at: dict[str, int] = {}
    bound_span = {}
    for i, name, span, st in binding_statements(program):
        if name in bound_at:
            raise NndslError(f"'{name}' is already bound (line {bound_span[name].line}); each name is bound once", span)
        bound_at[name] = i
        bound_span[name] = span

    dims = {st.name: st.value for st in statements if isinstance(st, S.DimStmt)}
    for name, value in (overrides or {}).items():
        if name not in dims:
            known = ", ".join(sorted(dims)) or "none"
            raise NndslError(f"the model has no dim '{name}' to set (dims: {known})")
        dims[name] = value

    shapes = {}
    for i, st in enumerate(statements):
        if isinstance(st, (S.InputStmt, S.ParamStmt)):
            shapes[st.name] = tuple(size_value(size, dims, bound_at, i) for size in st.shape)

    defs = {st.name: st for st in statements if isinstance(st, S.DefStmt)}
    for st in defs.values():
        if len(set(st.params)) != len(st.params):
            raise NndslError(f"function '{st.name}' names a parameter twice", st.span)
    check_no_recursion(defs)

    losses = [st for st in statements if isinstance(st, S.LossStmt)]
    if len(losses) > 1:
        raise NndslError(f"a model has one loss; '{losses[0].name}' is declared at line {losses[0].span.line}",
                         losses[1].name_span)
    trains = [st for st in statements if isinstance(st, S.TrainStmt)]
    if len(trains) > 1:
        raise NndslError(f"a model has one 'train' statement; the first is at line {trains[0].span.line} "
                         "(list several settings in it, separated by commas)", trains[1].span)
    outputs = [st for st in statements if isinstance(st, S.OutputStmt)]
    for st in outputs:
        if st.expr is None and st.name not in bound_at:
            raise NndslError(f"undefined name '{st.name}'", st.name_span)

    resolved = Resolved(program, next((st.name for st in statements if isinstance(st, S.ModelStmt)), None),
                        dims, bound_at, defs, shapes, losses[0] if losses else None, outputs,
                        train=trains[0] if trains else None)
    base = Path(program.filename).resolve().parent if not program.filename.startswith("<") else Path.cwd()
    for st in statements:
        if isinstance(st, S.DataFileStmt):
            resolved.data_files.append((base / st.path, st.span))
        elif isinstance(st, S.DataInlineStmt):
            if st.name not in bound_at or not isinstance(statements[bound_at[st.name]], S.InputStmt):
                raise NndslError(f"data for '{st.name}', which is not a declared input", st.name_span)
            if st.name in resolved.data_inline:
                raise NndslError(f"data for '{st.name}' is given twice", st.name_span)
            value = literal_array(st.value)
            problem = shape_problem(st.name, value.shape, shapes[st.name])
            if problem:
                raise NndslError(problem, st.value.span)
            resolved.data_inline[st.name] = (value, st.span)
    sizes = {name: None if value.shape == shapes[name] else len(value)
             for name, (value, _) in resolved.data_inline.items()}
    problem = batch_problem(sizes)
    if problem:
        last = list(resolved.data_inline.values())[-1][1]
        raise NndslError(f"the data statements disagree: {problem.partition(': ')[2]}", last)
    return resolved


def size_value(size: S.Size, dims: dict, bound_at: dict, index: int) -> int:
    if isinstance(size.value, int):
        return size.value
    if size.value not in dims:
        raise NndslError(f"unknown dim '{size.value}' (declare it with: dim {size.value} = N)", size.span)
    if bound_at[size.value] > index:
        raise NndslError(f"dim '{size.value}' is used before it is declared", size.span)
    return dims[size.value]


def called_names(expr):
    """Names of all functions called in an expression (iteratively)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, S.Call):
            yield e
        stack.extend(S.children(e))


def check_no_recursion(defs: dict) -> None:
    calls = nx.DiGraph()
    sites = {}
    for st in defs.values():
        calls.add_node(st.name)
        for call in called_names(st.body):
            if call.func in defs and call.func not in st.params:
                calls.add_edge(st.name, call.func)
                sites.setdefault((st.name, call.func), call)
    try:
        cycle = nx.find_cycle(calls)
    except nx.NetworkXNoCycle:
        return
    chain = " -> ".join([cycle[0][0]] + [v for _, v in cycle])
    site = sites[cycle[-1]]
    raise NndslError(f"recursive function: {chain}; functions are inlined and cannot call themselves",
                     site.func_span)


def literal_array(expr) -> np.ndarray:
    """The value of a number or a nested array literal of numbers (signs allowed)."""
    def value(e):
        if isinstance(e, S.Number):
            return e.value
        if isinstance(e, S.Unary) and isinstance(e.operand, S.Number):
            return -e.operand.value
        if isinstance(e, S.Array):
            return [value(item) for item in e.items]
        raise NndslError("an array literal holds numbers only", e.span)
    try:
        # Nesting depth of a literal written by hand is small; iterating is not needed here.
        return np.asarray(value(expr), dtype=np.float64)
    except ValueError:
        raise NndslError("ragged array literal: rows must all have the same length", expr.span) from None


def shape_problem(name: str, shape: tuple, declared: tuple) -> str | None:
    """What is wrong with data of `shape` for an input declared `declared` per sample, if anything."""
    if shape == declared or shape[1:] == declared:
        return None
    return (f"data for input '{name}' has shape {fmt_shape(shape)}; expected {fmt_shape(declared)} for one "
            f"sample or {fmt_shape(('B',) + declared)} for a batch")


def batch_problem(sizes: dict) -> str | None:
    """{input: batch size, or None for a single sample}: a message if they disagree."""
    batches = {b for b in sizes.values() if b is not None}
    if len(batches) <= 1 and (not batches or None not in sizes.values()):
        return None
    described = ", ".join(f"'{n}' is " + ("a single sample" if b is None else f"a batch of {b}") for n, b in sizes.items())
    return f"inputs disagree on the batch: {described}"
