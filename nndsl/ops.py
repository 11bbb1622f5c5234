"""The op registry: every operation nndsl knows, each defined once.

An entry holds the op's name, arity, shape rule, forward computation (NumPy), gradient rule
(one vector-Jacobian product per argument, written with registry ops so the backward graph is
an ordinary graph) and the slots other parts read: `symbol` (how messages name an infix op),
`onnx` (the ONNX mapping), `torch` (the PyTorch mapping), `look` (how DOT draws its nodes),
`leaf` (the interpreter feeds it), `stable` and `units` (the rewrite passes), `correct`
(training accuracy), `class_index` (data checks) and `kink` (gradient checks). Passes look ops up here; nothing else lists ops by name.

Shapes are per sample. At run time a value computed from an input carries one extra leading
batch axis; the registry's forward functions are written for that layout (reductions use
negative axes), and `kernel()` aligns batched operands of elementwise ops.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from math import prod
from typing import Callable

import numpy as np

from .layout import alignment, pad_key


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
    # Losses that say what a correct answer is: (prediction, target) -> booleans, one per answer
    # (training accuracy is the fraction that are True).
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
    printed: "Printed | None" = None      # how .nn, LaTeX and Python write it: see `defprint`
    torch: Callable | None = None         # (t, *tensors) -> tensor: see `deftorch` and nndsl.torch_backend

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


# ---- shape rules -------------------------------------------------------------------------
def broadcast(*shapes: Shape) -> Shape:
    if shapes and all(s == shapes[0] for s in shapes):
        return tuple(shapes[0])         # the common case, without NumPy's slower general rule
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


def pairwise_loss(y: Shape, t: Shape) -> Shape:
    broadcast(y, t)
    return ()


def class_loss(p: Shape, t: Shape) -> Shape:
    at_least_vector(p)
    broadcast(p, t)
    return ()


def sparse_class_loss(p: Shape, k: Shape) -> Shape:
    if len(p) != 1 or k != ():
        raise ShapeError(f"takes class scores of shape [n] and a scalar class index, not {fmt_shape(p)} and {fmt_shape(k)}")
    return ()


MATMUL_CASES = {(2, 1): ("mn", "n", "m"), (1, 1): ("n", "n", ""), (2, 2): ("mn", "np", "mp"), (1, 2): ("n", "np", "p")}


def matmul_shape(a: Shape, b: Shape) -> Shape:
    case = (len(a), len(b))
    if case not in MATMUL_CASES:
        raise ShapeError(f"{fmt_shape(a)} · {fmt_shape(b)}: a matrix product takes vectors and matrices")
    inner_a = a[-1]
    inner_b = b[0]
    if inner_a != inner_b:
        raise ShapeError(f"{fmt_shape(a)} · {fmt_shape(b)}: inner sizes {inner_a} and {inner_b} differ")
    return a[:-1] + b[1:]


def outer_shape(a: Shape, b: Shape) -> Shape:
    if len(a) != 1 or len(b) != 1:
        raise ShapeError(f"outer product takes two vectors, not {fmt_shape(a)} and {fmt_shape(b)}")
    return a + b


def same_shapes(*shapes: Shape) -> Shape:
    if any(s != shapes[0] for s in shapes):
        raise ShapeError("operands differ: " + ", ".join(fmt_shape(s) for s in shapes))
    return shapes[0]


def last_axis_sum(x: Shape) -> Shape:
    return at_least_vector(x)[:-1] + (1,)


def index_like(k: Shape, ref: Shape) -> Shape:
    return ref


# ---- kernels -----------------------------------------------------------------------------
def per_sample_axes(shape: Shape) -> tuple:
    """The negative axes of a per-sample shape, valid with or without a leading batch axis."""
    return tuple(range(-len(shape), 0))


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
        # A batch-reduced node: its value is the sum over samples of the per-sample result.
        inner = fn

        def fn(*xs):
            return inner(*xs).sum(axis=0)
    return fn


def matmul_kernel(info: KernelInfo):
    (ra, rb) = (len(info.arg_shapes[0]), len(info.arg_shapes[1]))
    (ba, bb), bo = info.arg_batched, info.batched
    if not ba and not bb:
        return np.matmul
    if bo and not ba and ra == 2 and bb and rb == 1:
        return lambda a, b: b @ a.T                    # W x over a batch: one matrix product
    if bo and ba and not bb and rb == 2:
        return np.matmul                               # x W, batched rows times a matrix
    if bo and not ba and ra == 2 and bb and rb == 2:
        return np.matmul
    if bo and (ra, rb) == (1, 1) and ba != bb:          # w · x over a batch: one matrix-vector product
        return np.matmul if ba else (lambda a, b: b @ a)
    sa, sb, so = MATMUL_CASES[(ra, rb)]
    spec = f"{'z' if ba else ''}{sa},{'z' if bb else ''}{sb}->{'z' if bo else ''}{so}"
    return lambda a, b: np.einsum(spec, a, b, optimize=True)


def outer_kernel(info: KernelInfo):
    (ba, bb), bo = info.arg_batched, info.batched
    if ba and bb and not bo:
        return lambda a, b: a.T @ b                    # sum over the batch of outer products
    spec = f"{'z' if ba else ''}m,{'z' if bb else ''}n->{'z' if bo else ''}mn"
    if not ba and not bb:
        return np.outer
    return lambda a, b: np.einsum(spec, a, b, optimize=True)


def transpose_kernel(info: KernelInfo):
    rank = len(info.shape)
    if info.batched:
        axes = (0,) + tuple(range(rank, 0, -1))
        return lambda x: x.transpose(axes)
    return np.transpose


def sum_to_kernel(info: KernelInfo):
    """Sums a value down to a smaller per-sample shape (undoing broadcasting), and over the batch."""
    src, dst = info.arg_shapes[0], info.shape
    lead = len(src) - len(dst)
    offset = 1 if info.arg_batched[0] else 0
    axes = tuple(range(offset, offset + lead))
    if info.arg_batched[0] and not info.batched:
        axes = (0,) + axes
        offset = 0
    else:
        offset = offset
    kept = tuple(offset + i for i, (s, d) in enumerate(zip(src[lead:], dst)) if d == 1 and s != 1)
    if not axes and not kept:
        return lambda x: x

    def fn(x):
        if axes:
            x = np.add.reduce(x, axis=axes)
        if kept:
            x = np.add.reduce(x, axis=kept, keepdims=True)
        return x
    return fn


def broadcast_like_kernel(info: KernelInfo):
    """x broadcast against ref to their joint shape and batch (the node's), which is known but for
    the batch size: no shape arithmetic at run time."""
    shape = info.shape
    if not info.batched:
        return lambda x, ref: x if x.shape == shape else np.broadcast_to(x, shape)
    x_batched = info.arg_batched[0]
    pad = len(shape) - len(info.arg_shapes[0])

    def fn(x, ref):
        if x_batched and pad:                    # a batched x of lower rank: its axes align at the end
            x = x.reshape(x.shape[:1] + (1,) * pad + x.shape[1:])
        target = ((x if x_batched else ref).shape[0],) + shape
        return x if x.shape == target else np.broadcast_to(x, target)
    return fn


def batch_size_kernel(info: KernelInfo):
    dtype = info.dtype
    batched = info.arg_batched[0]
    return lambda x: np.asarray(x.shape[0] if batched else 1, dtype=dtype)


def batch_sum_kernel(info: KernelInfo):
    if info.arg_batched[0]:
        return lambda x: np.add.reduce(x, axis=0)
    return lambda x: x


def unbroadcast_shape(g: Shape, ref: Shape) -> Shape:
    if broadcast(g, ref) != tuple(g):
        raise ShapeError(f"{fmt_shape(ref)} does not broadcast to {fmt_shape(g)}, so {fmt_shape(g)} cannot be "
                         f"summed down to it")
    return ref


def unbroadcast_kernel(info: KernelInfo):
    """sum_to's kernel, the shape and batch layout read from the second argument."""
    fn = sum_to_kernel(info)
    return lambda g, ref: fn(g)


def onnx_unbroadcast(e, g, ref):
    out = onnx_sum_to(e, g)
    if not e.arg_batched[0] and e.arg_batched[1]:
        out = e.unsqueeze(out, [0])          # a batch of one, which the exporter's sum over the batch leaves as is
    return out


def onnx_batch_sum(e, x):
    return e.reduce("ReduceSum", x, [0]) if e.arg_batched[0] else e("Identity", x)


def const_kernel(info: KernelInfo):
    value = np.asarray(info.attrs["value"], dtype=info.dtype)
    return lambda: value


# ---- indexing and joining -------------------------------------------------------------------
# An index's subscripts are a node attribute written as in the source, `[0]`, `[:, 1:3]`,
# `[-1]`: text exports to every format as it is, and reads back here.
def subscripts_of(text: str) -> tuple:
    """`[:, 1:3, -1]` -> (slice(None, None), slice(1, 3), -1)."""
    out = []
    for part in text.strip()[1:-1].split(","):
        part = part.strip()
        if ":" in part:
            start, stop = (int(p) if p.strip() else None for p in part.split(":"))
            out.append(slice(start, stop))
        else:
            out.append(int(part))
    return tuple(out)


def subscripts_text(subscripts) -> str:
    """The inverse of subscripts_of, in canonical form."""
    def one(s):
        if isinstance(s, slice):
            return f"{'' if s.start is None else s.start}:{'' if s.stop is None else s.stop}"
        return str(s)
    return "[" + ", ".join(one(s) for s in subscripts) + "]"


def index_shape(x: Shape, subscripts: str) -> Shape:
    subs = subscripts_of(subscripts)
    if len(subs) > len(x):
        raise ShapeError(f"{len(subs)} subscript{'s' * (len(subs) != 1)} for a value of shape {fmt_shape(x)}, "
                         f"which has {len(x)} ax{'es' if len(x) != 1 else 'is'}")
    out = []
    for axis, (size, s) in enumerate(zip(x, subs)):
        if isinstance(s, slice):
            kept = len(range(size)[s])
            if kept == 0:
                raise ShapeError(f"{subscripts_text([s])[1:-1]} selects nothing of axis {axis}, which has size {size}")
            out.append(kept)
        elif not -size <= s < size:
            raise ShapeError(f"index {s} is out of range for axis {axis}, which has size {size}")
    return tuple(out) + tuple(x[len(subs):])


def index_kernel(info: KernelInfo):
    subs = subscripts_of(info.attrs["subscripts"])
    key = (slice(None),) + subs if info.arg_batched[0] else subs
    return lambda x: x[key]


def index_grad_kernel(info: KernelInfo):
    """Scatters the gradient of an index into zeros shaped like the indexed value."""
    subs = subscripts_of(info.attrs["subscripts"])
    shape, dtype = info.shape, info.dtype

    g_batched = info.arg_batched[0]

    def fn(g, x):
        if not info.batched:
            out = np.zeros(shape, dtype=dtype)
            out[subs] = g
            return out
        out = np.zeros(((g if g_batched else x).shape[0],) + shape, dtype=dtype)
        out[(slice(None),) + subs] = g
        return out
    return fn


def concat_shape(*shapes: Shape) -> Shape:
    if any(len(s) == 0 for s in shapes):
        raise ShapeError("joins vectors or higher-rank tensors along their last axis, not scalars: "
                         + ", ".join(fmt_shape(s) for s in shapes))
    if len({s[:-1] for s in shapes}) > 1:
        raise ShapeError("all but the last axis must agree: " + ", ".join(fmt_shape(s) for s in shapes))
    return shapes[0][:-1] + (sum(s[-1] for s in shapes),)


def concat_kernel(info: KernelInfo):
    def fn(*xs):
        if info.batched:
            size = next(len(x) for x, b in zip(xs, info.arg_batched) if b)
            xs = [x if b else np.broadcast_to(x, (size,) + x.shape) for x, b in zip(xs, info.arg_batched)]
        return np.concatenate(xs, axis=-1)
    return fn


def concat_grad(position: int):
    """The gradient of concat for argument `position`: its columns of g."""
    def rule(d, g, out, *xs):
        sizes = [d.shape(x)[-1] for x in xs]
        start = sum(sizes[:position])
        lead = ":, " * (len(d.shape(out)) - 1)
        return d.index(g, subscripts=f"[{lead}{start}:{start + sizes[position]}]")
    return rule


def argmax_fwd(info, x):
    return np.argmax(x, axis=-1).astype(info.dtype)


def onnx_index(e, x):
    subs = subscripts_of(e.attrs["subscripts"])
    offset = 1 if e.arg_batched[0] else 0
    slices = [(offset + axis, s) for axis, s in enumerate(subs) if isinstance(s, slice)]
    if slices:
        big = np.iinfo(np.int64).max
        x = e("Slice", x, e.ints([0 if s.start is None else s.start for _, s in slices]),
              e.ints([big if s.stop is None else s.stop for _, s in slices]), e.ints([a for a, _ in slices]))
    for axis, s in reversed([(offset + axis, s) for axis, s in enumerate(subs) if not isinstance(s, slice)]):
        x = e("Gather", x, e.const(s, dtype=np.int64), axis=axis)
    return x


def onnx_index_grad(e, g, x):
    subs = subscripts_of(e.attrs["subscripts"])
    shape = e.shape
    offset = 1 if e.arg_batched[0] else 0
    dropped = [offset + axis for axis, s in enumerate(subs) if not isinstance(s, slice)]
    if dropped:
        g = e.unsqueeze(g, dropped)
    before, after = [0] * (offset + len(shape)), [0] * (offset + len(shape))
    for axis, (size, s) in enumerate(zip(shape, subs)):
        kept = range(size)[s] if isinstance(s, slice) else range(size)[s:s + 1 or None]
        before[offset + axis], after[offset + axis] = kept[0], size - kept[-1] - 1
    out = e("Pad", g, e.ints(before + after))
    return e("Expand", out, e("Shape", x)) if e.batched and not offset else out


def onnx_concat(e, *xs):
    if e.batched:
        ref = next(x for x, b in zip(xs, e.arg_batched) if b)
        batch = e("Slice", e("Shape", ref), e.ints([0]), e.ints([1]))
        xs = [x if b else e("Expand", x, e("Concat", batch, e.ints(shape), axis=0))
              for x, b, shape in zip(xs, e.arg_batched, e.arg_shapes)]
    return e("Concat", *xs, axis=-1)


def onnx_argmax(e, x):
    return e.cast(e("ArgMax", x, axis=-1, keepdims=0))


# ---- numerics ----------------------------------------------------------------------------
# Each is written so that no step rounds a value much larger than its result: log_softmax is
# (x - max) - log Σ exp(x - max), never x - logsumexp(x), whose two terms of the size of x cancel
# (in float32, x near 1e4 would keep three digits of a result near 1).
def sigmoid_fwd(x):
    """1 / (1 + exp(-x)), good to a few ulps everywhere (exp(-logaddexp(0, -x)) would round the
    exponent first). Below about -88 in float32 (-709 in float64) exp(-x) overflows to inf and the
    result is 0, the correctly rounded value but for subnormals: the op is `overflows`, so plans
    holding it run without overflow warnings."""
    e = np.exp(-x)
    e += 1                              # in place, but for a NumPy scalar
    return np.reciprocal(e, out=e) if type(e) is np.ndarray else 1 / e


def stable_softplus(x):
    return np.logaddexp(0, x).astype(x.dtype, copy=False) if isinstance(x, np.ndarray) else np.logaddexp(0, x)


def softmax_fwd(info, x):
    e = np.exp(x - np.maximum.reduce(x, axis=-1, keepdims=True))
    return e / np.add.reduce(e, axis=-1, keepdims=True)


def shifted_logsumexp(x):
    """(x - max, log Σ exp(x - max)) along the last axis: log_softmax(x) is their difference, and
    as neither is larger than the result (x - max <= 0 <= the log), it keeps its digits. The log
    is log1p of the sum without one largest element's exp(0) = 1, so it keeps its own digits
    when that element dominates (the sum then rounds near 1)."""
    shifted = x - np.maximum.reduce(x, axis=-1, keepdims=True)
    top = shifted == 0
    e = np.exp(shifted)
    if np.count_nonzero(top) * shifted.shape[-1] == shifted.size:     # one largest element a row
        e -= top                                                     # its exp(0) = 1 taken out
        return shifted, np.log1p(np.add.reduce(e, axis=-1, keepdims=True))
    rest = np.add.reduce(np.where(top, 0, e), axis=-1, keepdims=True)
    ties = np.add.reduce(top, axis=-1, keepdims=True, dtype=shifted.dtype) - 1
    return shifted, np.log1p(rest + ties)


def log_softmax_fwd(info, x):
    shifted, log_total = shifted_logsumexp(x)
    return shifted - log_total


def clamped_log(x):
    """log with PyTorch's BCELoss clamp at -100, so a saturated probability stays finite."""
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(x), -100.0)


def per_sample_mean(per_element):
    """Kernel factory of a loss: `per_element` of the aligned operands, then the mean over one
    sample's elements (axes and count fixed once, when the kernel is built)."""
    def factory(info: KernelInfo):
        fn = aligned(per_element, info)
        shape = broadcast(*info.arg_shapes)
        if not shape:
            return fn
        if prod(shape) == 1:                     # one element per sample: its value, a view
            key = (Ellipsis,) + (0,) * len(shape)
            return lambda *xs: fn(*xs)[key]
        axes, scale = per_sample_axes(shape), info.dtype.type(1 / prod(shape))
        return lambda *xs: np.add.reduce(fn(*xs), axis=axes) * scale
    return factory


def class_mean(per_class):
    """Kernel factory of a cross entropy: sum over the class axis (the last), mean over any
    other per-sample axes."""
    def factory(info: KernelInfo):
        fn = aligned(per_class, info)
        shape = broadcast(*info.arg_shapes)[:-1]
        if not shape:
            return lambda *xs: np.add.reduce(fn(*xs), axis=-1)
        axes, scale = tuple(a - 1 for a in per_sample_axes(shape)), info.dtype.type(1 / prod(shape))
        return lambda *xs: np.add.reduce(fn(*xs), axis=axes + (-1,)) * scale
    return factory


def class_indices(k, n):
    idx = np.asarray(k)
    as_int = idx.astype(np.intp)
    bad = (as_int != idx) | (as_int.view(np.uintp) >= n)      # a negative index is a huge unsigned one
    if bad.any():
        value = idx.reshape(-1)[np.flatnonzero(bad)[0]]
        raise FloatingPointError(f"class index {value:g} is not an integer in [0, {n})")
    return as_int


def indices(info: KernelInfo, k, n):
    """Class indices as integers: checked here, unless they were when fed (`indices_checked`)."""
    return np.asarray(k).astype(np.intp) if info.indices_checked else class_indices(k, n)


def one_hot_fwd(info, k, ref):
    n = info.shape[-1]
    rows = (indices(info, k, n)[..., None] == np.arange(n)).astype(info.dtype)
    return rows if rows.shape == ref.shape else np.broadcast_to(rows, np.broadcast_shapes(rows.shape, ref.shape))


def pick(x, idx):
    """x[..., k] for per-sample class indices k (either side may lack the batch axis)."""
    if x.ndim == 2 and idx.shape == x.shape[:1]:            # a batch of rows: the common case
        return x[np.arange(len(x)), idx]
    if x.shape[:-1] != idx.shape:
        x = np.broadcast_to(x, np.broadcast_shapes(x.shape[:-1], idx.shape) + x.shape[-1:])
        idx = np.broadcast_to(idx, x.shape[:-1])
    rows = x.reshape(-1, x.shape[-1])
    return rows[np.arange(len(rows)), idx.reshape(-1)].reshape(idx.shape)


def sparse_ce_fwd(info, p, k):
    n = info.arg_shapes[0][-1]
    return -clamped_log(pick(p, indices(info, k, n)))


def sparse_ce_logits_fwd(info, z, k):
    n = info.arg_shapes[0][-1]
    shifted, log_total = shifted_logsumexp(z)
    return log_total[..., 0] - pick(shifted, indices(info, k, n))


def sparse_ce_logits_grad_fwd(info, z, k):
    """softmax(z) − onehot(k) in one pass: the softmax, then 1 taken off at each row's class."""
    n = info.arg_shapes[0][-1]
    idx = indices(info, k, n)
    p = softmax_fwd(info, z)
    rows = idx[..., None] == np.arange(n)           # one-hot, as booleans
    if rows.shape == p.shape:
        p -= rows
        return p
    return p - rows                                 # either side broadcast against the other


def tie_mask(a, b):
    """1 where a > b, 1/2 where a == b, 0 elsewhere: how max/min share gradient (as PyTorch)."""
    mask = (a > b).astype(np.result_type(a, b))
    ties = a == b
    if np.count_nonzero(ties):                      # cheaper than ties.any() on small arrays
        mask = np.where(ties, mask.dtype.type(0.5), mask)
    return mask


# ---- gradient rules (d builds registry nodes; g is the incoming gradient; out the node) ----
def n_elements(d, x):
    return prod(d.shape(x)) or 1


def pairwise_size(d, y, t):
    return prod(broadcast(d.shape(y), d.shape(t))) or 1


def class_rows(d, p, t):
    s = broadcast(d.shape(p), d.shape(t))
    return prod(s[:-1]) or 1


def margin(d, y, t):
    return d.sub(1.0, d.mul(t, y))


def at_zero(x):
    """The kink of relu, abs, step and sign: the argument itself is the distance from it."""
    return x


def inclusive_step(d, z):
    """1 where z >= 0: the hinge losses pass gradient at the kink, as sklearn and torch.clamp do."""
    return d.sub(1.0, d.step(d.neg(z)))


def ce_logits_grad_z(d, g, out, z, t):
    """softmax(z) Σ_c t - t, with t broadcast against z. Where z has a single class (its softmax
    is 1, the loss does not depend on it), t is first summed over the classes it spreads over,
    so the softmax's own class axis is the one the rule runs along."""
    t = d.broadcast_like(t, z)
    if d.shape(z)[-1] == 1 and d.shape(t)[-1] != 1:
        t = d.sum_last(t)
    return d.mul(g, d.mul(d.sub(d.mul(d.softmax(z), d.sum_last(t)), t), 1.0 / class_rows(d, z, t)))


def matmul_grad_a(d, g, out, a, b):
    case = (len(d.shape(a)), len(d.shape(b)))
    if case == (2, 1):
        return d.outer(g, b)                       # [m] ⊗ [n]
    if case == (1, 1):
        return d.mul(g, b)                         # dot product: g is a scalar
    if case == (2, 2):
        return d.matmul(g, d.transpose(b))         # [m,p]·[p,n]
    return d.matmul(b, g)                          # [n,p]·[p]


def matmul_grad_b(d, g, out, a, b):
    case = (len(d.shape(a)), len(d.shape(b)))
    if case == (1, 1):
        return d.mul(g, a)
    if case == (1, 2):
        return d.outer(a, g)                       # [n] ⊗ [p]
    return d.matmul(d.transpose(a), g)             # [n,m]·[m] or [n,m]·[m,p]


# ---- ONNX mappings (e is an nndsl.export_onnx.Emitter; arguments and results are value names) ----
# A batched value keeps its leading batch axis, so reductions use negative axes; operands of
# elementwise ops arrive aligned, and a batch-reduced node is summed over samples afterwards.
def onnx_same(op_type: str, **attributes):
    """An op that is one ONNX node of the same arity."""
    return lambda e, *xs: e(op_type, *xs, **attributes)


def onnx_const(e):
    return e.const(e.attrs["value"])


def onnx_step(e, x):
    return e.cast(e("Greater", x, e.const(0.0)))


def onnx_tie_mask(e, a, b):
    return e("Add", e.cast(e("Greater", a, b)), e("Mul", e.const(0.5), e.cast(e("Equal", a, b))))


def onnx_leaky_relu(e, x, slope):
    return e("Where", e("Greater", x, e.const(0.0)), x, e("Mul", x, slope))


def onnx_log_sigmoid(e, x):
    return e("Neg", e("Softplus", e("Neg", x)))


def onnx_reduce(op_type: str):
    """sum or mean over all per-sample axes."""
    return lambda e, x: e.reduce(op_type, x, e.per_sample_axes())


def onnx_transpose(e, x):
    rank = len(e.arg_shapes[0])
    if rank < 2:
        return e("Identity", x)
    lead = [0] if e.arg_batched[0] else []
    start = len(lead)
    return e("Transpose", x, perm=lead + [start + i for i in reversed(range(rank))])


def onnx_matmul(e, a, b):
    (ra, rb), (ba, bb) = (len(s) for s in e.arg_shapes), e.arg_batched
    if bb and rb == 1 and not ba:
        # W x (or w · x) over a batch: one matrix product x Wᵀ, never a loop over samples
        return e("MatMul", b, e("Transpose", a, perm=[1, 0]) if ra == 2 else a)
    if not (ba and bb):
        return e("MatMul", a, b)        # numpy.matmul rules: the unbatched side broadcasts
    a = e.unsqueeze(a, [-2]) if ra == 1 else a          # both batched: per-sample matrices,
    b = e.unsqueeze(b, [-1]) if rb == 1 else b          # then drop the axes that were added
    added = ([-2] if ra == 1 else []) + ([-1] if rb == 1 else [])
    out = e("MatMul", a, b)
    return e.squeeze(out, added) if added else out


def onnx_outer(e, a, b):
    return e("Mul", e.unsqueeze(a, [-1]), e.unsqueeze(b, [-2]))


def onnx_sum_to(e, x):
    """Undo broadcasting per sample: sum the leading axes away, sum size-1 axes keeping them;
    the exporter sums over the batch when the node has none."""
    src, dst = e.arg_shapes[0], e.shape
    lead = len(src) - len(dst)
    x = e.reduce("ReduceSum", x, range(-len(src), -len(src) + lead))
    kept = [i - len(dst) for i, (s, d) in enumerate(zip(src[lead:], dst)) if d == 1 and s != 1]
    return e.reduce("ReduceSum", x, kept, keepdims=True)


def onnx_broadcast_like(e, x, ref):
    return e("Expand", x, e("Shape", ref))          # Expand broadcasts both ways, as NumPy


def onnx_batch_size(e, x):
    if not e.arg_batched[0]:
        return e.const(1.0)
    return e.cast(e("Gather", e("Shape", x), e.const(0, dtype=np.int64)))


def onnx_class_mask(e, k, n: int):
    """One-hot rows [..., n] for float class indices k (whole numbers, as the data holds them)."""
    return e.cast(e("Equal", e.unsqueeze(k, [-1]), e.const(np.arange(n))))


def onnx_one_hot(e, k, ref):
    return e("Expand", onnx_class_mask(e, k, e.shape[-1]), e("Shape", ref))


def onnx_pick(e, x, k):
    """x[..., k]: the entry of the class axis at each sample's class index."""
    return e.reduce("ReduceSum", e("Mul", x, onnx_class_mask(e, k, e.arg_shapes[0][-1])), [-1])


def onnx_clamped_log(e, x):
    return e("Max", e("Log", x), e.const(-100.0))


def onnx_pairwise_loss(per_element):
    """A loss that is the mean over one sample's elements of per_element(e, y, t)."""
    def mapping(e, y, t):
        y, t = e.aligned(y, t)
        return e.reduce("ReduceMean", per_element(e, y, t), e.per_sample_axes())
    return mapping


def onnx_class_loss(log_p):
    """Cross entropy: -t log p summed over the class axis, mean over other per-sample axes."""
    def mapping(e, p, t):
        p, t = e.aligned(p, t)
        total = e.reduce("ReduceSum", e("Neg", e("Mul", t, log_p(e, p))), [-1])
        return e.reduce("ReduceMean", total, e.per_sample_axes()[1:])
    return mapping


def onnx_bce(e, p, t):
    one_minus = e("Sub", e.const(1.0), t)
    both = e("Add", e("Mul", t, onnx_clamped_log(e, p)),
             e("Mul", one_minus, onnx_clamped_log(e, e("Sub", e.const(1.0), p))))
    return e("Neg", both)


def onnx_bce_logits(e, z, t):
    """max(z, 0) - z t + log1p(exp(-|z|)) as the kernel computes it: z (step(z) - t) + Softplus(-|z|)."""
    return e("Add", e("Mul", z, e("Sub", onnx_step(e, z), t)), e("Softplus", e("Neg", e("Abs", z))))


def onnx_margin(e, y, t):
    return e("Sub", e.const(1.0), e("Mul", t, y))


def onnx_square(e, x):
    return e("Mul", x, x)


# ---- the ops -----------------------------------------------------------------------------
# leaves
defop("input", arity=0, shape=scalar, forward=None, callable=False, vjp=(),
      onnx=lambda e: e.graph_input(), leaf=True,
      look=dict(shape="box", fillcolor="#dbeafe", color="#1d4ed8", line="rounded"),
      doc="a per-sample input, fed from data at run time",
      signature="input x[n]", formula="the data given for it: one sample, or a batch with one more leading axis",
      derivative="a leaf: the gradient that reaches it is its gradient (grad --wrt x)")
defop("param", arity=0, shape=scalar, forward=None, callable=False, vjp=(),
      onnx=lambda e: e.parameter(), leaf=True,
      look=dict(shape="box", fillcolor="#fde68a", color="#b45309", penwidth="2"),
      doc="a trainable tensor",
      signature="param W[m, n] = INIT", formula="its current value: from its initialiser, a .npz file or training",
      derivative="a leaf: the gradient that reaches it is the one training follows")
defop("const", arity=0, shape=scalar, forward=None, kernel_factory=const_kernel, callable=False,
      onnx=onnx_const, look=dict(shape="box", fillcolor="#f3f4f6", color="#6b7280", fontsize="9"),
      differentiable=False,
      doc="a constant: a number, a dim's value or an array literal",
      signature="2 or 0.5 or [1, 2] or a dim's name", formula="the literal's value",
      derivative="none: a constant has no gradient")

# elementwise arithmetic
defop("add", arity=2, shape=broadcast, callable=False, forward=np.add, elementwise=True, symbol="+", units={0: 0.0, 1: 0.0},
      onnx=onnx_same("Add"),
      doc="elementwise sum",
      signature="a + b", formula="a + b per element, broadcasting (NumPy rules, per sample)",
      derivative="∂/∂a = ∂/∂b = 1; a side that was broadcast gets its gradient summed over the broadcast axes",
      vjp=(lambda d, g, out, a, b: g,
           lambda d, g, out, a, b: g))
defop("sub", arity=2, shape=broadcast, callable=False, forward=np.subtract, elementwise=True, symbol="-", units={1: 0.0},
      onnx=onnx_same("Sub"),
      doc="elementwise difference",
      signature="a - b or a − b", formula="a − b per element, broadcasting",
      derivative="∂/∂a = 1, ∂/∂b = −1",
      vjp=(lambda d, g, out, a, b: g,
           lambda d, g, out, a, b: d.neg(g)))
defop("mul", arity=2, shape=broadcast, callable=False, forward=np.multiply, elementwise=True, symbol="*", units={0: 1.0, 1: 1.0},
      onnx=onnx_same("Mul"),
      batch_reducible=True,
      doc="elementwise product, and scaling by a scalar",
      signature="a * b or a ⊙ b or s x (s a scalar)", formula="a b per element, broadcasting",
      derivative="∂/∂a = b, ∂/∂b = a",
      vjp=(lambda d, g, out, a, b: d.mul(g, b),
           lambda d, g, out, a, b: d.mul(g, a)))
defop("div", arity=2, shape=broadcast, callable=False, forward=np.divide, elementwise=True, symbol="/", units={1: 1.0},
      onnx=onnx_same("Div"),
      doc="elementwise quotient",
      signature="a / b", formula="a / b per element, broadcasting",
      derivative="∂/∂a = 1 / b, ∂/∂b = −a / b²",
      vjp=(lambda d, g, out, a, b: d.div(g, b),
           lambda d, g, out, a, b: d.neg(d.mul(g, d.div(out, b)))))
defop("neg", arity=1, shape=same, forward=np.negative, elementwise=True, symbol="-", callable=False,
      onnx=onnx_same("Neg"),
      doc="negation",
      signature="-a or −a", formula="−a",
      derivative="∂/∂a = −1",
      vjp=(lambda d, g, out, a: d.neg(g),))
defop("pow", arity=2, shape=broadcast, callable=False, forward=np.power, elementwise=True, symbol="^",
      onnx=onnx_same("Pow"),
      doc="elementwise power; the exponent may be a tensor",
      signature="a ^ b or a ** b or a² or x⁻¹", formula="a^b per element, broadcasting",
      derivative="∂/∂a = b a^(b − 1), ∂/∂b = a^b log a",
      vjp=(lambda d, g, out, a, b: d.mul(g, d.mul(b, d.pow(a, d.sub(b, 1.0)))),
           lambda d, g, out, a, b: d.mul(g, d.mul(out, d.log(a)))))
defop("max", arity=2, shape=broadcast, forward=np.maximum, elementwise=True, kink=np.subtract,
      onnx=onnx_same("Max"),
      doc="elementwise maximum; max(0, z) is ReLU",
      signature="max(a, b)", formula="the larger of a and b, per element, broadcasting",
      derivative="1 to the larger side, 0 to the other; at a tie each side gets 1/2 (as torch.maximum)",
      vjp=(lambda d, g, out, a, b: d.mul(g, d.tie_mask(a, b)),
           lambda d, g, out, a, b: d.mul(g, d.tie_mask(b, a))))
defop("min", arity=2, shape=broadcast, forward=np.minimum, elementwise=True, kink=np.subtract,
      onnx=onnx_same("Min"),
      doc="elementwise minimum",
      signature="min(a, b)", formula="the smaller of a and b, per element, broadcasting",
      derivative="1 to the smaller side, 0 to the other; at a tie each side gets 1/2 (as torch.minimum)",
      vjp=(lambda d, g, out, a, b: d.mul(g, d.tie_mask(b, a)),
           lambda d, g, out, a, b: d.mul(g, d.tie_mask(a, b))))
defop("tie_mask", arity=2, shape=broadcast, forward=tie_mask, elementwise=True,
      onnx=onnx_tie_mask,
      differentiable=False,
      doc="how max and min share the gradient: 1 where a > b, 1/2 at ties, else 0",
      signature="tie_mask(a, b)",
      formula="1 where a > b, 1/2 where a = b, 0 where a < b",
      derivative="none: it is piecewise constant")

# elementwise functions
defop("relu", arity=1, shape=same, forward=lambda x: np.maximum(x, 0), elementwise=True, kink=at_zero,
      onnx=onnx_same("Relu"),
      doc="rectified linear unit",
      signature="relu(z)", formula="max(0, z)",
      derivative="1 where z > 0, else 0; at z = 0 it is 0 (as torch.relu)",
      vjp=(lambda d, g, out, x: d.mul(g, d.step(x)),))
defop("sigmoid", arity=1, shape=same, forward=sigmoid_fwd, elementwise=True, aliases=("σ",), overflows=True,
      onnx=onnx_same("Sigmoid"),
      doc="logistic sigmoid, from the reals to (0, 1)",
      signature="sigmoid(z)", formula="1 / (1 + e^(−z)); 0 where e^(−z) overflows (z below about −88 in float32), without a warning",
      derivative="σ(z) σ(−z), which is σ(z) (1 − σ(z)) but keeps its digits where σ(z) rounds to 1",
      vjp=(lambda d, g, out, x: d.mul(g, d.mul(out, d.sigmoid(d.neg(x)))),))
defop("tanh", arity=1, shape=same, forward=np.tanh, elementwise=True,
      onnx=onnx_same("Tanh"),
      doc="hyperbolic tangent, from the reals to (−1, 1)",
      signature="tanh(z)", formula="(e^z − e^(−z)) / (e^z + e^(−z))",
      derivative="1 − tanh² z",
      vjp=(lambda d, g, out, x: d.mul(g, d.sub(1.0, d.mul(out, out))),))
defop("step", arity=1, shape=same, forward=lambda x: (x > 0).astype(x.dtype), elementwise=True, kink=at_zero,
      onnx=onnx_step,
      differentiable=False,
      doc="Heaviside step",
      signature="step(z)", formula="1 where z > 0, else 0 (so step(0) = 0)",
      derivative="0 everywhere: no gradient flows through it")
defop("sign", arity=1, shape=same, forward=np.sign, elementwise=True, differentiable=False, kink=at_zero,
      onnx=onnx_same("Sign"),
      doc="the sign of each element",
      signature="sign(z)", formula="−1 where z < 0, 0 at 0, 1 where z > 0",
      derivative="0 everywhere: no gradient flows through it")
defop("softplus", arity=1, shape=same, forward=stable_softplus, elementwise=True,
      onnx=onnx_same("Softplus"),
      doc="smooth ReLU",
      signature="softplus(z)", formula="log(1 + e^z), computed without overflow",
      derivative="σ(z)",
      vjp=(lambda d, g, out, x: d.mul(g, d.sigmoid(x)),))
defop("leaky_relu", arity=2, shape=broadcast, elementwise=True, kink=lambda x, s: x,
      onnx=onnx_leaky_relu,
      forward=lambda x, s: np.where(x > 0, x, x * s),
      doc="ReLU with a slope for negative inputs",
      signature="leaky_relu(z, slope)", formula="z where z > 0, else slope · z",
      derivative="∂/∂z = 1 where z > 0, else slope; at z = 0 it is the slope (as torch). "
                 "∂/∂slope = z where z ≤ 0, else 0",
      vjp=(lambda d, g, out, x, s: d.mul(g, d.add(d.step(x), d.mul(s, d.sub(1.0, d.step(x))))),
           lambda d, g, out, x, s: d.mul(g, d.mul(x, d.sub(1.0, d.step(x))))))
defop("identity", arity=1, shape=same, forward=lambda x: x, elementwise=True,
      onnx=onnx_same("Identity"),
      doc="its argument unchanged (binding a name to a named value makes one too)",
      signature="identity(z)", formula="z",
      derivative="1",
      vjp=(lambda d, g, out, x: g,))
defop("exp", arity=1, shape=same, forward=np.exp, elementwise=True,
      onnx=onnx_same("Exp"),
      doc="exponential",
      signature="exp(z)", formula="e^z",
      derivative="e^z",
      vjp=(lambda d, g, out, x: d.mul(g, out),))
defop("log", arity=1, shape=same, forward=np.log, elementwise=True,
      onnx=onnx_same("Log"),
      stable={"softmax": "log_softmax", "sigmoid": "log_sigmoid"},
      doc="natural logarithm",
      signature="log(z)", formula="ln z (−inf at 0, NaN below)",
      derivative="1 / z",
      vjp=(lambda d, g, out, x: d.div(g, x),))
defop("abs", arity=1, shape=same, forward=np.abs, elementwise=True, kink=at_zero,
      onnx=onnx_same("Abs"),
      doc="absolute value",
      signature="abs(z)", formula="|z|",
      derivative="sign(z); at z = 0 it is 0 (as torch.abs)",
      vjp=(lambda d, g, out, x: d.mul(g, d.sign(x)),))
defop("sqrt", arity=1, shape=same, forward=np.sqrt, elementwise=True,
      onnx=onnx_same("Sqrt"),
      doc="square root",
      signature="sqrt(z)", formula="√z (NaN below 0)",
      derivative="1 / (2√z), infinite at 0",
      vjp=(lambda d, g, out, x: d.div(d.mul(g, 0.5), out),))
defop("log_sigmoid", arity=1, shape=same, elementwise=True,
      onnx=onnx_log_sigmoid,
      forward=lambda x: -stable_softplus(-x),
      doc="log of the sigmoid, finite for large |z|; log(sigmoid(z)) is rewritten to it",
      signature="log_sigmoid(z)", formula="log σ(z) = −softplus(−z)",
      derivative="σ(−z)",
      vjp=(lambda d, g, out, x: d.mul(g, d.sigmoid(d.neg(x))),))

# along the last axis
defop("softmax", arity=1, shape=at_least_vector, forward=softmax_fwd,
      onnx=onnx_same("Softmax", axis=-1),
      doc="normalised exponentials along the last axis: one probability distribution per row",
      signature="softmax(z)", formula="e^(z_i) / Σ_j e^(z_j) along the last axis, computed from z − max z",
      derivative="s ⊙ (g − Σ g ⊙ s) for the incoming gradient g, with s = softmax(z) and Σ along the last axis",
      vjp=(lambda d, g, out, x: d.mul(out, d.sub(g, d.sum_last(d.mul(g, out)))),))
defop("log_softmax", arity=1, shape=at_least_vector, forward=log_softmax_fwd,
      onnx=onnx_same("LogSoftmax", axis=-1),
      doc="log of the softmax along the last axis; log(softmax(z)) is rewritten to it",
      signature="log_softmax(z)",
      formula="z_i − log Σ_j e^(z_j) along the last axis (log-sum-exp, shifted by max z)",
      derivative="g − softmax(z) Σ g for the incoming gradient g, with Σ along the last axis",
      vjp=(lambda d, g, out, x: d.sub(g, d.mul(d.exp(out), d.sum_last(g))),))
defop("sum_last", arity=1, shape=last_axis_sum,
      onnx=lambda e, x: e.reduce("ReduceSum", x, [-1], keepdims=True),
      forward=lambda info, x: x.sum(axis=-1, keepdims=True),
      doc="sum along the last axis, which is kept with size 1",
      signature="sum_last(a)",
      formula="Σ_j z_j along the last axis, keeping it",
      derivative="1 for every element: the incoming gradient broadcast back along the last axis",
      vjp=(lambda d, g, out, x: d.broadcast_like(g, x),))

# reductions and layout
defop("sum", arity=1, shape=scalar, forward=lambda info, x: x.sum(axis=per_sample_axes(info.arg_shapes[0])),
      onnx=onnx_reduce("ReduceSum"),
      doc="sum over all per-sample axes: one scalar per sample",
      signature="sum(a)", formula="Σ of the elements of one sample (never over the batch)",
      derivative="1 for every element",
      vjp=(lambda d, g, out, x: d.broadcast_like(g, x),))
defop("mean", arity=1, shape=scalar, forward=lambda info, x: x.mean(axis=per_sample_axes(info.arg_shapes[0])),
      onnx=onnx_reduce("ReduceMean"),
      doc="mean over all per-sample axes: one scalar per sample",
      signature="mean(a)", formula="Σ of the n elements of one sample, divided by n",
      derivative="1 / n for every element",
      vjp=(lambda d, g, out, x: d.mul(d.broadcast_like(g, x), 1.0 / n_elements(d, x)),))
defop("transpose", arity=1, shape=lambda x: tuple(reversed(x)), forward=None, kernel_factory=transpose_kernel,
      onnx=onnx_transpose,
      doc="reverses the per-sample axes: a matrix is transposed, a vector or a scalar is unchanged",
      signature="transpose(a) or aᵀ", formula="[m, n] → [n, m]: (aᵀ)_ji = a_ij",
      derivative="the transpose of the incoming gradient",
      vjp=(lambda d, g, out, x: d.transpose(g),))
defop("matmul", arity=2, shape=matmul_shape, forward=None, callable=False, kernel_factory=matmul_kernel, symbol="·",
      onnx=onnx_matmul,
      batch_reducible=True, reduces_batch=True,
      doc="matrix product of per-sample vectors and matrices",
      signature="a b or a · b or a @ b (also ∙ and ⋅); with a scalar side it is scaling, mul",
      formula="Σ_k a_ik b_kj: [m, n]·[n] → [m], [n]·[n] → [], [m, n]·[n, p] → [m, p], [n]·[n, p] → [p]",
      derivative="∂a = g bᵀ, ∂b = aᵀ g for the incoming gradient g (an outer product where a side is a vector)",
      vjp=(matmul_grad_a, matmul_grad_b))
defop("outer", arity=2, shape=outer_shape, forward=None, kernel_factory=outer_kernel,
      onnx=onnx_outer,
      batch_reducible=True, reduces_batch=True,
      doc="outer product of two vectors",
      signature="outer(a, b)", formula="a bᵀ: [m] and [n] → [m, n]",
      derivative="∂a = g b, ∂b = gᵀ a for the incoming gradient g",
      vjp=(lambda d, g, out, a, b: d.matmul(g, b),
           lambda d, g, out, a, b: d.matmul(a, g)))

# indexing and joining
defop("index", arity=1, attrs=("subscripts",), shape=index_shape, forward=None, kernel_factory=index_kernel,
      callable=False, onnx=onnx_index, batch_reducible=False,
      doc="per-sample axes indexed and sliced by integer constants, as in NumPy",
      signature="x[i] or x[a:b] or W[:, j] or x[-1]",
      formula="the selected elements: an integer drops its axis, a slice keeps it",
      derivative="the incoming gradient scattered into zeros shaped like x (index_grad)",
      vjp=(lambda d, g, out, x: d.index_grad(g, x, subscripts=d.attr(out, "subscripts")),))
defop("index_grad", arity=2, attrs=("subscripts",), shape=lambda g, x, subscripts: x, forward=None,
      kernel_factory=index_grad_kernel, onnx=onnx_index_grad,
      doc="the gradient of an index: g scattered into zeros shaped like the indexed value",
      signature="index_grad(g, x[i]): its last argument is written indexed, and names the places",
      formula="zeros shaped like x, with g at the indexed places",
      derivative="∂g: the same index applied to the incoming gradient; none to x",
      vjp=(lambda d, g, out, gin, x: d.index(g, subscripts=d.attr(out, "subscripts")), None))
defop("concat", arity=None, shape=concat_shape, forward=None, kernel_factory=concat_kernel, onnx=onnx_concat,
      doc="joins its arguments along the last axis",
      signature="concat(a, b, ...)", formula="[a, b, ...] along the last axis; all other axes must agree",
      derivative="each argument gets its own columns of the incoming gradient",
      vjp_at=concat_grad)
defop("argmax", arity=1, shape=lambda x: at_least_vector(x)[:-1], forward=argmax_fwd, onnx=onnx_argmax,
      differentiable=False,
      doc="the index of the largest element along the last axis, as a number",
      signature="argmax(a)", formula="the i with the largest a_i along the last axis (the first one at ties)",
      derivative="none: it is piecewise constant, so no gradient flows through it")

# plumbing the differentiator and the batch need
defop("sum_to", arity=1, shape=same, forward=None, kernel_factory=sum_to_kernel, callable=False, reduces_batch=True,
      onnx=onnx_sum_to,
      doc="sums a value down to this node's shape and batch layout (undoes broadcasting)",
      signature="internal: made by the differentiator",
      formula="x summed over the axes, and the batch, that broadcasting added",
      derivative="the incoming gradient broadcast back to x's shape",
      vjp=(lambda d, g, out, x: d.broadcast_like(g, x),))
defop("broadcast_like", arity=2, shape=broadcast, forward=None, kernel_factory=broadcast_like_kernel, elementwise=True,
      onnx=onnx_broadcast_like,
      doc="broadcasts its first argument against its second: to their joint shape and batch",
      signature="broadcast_like(x, ref)",
      formula="x repeated along the axes, and the batch, where ref is larger",
      derivative="∂x: the incoming gradient summed back to x's shape; none to ref",
      vjp=(lambda d, g, out, x, ref: d.sum_to(g, like=x), None))
defop("batch_size", arity=1, shape=scalar, forward=None, kernel_factory=batch_size_kernel,
      onnx=onnx_batch_size,
      differentiable=False, unbatched=True, batch_only=True,
      doc="the number of samples in the batch (1 without one)",
      signature="batch_size(a)",
      formula="B, the number of samples a carries (1 for a value without the batch axis)",
      derivative="none: it is a count")
defop("accumulate", arity=None, shape=same_shapes, forward=lambda *xs: sum(xs[1:], xs[0]), elementwise=True,
      onnx=onnx_same("Sum"), look=dict(shape="octagon", fillcolor="#ede9fe", color="#6d28d9", fontcolor="#4c1d95"),
      callable=False, symbol="Σ", doc="sums the gradients that reach a value read by several consumers",
      signature="internal: made by the differentiator (drawn as Σ)", formula="a + b + ... of gradients of one shape",
      derivative="1 to each argument",
      vjp=lambda d, g, out, *xs: g)
defop("batch_sum", arity=1, shape=same, forward=None, kernel_factory=batch_sum_kernel, unbatched=True,
      onnx=onnx_batch_sum,
      doc="the sum over the samples of the batch (a gradient program's parameter gradients)",
      signature="batch_sum(a)", formula="Σ over the batch of a; a value without the batch axis is one sample: itself",
      derivative="the incoming gradient, one copy per sample",
      vjp=(lambda d, g, out, x: d.broadcast_like(g, x),))
defop("unbroadcast", arity=2, shape=unbroadcast_shape, forward=None, kernel_factory=unbroadcast_kernel,
      reduces_batch=True, batched_rule=all, onnx=onnx_unbroadcast,
      doc="undoes broadcasting: g summed down to the shape and batch of ref",
      signature="unbroadcast(g, ref)",
      formula="g summed over the axes that broadcasting against ref added or widened, and over the batch "
              "when ref has none",
      derivative="∂g: the incoming gradient broadcast back to g's shape; none to ref",
      vjp=(lambda d, g, out, x, ref: d.broadcast_like(g, x), None))
defop("one_hot", arity=2, shape=index_like, class_index=(0, 1), forward=one_hot_fwd, differentiable=False,
      onnx=onnx_one_hot,
      doc="one-hot rows for class indices, as wide as the second argument",
      signature="one_hot(k, ref)",
      formula="1 at position k of each row, 0 elsewhere; k an integer in [0, n)",
      derivative="none: it is piecewise constant")

# losses: per-sample scalars, the mean over one sample's elements
defop("mse", arity=2, shape=pairwise_loss,
      onnx=onnx_pairwise_loss(lambda e, y, t: onnx_square(e, e("Sub", y, t))),
      forward=None, kernel_factory=per_sample_mean(lambda y, t: np.square(y - t)),
      doc="mean squared error, for any targets",
      signature="mse(y, t)", formula="(y − t)² per element, mean over the elements of one sample",
      derivative="∂/∂y = 2 (y − t) / n and ∂/∂t = 2 (t − y) / n, n the elements of one sample",
      vjp=(lambda d, g, out, y, t: d.mul(g, d.mul(d.sub(y, t), 2.0 / pairwise_size(d, y, t))),
           lambda d, g, out, y, t: d.mul(g, d.mul(d.sub(t, y), 2.0 / pairwise_size(d, y, t)))))
defop("mae", arity=2, shape=pairwise_loss,
      onnx=onnx_pairwise_loss(lambda e, y, t: e("Abs", e("Sub", y, t))),
      forward=None, kernel_factory=per_sample_mean(lambda y, t: np.abs(y - t)),
      doc="mean absolute error, for any targets",
      signature="mae(y, t)", formula="|y − t| per element, mean over the elements of one sample",
      derivative="∂/∂y = sign(y − t) / n and ∂/∂t = sign(t − y) / n, n the elements of one sample; at y = t it is "
                 "0 (as torch's L1 loss)",
      vjp=(lambda d, g, out, y, t: d.mul(g, d.mul(d.sign(d.sub(y, t)), 1.0 / pairwise_size(d, y, t))),
           lambda d, g, out, y, t: d.mul(g, d.mul(d.sign(d.sub(t, y)), 1.0 / pairwise_size(d, y, t)))))


def same_class(p, t):
    return np.argmax(p, axis=-1) == np.argmax(t, axis=-1)


def same_side(threshold):
    return lambda y, t: (y > threshold) == (t > 0.5)


def same_sign(y, t):
    return y * t > 0


def bce_elements(p, t):
    return -(t * clamped_log(p) + (1 - t) * clamped_log(1 - p))


def bce_logits_elements(z, t):
    """max(z, 0) - z t + log(1 + exp(-|z|)), the first two terms as the one product z (1 - t) or
    -z t: for z large and t near 1, z - z t would cancel the digits of z t."""
    return z * ((z > 0) - t) + np.log1p(np.exp(-np.abs(z)))


defop("bce", arity=2, correct=same_side(0.5), shape=pairwise_loss, forward=None, kernel_factory=per_sample_mean(bce_elements),
      stable={"sigmoid": "bce_logits"},
      onnx=onnx_pairwise_loss(onnx_bce),
      doc="binary cross entropy of a probability p against a target t in [0, 1]",
      signature="bce(p, t)",
      formula="−(t log p + (1 − t) log(1 − p)) per element, log clamped at −100 (as torch.nn.BCELoss), mean over "
              "the elements of one sample",
      derivative="∂/∂p = (p − t) / (n p (1 − p)), the denominator p (1 − p) clamped at 1e-12 as torch.nn.BCELoss "
                 "does; ∂/∂t = (log(1 − p) − log p) / n, n the elements of one sample",
      vjp=(lambda d, g, out, p, t: d.mul(g, d.div(d.sub(p, t), d.mul(d.max(d.mul(p, d.sub(1.0, p)), 1e-12),
                                                                    float(pairwise_size(d, p, t))))),
           lambda d, g, out, p, t: d.mul(g, d.mul(d.sub(d.log(d.sub(1.0, p)), d.log(p)), 1.0 / pairwise_size(d, p, t)))))
defop("bce_logits", arity=2, correct=same_side(0.0), shape=pairwise_loss, forward=None, kernel_factory=per_sample_mean(bce_logits_elements),
      callable=False,
      onnx=onnx_pairwise_loss(onnx_bce_logits),
      doc="bce(sigmoid(z), t) computed from the logits z",
      signature="bce(sigmoid(z), t), rewritten to it",
      formula="max(z, 0) − z t + log(1 + e^(−|z|)) per element, mean over the elements of one sample",
      derivative="∂/∂z = (σ(z) − t) / n and ∂/∂t = −z / n, n the elements of one sample",
      vjp=(lambda d, g, out, z, t: d.mul(g, d.mul(d.sub(d.sigmoid(z), t), 1.0 / pairwise_size(d, z, t))),
           lambda d, g, out, z, t: d.mul(g, d.mul(z, -1.0 / pairwise_size(d, z, t)))))
defop("cross_entropy", arity=2, correct=same_class, shape=class_loss, stable={"softmax": "cross_entropy_logits"},
      onnx=onnx_class_loss(onnx_clamped_log),
      forward=None, kernel_factory=class_mean(lambda p, t: -(t * clamped_log(p))),
      doc="cross entropy of class probabilities p against one-hot or soft targets t, classes on the last axis",
      signature="cross_entropy(p, t)",
      formula="−Σ_c t_c log p_c over the class axis, log clamped at −100; mean over any other per-sample axes",
      derivative="∂/∂p = −t / (r p) and ∂/∂t = −log p / r, r the rows of one sample (1 for a vector)",
      vjp=(lambda d, g, out, p, t: d.mul(g, d.mul(d.div(t, p), -1.0 / class_rows(d, p, t))),
           lambda d, g, out, p, t: d.mul(g, d.mul(d.log(p), -1.0 / class_rows(d, p, t)))))
defop("cross_entropy_logits", arity=2, correct=same_class, shape=class_loss, callable=False,
      onnx=onnx_class_loss(lambda e, z: e("LogSoftmax", z, axis=-1)),
      forward=None, kernel_factory=class_mean(lambda z, t: -(t * log_softmax_fwd(None, z))),
      doc="cross_entropy(softmax(z), t) computed from the logits z",
      signature="cross_entropy(softmax(z), t), rewritten to it",
      formula="−Σ_c t_c log_softmax(z)_c over the class axis; mean over any other per-sample axes",
      derivative="∂/∂z = (softmax(z) Σ_c t_c − t) / r, which is softmax(z) − t for targets summing to 1; ∂/∂t = "
                 "−log_softmax(z) / r, r the rows of one sample",
      vjp=(ce_logits_grad_z,
           lambda d, g, out, z, t: d.mul(g, d.mul(d.log_softmax(z), -1.0 / class_rows(d, z, t)))))
defop("sparse_cross_entropy", arity=2, class_index=(1, 0), correct=lambda p, k: np.argmax(p, axis=-1) == k, shape=sparse_class_loss, forward=sparse_ce_fwd,
      onnx=lambda e, p, k: e("Neg", onnx_clamped_log(e, onnx_pick(e, p, k))),
      stable={"softmax": "sparse_cross_entropy_logits"},
      doc="cross entropy of class probabilities p of shape [n] against a class index k",
      signature="sparse_cross_entropy(p, k)", formula="−log p[k], log clamped at −100; k an integer in [0, n)",
      derivative="∂/∂p = −1 / p[k] at class k, 0 elsewhere; none to k",
      vjp=(lambda d, g, out, p, k: d.neg(d.mul(g, d.div(d.one_hot(k, p), p))), None))
defop("sparse_cross_entropy_logits", arity=2, class_index=(1, 0), correct=lambda z, k: np.argmax(z, axis=-1) == k, shape=sparse_class_loss, forward=sparse_ce_logits_fwd, callable=False,
      onnx=lambda e, z, k: e("Neg", onnx_pick(e, e("LogSoftmax", z, axis=-1), k)),
      doc="sparse_cross_entropy(softmax(z), k) computed from the logits z",
      signature="sparse_cross_entropy(softmax(z), k), rewritten to it",
      formula="log Σ_j e^(z_j) − z[k] (log-sum-exp)",
      derivative="∂/∂z = softmax(z) − onehot(k); none to k",
      vjp=(lambda d, g, out, z, k: d.mul(g, d.sparse_cross_entropy_logits_grad(z, k)), None))
defop("sparse_cross_entropy_logits_grad", arity=2, class_index=(1, 0), shape=lambda z, k: broadcast(z, k + z[-1:]),
      forward=sparse_ce_logits_grad_fwd, callable=False,
      onnx=lambda e, z, k: e("Sub", e("Softmax", z, axis=-1), onnx_class_mask(e, k, e.arg_shapes[0][-1])),
      doc="the gradient of sparse_cross_entropy_logits with respect to z, in one pass",
      signature="internal: made by the differentiator (the gradient of the sparse cross entropy from logits)",
      formula="softmax(z) − onehot(k)",
      derivative="∂/∂z: s ⊙ (g − Σ g ⊙ s), s = softmax(z), as the softmax's; none to k",
      vjp=(lambda d, g, out, z, k: REGISTRY["softmax"].rule(0)(d, g, d.softmax(z), z), None))
defop("hinge", arity=2, correct=same_sign, kink=lambda y, t: 1 - t * y, shape=pairwise_loss,
      onnx=onnx_pairwise_loss(lambda e, y, t: e("Max", e.const(0.0), onnx_margin(e, y, t))),
      forward=None, kernel_factory=per_sample_mean(lambda y, t: np.maximum(0, 1 - t * y)),
      doc="hinge loss (SVM) of a score y against a label t in {−1, 1}",
      signature="hinge(y, t)", formula="max(0, 1 − t y) per element, mean over the elements of one sample",
      derivative="∂/∂y = −t / n where t y ≤ 1, else 0: at the kink t y = 1 it is −t / n (as scikit-learn and "
                 "torch.clamp(min=0)). ∂/∂t = −y / n where t y ≤ 1, else 0",
      vjp=(lambda d, g, out, y, t: d.mul(g, d.mul(d.mul(t, inclusive_step(d, margin(d, y, t))), -1.0 / pairwise_size(d, y, t))),
           lambda d, g, out, y, t: d.mul(g, d.mul(d.mul(y, inclusive_step(d, margin(d, y, t))), -1.0 / pairwise_size(d, y, t)))))
defop("squared_hinge", arity=2, correct=same_sign, shape=pairwise_loss,
      onnx=onnx_pairwise_loss(lambda e, y, t: onnx_square(e, e("Max", e.const(0.0), onnx_margin(e, y, t)))),
      forward=None, kernel_factory=per_sample_mean(lambda y, t: np.square(np.maximum(0, 1 - t * y))),
      doc="squared hinge loss of a score y against a label t in {−1, 1}",
      signature="squared_hinge(y, t)", formula="max(0, 1 − t y)² per element, mean over the elements of one sample",
      derivative="∂/∂y = −2 t max(0, 1 − t y) / n and ∂/∂t = −2 y max(0, 1 − t y) / n; no kink",
      vjp=(lambda d, g, out, y, t: d.mul(g, d.mul(d.mul(t, d.relu(margin(d, y, t))), -2.0 / pairwise_size(d, y, t))),
           lambda d, g, out, y, t: d.mul(g, d.mul(d.mul(y, d.relu(margin(d, y, t))), -2.0 / pairwise_size(d, y, t)))))
defop("perceptron", arity=2, correct=same_sign, kink=lambda y, t: t * y, shape=pairwise_loss,
      onnx=onnx_pairwise_loss(lambda e, y, t: e("Max", e.const(0.0), e("Neg", e("Mul", t, y)))),
      forward=None, kernel_factory=per_sample_mean(lambda y, t: np.maximum(0, -t * y)),
      doc="perceptron loss of a score y against a label t in {−1, 1}: SGD on it with batch 1 is Rosenblatt's rule",
      signature="perceptron(y, t)", formula="max(0, −t y) per element, mean over the elements of one sample",
      derivative="∂/∂y = −t / n where t y ≤ 0, else 0: at the kink t y = 0 it is −t / n, so a tie counts as a "
                 "mistake. ∂/∂t = −y / n where t y ≤ 0, else 0",
      vjp=(lambda d, g, out, y, t: d.mul(g, d.mul(d.mul(t, inclusive_step(d, d.neg(d.mul(t, y)))), -1.0 / pairwise_size(d, y, t))),
           lambda d, g, out, y, t: d.mul(g, d.mul(d.mul(y, inclusive_step(d, d.neg(d.mul(t, y)))), -1.0 / pairwise_size(d, y, t)))))


def user_functions() -> list[str]:
    """The built-in functions a .nn file can call, aliases included."""
    return sorted([n for n, op in REGISTRY.items() if op.callable] + list(ALIASES))


# ---- printed forms: how a .nn program, LaTeX and a NumPy module write each op ---------------
# A Form is a template with {0}, {1}, ... for the operands ({*}: all of them, joined by `sep`),
# the precedence of what it writes, and the least precedence each operand may have without
# parentheses (the last entry repeats). Precedence, loosest first: 1 sum, 2 product, 3 negation,
# 4 matrix product, 5 power, 6 postfix (index, ᵀ), 8 literal, 9 name, call or parenthesised.
# A form may instead be a function (info, *operands) -> (text, precedence) of the node's
# KernelInfo and its operands, each (text, precedence). nndsl.source prints with them.
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


def defprint(name: str, nn, latex, python, **fields) -> None:
    """Sets the printed forms of a registered op (its `printed` slot)."""
    op = REGISTRY[name]
    object.__setattr__(op, "printed", Printed(nn=nn, latex=latex, python=python, **fields))


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
    rank = max((len(s) for s in info.arg_shapes), default=0)
    out = []
    for (text, prec), shape, batched in zip(operands, info.arg_shapes, info.arg_batched):
        pad = rank - len(shape) if batched else 0
        out.append((f"{paren(text, prec, ATOM)}[:, {', '.join(['None'] * pad)}]", ATOM) if pad > 0 else (text, prec))
    return out


def py_axes(axes) -> str:
    axes = tuple(axes)
    return str(axes[0]) if len(axes) == 1 else str(axes)


def py_per_sample_mean(elements: str):
    """A loss that is the mean over one sample's elements of `elements` (a Python template)."""
    def form(info, *xs):
        text = elements.format(*[paren(t, p, ATOM) for t, p in py_aligned(info, xs)])
        shape = broadcast(*info.arg_shapes)
        if not shape:
            return text, 2
        return f"({text}).mean(axis={py_axes(per_sample_axes(shape))})", ATOM
    return form


def py_class_mean(per_class: str):
    def form(info, *xs):
        text = f"({per_class.format(*[paren(t, p, ATOM) for t, p in py_aligned(info, xs)])}).sum(axis=-1)"
        shape = broadcast(*info.arg_shapes)[:-1]
        if not shape:
            return text, ATOM
        return f"{text}.mean(axis={py_axes(per_sample_axes(shape))})", ATOM     # the class axis is gone
    return form


def py_matmul(info, a, b):
    (ra, rb), (ba, bb), bo = (len(s) for s in info.arg_shapes), info.arg_batched, info.batched
    a, b = paren(*a, ATOM), paren(*b, ATOM)
    if not ba and not bb:
        return f"{a} @ {b}", 2
    if bo and not ba and ra == 2 and bb and rb == 1:
        return f"{b} @ {a}.T", 2
    if bo and ((ba and not bb and rb == 2) or (not ba and ra == 2 and bb and rb == 2)):
        return f"{a} @ {b}", 2
    if bo and (ra, rb) == (1, 1) and ba != bb:
        return (f"{a} @ {b}" if ba else f"{b} @ {a}"), 2
    sa, sb, so = MATMUL_CASES[(ra, rb)]
    spec = f"{'z' if ba else ''}{sa},{'z' if bb else ''}{sb}->{'z' if bo else ''}{so}"
    return f"np.einsum('{spec}', {a}, {b})", ATOM


def py_outer(info, a, b):
    (ba, bb), bo = info.arg_batched, info.batched
    a, b = paren(*a, ATOM), paren(*b, ATOM)
    if not ba and not bb:
        return f"np.outer({a}, {b})", ATOM
    if ba and bb and not bo:
        return f"{a}.T @ {b}", 2
    return f"np.einsum('{'z' if ba else ''}m,{'z' if bb else ''}n->{'z' if bo else ''}mn', {a}, {b})", ATOM


def py_transpose(info, x):
    rank = len(info.shape)
    if rank < 2:
        return x
    if info.batched:
        return f"{paren(*x, ATOM)}.transpose{(0,) + tuple(range(rank, 0, -1))}", ATOM
    return f"{paren(*x, ATOM)}.T", ATOM


def py_reduce(method: str):
    def form(info, x):
        shape = info.arg_shapes[0]
        if not shape:
            return x
        return f"{paren(*x, ATOM)}.{method}(axis={py_axes(per_sample_axes(shape))})", ATOM
    return form


def py_sum_to(info, x, *ref):
    src, dst = info.arg_shapes[0], info.shape
    lead = len(src) - len(dst)
    offset = 1 if info.arg_batched[0] else 0
    axes = tuple(range(offset, offset + lead))
    if info.arg_batched[0] and not info.batched:
        axes, offset = (0,) + axes, 0
    kept = tuple(offset + i for i, (s, d) in enumerate(zip(src[lead:], dst)) if d == 1 and s != 1)
    text, prec = x
    if axes:
        text, prec = f"{paren(text, prec, ATOM)}.sum(axis={py_axes(axes)})", ATOM
    if kept:
        text, prec = f"{paren(text, prec, ATOM)}.sum(axis={py_axes(kept)}, keepdims=True)", ATOM
    return text, prec


def py_broadcast_like(info, x, ref):
    shape = info.shape
    if not info.batched:
        return (x if info.arg_shapes[0] == shape else (f"np.broadcast_to({x[0]}, {shape})", ATOM))
    text = paren(*x, ATOM)
    pad = len(shape) - len(info.arg_shapes[0])
    if info.arg_batched[0] and pad:
        text = f"{text}[:, {', '.join(['None'] * pad)}]"
    source = text if info.arg_batched[0] else paren(*ref, ATOM)
    return f"np.broadcast_to({text}, {source}.shape[:1] + {shape})", ATOM


def py_index(info, x):
    subs = info.attrs["subscripts"][1:-1]
    return f"{paren(*x, ATOM)}[{':, ' if info.arg_batched[0] else ''}{subs}]", ATOM


def py_index_grad(info, g, x):
    lead = ":, " if info.batched else ""
    source = g if info.arg_batched[0] else x
    size = f"{paren(*source, ATOM)}.shape[:1] + " if info.batched else ""
    return f"scatter({g[0]}, {size}{info.shape}, np.s_[{lead}{info.attrs['subscripts'][1:-1]}])", ATOM


def py_concat(info, *xs):
    if info.batched:
        ref = next(paren(*x, ATOM) for x, b in zip(xs, info.arg_batched) if b)
        texts = [x[0] if b else f"np.broadcast_to({x[0]}, {ref}.shape[:1] + {s})"
                 for x, b, s in zip(xs, info.arg_batched, info.arg_shapes)]
    else:
        texts = [x[0] for x in xs]
    return f"np.concatenate([{', '.join(texts)}], axis=-1)", ATOM


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


def nn_matmul(info, a, b):
    """Juxtaposition for a matrix (`W x`), `·` for two vectors (`w · x`). Not before `[`, which
    would index, nor before a `(` that would call what ends the left operand or that something
    follows: `W (x)ᵀ` reads as `(W x)ᵀ`, `A^v (x)` as `A^(v x)`."""
    a_text, b_text = paren(*a, 5), paren(*b, 4)
    call_like = b_text.startswith("(") and (not enclosed(b_text) or (ends_with_name(a_text) and not a_text.isidentifier()))
    if len(info.arg_shapes[0]) == 2 and not b_text.startswith("[") and not call_like:
        return f"{a_text} {b_text}", 4
    return f"{a_text} · {b_text}", 4


def nn_sum_to(info, x, ref=None):
    """sum_to is unbroadcast(g, ref) for a value ref of its shape and batch, or batch_sum(g) when
    only the batch is summed."""
    if info.arg_shapes[0] == info.shape and info.arg_batched[0] and not info.batched:
        return f"batch_sum({x[0]})", ATOM
    if ref is None:
        raise LookupError("sum_to")
    return f"unbroadcast({x[0]}, {ref[0]})", ATOM


def latex_sum_to(info, x, ref=None):
    if info.arg_shapes[0] == info.shape and info.arg_batched[0] and not info.batched:
        return latex_batch_sum(info, x)
    ref_text = ref[0] if ref else "\\cdot"
    return f"\\mathrm{{unbroadcast}}({x[0]}, {ref_text})", ATOM


def latex_batch_sum(info, x):
    return f"\\sum_{{b}} {paren(*x, 3)}", 2


def latex_mul(info, a, b):
    if () in info.arg_shapes:            # scaling, as a slide writes it: 0.5 (ŷ − y)
        left, right = paren(*a, 3), paren(*b, 4)
        return (f"{left} \\cdot {right}" if right[:1].isdigit() else f"{left}\\,{right}"), 2
    return f"{paren(*a, 2)} \\odot {paren(*b, 3)}", 2


def latex_matmul(info, a, b):
    if info.arg_shapes[0] == info.arg_shapes[1] and len(info.arg_shapes[0]) == 1:
        return f"{paren(*a, 5)} \\cdot {paren(*b, 5)}", 4
    return f"{paren(*a, 5)} {paren(*b, 4)}", 4


def latex_call(name: str) -> Form:
    return Form(f"\\mathrm{{{name}}}({{*}})")


def latex_index(info, x):
    return f"{paren(*x, ATOM)}_{{{info.attrs['subscripts'][1:-1]}}}", 6


def elementwise(nn: str, latex, python, **fields):
    """An elementwise function: called by name in .nn, `latex` a command or a Form, NumPy `python`."""
    return dict(nn=call(nn), latex=latex if isinstance(latex, Form) else Form(latex + "({*})"),
                python=python if isinstance(python, Form) else Form(python, ATOM, (0,)), **fields)


defprint("input", None, None, None)
defprint("param", None, None, None)
defprint("const", None, None, None)
defprint("add", infix(" + ", 1), infix(" + ", 1), infix(" + ", 1))
defprint("sub", infix(" - ", 1), infix(" - ", 1), infix(" - ", 1))
defprint("mul", infix(" * ", 2), latex_mul, infix(" * ", 2))
defprint("div", infix(" / ", 2), Form("\\frac{{{0}}}{{{1}}}", ATOM, (0,)), infix(" / ", 2))
defprint("neg", Form("-{0}", 3, (3,)), Form("-{0}", 3, (3,)), Form("-{0}", 3, (4,)))
defprint("pow", Form("{0}^{1}", 5, (6, 5)), Form("{{{0}}}^{{{1}}}", 5, (6, 0)), Form("{0} ** {1}", 5, (6, 3)))
defprint("max", call("max"), Form("\\max({*})"), Form("np.maximum({0}, {1})"))
defprint("min", call("min"), Form("\\min({*})"), Form("np.minimum({0}, {1})"))
defprint("tie_mask", call("tie_mask"), latex_call("tie"), Form("({0} > {1}) + 0.5 * ({0} == {1})", 1, (ATOM,)))
defprint("relu", **elementwise("relu", "\\mathrm{relu}", "np.maximum({0}, 0.0)"))
defprint("sigmoid", **elementwise("σ", "\\sigma", "np.exp(-np.logaddexp(0.0, -{0}))"))
defprint("tanh", **elementwise("tanh", "\\tanh", "np.tanh({0})"))
defprint("step", **elementwise("step", "\\mathrm{step}", Form("({0} > 0) * 1.0", 2, (ATOM,))))
defprint("sign", **elementwise("sign", "\\mathrm{sign}", "np.sign({0})"))
defprint("softplus", **elementwise("softplus", "\\mathrm{softplus}", "np.logaddexp(0.0, {0})"))
defprint("leaky_relu", **elementwise("leaky_relu", "\\mathrm{leaky}", "np.where({0} > 0, {0}, {0} * {1})"))
defprint("identity", **elementwise("identity", Form("{0}", 0, (0,)), Form("{0}", 0, (0,))))
defprint("exp", **elementwise("exp", Form("e^{{{0}}}", 5, (0,)), "np.exp({0})"))
defprint("log", **elementwise("log", "\\log", "np.log({0})"))
defprint("abs", **elementwise("abs", Form("|{0}|", ATOM, (0,)), "np.abs({0})"))
defprint("sqrt", **elementwise("sqrt", Form("\\sqrt{{{0}}}", ATOM, (0,)), "np.sqrt({0})"))
defprint("log_sigmoid", **elementwise("log_sigmoid", Form("\\log \\sigma({0})", 2, (0,)),
                                      Form("-np.logaddexp(0.0, -{0})", 3, (ATOM,))))
defprint("softmax", call("softmax"), latex_call("softmax"),
         Form("np.exp({0} - np.logaddexp.reduce({0}, axis=-1, keepdims=True))"))
defprint("log_softmax", call("log_softmax"), Form("\\log \\mathrm{{softmax}}({0})", 2, (0,)),
         Form("{0} - np.logaddexp.reduce({0}, axis=-1, keepdims=True)", 1, (ATOM,)))
defprint("sum_last", call("sum_last"), Form("\\sum_{{j}} {0}_{{j}}", 2, (ATOM,)),
         Form("{0}.sum(axis=-1, keepdims=True)", ATOM, (ATOM,)))
defprint("sum", call("sum"), Form("\\sum_{{i}} {0}", 2, (3,)), py_reduce("sum"))
defprint("mean", call("mean"), latex_call("mean"), py_reduce("mean"))
defprint("transpose", Form("{0}ᵀ", 6, (8,)), Form("{0}^{{\\top}}", 6, (ATOM,)), py_transpose)
defprint("matmul", nn_matmul, latex_matmul, py_matmul)
defprint("outer", call("outer"), Form("{0} {1}^{{\\top}}", 4, (5, ATOM)), py_outer)
defprint("index", Form("{0}{subscripts}", 6, (ATOM,)), latex_index, py_index)
defprint("index_grad", Form("index_grad({0}, {1}{subscripts})", ATOM, (0, ATOM)),
         latex_call("scatter"), py_index_grad, helpers=("scatter",))
defprint("concat", call("concat"), latex_call("concat"), py_concat)
defprint("argmax", call("argmax"), Form("\\arg\\max({0})"), Form("np.argmax({0}, axis=-1) * 1.0"))
defprint("sum_to", nn_sum_to, latex_sum_to, py_sum_to, ref=True)
defprint("batch_sum", call("batch_sum"), latex_batch_sum, Form("{0}.sum(axis=0)", ATOM, (ATOM,)))
defprint("unbroadcast", call("unbroadcast"), latex_call("unbroadcast"), lambda info, g, ref: py_sum_to(info, g))
defprint("broadcast_like", call("broadcast_like"), Form("{0}", 0, (0,)), py_broadcast_like)
defprint("batch_size", call("batch_size"), Form("B"), lambda info, x: ("float(len(%s))" % x[0] if info.arg_batched[0]
                                                                       else "1.0", ATOM), call_it="B")
defprint("accumulate", Form("{*}", 1, (1, 2), sep=" + "), Form("{*}", 1, (1, 2), sep=" + "),
         Form("{*}", 1, (1, 2), sep=" + "))
defprint("one_hot", call("one_hot"), latex_call("onehot"), Form("one_hot({0}, {1})"), helpers=("one_hot",))
# losses; a fused one is written as what it fuses, which compiles back to it
defprint("mse", call("mse"), latex_call("mse"), py_per_sample_mean("({0} - {1}) ** 2"))
defprint("mae", call("mae"), latex_call("mae"), py_per_sample_mean("np.abs({0} - {1})"))
defprint("bce", call("bce"), latex_call("bce"),
         py_per_sample_mean("-({1} * clamped_log({0}) + (1 - {1}) * clamped_log(1 - {0}))"), helpers=("clamped_log",))
defprint("bce_logits", Form("bce(σ({0}), {1})"), Form("\\mathrm{{bce}}(\\sigma({0}), {1})"),
         py_per_sample_mean("{0} * (({0} > 0) - {1}) + np.logaddexp(0.0, -np.abs({0}))"))
defprint("cross_entropy", call("cross_entropy"), latex_call("CE"),
         py_class_mean("-({1} * clamped_log({0}))"), helpers=("clamped_log",))
defprint("cross_entropy_logits", Form("cross_entropy(softmax({0}), {1})"),
         Form("\\mathrm{{CE}}(\\mathrm{{softmax}}({0}), {1})"),
         py_class_mean("-({1} * ({0} - np.logaddexp.reduce({0}, axis=-1, keepdims=True)))"))
defprint("sparse_cross_entropy", call("sparse_cross_entropy"), latex_call("CE"),
         Form("-clamped_log(pick({0}, {1}))", 3), helpers=("clamped_log", "pick"))
defprint("sparse_cross_entropy_logits", Form("sparse_cross_entropy(softmax({0}), {1})"),
         Form("\\mathrm{{CE}}(\\mathrm{{softmax}}({0}), {1})"),
         Form("np.logaddexp.reduce({0}, axis=-1) - pick({0}, {1})", 1), helpers=("pick",))
defprint("sparse_cross_entropy_logits_grad", Form("softmax({0}) - one_hot({1}, {0})", 1, (0,)),
         Form("\\mathrm{{softmax}}({0}) - \\mathrm{{onehot}}({1})", 1, (0,)),
         Form("np.exp({0} - np.logaddexp.reduce({0}, axis=-1, keepdims=True)) - one_hot({1}, {0})", 1, (0,)),
         helpers=("one_hot",))
defprint("hinge", call("hinge"), latex_call("hinge"), py_per_sample_mean("np.maximum(0.0, 1 - {1} * {0})"))
defprint("squared_hinge", call("squared_hinge"), latex_call("hinge^2"),
         py_per_sample_mean("np.maximum(0.0, 1 - {1} * {0}) ** 2"))
defprint("perceptron", call("perceptron"), latex_call("perceptron"), py_per_sample_mean("np.maximum(0.0, -{1} * {0})"))


# ---- PyTorch: how each op computes on torch tensors (nndsl.torch_backend) ------------------
# A mapping (t, *tensors) -> tensor sees the run-time layout (a batched value has its batch axis
# first). `t` holds the node's static facts as KernelInfo does (`shape`, `batched`, `arg_shapes`,
# `arg_batched`, `attrs`), `t.torch` the torch module and `t.F` torch.nn.functional. Operands of
# elementwise ops arrive aligned (nndsl.layout); a mapping never sums over the batch: the lowering
# does that after a node whose arguments carry the batch but whose value does not, as the ONNX
# exporter does. Mappings call torch alone, never nndsl, so a lowered graph prints as a module
# that needs nothing but torch (`nndsl export --format torch`).
def deftorch(name: str, fn) -> None:
    """Sets the PyTorch mapping of a registered op (its `torch` slot)."""
    object.__setattr__(REGISTRY[name], "torch", fn)


def torch_log(x):
    """log clamped at -100, as torch.nn.BCELoss and nndsl's clamped_log."""
    return x.log().clamp_min(-100.0)


def torch_reduce(method: str):
    def mapping(t, x):
        axes = per_sample_axes(t.arg_shapes[0])
        return getattr(x, method)(dim=axes) if axes else x
    return mapping


def torch_per_sample_mean(per_element):
    """A loss: per_element of the aligned operands, the mean over one sample's elements."""
    def mapping(t, y, target):
        value = per_element(t, *t.aligned(y, target))
        axes = per_sample_axes(broadcast(*t.arg_shapes))
        return value.mean(dim=axes) if axes else value
    return mapping


def torch_class_mean(per_class):
    """A cross entropy: the sum over the class axis (the last), the mean over other per-sample axes."""
    def mapping(t, p, target):
        value = per_class(t, *t.aligned(p, target)).sum(dim=-1)
        axes = per_sample_axes(broadcast(*t.arg_shapes)[:-1])      # of what the sum over classes left
        return value.mean(dim=axes) if axes else value
    return mapping


def torch_matmul(t, a, b):
    (ra, rb), (ba, bb) = (len(s) for s in t.arg_shapes), t.arg_batched
    if not ba and not bb:
        return a @ b                                   # torch.matmul's rules are the per-sample ones
    if bb and not ba and ra == 2 and rb == 1:
        return b @ a.T                                 # W x over a batch: one matrix product
    if (ba and not bb and rb == 2) or (bb and not ba and ra == 2 and rb == 2):
        return a @ b
    if (ra, rb) == (1, 1) and ba != bb:
        return a @ b if ba else b @ a                  # w · x over a batch
    sa, sb, so = MATMUL_CASES[(ra, rb)]
    return t.torch.einsum(f"{'z' if ba else ''}{sa},{'z' if bb else ''}{sb}->z{so}", a, b)


def torch_outer(t, a, b):
    ba, bb = t.arg_batched
    if not ba and not bb:
        return t.torch.outer(a, b)
    return t.torch.einsum(f"{'z' if ba else ''}m,{'z' if bb else ''}n->zmn", a, b)


def torch_transpose(t, x):
    rank = len(t.shape)
    if rank < 2:
        return x
    lead = (0,) if t.arg_batched[0] else ()
    return x.permute(lead + tuple(len(lead) + i for i in reversed(range(rank))))


def torch_index(t, x):
    subs = subscripts_of(t.attrs["subscripts"])
    return x[((slice(None),) if t.arg_batched[0] else ()) + subs]


def torch_index_grad(t, g, x):
    """g padded with zeros to the indexed value's shape (an integer subscript's axis put back first)."""
    subs = subscripts_of(t.attrs["subscripts"])
    offset = 1 if t.arg_batched[0] else 0
    for axis, s in enumerate(subs):
        if not isinstance(s, slice):
            g = g.unsqueeze(offset + axis)
    widths = []
    for axis, size in enumerate(t.shape):
        s = subs[axis] if axis < len(subs) else slice(None)
        kept = range(size)[s] if isinstance(s, slice) else range(size)[s:s + 1 or None]
        widths.append((kept[0], size - kept[-1] - 1))
    out = t.F.pad(g, [w for pair in reversed(widths) for w in pair]) if any(map(any, widths)) else g
    return out.expand((x.shape[0],) + tuple(t.shape)) if t.batched and not offset else out


def torch_concat(t, *xs):
    if t.batched:
        size = next(x for x, b in zip(xs, t.arg_batched) if b).shape[0]
        xs = [x if b else x.expand((size,) + tuple(s)) for x, b, s in zip(xs, t.arg_batched, t.arg_shapes)]
    return t.torch.cat(list(xs), dim=-1)


def torch_sum_to(t, x):
    """Undoes broadcasting per sample (the lowering sums over the batch when the node has none)."""
    src, dst = t.arg_shapes[0], t.shape
    lead = len(src) - len(dst)
    axes = tuple(range(-len(src), -len(src) + lead))
    kept = tuple(i - len(dst) for i, (s, d) in enumerate(zip(src[lead:], dst)) if d == 1 and s != 1)
    if axes:
        x = x.sum(dim=axes)
    if kept:
        x = x.sum(dim=kept, keepdim=True)
    return x


def torch_unbroadcast(t, g, ref):
    out = torch_sum_to(t, g)
    if not t.arg_batched[0] and t.arg_batched[1]:
        out = out.unsqueeze(0)            # a batch of one, which the lowering's sum over the batch removes
    return out


def torch_broadcast_like(t, x, ref):
    shape = tuple(t.shape)
    if not t.batched:
        return x if t.arg_shapes[0] == shape else x.expand(shape)
    if t.arg_batched[0] and t.arg_shapes[0] == shape:
        return x
    return x.expand(((x if t.arg_batched[0] else ref).shape[0],) + shape)


def torch_batch_size(t, x):
    return x.new_ones(()) * x.shape[0] if t.arg_batched[0] else x.new_ones(())


def torch_one_hot(t, k, ref):
    rows = t.F.one_hot(k.long(), t.shape[-1]).to(ref.dtype)       # k's layout and one more axis
    pad = len(t.shape) - len(t.arg_shapes[0]) - 1
    if t.arg_batched[0] and pad:
        rows = rows[pad_key(pad)]
    if t.batched:
        return rows.expand(((k if t.arg_batched[0] else ref).shape[0],) + tuple(t.shape))
    return rows.expand(tuple(t.shape))


def torch_pick(t, x, k):
    """x[..., k]: the entry of the class axis at each sample's class index."""
    idx = k.long()
    xb, kb = t.arg_batched
    if xb and kb:
        return x.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
    return x[:, idx] if xb else x[idx]


def torch_bce_logits(t, z, target):
    z, target = t.torch.broadcast_tensors(z, target)
    return t.F.binary_cross_entropy_with_logits(z, target, reduction="none")


deftorch("input", lambda t: t.input())
deftorch("param", lambda t: t.parameter())
deftorch("const", lambda t: t.constant())
deftorch("add", lambda t, a, b: a + b)
deftorch("sub", lambda t, a, b: a - b)
deftorch("mul", lambda t, a, b: a * b)
deftorch("div", lambda t, a, b: a / b)
deftorch("neg", lambda t, x: -x)
deftorch("pow", lambda t, a, b: a ** b)
deftorch("max", lambda t, a, b: t.torch.maximum(a, b))
deftorch("min", lambda t, a, b: t.torch.minimum(a, b))
deftorch("tie_mask", lambda t, a, b: (a > b).to(a.dtype) + 0.5 * (a == b).to(a.dtype))
deftorch("relu", lambda t, x: x.relu())
deftorch("sigmoid", lambda t, x: x.sigmoid())
deftorch("tanh", lambda t, x: x.tanh())
deftorch("step", lambda t, x: (x > 0).to(x.dtype))
deftorch("sign", lambda t, x: x.sign())
deftorch("softplus", lambda t, x: t.torch.logaddexp(x, x.new_zeros(())))
deftorch("leaky_relu", lambda t, x, s: t.torch.where(x > 0, x, x * s))
deftorch("identity", lambda t, x: x)
deftorch("exp", lambda t, x: x.exp())
deftorch("log", lambda t, x: x.log())
deftorch("abs", lambda t, x: x.abs())
deftorch("sqrt", lambda t, x: x.sqrt())
deftorch("log_sigmoid", lambda t, x: t.F.logsigmoid(x))
deftorch("softmax", lambda t, x: t.torch.softmax(x, dim=-1))
deftorch("log_softmax", lambda t, x: t.torch.log_softmax(x, dim=-1))
deftorch("sum_last", lambda t, x: x.sum(dim=-1, keepdim=True))
deftorch("sum", torch_reduce("sum"))
deftorch("mean", torch_reduce("mean"))
deftorch("transpose", torch_transpose)
deftorch("matmul", torch_matmul)
deftorch("outer", torch_outer)
deftorch("index", torch_index)
deftorch("index_grad", torch_index_grad)
deftorch("concat", torch_concat)
deftorch("argmax", lambda t, x: x.argmax(dim=-1).to(x.dtype))
deftorch("sum_to", torch_sum_to)
deftorch("broadcast_like", torch_broadcast_like)
deftorch("batch_size", torch_batch_size)
deftorch("accumulate", lambda t, *xs: sum(xs[1:], xs[0]))
deftorch("batch_sum", lambda t, x: x.sum(dim=0) if t.arg_batched[0] else x)
deftorch("unbroadcast", torch_unbroadcast)
deftorch("one_hot", torch_one_hot)
deftorch("mse", torch_per_sample_mean(lambda t, y, target: (y - target).square()))
deftorch("mae", torch_per_sample_mean(lambda t, y, target: (y - target).abs()))
deftorch("bce", torch_per_sample_mean(lambda t, p, target: -(target * torch_log(p) + (1 - target) * torch_log(1 - p))))
deftorch("bce_logits", torch_per_sample_mean(torch_bce_logits))
deftorch("cross_entropy", torch_class_mean(lambda t, p, target: -(target * torch_log(p))))
deftorch("cross_entropy_logits", torch_class_mean(lambda t, z, target: -(target * t.torch.log_softmax(z, dim=-1))))
deftorch("sparse_cross_entropy", lambda t, p, k: -torch_log(torch_pick(t, p, k)))
deftorch("sparse_cross_entropy_logits", lambda t, z, k: -torch_pick(t, t.torch.log_softmax(z, dim=-1), k))
deftorch("sparse_cross_entropy_logits_grad",
         lambda t, z, k: t.torch.softmax(z, dim=-1) - t.F.one_hot(k.long(), t.arg_shapes[0][-1]).to(z.dtype))
deftorch("hinge", torch_per_sample_mean(lambda t, y, target: (1 - target * y).clamp_min(0.0)))
deftorch("squared_hinge", torch_per_sample_mean(lambda t, y, target: (1 - target * y).clamp_min(0.0).square()))
deftorch("perceptron", torch_per_sample_mean(lambda t, y, target: (-(target * y)).clamp_min(0.0)))
