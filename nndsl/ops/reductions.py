"""Reductions: over one sample's axes (sum, mean) and along the last axis (softmax, log_softmax,
sum_last, argmax). Each is written so that no step rounds a value much larger than its result:
log_softmax is (x − max) − log Σ exp(x − max), never x − logsumexp(x), whose two terms of the
size of x cancel (in float32, x near 1e4 would keep three digits of a result near 1).
"""
from __future__ import annotations

from math import prod

import numpy as np

from .core import at_least_vector, ATOM, call, defop, Form, latex_call, ones, onnx_same, paren, per_sample_axes, Printed, py_axes, scalar, Shape


def row_sums(e):
    """Σ along the last axis, keeping it (size 1). Over a short last axis (a few classes), NumPy's
    reduction costs several times a matrix-vector product with ones, which sums the same terms
    (in another order: both are good to a few ulps)."""
    n = e.shape[-1]
    if n > 256 or type(e) is not np.ndarray or e.dtype.kind != "f":
        return np.add.reduce(e, axis=-1, keepdims=True)
    return np.dot(e, ones(n, e.dtype))[..., None]


def row_max(x):
    """The largest element along the last axis, keeping it (size 1). Over a short last axis (a few
    classes) NumPy reduces row by row; reducing a transposed copy over its first axis takes all
    rows at once: 3-7x faster from 32 to 512 rows of 10. The maximum is exact either way."""
    shape = x.shape if type(x) is np.ndarray else ()
    if len(shape) == 2 and shape[0] >= 16 and shape[1] <= 64:      # a batch of rows: the common case
        return np.maximum.reduce(x.T.copy(), 0)[:, None]
    n = shape[-1] if len(shape) >= 2 else 0
    rows = x.size // n if n else 0
    if not n or n > 64 or rows < 16:
        return np.maximum.reduce(x, axis=-1, keepdims=True)
    columns = np.ascontiguousarray(x.reshape(rows, n).T)
    return np.maximum.reduce(columns, 0).reshape(shape[:-1] + (1,))


def softmax_fwd(info, x):
    e = np.exp(x - row_max(x))
    e /= row_sums(e)                        # e is new: written in place
    return e


def shifted_logsumexp(x):
    """(x - max, log Σ exp(x - max)) along the last axis: log_softmax(x) is their difference, and
    as neither is larger than the result (x - max <= 0 <= the log), it keeps its digits. The log
    is log1p of the sum without one largest element's exp(0) = 1, so it keeps its own digits
    when that element dominates (the sum then rounds near 1)."""
    shifted = x - row_max(x)
    top = shifted == 0
    e = np.exp(shifted)
    if np.count_nonzero(top) * shifted.shape[-1] == shifted.size:     # one largest element a row
        np.putmask(e, top, 0)                                        # its exp(0) = 1 taken out
        return shifted, np.log1p(row_sums(e))
    rest = np.add.reduce(np.where(top, 0, e), axis=-1, keepdims=True)
    ties = np.add.reduce(top, axis=-1, keepdims=True, dtype=shifted.dtype) - 1
    return shifted, np.log1p(rest + ties)


def log_softmax_fwd(info, x):
    shifted, log_total = shifted_logsumexp(x)
    shifted -= log_total                    # shifted is new (x less its maxima): written in place
    return shifted


def onnx_reduce(op_type: str):
    """sum or mean over all per-sample axes."""
    return lambda e, x: e.reduce(op_type, x, e.per_sample_axes())


def py_reduce(method: str):
    def form(info, x):
        shape = info.arg_shapes[0]
        if not shape:
            return x
        return f"{paren(*x, ATOM)}.{method}(axis={py_axes(per_sample_axes(shape))})", ATOM
    return form


def torch_reduce(method: str):
    def mapping(t, x):
        axes = per_sample_axes(t.arg_shapes[0])
        return getattr(x, method)(dim=axes) if axes else x
    return mapping


# along the last axis
defop("softmax", arity=1, shape=at_least_vector, forward=softmax_fwd,
      onnx=onnx_same("Softmax", axis=-1),
      doc="normalised exponentials along the last axis: one probability distribution per row",
      signature="softmax(z)", formula="e^(z_i) / Σ_j e^(z_j) along the last axis, computed from z − max z",
      derivative="s ⊙ (g − Σ g ⊙ s) for the incoming gradient g, with s = softmax(z) and Σ along the last axis",
      vjp=(lambda d, g, out, x: d.mul(out, d.sub(g, d.sum_last(d.mul(g, out)))),),
      printed=Printed(call("softmax"), latex_call("softmax"), Form("np.exp({0} - np.logaddexp.reduce({0}, axis=-1, keepdims=True))")),
      torch=lambda t, x: t.torch.softmax(x, dim=-1))


def log_softmax_grad(d, g, out, x):
    """g − softmax(x) Σ g. Where g is nll's gradient alone, −c at class k (the cross entropy of
    `nll(log_softmax(z), k)`), that is c (softmax(z) − onehot(k)): one op, reading the log_softmax
    the forward pass computed instead of computing the softmax again."""
    if d.attr(g, "op") == "nll_grad":
        c, lp, k = d.args(g)
        if lp == out:
            return d.mul(c, d.nll_log_softmax_grad(out, k))
    return d.sub(g, d.mul(d.exp(out), d.sum_last(g)))


defop("log_softmax", arity=1, shape=at_least_vector, forward=log_softmax_fwd,
      onnx=onnx_same("LogSoftmax", axis=-1),
      doc="log of the softmax along the last axis; log(softmax(z)) is rewritten to it",
      signature="log_softmax(z)",
      formula="z_i − log Σ_j e^(z_j) along the last axis (log-sum-exp, shifted by max z)",
      derivative="g − softmax(z) Σ g for the incoming gradient g, with Σ along the last axis",
      vjp=(log_softmax_grad,),
      printed=Printed(call("log_softmax"), Form("\\log \\mathrm{{softmax}}({0})", 2, (0,)), Form("{0} - np.logaddexp.reduce({0}, axis=-1, keepdims=True)", 1, (ATOM,))),
      torch=lambda t, x: t.torch.log_softmax(x, dim=-1))


def last_axis_sum(x: Shape) -> Shape:
    return at_least_vector(x)[:-1] + (1,)


defop("sum_last", arity=1, shape=last_axis_sum,
      onnx=lambda e, x: e.reduce("ReduceSum", x, [-1], keepdims=True),
      forward=lambda info, x: x.sum(axis=-1, keepdims=True),
      doc="sum along the last axis, which is kept with size 1",
      signature="sum_last(a)",
      formula="Σ_j z_j along the last axis, keeping it",
      derivative="1 for every element: the incoming gradient broadcast back along the last axis",
      vjp=(lambda d, g, out, x: d.broadcast_like(g, x),),
      printed=Printed(call("sum_last"), Form("\\sum_{{j}} {0}_{{j}}", 2, (ATOM,)), Form("{0}.sum(axis=-1, keepdims=True)", ATOM, (ATOM,))),
      torch=lambda t, x: x.sum(dim=-1, keepdim=True))


# reductions and layout
defop("sum", arity=1, shape=scalar, forward=lambda info, x: x.sum(axis=per_sample_axes(info.arg_shapes[0])),
      onnx=onnx_reduce("ReduceSum"),
      doc="sum over all per-sample axes: one scalar per sample",
      signature="sum(a)", formula="Σ of the elements of one sample (never over the batch)",
      derivative="1 for every element",
      vjp=(lambda d, g, out, x: d.broadcast_like(g, x),),
      printed=Printed(call("sum"), Form("\\sum_{{i}} {0}", 2, (3,)), py_reduce("sum")),
      torch=torch_reduce("sum"))


def n_elements(d, x):
    return prod(d.shape(x)) or 1


defop("mean", arity=1, shape=scalar, forward=lambda info, x: x.mean(axis=per_sample_axes(info.arg_shapes[0])),
      onnx=onnx_reduce("ReduceMean"),
      doc="mean over all per-sample axes: one scalar per sample",
      signature="mean(a)", formula="Σ of the n elements of one sample, divided by n",
      derivative="1 / n for every element",
      vjp=(lambda d, g, out, x: d.mul(d.broadcast_like(g, x), 1.0 / n_elements(d, x)),),
      printed=Printed(call("mean"), latex_call("mean"), py_reduce("mean")),
      torch=torch_reduce("mean"))


def argmax_fwd(info, x):
    return np.argmax(x, axis=-1).astype(info.dtype)


def onnx_argmax(e, x):
    return e.cast(e("ArgMax", x, axis=-1, keepdims=0))


defop("argmax", arity=1, shape=lambda x: at_least_vector(x)[:-1], forward=argmax_fwd, onnx=onnx_argmax,
      differentiable=False,
      doc="the index of the largest element along the last axis, as a number",
      signature="argmax(a)", formula="the i with the largest a_i along the last axis (the first one at ties)",
      derivative="none: it is piecewise constant, so no gradient flows through it",
      printed=Printed(call("argmax"), Form("\\arg\\max({0})"), Form("np.argmax({0}, axis=-1) * 1.0")),
      torch=lambda t, x: x.argmax(dim=-1).to(x.dtype))
