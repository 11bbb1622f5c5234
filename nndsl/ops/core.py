"""The registry, and what every entry is made of: `Op` and its slots, `defop` and `lookup`,
`KernelInfo` and `kernel` (the callable a node runs, with `aligned` for the operands of
elementwise ops), the shape rules several families share, and the pieces printed forms are
built from; also the leaves, `input`, `param` and `const`.

Printed forms (`Printed`, the `printed` slot): a `Form` is a template with {0}, {1}, ... for the
operands ({*}: all of them, joined by `sep`), the precedence of what it writes, and the least
precedence each operand may have without parentheses (the last entry repeats). Precedence,
loosest first: 1 sum, 2 product, 3 negation, 4 matrix product, 5 power, 6 postfix (index, ᵀ),
8 literal, 9 name, call or parenthesised. A form may instead be a function
(info, *operands) -> (text, precedence) of the node's KernelInfo and its operands, each
(text, precedence). nndsl.source prints with them.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..layout import alignment, pad_key


class ShapeError(Exception):
    """Raised by a shape rule; the compiler adds the source location."""


Shape = tuple


def fmt_shape(shape: Shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


@dataclass(frozen=True)
class KernelInfo:
    """What a kernel may know about its node before any data is seen."""

    shape: Shape
    batched: bool
    arg_shapes: tuple
    arg_batched: tuple
    attrs: dict
    dtype: np.dtype
    # Its class indices (`class_index`) are an input's, checked when they were fed: used as they are.
    indices_checked: bool = False


@dataclass(frozen=True)
class Op:
    name: str
    arity: int | None                     # None: any number (at least one)
    shape: Callable                       # (*arg_shapes) -> shape, or raise ShapeError
    forward: Callable                     # elementwise: (*arrays); otherwise (info, *arrays)
    vjp: tuple | Callable | None = None   # per argument: (d, g, out, *args) -> node, or None
    vjp_at: Callable | None = None        # variadic ops: position -> that argument's rule
    elementwise: bool = False             # broadcasts its operands (NumPy rules, per sample)
    kernel_factory: Callable | None = None  # (info) -> (*arrays) -> array, when shape-dependent
    symbol: str | None = None             # infix spelling for printing
    callable: bool = True                 # can be called by name from a .nn file
    doc: str = ""                         # one line: what it computes
    signature: str = ""                   # how a .nn file calls it: `leaky_relu(z, slope)`
    formula: str = ""                     # the value, per element or per sample
    derivative: str = ""                  # the gradient rule in words, with its kink rule
    stable: dict = field(default_factory=dict)   # {inner op of arg 0: fused op}, see rewrite pass
    onnx: Callable | None = None          # (e, *value names) -> value name: see nndsl.export_onnx
    differentiable: bool = True           # False: gradient is zero everywhere (step, sign, ...)
    unbatched: bool = False               # its value never carries the batch axis
    # Can compute the sum over the batch of its per-sample values in one go (g^T x is one matrix
    # product); only for ops whose gradient rules do not read their own output.
    batch_reducible: bool = False
    reduces_batch: bool = False           # its kernel computes batch-reduced values itself
    # (info) -> a kernel computing a batch-reduced node's value, the sum over the batch of the
    # per-sample values, in one go (a product with one number per sample is a matrix-vector
    # product), or None where it has none: the per-sample values are then summed.
    batch_kernel: Callable | None = None
    # Losses that say what a correct answer is: (dtype) -> (prediction, target) -> booleans, one
    # per answer (training accuracy is the fraction that are True).
    correct: Callable | None = None
    # (position of an argument holding class indices, position of the argument whose last axis
    # counts the classes): indices are checked against that count (`class_indices`).
    class_index: tuple | None = None
    # Non-differentiable points: (*argument values) -> how far each element is from a kink (0 at
    # it), where the derivative is not defined and finite differences cannot confirm any rule.
    kink: Callable | None = None
    attrs: tuple = ()                     # static attributes its shape rule and kernel read
    leaf: bool = False                    # fed from outside at run time: inputs and parameters
    # Its kernel overflows an intermediate to inf on purpose, for a finite result (the sigmoid's
    # exp(-x)): plans holding it run with NumPy's overflow warnings off.
    overflows: bool = False
    # Its value depends on nothing but the batch size of its arguments (x.shape[0]): a plan
    # compiled for one batch size computes it once (`batch_size`).
    batch_only: bool = False
    units: dict = field(default_factory=dict)    # {argument position: the constant that leaves the other}
    look: dict = field(default_factory=dict)     # DOT attributes of its nodes, over the role's
    # (arguments' batched flags) -> whether its value carries the batch axis; default: any of them
    batched_rule: Callable | None = None
    printed: "Printed | None" = None      # how .nn, LaTeX and Python write it: see `Printed`
    torch: Callable | None = None         # (t, *tensors) -> tensor: see nndsl.torch_backend

    def rule(self, position: int):
        """The gradient rule for argument `position`; None means no gradient flows there."""
        if not self.differentiable:
            return None
        if self.vjp_at is not None:
            return self.vjp_at(position)
        if self.vjp is None:
            raise LookupError(self.name)
        if callable(self.vjp):
            return self.vjp
        return self.vjp[position]


REGISTRY: dict[str, Op] = {}


ALIASES: dict[str, str] = {}


def defop(name: str, *, aliases: tuple = (), **fields) -> Op:
    if name in REGISTRY:
        raise ValueError(f"op {name!r} defined twice")
    op = Op(name=name, **fields)
    REGISTRY[name] = op
    for alias in aliases:
        ALIASES[alias] = name
    return op


def lookup(name: str) -> Op | None:
    op = REGISTRY.get(ALIASES.get(name, name))
    return op


def broadcast(*shapes: Shape) -> Shape:
    if shapes and all(s == shapes[0] for s in shapes):
        return tuple(shapes[0])         # the common case, without NumPy's slower general rule
    shaped = [s for s in shapes if s != ()]
    if shaped and all(s == shaped[0] for s in shaped):
        return tuple(shaped[0])         # scalars beside one shape (`2 * x`): that shape
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(" and ".join(fmt_shape(s) for s in shapes) + " do not broadcast") from None


def same(x: Shape) -> Shape:
    return x


def scalar(*_shapes) -> Shape:
    return ()


def at_least_vector(x: Shape) -> Shape:
    if len(x) < 1:
        raise ShapeError("needs a vector or a higher-rank tensor, not a scalar")
    return x


def same_shapes(*shapes: Shape) -> Shape:
    if any(s != shapes[0] for s in shapes):
        raise ShapeError("operands differ: " + ", ".join(fmt_shape(s) for s in shapes))
    return shapes[0]


def per_sample_axes(shape: Shape) -> tuple:
    """The negative axes of a per-sample shape, valid with or without a leading batch axis."""
    return tuple(range(-len(shape), 0))


_kept: dict = {}


def kept(key, make, *args):
    """The read-only array `make(*args)`, made once and kept under `key`: vectors of ones, ranges
    and rows of a constant the kernels read at every step. At most 256 are kept."""
    array = _kept.get(key)
    if array is None:
        if len(_kept) >= 256:
            _kept.clear()
        array = _kept[key] = make(*args)
        array.flags.writeable = False
    return array


def ones(n: int, dtype):
    """n ones of `dtype`, kept: a matrix-vector product with them sums along an axis several
    times faster than NumPy's reduction when the axis is short or the outer one."""
    return kept(("ones", n, dtype), np.ones, n, dtype)


def number(value: float, dtype):
    """`value` as a read-only 0-d array of `dtype`, kept: the constants kernels compute with. A
    ufunc takes a 0-d array of the operands' dtype about twice as fast as a Python float or a
    NumPy scalar, which it converts at every call (0.2 against 0.4 µs on small arrays), and
    rounds the same: in NumPy 2 all three are cast to the array's dtype."""
    array = np.asarray(value, np.dtype(dtype))
    return kept(("number", array.dtype.str, array.tobytes()), np.copy, array)


def batch_total(dtype):
    """x -> the sum of x over its first (batch) axis. For a float scalar or vector per sample it
    is a matrix-vector product with ones, 2-3x cheaper than NumPy's reduction over the outer axis
    (the same terms, summed in another order); the vectors of ones are `ones`, remembered here
    by length so that a call does not build a key (a few lengths: the batch sizes of a run)."""
    dtype = np.dtype(dtype)
    dot, reduce, by_length = np.dot, np.add.reduce, {}

    def total(x):
        if type(x) is np.ndarray and x.dtype is dtype and x.ndim <= 2:
            n = len(x)
            row = by_length.get(n)
            if row is None:
                if len(by_length) >= 16:
                    by_length.clear()
                row = by_length[n] = ones(n, dtype)
            return dot(row, x)
        return reduce(x, 0)
    return total if dtype.kind == "f" else (lambda x: reduce(x, 0))


def arange(n: int):
    """np.arange(n), kept (kernels index rows and classes with it at every step)."""
    return kept(("arange", n), np.arange, n)


def aligned(fn, info: KernelInfo):
    """`fn` of operands that broadcast per sample: a batched operand of lower per-sample rank
    gets ones after its batch axis (`[B]` + `[n]` means `[B, 1]` + `[n]`)."""
    pads = alignment(info.arg_shapes, info.arg_batched)
    if not any(pads):
        return fn
    # `x[:, None, ...]`: a view with the size-1 axes after the batch axis, made per call
    keys = [pad_key(p) for p in pads]
    if len(keys) == 2:                          # most elementwise ops: spelled out, the hot path
        ka, kb = keys
        if kb is None:
            return lambda a, b: fn(a[ka], b)
        if ka is None:
            return lambda a, b: fn(a, b[kb])
        return lambda a, b: fn(a[ka], b[kb])

    def call(*xs):
        return fn(*[x if k is None else x[k] for x, k in zip(xs, keys)])
    return call


def kernel(op: Op, info: KernelInfo):
    """The callable that computes one node, specialised once to its shapes and batch layout."""
    if op.kernel_factory is not None:
        fn = op.kernel_factory(info)
    elif op.elementwise:
        fn = aligned(op.forward, info)
    else:
        fn = functools.partial(op.forward, info)
    if not info.batched and any(info.arg_batched) and not (op.reduces_batch or op.unbatched):
        # A batch-reduced node: its value is the sum over samples of the per-sample result,
        # computed directly where the op knows how (`batch_kernel`), else summed afterwards.
        direct = op.batch_kernel(info) if op.batch_kernel is not None else None
        if direct is not None:
            return direct
        inner, total = fn, batch_total(info.dtype)

        def fn(*xs):
            return total(inner(*xs))
    return fn


def onnx_same(op_type: str, **attributes):
    """An op that is one ONNX node of the same arity."""
    return lambda e, *xs: e(op_type, *xs, **attributes)


def user_functions() -> list[str]:
    """The built-in functions a .nn file can call, aliases included."""
    return sorted([n for n, op in REGISTRY.items() if op.callable] + list(ALIASES))


ATOM = 9


@dataclass(frozen=True)
class Form:
    template: str
    prec: int = ATOM
    operands: tuple = (0,)
    sep: str = ", "


@dataclass(frozen=True)
class Printed:
    nn: object                     # Form or function: .nn notation (SPEC section 3)
    latex: object                  # LaTeX math, the subset KaTeX, MathJax and matplotlib's mathtext share
    python: object                 # NumPy, over the run-time layout (a batched value has its batch axis first)
    helpers: tuple = ()            # names of functions of nndsl.source.PY_HELPERS the Python form calls
    ref: bool = False              # reads a value of its own shape and batch layout as a last operand
    call_it: str = ""              # what to call a value of this op that needs a name of its own


def call(fn: str) -> Form:
    return Form(fn + "({*})")


def infix(symbol: str, prec: int) -> Form:
    """A left-associative infix operator."""
    return Form("{0}" + symbol + "{1}", prec, (prec, prec + 1))


def paren(text: str, prec: int, least: int) -> str:
    return f"({text})" if prec < least else text


def py_aligned(info, operands) -> list:
    """Python: a batched operand of lower per-sample rank gets size-1 axes after its batch axis,
    as `aligned` does at run time."""
    out = []
    for (text, prec), pad in zip(operands, alignment(info.arg_shapes, info.arg_batched)):
        out.append((f"{paren(text, prec, ATOM)}[:, {', '.join(['None'] * pad)}]", ATOM) if pad > 0 else (text, prec))
    return out


def py_axes(axes) -> str:
    axes = tuple(axes)
    return str(axes[0]) if len(axes) == 1 else str(axes)


def enclosed(text: str) -> bool:
    """Whether text is one parenthesised group, `(...)`, and not `(...)ᵀ` or `(a) + (b)`."""
    if not text.startswith("("):
        return False
    depth = 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0:
            return i == len(text) - 1
    return False


def ends_with_name(text: str) -> bool:
    """Whether text ends with a name (`W1`, `A^x1`), which a `(` right after would call."""
    i = len(text)
    while i and (text[i - 1] == "_" or (text[i - 1].isalnum() and text[i - 1] not in "ᵀ⁰¹²³⁴⁵⁶⁷⁸⁹")):
        i -= 1
    return i < len(text) and not text[i].isdigit()


def latex_call(name: str) -> Form:
    return Form(f"\\mathrm{{{name}}}({{*}})")


defop("input", arity=0, shape=scalar, forward=None, callable=False, vjp=(),
      onnx=lambda e: e.graph_input(), leaf=True,
      look=dict(shape="box", fillcolor="#dbeafe", color="#1d4ed8", line="rounded"),
      doc="a per-sample input, fed from data at run time",
      signature="input x[n]", formula="the data given for it: one sample, or a batch with one more leading axis",
      derivative="a leaf: the gradient that reaches it is its gradient (grad --wrt x)",
      printed=Printed(None, None, None),
      torch=lambda t: t.input())


defop("param", arity=0, shape=scalar, forward=None, callable=False, vjp=(),
      onnx=lambda e: e.parameter(), leaf=True,
      look=dict(shape="box", fillcolor="#fde68a", color="#b45309", penwidth="2"),
      doc="a trainable tensor",
      signature="param W[m, n] = INIT", formula="its current value: from its initialiser, a .npz file or training",
      derivative="a leaf: the gradient that reaches it is the one training follows",
      printed=Printed(None, None, None),
      torch=lambda t: t.parameter())


def const_kernel(info: KernelInfo):
    value = np.asarray(info.attrs["value"], dtype=info.dtype)
    return lambda: value


def onnx_const(e):
    return e.const(e.attrs["value"])


defop("const", arity=0, shape=scalar, forward=None, kernel_factory=const_kernel, callable=False,
      onnx=onnx_const, look=dict(shape="box", fillcolor="#f3f4f6", color="#6b7280", fontsize="9"),
      differentiable=False,
      doc="a constant: a number, a dim's value or an array literal",
      signature="2 or 0.5 or [1, 2] or a dim's name", formula="the literal's value",
      derivative="none: a constant has no gradient",
      printed=Printed(None, None, None),
      torch=lambda t: t.constant())
