"""The abstract syntax of a .nn file: frozen dataclasses, each carrying its source span."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import Span


# ---- expressions -------------------------------------------------------------------------
@dataclass(frozen=True)
class Number:
    value: float
    text: str
    span: Span


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple
    span: Span
    func_span: Span


@dataclass(frozen=True)
class Unary:
    op: str          # "neg", or "transpose" (postfix ᵀ)
    operand: object
    span: Span


@dataclass(frozen=True)
class Binary:
    op: str          # add sub mul div pow matmul
    left: object
    right: object
    span: Span
    symbol: str      # as written: "+", "·", "⊙", "" for juxtaposition, a superscript like "²" ...


@dataclass(frozen=True)
class Array:
    items: tuple
    span: Span


@dataclass(frozen=True)
class At:
    """One subscript of an index: a single position (`x[0]`, `h[-1]`); the axis goes away."""

    index: int
    span: Span


@dataclass(frozen=True)
class Slice:
    """One subscript of an index: `a:b`, `a:`, `:b` or `:` (all); the axis stays."""

    start: int | None
    stop: int | None
    span: Span


@dataclass(frozen=True)
class Index:
    operand: object
    subscripts: tuple    # of At and Slice, one per leading per-sample axis
    span: Span


Expr = Number | Name | Call | Unary | Binary | Array | Index


def children(expr) -> tuple:
    """The sub-expressions of `expr`, in argument order."""
    if isinstance(expr, Call):
        return expr.args
    if isinstance(expr, (Unary, Index)):
        return (expr.operand,)
    if isinstance(expr, Binary):
        return (expr.left, expr.right)
    if isinstance(expr, Array):
        return expr.items
    return ()


# ---- statements --------------------------------------------------------------------------
@dataclass(frozen=True)
class Size:
    """One size of a declared shape: an integer literal or a dim name."""

    value: int | str
    span: Span


@dataclass(frozen=True)
class ModelStmt:
    name: str
    span: Span


@dataclass(frozen=True)
class DimStmt:
    name: str
    value: int
    span: Span
    name_span: Span


@dataclass(frozen=True)
class InputStmt:
    name: str
    shape: tuple       # of Size
    span: Span
    name_span: Span


@dataclass(frozen=True)
class ParamStmt:
    name: str
    shape: tuple       # of Size
    init: object       # Expr or None
    span: Span
    name_span: Span


@dataclass(frozen=True)
class BindStmt:
    name: str
    expr: object
    span: Span
    name_span: Span


@dataclass(frozen=True)
class OutputStmt:
    name: str
    expr: object       # Expr or None: `output y` names an existing binding
    span: Span
    name_span: Span


@dataclass(frozen=True)
class LossStmt:
    name: str
    expr: object
    span: Span
    name_span: Span


@dataclass(frozen=True)
class DefStmt:
    name: str
    params: tuple      # of str
    body: object
    span: Span
    name_span: Span


@dataclass(frozen=True)
class DataFileStmt:
    path: str
    span: Span


@dataclass(frozen=True)
class DataInlineStmt:
    name: str
    value: object      # an Array or Number expression
    span: Span
    name_span: Span


@dataclass(frozen=True)
class SettingCall:
    """A setting's value written as a call: `sgd(lr = 0.5, momentum = 0.9)`, `inverse(0.01)`."""

    func: str
    args: tuple        # of SettingArg
    span: Span
    func_span: Span


@dataclass(frozen=True)
class SettingArg:
    key: str | None    # None: positional
    value: Number
    span: Span


@dataclass(frozen=True)
class Setting:
    """`key = value` in a `train` statement; the value is a Number, a Name or a SettingCall."""

    key: str
    value: object
    span: Span
    key_span: Span


@dataclass(frozen=True)
class TrainStmt:
    settings: tuple    # of Setting
    span: Span


@dataclass(frozen=True)
class Comment:
    """A comment, kept so that formatting can put it back."""

    text: str
    span: Span


@dataclass(frozen=True)
class Program:
    statements: tuple
    comments: tuple
    source: str
    filename: str
