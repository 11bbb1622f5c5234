"""What the differentiator and the batch need, and indexing: `index` and `index_grad` (an index's
subscripts are a node attribute written as in the source, `[0]`, `[:, 1:3]`, `[-1]`: text
exports to every format as it is, and reads back here), `concat`, `sum_to` and `unbroadcast`
(undo broadcasting, and sum over the batch), `broadcast_like`, `batch_size`, `batch_sum`,
`accumulate` (the sum of a value's gradients where it fans out), and `one_hot` with the checks of
class indices.
"""
from __future__ import annotations

import numpy as np

from ..layout import pad_key
from .core import arange, ATOM, batch_total, broadcast, call, defop, fmt_shape, Form, kept, KernelInfo, latex_call, onnx_same, paren, Printed, py_axes, same, same_shapes, scalar, Shape, ShapeError


def sum_to_kernel(info: KernelInfo):
    """Sums a value down to a smaller per-sample shape (undoing broadcasting), and over the batch."""
    src, dst = info.arg_shapes[0], info.shape
    lead = len(src) - len(dst)
    offset = 1 if info.arg_batched[0] else 0
    axes = tuple(range(offset, offset + lead))
    if info.arg_batched[0] and not info.batched:
        axes = (0,) + axes
        offset = 0
    kept = tuple(offset + i for i, (s, d) in enumerate(zip(src[lead:], dst)) if d == 1 and s != 1)
    reduce = np.add.reduce
    if axes == (0,) and not kept and len(src) <= 1:
        return batch_total(info.dtype)      # the batch sum of a scalar or vector per sample (a bias's gradient)
    if not kept:
        return (lambda x: reduce(x, axes)) if axes else (lambda x: x)
    if not axes:
        return lambda x: reduce(x, kept, None, None, True)        # keepdims, by position
    return lambda x: reduce(reduce(x, axes), kept, None, None, True)


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


def class_indices(k, n):
    """The class indices k as integers, checked to be whole numbers in [0, n) (else a
    FloatingPointError naming the first that is not). An index is good exactly when the table
    0, 1, ..., n - 1 (in k's dtype) taken at it, truncated and clipped into range, gives it back:
    three cheap calls, about half what comparing and range-checking the integers costs."""
    idx = np.asarray(k)
    as_int = idx.astype(np.intp)
    table = kept(("classes", n, idx.dtype), np.arange, 0, n, 1, idx.dtype)
    bad = table.take(as_int, mode="clip") != idx
    if np.count_nonzero(bad):                                   # cheaper than bad.any() on small arrays
        value = idx.reshape(-1)[np.flatnonzero(bad)[0]]
        text = f"{value:g}"
        if float(text) != value and float(text).is_integer():      # %g rounded 9.0000001 to 9
            text = repr(float(value))
        raise FloatingPointError(f"class index {text} is not an integer in [0, {n})")
    return as_int


def indices(info: KernelInfo, k, n):
    """Class indices as integers: checked here, unless they were when fed (`indices_checked`)."""
    return np.asarray(k).astype(np.intp) if info.indices_checked else class_indices(k, n)


def onnx_sum_to(e, x):
    """Undo broadcasting per sample: sum the leading axes away, sum size-1 axes keeping them;
    the exporter sums over the batch when the node has none."""
    src, dst = e.arg_shapes[0], e.shape
    lead = len(src) - len(dst)
    x = e.reduce("ReduceSum", x, range(-len(src), -len(src) + lead))
    kept = [i - len(dst) for i, (s, d) in enumerate(zip(src[lead:], dst)) if d == 1 and s != 1]
    return e.reduce("ReduceSum", x, kept, keepdims=True)


def onnx_class_mask(e, k, n: int):
    """One-hot rows [..., n] for float class indices k (whole numbers, as the data holds them)."""
    return e.cast(e("Equal", e.unsqueeze(k, [-1]), e.const(np.arange(n))))


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


def latex_batch_sum(info, x):
    return f"\\sum_{{b}} {paren(*x, 3)}", 2


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


def py_index(info, x):
    subs = info.attrs["subscripts"][1:-1]
    return f"{paren(*x, ATOM)}[{':, ' if info.arg_batched[0] else ''}{subs}]", ATOM


def latex_index(info, x):
    return f"{paren(*x, ATOM)}_{{{info.attrs['subscripts'][1:-1]}}}", 6


def torch_index(t, x):
    subs = subscripts_of(t.attrs["subscripts"])
    return x[((slice(None),) if t.arg_batched[0] else ()) + subs]


# indexing and joining
defop("index", arity=1, attrs=("subscripts",), shape=index_shape, forward=None, kernel_factory=index_kernel,
      callable=False, onnx=onnx_index, batch_reducible=False,
      doc="per-sample axes indexed and sliced by integer constants, as in NumPy",
      signature="x[i] or x[a:b] or W[:, j] or x[-1]",
      formula="the selected elements: an integer drops its axis, a slice keeps it",
      derivative="the incoming gradient scattered into zeros shaped like x (index_grad)",
      vjp=(lambda d, g, out, x: d.index_grad(g, x, subscripts=d.attr(out, "subscripts")),),
      printed=Printed(Form("{0}{subscripts}", 6, (ATOM,)), latex_index, py_index),
      torch=torch_index)


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


def py_index_grad(info, g, x):
    lead = ":, " if info.batched else ""
    source = g if info.arg_batched[0] else x
    size = f"{paren(*source, ATOM)}.shape[:1] + " if info.batched else ""
    return f"scatter({g[0]}, {size}{info.shape}, np.s_[{lead}{info.attrs['subscripts'][1:-1]}])", ATOM


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


defop("index_grad", arity=2, attrs=("subscripts",), shape=lambda g, x, subscripts: x, forward=None,
      kernel_factory=index_grad_kernel, onnx=onnx_index_grad,
      doc="the gradient of an index: g scattered into zeros shaped like the indexed value",
      signature="index_grad(g, x[i]): its last argument is written indexed, and names the places",
      formula="zeros shaped like x, with g at the indexed places",
      derivative="∂g: the same index applied to the incoming gradient; none to x",
      vjp=(lambda d, g, out, gin, x: d.index(g, subscripts=d.attr(out, "subscripts")), None),
      printed=Printed(Form("index_grad({0}, {1}{subscripts})", ATOM, (0, ATOM)), latex_call("scatter"), py_index_grad, helpers=("scatter",)),
      torch=torch_index_grad)


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


def onnx_concat(e, *xs):
    if e.batched:
        ref = next(x for x, b in zip(xs, e.arg_batched) if b)
        batch = e("Slice", e("Shape", ref), e.ints([0]), e.ints([1]))
        xs = [x if b else e("Expand", x, e("Concat", batch, e.ints(shape), axis=0))
              for x, b, shape in zip(xs, e.arg_batched, e.arg_shapes)]
    return e("Concat", *xs, axis=-1)


def py_concat(info, *xs):
    if info.batched:
        ref = next(paren(*x, ATOM) for x, b in zip(xs, info.arg_batched) if b)
        texts = [x[0] if b else f"np.broadcast_to({x[0]}, {ref}.shape[:1] + {s})"
                 for x, b, s in zip(xs, info.arg_batched, info.arg_shapes)]
    else:
        texts = [x[0] for x in xs]
    return f"np.concatenate([{', '.join(texts)}], axis=-1)", ATOM


def torch_concat(t, *xs):
    if t.batched:
        size = next(x for x, b in zip(xs, t.arg_batched) if b).shape[0]
        xs = [x if b else x.expand((size,) + tuple(s)) for x, b, s in zip(xs, t.arg_batched, t.arg_shapes)]
    return t.torch.cat(list(xs), dim=-1)


defop("concat", arity=None, shape=concat_shape, forward=None, kernel_factory=concat_kernel, onnx=onnx_concat,
      doc="joins its arguments along the last axis",
      signature="concat(a, b, ...)", formula="[a, b, ...] along the last axis; all other axes must agree",
      derivative="each argument gets its own columns of the incoming gradient",
      vjp_at=concat_grad,
      printed=Printed(call("concat"), latex_call("concat"), py_concat),
      torch=torch_concat)


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


# plumbing the differentiator and the batch need
defop("sum_to", arity=1, shape=same, forward=None, kernel_factory=sum_to_kernel, callable=False, reduces_batch=True,
      onnx=onnx_sum_to,
      doc="sums a value down to this node's shape and batch layout (undoes broadcasting)",
      signature="internal: made by the differentiator",
      formula="x summed over the axes, and the batch, that broadcasting added",
      derivative="the incoming gradient broadcast back to x's shape",
      vjp=(lambda d, g, out, x: d.broadcast_like(g, x),),
      printed=Printed(nn_sum_to, latex_sum_to, py_sum_to, ref=True),
      torch=torch_sum_to)


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


def onnx_broadcast_like(e, x, ref):
    return e("Expand", x, e("Shape", ref))          # Expand broadcasts both ways, as NumPy


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


def torch_broadcast_like(t, x, ref):
    shape = tuple(t.shape)
    if not t.batched:
        return x if t.arg_shapes[0] == shape else x.expand(shape)
    if t.arg_batched[0] and t.arg_shapes[0] == shape:
        return x
    return x.expand(((x if t.arg_batched[0] else ref).shape[0],) + shape)


defop("broadcast_like", arity=2, shape=broadcast, forward=None, kernel_factory=broadcast_like_kernel, elementwise=True,
      onnx=onnx_broadcast_like,
      doc="broadcasts its first argument against its second: to their joint shape and batch",
      signature="broadcast_like(x, ref)",
      formula="x repeated along the axes, and the batch, where ref is larger",
      derivative="∂x: the incoming gradient summed back to x's shape; none to ref",
      vjp=(lambda d, g, out, x, ref: d.sum_to(g, like=x), None),
      printed=Printed(call("broadcast_like"), Form("{0}", 0, (0,)), py_broadcast_like),
      torch=torch_broadcast_like)


def batch_size_kernel(info: KernelInfo):
    dtype = info.dtype
    batched = info.arg_batched[0]
    return lambda x: np.asarray(x.shape[0] if batched else 1, dtype=dtype)


def onnx_batch_size(e, x):
    if not e.arg_batched[0]:
        return e.const(1.0)
    return e.cast(e("Gather", e("Shape", x), e.const(0, dtype=np.int64)))


def torch_batch_size(t, x):
    return x.new_ones(()) * x.shape[0] if t.arg_batched[0] else x.new_ones(())


defop("batch_size", arity=1, shape=scalar, forward=None, kernel_factory=batch_size_kernel,
      onnx=onnx_batch_size,
      differentiable=False, unbatched=True, batch_only=True,
      doc="the number of samples in the batch (1 without one)",
      signature="batch_size(a)",
      formula="B, the number of samples a carries (1 for a value without the batch axis)",
      derivative="none: it is a count",
      printed=Printed(call("batch_size"), Form("B"), lambda info, x: ("float(len(%s))" % x[0] if info.arg_batched[0]
                                                                       else "1.0", ATOM), call_it="B"),
      torch=torch_batch_size)


defop("accumulate", arity=None, shape=same_shapes, forward=lambda *xs: sum(xs[1:], xs[0]), elementwise=True,
      onnx=onnx_same("Sum"), look=dict(shape="octagon", fillcolor="#ede9fe", color="#6d28d9", fontcolor="#4c1d95"),
      callable=False, symbol="Σ", doc="sums the gradients that reach a value read by several consumers",
      signature="internal: made by the differentiator (drawn as Σ)", formula="a + b + ... of gradients of one shape",
      derivative="1 to each argument",
      vjp=lambda d, g, out, *xs: g,
      printed=Printed(Form("{*}", 1, (1, 2), sep=" + "), Form("{*}", 1, (1, 2), sep=" + "), Form("{*}", 1, (1, 2), sep=" + ")),
      torch=lambda t, *xs: sum(xs[1:], xs[0]))


def batch_sum_kernel(info: KernelInfo):
    if info.arg_batched[0]:
        return lambda x: np.add.reduce(x, axis=0)
    return lambda x: x


def onnx_batch_sum(e, x):
    return e.reduce("ReduceSum", x, [0]) if e.arg_batched[0] else e("Identity", x)


defop("batch_sum", arity=1, shape=same, forward=None, kernel_factory=batch_sum_kernel, unbatched=True,
      onnx=onnx_batch_sum,
      doc="the sum over the samples of the batch (a gradient program's parameter gradients)",
      signature="batch_sum(a)", formula="Σ over the batch of a; a value without the batch axis is one sample: itself",
      derivative="the incoming gradient, one copy per sample",
      vjp=(lambda d, g, out, x: d.broadcast_like(g, x),),
      printed=Printed(call("batch_sum"), latex_batch_sum, Form("{0}.sum(axis=0)", ATOM, (ATOM,))),
      torch=lambda t, x: x.sum(dim=0) if t.arg_batched[0] else x)


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


def torch_unbroadcast(t, g, ref):
    out = torch_sum_to(t, g)
    if not t.arg_batched[0] and t.arg_batched[1]:
        out = out.unsqueeze(0)            # a batch of one, which the lowering's sum over the batch removes
    return out


defop("unbroadcast", arity=2, shape=unbroadcast_shape, forward=None, kernel_factory=unbroadcast_kernel,
      reduces_batch=True, batched_rule=all, onnx=onnx_unbroadcast,
      doc="undoes broadcasting: g summed down to the shape and batch of ref",
      signature="unbroadcast(g, ref)",
      formula="g summed over the axes that broadcasting against ref added or widened, and over the batch "
              "when ref has none",
      derivative="∂g: the incoming gradient broadcast back to g's shape; none to ref",
      vjp=(lambda d, g, out, x, ref: d.broadcast_like(g, x), None),
      printed=Printed(call("unbroadcast"), latex_call("unbroadcast"), lambda info, g, ref: py_sum_to(info, g)),
      torch=torch_unbroadcast)


def index_like(k: Shape, ref: Shape) -> Shape:
    return ref


def one_hot_fwd(info, k, ref):
    n = info.shape[-1]
    rows = (indices(info, k, n)[..., None] == arange(n)).astype(info.dtype)
    return rows if rows.shape == ref.shape else np.broadcast_to(rows, np.broadcast_shapes(rows.shape, ref.shape))


def onnx_one_hot(e, k, ref):
    return e("Expand", onnx_class_mask(e, k, e.shape[-1]), e("Shape", ref))


def torch_one_hot(t, k, ref):
    rows = t.F.one_hot(k.long(), t.shape[-1]).to(ref.dtype)       # k's layout and one more axis
    pad = len(t.shape) - len(t.arg_shapes[0]) - 1
    if t.arg_batched[0] and pad:
        rows = rows[pad_key(pad)]
    if t.batched:
        return rows.expand(((k if t.arg_batched[0] else ref).shape[0],) + tuple(t.shape))
    return rows.expand(tuple(t.shape))


defop("one_hot", arity=2, shape=index_like, class_index=(0, 1), forward=one_hot_fwd, differentiable=False,
      onnx=onnx_one_hot,
      doc="one-hot rows for class indices, as wide as the second argument",
      signature="one_hot(k, ref)",
      formula="1 at position k of each row, 0 elsewhere; k an integer in [0, n)",
      derivative="none: it is piecewise constant",
      printed=Printed(call("one_hot"), latex_call("onehot"), Form("one_hot({0}, {1})"), helpers=("one_hot",)),
      torch=torch_one_hot)
