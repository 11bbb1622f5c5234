"""Losses: a per-sample scalar, the mean over one sample's elements (`per_sample_mean`,
`class_mean` for the cross entropies, which sum over the class axis). A fused loss
(`bce_logits`, `cross_entropy_logits`, `sparse_cross_entropy_logits`) is what the rewrite pass
makes of a loss of a sigmoid or a softmax (the `stable` slot); it is printed as what it fuses,
which compiles back to it. `correct` says what a right answer is, for training accuracy. The gradient
of the sparse cross entropy from logits is one op of its own, softmax(z) − onehot(k) in one pass
(`sparse_cross_entropy_logits_grad`).
"""
from __future__ import annotations

from math import prod

import numpy as np

from .core import aligned, arange, at_least_vector, ATOM, broadcast, call, defop, fmt_shape, Form, KernelInfo, latex_call, number, paren, per_sample_axes, Printed, py_aligned, py_axes, Shape, ShapeError
from .elementwise import onnx_step
from .reductions import log_softmax_fwd
from .plumbing import indices, onnx_class_mask


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


def clamped_log(x):
    """log with PyTorch's BCELoss clamp at -100, so a saturated probability stays finite."""
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(x), -100.0)


def per_sample_mean(per_element, typed: bool = False):
    """Kernel factory of a loss: `per_element` of the aligned operands (`typed`: the function
    `per_element(dtype)` returns), then the mean over one sample's elements (axes and count fixed
    once, when the kernel is built)."""
    def factory(info: KernelInfo):
        fn = aligned(per_element(info.dtype) if typed else per_element, info)
        shape = broadcast(*info.arg_shapes)
        if not shape:
            return fn
        if prod(shape) == 1:                     # one element per sample: its value, a view
            key = (Ellipsis,) + (0,) * len(shape)
            return lambda *xs: fn(*xs)[key]
        axes, scale = per_sample_axes(shape), number(1 / prod(shape), info.dtype)
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
        axes, scale = tuple(a - 1 for a in per_sample_axes(shape)), number(1 / prod(shape), info.dtype)
        return lambda *xs: np.add.reduce(fn(*xs), axis=axes + (-1,)) * scale
    return factory


def pick(x, idx):
    """x[..., k] for per-sample class indices k (either side may lack the batch axis)."""
    if x.ndim == 2 and idx.shape == x.shape[:1]:            # a batch of rows: the common case
        return x[arange(len(x)), idx]
    if x.shape[:-1] != idx.shape:
        x = np.broadcast_to(x, np.broadcast_shapes(x.shape[:-1], idx.shape) + x.shape[-1:])
        idx = np.broadcast_to(idx, x.shape[:-1])
    rows = x.reshape(-1, x.shape[-1])
    return rows[arange(len(rows)), idx.reshape(-1)].reshape(idx.shape)


def pairwise_size(d, y, t):
    return prod(broadcast(d.shape(y), d.shape(t))) or 1


def class_rows(d, p, t):
    s = broadcast(d.shape(p), d.shape(t))
    return prod(s[:-1]) or 1


def margin(d, y, t):
    return d.sub(1.0, d.mul(t, y))


def inclusive_step(d, z):
    """1 where z >= 0: the hinge losses pass gradient at the kink, as sklearn and torch.clamp do."""
    return d.sub(1.0, d.step(d.neg(z)))


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


def onnx_margin(e, y, t):
    return e("Sub", e.const(1.0), e("Mul", t, y))


def onnx_square(e, x):
    return e("Mul", x, x)


# What a correct answer is (the `correct` slot): given the dtype of the values, a function of the
# prediction and the target, True per correct answer. Its constants are 0-d arrays of the dtype
# (`number`): a comparison with a Python float costs twice as much; and argmax is the array's
# method, without np.argmax's wrapper (0.8 against 1.5 µs on 128 rows).
def same_class(dtype):
    return lambda p, t: p.argmax(axis=-1) == t.argmax(axis=-1)


def same_side(threshold):
    def rule(dtype):
        at, half = number(threshold, dtype), number(0.5, dtype)
        return lambda y, t: np.greater(y, at) == np.greater(t, half)
    return rule


def same_sign(dtype):
    zero = number(0, dtype)
    return lambda y, t: np.greater(np.multiply(y, t), zero)


def same_index(dtype):
    return lambda p, k: p.argmax(axis=-1) == k


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


def torch_log(x):
    """log clamped at -100, as torch.nn.BCELoss and nndsl's clamped_log."""
    return x.log().clamp_min(-100.0)


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


def torch_pick(t, x, k):
    """x[..., k]: the entry of the class axis at each sample's class index."""
    idx = k.long()
    xb, kb = t.arg_batched
    if xb and kb:
        return x.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
    return x[:, idx] if xb else x[idx]


# losses: per-sample scalars, the mean over one sample's elements
defop("mse", arity=2, shape=pairwise_loss,
      onnx=onnx_pairwise_loss(lambda e, y, t: onnx_square(e, e("Sub", y, t))),
      forward=None, kernel_factory=per_sample_mean(lambda y, t: np.square(y - t)),
      doc="mean squared error, for any targets",
      signature="mse(y, t)", formula="(y − t)² per element, mean over the elements of one sample",
      derivative="∂/∂y = 2 (y − t) / n and ∂/∂t = 2 (t − y) / n, n the elements of one sample",
      vjp=(lambda d, g, out, y, t: d.mul(g, d.mul(d.sub(y, t), 2.0 / pairwise_size(d, y, t))),
           lambda d, g, out, y, t: d.mul(g, d.mul(d.sub(t, y), 2.0 / pairwise_size(d, y, t)))),
      printed=Printed(call("mse"), latex_call("mse"), py_per_sample_mean("({0} - {1}) ** 2")),
      torch=torch_per_sample_mean(lambda t, y, target: (y - target).square()))


defop("mae", arity=2, shape=pairwise_loss,
      onnx=onnx_pairwise_loss(lambda e, y, t: e("Abs", e("Sub", y, t))),
      forward=None, kernel_factory=per_sample_mean(lambda y, t: np.abs(y - t)),
      doc="mean absolute error, for any targets",
      signature="mae(y, t)", formula="|y − t| per element, mean over the elements of one sample",
      derivative="∂/∂y = sign(y − t) / n and ∂/∂t = sign(t − y) / n, n the elements of one sample; at y = t it is "
                 "0 (as torch's L1 loss)",
      vjp=(lambda d, g, out, y, t: d.mul(g, d.mul(d.sign(d.sub(y, t)), 1.0 / pairwise_size(d, y, t))),
           lambda d, g, out, y, t: d.mul(g, d.mul(d.sign(d.sub(t, y)), 1.0 / pairwise_size(d, y, t)))),
      printed=Printed(call("mae"), latex_call("mae"), py_per_sample_mean("np.abs({0} - {1})")),
      torch=torch_per_sample_mean(lambda t, y, target: (y - target).abs()))


def onnx_bce(e, p, t):
    one_minus = e("Sub", e.const(1.0), t)
    both = e("Add", e("Mul", t, onnx_clamped_log(e, p)),
             e("Mul", one_minus, onnx_clamped_log(e, e("Sub", e.const(1.0), p))))
    return e("Neg", both)


def bce_elements(p, t):
    return -(t * clamped_log(p) + (1 - t) * clamped_log(1 - p))


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
           lambda d, g, out, p, t: d.mul(g, d.mul(d.sub(d.log(d.sub(1.0, p)), d.log(p)), 1.0 / pairwise_size(d, p, t)))),
      printed=Printed(call("bce"), latex_call("bce"), py_per_sample_mean("-({1} * clamped_log({0}) + (1 - {1}) * clamped_log(1 - {0}))"), helpers=("clamped_log",)),
      torch=torch_per_sample_mean(lambda t, p, target: -(target * torch_log(p) + (1 - target) * torch_log(1 - p))))


def onnx_bce_logits(e, z, t):
    """max(z, 0) - z t + log1p(exp(-|z|)) as the kernel computes it: z (step(z) - t) + Softplus(-|z|)."""
    return e("Add", e("Mul", z, e("Sub", onnx_step(e, z), t)), e("Softplus", e("Neg", e("Abs", z))))


def bce_logits_elements(dtype):
    """max(z, 0) - z t + log(1 + exp(-|z|)), the first two terms as the one product z (1 - t) or
    -z t: for z large and t near 1, z - z t would cancel the digits of z t. The step is
    heaviside(z, 0), already in the dtype (a boolean z > 0 would be converted element by element);
    where z is NaN it is NaN, as the result is anyway."""
    zero = number(0, dtype)
    return lambda z, t: z * (np.heaviside(z, zero) - t) + np.log1p(np.exp(-np.abs(z)))


def torch_bce_logits(t, z, target):
    z, target = t.torch.broadcast_tensors(z, target)
    return t.F.binary_cross_entropy_with_logits(z, target, reduction="none")


defop("bce_logits", arity=2, correct=same_side(0.0), shape=pairwise_loss, forward=None, kernel_factory=per_sample_mean(bce_logits_elements, typed=True),
      callable=False,
      onnx=onnx_pairwise_loss(onnx_bce_logits),
      doc="bce(sigmoid(z), t) computed from the logits z",
      signature="bce(sigmoid(z), t), rewritten to it",
      formula="max(z, 0) − z t + log(1 + e^(−|z|)) per element, mean over the elements of one sample",
      derivative="∂/∂z = (σ(z) − t) / n and ∂/∂t = −z / n, n the elements of one sample",
      vjp=(lambda d, g, out, z, t: d.mul(g, d.mul(d.sub(d.sigmoid(z), t), 1.0 / pairwise_size(d, z, t))),
           lambda d, g, out, z, t: d.mul(g, d.mul(z, -1.0 / pairwise_size(d, z, t)))),
      printed=Printed(Form("bce(σ({0}), {1})"), Form("\\mathrm{{bce}}(\\sigma({0}), {1})"), py_per_sample_mean("{0} * (({0} > 0) - {1}) + np.logaddexp(0.0, -np.abs({0}))")),
      torch=torch_per_sample_mean(torch_bce_logits))


defop("cross_entropy", arity=2, correct=same_class, shape=class_loss, stable={"softmax": "cross_entropy_logits"},
      onnx=onnx_class_loss(onnx_clamped_log),
      forward=None, kernel_factory=class_mean(lambda p, t: -(t * clamped_log(p))),
      doc="cross entropy of class probabilities p against one-hot or soft targets t, classes on the last axis",
      signature="cross_entropy(p, t)",
      formula="−Σ_c t_c log p_c over the class axis, log clamped at −100; mean over any other per-sample axes",
      derivative="∂/∂p = −t / (r p) and ∂/∂t = −log p / r, r the rows of one sample (1 for a vector)",
      vjp=(lambda d, g, out, p, t: d.mul(g, d.mul(d.div(t, p), -1.0 / class_rows(d, p, t))),
           lambda d, g, out, p, t: d.mul(g, d.mul(d.log(p), -1.0 / class_rows(d, p, t)))),
      printed=Printed(call("cross_entropy"), latex_call("CE"), py_class_mean("-({1} * clamped_log({0}))"), helpers=("clamped_log",)),
      torch=torch_class_mean(lambda t, p, target: -(target * torch_log(p))))


def ce_logits_grad_z(d, g, out, z, t):
    """softmax(z) Σ_c t - t, with t broadcast against z. Where z has a single class (its softmax
    is 1, the loss does not depend on it), t is first summed over the classes it spreads over,
    so the softmax's own class axis is the one the rule runs along."""
    t = d.broadcast_like(t, z)
    if d.shape(z)[-1] == 1 and d.shape(t)[-1] != 1:
        t = d.sum_last(t)
    return d.mul(g, d.mul(d.sub(d.mul(d.softmax(z), d.sum_last(t)), t), 1.0 / class_rows(d, z, t)))


defop("cross_entropy_logits", arity=2, correct=same_class, shape=class_loss, callable=False,
      onnx=onnx_class_loss(lambda e, z: e("LogSoftmax", z, axis=-1)),
      forward=None, kernel_factory=class_mean(lambda z, t: -(t * log_softmax_fwd(None, z))),
      doc="cross_entropy(softmax(z), t) computed from the logits z",
      signature="cross_entropy(softmax(z), t), rewritten to it",
      formula="−Σ_c t_c log_softmax(z)_c over the class axis; mean over any other per-sample axes",
      derivative="∂/∂z = (softmax(z) Σ_c t_c − t) / r, which is softmax(z) − t for targets summing to 1; ∂/∂t = "
                 "−log_softmax(z) / r, r the rows of one sample",
      vjp=(ce_logits_grad_z,
           lambda d, g, out, z, t: d.mul(g, d.mul(d.log_softmax(z), -1.0 / class_rows(d, z, t)))),
      printed=Printed(Form("cross_entropy(softmax({0}), {1})"), Form("\\mathrm{{CE}}(\\mathrm{{softmax}}({0}), {1})"), py_class_mean("-({1} * ({0} - np.logaddexp.reduce({0}, axis=-1, keepdims=True)))")),
      torch=torch_class_mean(lambda t, z, target: -(target * t.torch.log_softmax(z, dim=-1))))


def sparse_ce_fwd(info, p, k):
    n = info.arg_shapes[0][-1]
    return -clamped_log(pick(p, indices(info, k, n)))


defop("sparse_cross_entropy", arity=2, class_index=(1, 0), correct=same_index, shape=sparse_class_loss, forward=sparse_ce_fwd,
      onnx=lambda e, p, k: e("Neg", onnx_clamped_log(e, onnx_pick(e, p, k))),
      stable={"softmax": ("log_softmax", "nll")},
      doc="cross entropy of class probabilities p of shape [n] against a class index k",
      signature="sparse_cross_entropy(p, k)", formula="−log p[k], log clamped at −100; k an integer in [0, n)",
      derivative="∂/∂p = −1 / p[k] at class k, 0 elsewhere; none to k",
      vjp=(lambda d, g, out, p, k: d.neg(d.mul(g, d.div(d.one_hot(k, p), p))), None),
      printed=Printed(call("sparse_cross_entropy"), latex_call("CE"), Form("-clamped_log(pick({0}, {1}))", 3), helpers=("clamped_log", "pick")),
      torch=lambda t, p, k: -torch_log(torch_pick(t, p, k)))


def nll_fwd(info, lp, k):
    n = info.arg_shapes[0][-1]
    return np.negative(pick(lp, indices(info, k, n)))


def class_positions(n: int):
    """idx -> where each row's class idx lies in the rows of n classes laid flat, idx + n · row,
    written into idx (a new array of integers, one per row); the rows' starts are kept for a few
    row counts (the batch sizes of a run). Reading or writing one element a row there costs less
    than indexing rows and columns."""
    starts = {}

    def positions(idx):
        rows = len(idx)
        at = starts.get(rows)
        if at is None:
            if len(starts) >= 16:
                starts.clear()
            at = starts[rows] = np.arange(0, rows * n, n)
        idx += at
        return idx
    return positions


def nll_kernel(info: KernelInfo):
    """`nll_fwd`; for a batch of rows, each row's element read at its flat position."""
    n, positions = info.arg_shapes[0][-1], class_positions(info.arg_shapes[0][-1])

    def fn(lp, k):
        if type(lp) is not np.ndarray or lp.ndim != 2 or type(k) is not np.ndarray or k.shape != lp.shape[:1]:
            return nll_fwd(info, lp, k)
        return np.negative(lp.reshape(-1)[positions(indices(info, k, n))])
    return fn


defop("nll", arity=2, class_index=(1, 0), correct=same_index, shape=sparse_class_loss, forward=nll_fwd, kernel_factory=nll_kernel,
      onnx=lambda e, lp, k: e("Neg", onnx_pick(e, lp, k)),
      doc="negative log-likelihood of log-probabilities lp of shape [n] at a class index k (PyTorch's nll_loss)",
      signature="nll(lp, k)", formula="−lp[k]; k an integer in [0, n)",
      derivative="∂/∂lp = −1 at class k, 0 elsewhere; none to k. After log_softmax, the two give softmax(z) − onehot(k) "
                 "in one op (nll_log_softmax_grad)",
      vjp=(lambda d, g, out, lp, k: d.nll_grad(g, lp, k), None),
      printed=Printed(call("nll"), latex_call("NLL"), Form("-pick({0}, {1})", 3), helpers=("pick",)),
      torch=lambda t, lp, k: -torch_pick(t, lp, k))


def one_hot_rows(info, k, position: int):
    """One-hot rows for the class indices k, as booleans, as wide as argument `position`'s last axis."""
    n = info.arg_shapes[position][-1]
    return indices(info, k, n)[..., None] == arange(n)


def nll_grad_fwd(info, g, lp, k):
    """−g at each row's class, 0 elsewhere: nll's gradient, in lp's shape."""
    g = np.asarray(g)
    return np.negative(one_hot_rows(info, k, 1) * (g[..., None] if g.ndim else g))


defop("nll_grad", arity=3, class_index=(2, 1), shape=lambda g, lp, k: broadcast(lp, k + lp[-1:]),
      forward=nll_grad_fwd, callable=False,
      onnx=lambda e, g, lp, k: e("Neg", e("Mul", e.unsqueeze(g, [-1]), onnx_class_mask(e, k, e.arg_shapes[1][-1]))),
      doc="the gradient of nll with respect to its log-probabilities",
      signature="internal: made by the differentiator (the gradient of nll)",
      formula="−g onehot(k)",
      derivative="∂/∂g = −onehot(k), so the gradient to g is nll of the incoming gradient; none to lp (its shape only) and k",
      vjp=(lambda d, h, out, g, lp, k: d.nll(h, k), None, None),
      printed=Printed(Form("-{0} * one_hot({2}, {1})", 2, (3, 0, 0)), Form("-{0}\\,\\mathrm{{onehot}}({2})", 2, (3, 0, 0)),
                      Form("-np.asarray({0})[..., None] * one_hot({2}, {1})", 2, (0,)), helpers=("one_hot",)),
      torch=lambda t, g, lp, k: -(g.unsqueeze(-1) * t.F.one_hot(k.long(), t.arg_shapes[1][-1]).to(lp.dtype)))


def nll_log_softmax_grad_fwd(info, lp, k):
    """exp(lp) − onehot(k): softmax(z) − onehot(k) from the log_softmax lp the forward pass computed."""
    p = np.exp(lp)
    rows = one_hot_rows(info, k, 0)
    if rows.shape == p.shape:
        p -= rows
        return p
    return p - rows                                 # either side broadcast against the other


def nll_log_softmax_grad_kernel(info: KernelInfo):
    """`nll_log_softmax_grad_fwd`; with a class per row, 1 is subtracted at each row's class in
    the flat array (`class_positions`): half the cost of subtracting a one-hot array."""
    n, one = info.arg_shapes[0][-1], number(1, info.dtype)
    positions = class_positions(n)

    def fn(lp, k):
        p = np.exp(lp)
        if type(p) is not np.ndarray or type(k) is not np.ndarray or p.shape[:-1] != k.shape or not p.flags.c_contiguous:
            return nll_log_softmax_grad_fwd(info, lp, k)
        flat = p.reshape(-1)                        # a view: p is contiguous
        flat[positions(indices(info, k, n).reshape(-1))] -= one
        return p
    return fn


defop("nll_log_softmax_grad", arity=2, class_index=(1, 0), shape=lambda lp, k: broadcast(lp, k + lp[-1:]),
      forward=nll_log_softmax_grad_fwd, kernel_factory=nll_log_softmax_grad_kernel, callable=False,
      onnx=lambda e, lp, k: e("Sub", e("Exp", lp), onnx_class_mask(e, k, e.arg_shapes[0][-1])),
      doc="the gradient of nll(log_softmax(z), k) with respect to z, from lp = log_softmax(z)",
      signature="internal: made by the differentiator (the gradient of the sparse cross entropy from logits)",
      formula="exp(lp) − onehot(k), which is softmax(z) − onehot(k)",
      derivative="∂/∂lp = exp(lp); none to k",
      vjp=(lambda d, g, out, lp, k: d.mul(g, d.exp(lp)), None),
      printed=Printed(Form("exp({0}) - one_hot({1}, {0})", 1, (0,)), Form("\\exp({0}) - \\mathrm{{onehot}}({1})", 1, (0,)),
                      Form("np.exp({0}) - one_hot({1}, {0})", 1, (0,)), helpers=("one_hot",)),
      torch=lambda t, lp, k: lp.exp() - t.F.one_hot(k.long(), t.arg_shapes[0][-1]).to(lp.dtype))


defop("hinge", arity=2, correct=same_sign, kink=lambda y, t: 1 - t * y, shape=pairwise_loss,
      onnx=onnx_pairwise_loss(lambda e, y, t: e("Max", e.const(0.0), onnx_margin(e, y, t))),
      forward=None, kernel_factory=per_sample_mean(lambda y, t: np.maximum(0, 1 - t * y)),
      doc="hinge loss (SVM) of a score y against a label t in {−1, 1}",
      signature="hinge(y, t)", formula="max(0, 1 − t y) per element, mean over the elements of one sample",
      derivative="∂/∂y = −t / n where t y ≤ 1, else 0: at the kink t y = 1 it is −t / n (as scikit-learn and "
                 "torch.clamp(min=0)). ∂/∂t = −y / n where t y ≤ 1, else 0",
      vjp=(lambda d, g, out, y, t: d.mul(g, d.mul(d.mul(t, inclusive_step(d, margin(d, y, t))), -1.0 / pairwise_size(d, y, t))),
           lambda d, g, out, y, t: d.mul(g, d.mul(d.mul(y, inclusive_step(d, margin(d, y, t))), -1.0 / pairwise_size(d, y, t)))),
      printed=Printed(call("hinge"), latex_call("hinge"), py_per_sample_mean("np.maximum(0.0, 1 - {1} * {0})")),
      torch=torch_per_sample_mean(lambda t, y, target: (1 - target * y).clamp_min(0.0)))


defop("squared_hinge", arity=2, correct=same_sign, shape=pairwise_loss,
      onnx=onnx_pairwise_loss(lambda e, y, t: onnx_square(e, e("Max", e.const(0.0), onnx_margin(e, y, t)))),
      forward=None, kernel_factory=per_sample_mean(lambda y, t: np.square(np.maximum(0, 1 - t * y))),
      doc="squared hinge loss of a score y against a label t in {−1, 1}",
      signature="squared_hinge(y, t)", formula="max(0, 1 − t y)² per element, mean over the elements of one sample",
      derivative="∂/∂y = −2 t max(0, 1 − t y) / n and ∂/∂t = −2 y max(0, 1 − t y) / n; no kink",
      vjp=(lambda d, g, out, y, t: d.mul(g, d.mul(d.mul(t, d.relu(margin(d, y, t))), -2.0 / pairwise_size(d, y, t))),
           lambda d, g, out, y, t: d.mul(g, d.mul(d.mul(y, d.relu(margin(d, y, t))), -2.0 / pairwise_size(d, y, t)))),
      printed=Printed(call("squared_hinge"), latex_call("hinge^2"), py_per_sample_mean("np.maximum(0.0, 1 - {1} * {0}) ** 2")),
      torch=torch_per_sample_mean(lambda t, y, target: (1 - target * y).clamp_min(0.0).square()))


defop("perceptron", arity=2, correct=same_sign, kink=lambda y, t: t * y, shape=pairwise_loss,
      onnx=onnx_pairwise_loss(lambda e, y, t: e("Max", e.const(0.0), e("Neg", e("Mul", t, y)))),
      forward=None, kernel_factory=per_sample_mean(lambda y, t: np.maximum(0, -t * y)),
      doc="perceptron loss of a score y against a label t in {−1, 1}: SGD on it with batch 1 is Rosenblatt's rule",
      signature="perceptron(y, t)", formula="max(0, −t y) per element, mean over the elements of one sample",
      derivative="∂/∂y = −t / n where t y ≤ 0, else 0: at the kink t y = 0 it is −t / n, so a tie counts as a "
                 "mistake. ∂/∂t = −y / n where t y ≤ 0, else 0",
      vjp=(lambda d, g, out, y, t: d.mul(g, d.mul(d.mul(t, inclusive_step(d, d.neg(d.mul(t, y)))), -1.0 / pairwise_size(d, y, t))),
           lambda d, g, out, y, t: d.mul(g, d.mul(d.mul(y, inclusive_step(d, d.neg(d.mul(t, y)))), -1.0 / pairwise_size(d, y, t)))),
      printed=Printed(call("perceptron"), latex_call("perceptron"), py_per_sample_mean("np.maximum(0.0, -{1} * {0})")),
      torch=torch_per_sample_mean(lambda t, y, target: (-(target * y)).clamp_min(0.0)))
