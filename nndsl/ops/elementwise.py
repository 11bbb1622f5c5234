"""Elementwise ops: arithmetic (+, −, *, /, ^, max, min) and functions (relu, σ, tanh, exp, ...),
each broadcasting its operands per sample (NumPy's rules; a batched operand of lower per-sample
rank is aligned first, `core.aligned`). Where a function has a kink (relu, abs, max), its `kink`
slot says how far each element is from it, for gradient checks.
"""
from __future__ import annotations

import numpy as np

from .core import aligned, ATOM, broadcast, call, defop, Form, infix, kept, latex_call, number, onnx_same, paren, Printed, same


def stable_softplus(x):
    return np.logaddexp(0, x).astype(x.dtype, copy=False) if isinstance(x, np.ndarray) else np.logaddexp(0, x)


def at_zero(x):
    """The kink of relu, abs, step and sign: the argument itself is the distance from it."""
    return x


def onnx_step(e, x):
    return e.cast(e("Greater", x, e.const(0.0)))


def printed_function(nn: str, latex, python, **fields) -> Printed:
    """An elementwise function: called by name in .nn, `latex` a command or a Form, NumPy `python`."""
    return Printed(nn=call(nn), latex=latex if isinstance(latex, Form) else Form(latex + "({*})"),
                python=python if isinstance(python, Form) else Form(python, ATOM, (0,)), **fields)


# elementwise arithmetic
defop("add", arity=2, shape=broadcast, callable=False, forward=np.add, elementwise=True, symbol="+", units={0: 0.0, 1: 0.0},
      onnx=onnx_same("Add"),
      doc="elementwise sum",
      signature="a + b", formula="a + b per element, broadcasting (NumPy rules, per sample)",
      derivative="∂/∂a = ∂/∂b = 1; a side that was broadcast gets its gradient summed over the broadcast axes",
      vjp=(lambda d, g, out, a, b: g,
           lambda d, g, out, a, b: g),
      printed=Printed(infix(" + ", 1), infix(" + ", 1), infix(" + ", 1)),
      torch=lambda t, a, b: a + b)


defop("sub", arity=2, shape=broadcast, callable=False, forward=np.subtract, elementwise=True, symbol="-", units={1: 0.0},
      onnx=onnx_same("Sub"),
      doc="elementwise difference",
      signature="a - b or a − b", formula="a − b per element, broadcasting",
      derivative="∂/∂a = 1, ∂/∂b = −1",
      vjp=(lambda d, g, out, a, b: g,
           lambda d, g, out, a, b: d.neg(g)),
      printed=Printed(infix(" - ", 1), infix(" - ", 1), infix(" - ", 1)),
      torch=lambda t, a, b: a - b)


def latex_mul(info, a, b):
    if () in info.arg_shapes:            # scaling, as a slide writes it: 0.5 (ŷ − y)
        left, right = paren(*a, 3), paren(*b, 4)
        return (f"{left} \\cdot {right}" if right[:1].isdigit() else f"{left}\\,{right}"), 2
    return f"{paren(*a, 2)} \\odot {paren(*b, 3)}", 2


def mul_over_batch(info):
    """Σ over the batch of a b, where one operand is one number per sample: a product of that
    vector with the other operand's samples as rows, one matrix-vector product instead of a
    product per element and a reduction (the gradient of w in w · h)."""
    (sa, sb), shape = info.arg_shapes, info.shape
    if not all(info.arg_batched) or info.dtype.kind != "f" or () not in (sa, sb):
        return None
    dot = np.dot
    swap = sa != ()                             # the vector of numbers goes first
    if len(sa + sb) <= 1:
        return (lambda a, b: dot(b, a)) if swap else dot
    if swap:
        return lambda a, b: dot(b, a.reshape(len(a), -1)).reshape(shape)
    return lambda a, b: dot(a, b.reshape(len(b), -1)).reshape(shape)


defop("mul", arity=2, shape=broadcast, callable=False, forward=np.multiply, elementwise=True, symbol="*", units={0: 1.0, 1: 1.0},
      onnx=onnx_same("Mul"),
      batch_reducible=True, batch_kernel=mul_over_batch,
      doc="elementwise product, and scaling by a scalar",
      signature="a * b or a ⊙ b or s x (s a scalar)", formula="a b per element, broadcasting",
      derivative="∂/∂a = b, ∂/∂b = a",
      vjp=(lambda d, g, out, a, b: d.mul(g, b),
           lambda d, g, out, a, b: d.mul(g, a)),
      printed=Printed(infix(" * ", 2), latex_mul, infix(" * ", 2)),
      torch=lambda t, a, b: a * b)


defop("div", arity=2, shape=broadcast, callable=False, forward=np.divide, elementwise=True, symbol="/", units={1: 1.0},
      onnx=onnx_same("Div"),
      doc="elementwise quotient",
      signature="a / b", formula="a / b per element, broadcasting",
      derivative="∂/∂a = 1 / b, ∂/∂b = −a / b²",
      vjp=(lambda d, g, out, a, b: d.div(g, b),
           lambda d, g, out, a, b: d.neg(d.mul(g, d.div(out, b)))),
      printed=Printed(infix(" / ", 2), Form("\\frac{{{0}}}{{{1}}}", ATOM, (0,)), infix(" / ", 2)),
      torch=lambda t, a, b: a / b)


defop("neg", arity=1, shape=same, forward=np.negative, elementwise=True, symbol="-", callable=False,
      onnx=onnx_same("Neg"),
      doc="negation",
      signature="-a or −a", formula="−a",
      derivative="∂/∂a = −1",
      vjp=(lambda d, g, out, a: d.neg(g),),
      printed=Printed(Form("-{0}", 3, (3,)), Form("-{0}", 3, (3,)), Form("-{0}", 3, (4,))),
      torch=lambda t, x: -x)


defop("pow", arity=2, shape=broadcast, callable=False, forward=np.power, elementwise=True, symbol="^",
      onnx=onnx_same("Pow"),
      doc="elementwise power; the exponent may be a tensor",
      signature="a ^ b or a ** b or a² or x⁻¹", formula="a^b per element, broadcasting",
      derivative="∂/∂a = b a^(b − 1), ∂/∂b = a^b log a",
      vjp=(lambda d, g, out, a, b: d.mul(g, d.mul(b, d.pow(a, d.sub(b, 1.0)))),
           lambda d, g, out, a, b: d.mul(g, d.mul(out, d.log(a)))),
      printed=Printed(Form("{0}^{1}", 5, (6, 5)), Form("{{{0}}}^{{{1}}}", 5, (6, 0)), Form("{0} ** {1}", 5, (6, 3))),
      torch=lambda t, a, b: a ** b)


ROW = 1 << 14                   # elements in a row of one repeated scalar (64 KiB in float32)


def scalar_row(c):
    """A read-only row of ROW copies of the 0-d array c, kept per dtype and value (NaN included)."""
    return kept(("row", c.dtype.str, c.tobytes()), np.full, ROW, c, c.dtype)


def against_scalar(ufunc):
    """ufunc(x, c) for an array x and a scalar c, as fast as ufunc over two arrays: NumPy's
    maximum and minimum take about 5x longer when one operand is a scalar (a stride-0 operand)
    than when both are arrays, so c is read from a row of its copies. Same values, same dtype.
    Below 4096 elements the row's bookkeeping costs more than it saves (measured)."""
    def fn(x, c):
        n = x.size
        if n < 4096 or type(x) is not np.ndarray or type(c) is not np.ndarray or c.dtype != x.dtype \
                or not x.flags.c_contiguous:
            return ufunc(x, c)
        row = scalar_row(c)
        if n <= ROW:
            return ufunc(x, row[:n].reshape(x.shape))
        out = np.empty_like(x)
        flat, into = x.reshape(-1), out.reshape(-1)
        whole = n - n % ROW
        ufunc(flat[:whole].reshape(-1, ROW), row, out=into[:whole].reshape(-1, ROW))
        if whole < n:
            ufunc(flat[whole:], row[:n - whole], out=into[whole:])
        return out
    return fn


def with_scalar(ufunc):
    """The kernel of max or min: `against_scalar` when one side is one number for every sample
    (max(0, z)), NumPy's ufunc otherwise."""
    fast = against_scalar(ufunc)

    def factory(info):
        (sa, sb), (ba, bb) = info.arg_shapes, info.arg_batched
        if sa == () and not ba and (sb or bb):
            return lambda a, b: fast(b, a)
        if sb == () and not bb and (sa or ba):
            return fast
        return aligned(ufunc, info)
    return factory


defop("max", arity=2, shape=broadcast, forward=np.maximum, elementwise=True, kink=np.subtract,
      kernel_factory=with_scalar(np.maximum),
      onnx=onnx_same("Max"),
      doc="elementwise maximum; max(0, z) is ReLU",
      signature="max(a, b)", formula="the larger of a and b, per element, broadcasting",
      derivative="1 to the larger side, 0 to the other; at a tie each side gets 1/2 (as torch.maximum)",
      vjp=(lambda d, g, out, a, b: d.mul(g, d.tie_mask(a, b)),
           lambda d, g, out, a, b: d.mul(g, d.tie_mask(b, a))),
      printed=Printed(call("max"), Form("\\max({*})"), Form("np.maximum({0}, {1})")),
      torch=lambda t, a, b: t.torch.maximum(a, b))


defop("min", arity=2, shape=broadcast, forward=np.minimum, elementwise=True, kink=np.subtract,
      kernel_factory=with_scalar(np.minimum),
      onnx=onnx_same("Min"),
      doc="elementwise minimum",
      signature="min(a, b)", formula="the smaller of a and b, per element, broadcasting",
      derivative="1 to the smaller side, 0 to the other; at a tie each side gets 1/2 (as torch.minimum)",
      vjp=(lambda d, g, out, a, b: d.mul(g, d.tie_mask(b, a)),
           lambda d, g, out, a, b: d.mul(g, d.tie_mask(a, b))),
      printed=Printed(call("min"), Form("\\min({*})"), Form("np.minimum({0}, {1})")),
      torch=lambda t, a, b: t.torch.minimum(a, b))


def tie_mask(a, b):
    """1 where a > b, 1/2 where a == b, 0 elsewhere: how max/min share gradient (as PyTorch)."""
    mask = (a > b).astype(np.result_type(a, b))
    ties = a == b
    if np.count_nonzero(ties):                      # cheaper than ties.any() on small arrays
        mask = np.where(ties, number(0.5, mask.dtype), mask)
    return mask


def onnx_tie_mask(e, a, b):
    return e("Add", e.cast(e("Greater", a, b)), e("Mul", e.const(0.5), e.cast(e("Equal", a, b))))


defop("tie_mask", arity=2, shape=broadcast, forward=tie_mask, elementwise=True,
      onnx=onnx_tie_mask,
      differentiable=False,
      doc="how max and min share the gradient: 1 where a > b, 1/2 at ties, else 0",
      signature="tie_mask(a, b)",
      formula="1 where a > b, 1/2 where a = b, 0 where a < b",
      derivative="none: it is piecewise constant",
      printed=Printed(call("tie_mask"), latex_call("tie"), Form("({0} > {1}) + 0.5 * ({0} == {1})", 1, (ATOM,))),
      torch=lambda t, a, b: (a > b).to(a.dtype) + 0.5 * (a == b).to(a.dtype))


# elementwise functions
def relu_kernel(info):
    fast, zero = against_scalar(np.maximum), np.zeros((), info.dtype)
    return lambda x: fast(x, zero)


defop("relu", arity=1, shape=same, forward=lambda x: np.maximum(x, 0), elementwise=True, kink=at_zero,
      kernel_factory=relu_kernel,
      onnx=onnx_same("Relu"),
      doc="rectified linear unit",
      signature="relu(z)", formula="max(0, z)",
      derivative="1 where z > 0, else 0; at z = 0 it is 0 (as torch.relu)",
      vjp=(lambda d, g, out, x: d.mul(g, d.step(x)),),
      printed=printed_function("relu", "\\mathrm{relu}", "np.maximum({0}, 0.0)"),
      torch=lambda t, x: x.relu())


def make_sigmoid(one):
    """1 / (1 + exp(-x)), good to a few ulps everywhere (exp(-logaddexp(0, -x)) would round the
    exponent first). Below about -88 in float32 (-709 in float64) exp(-x) overflows to inf and the
    result is 0, the correctly rounded value but for subnormals: the op is `overflows`, so plans
    holding it run without overflow warnings. `one` is 1 in the kernel's dtype (a 0-d array of
    the dtype, `number`, and `out` given by position make the calls on small arrays cheaper)."""
    def sigmoid(x):
        e = np.negative(x)
        if type(e) is not np.ndarray:               # a NumPy scalar
            return one / (one + np.exp(e))
        np.exp(e, e)
        e += one
        return np.reciprocal(e, e)
    return sigmoid


sigmoid_fwd = make_sigmoid(1.0)


defop("sigmoid", arity=1, shape=same, forward=sigmoid_fwd, elementwise=True, aliases=("σ",), overflows=True,
      kernel_factory=lambda info: make_sigmoid(number(1, info.dtype)),
      onnx=onnx_same("Sigmoid"),
      doc="logistic sigmoid, from the reals to (0, 1)",
      signature="sigmoid(z)", formula="1 / (1 + e^(−z)); 0 where e^(−z) overflows (z below about −88 in float32), without a warning",
      derivative="σ(z) σ(−z) = 1 / (2 + 2 cosh z), which is σ(z) (1 − σ(z)) but keeps its digits where σ(z) rounds to 1",
      vjp=(lambda d, g, out, x: d.mul(g, d.sigmoid_grad(x)),),
      printed=printed_function("σ", "\\sigma", "np.exp(-np.logaddexp(0.0, -{0}))"),
      torch=lambda t, x: x.sigmoid())


def make_sigmoid_grad(one, half):
    """σ'(z) = σ(z) σ(−z) = 1 / (2 + 2 cosh z): three NumPy calls, good to a couple of ulps, and
    0 without a warning where cosh overflows (|z| above about 89 in float32), as σ'(z) is there
    but for subnormals. `one` and `half` in the kernel's dtype, as for `make_sigmoid`."""
    def sigmoid_grad(x):
        c = np.cosh(x)
        if type(c) is not np.ndarray:               # a NumPy scalar
            return half / (one + c)
        c += one
        return np.divide(half, c, c)
    return sigmoid_grad


sigmoid_grad_fwd = make_sigmoid_grad(1.0, 0.5)


defop("sigmoid_grad", arity=1, shape=same, forward=sigmoid_grad_fwd, elementwise=True, callable=False, overflows=True,
      kernel_factory=lambda info: make_sigmoid_grad(number(1, info.dtype), number(0.5, info.dtype)),
      onnx=lambda e, x: e("Div", e.const(0.5), e("Add", e.const(1.0), e("Cosh", x))),
      doc="the sigmoid's derivative, made by the differentiator",
      signature="internal: made by the differentiator (the gradient of σ)",
      formula="σ(z) σ(−z) = 1 / (2 + 2 cosh z)",
      derivative="σ'(z) (1 − 2σ(z))",
      vjp=(lambda d, g, out, x: d.mul(g, d.mul(out, d.sub(1.0, d.mul(2.0, d.sigmoid(x))))),),
      printed=Printed(Form("σ({0}) * σ(-{0})", 2, (3,)), Form("\\sigma({0})\\,\\sigma(-{0})", 2, (3,)),
                      Form("0.5 / (1 + np.cosh({0}))", 2, (0,))),
      torch=lambda t, x: 0.5 / (1 + x.cosh()))


defop("tanh", arity=1, shape=same, forward=np.tanh, elementwise=True,
      onnx=onnx_same("Tanh"),
      doc="hyperbolic tangent, from the reals to (−1, 1)",
      signature="tanh(z)", formula="(e^z − e^(−z)) / (e^z + e^(−z))",
      derivative="1 − tanh² z",
      vjp=(lambda d, g, out, x: d.mul(g, d.sub(1.0, d.mul(out, out))),),
      printed=printed_function("tanh", "\\tanh", "np.tanh({0})"),
      torch=lambda t, x: x.tanh())


defop("step", arity=1, shape=same, forward=lambda x: (x > 0).astype(x.dtype), elementwise=True, kink=at_zero,
      onnx=onnx_step,
      differentiable=False,
      doc="Heaviside step",
      signature="step(z)", formula="1 where z > 0, else 0 (so step(0) = 0)",
      derivative="0 everywhere: no gradient flows through it",
      printed=printed_function("step", "\\mathrm{step}", Form("({0} > 0) * 1.0", 2, (ATOM,))),
      torch=lambda t, x: (x > 0).to(x.dtype))


defop("sign", arity=1, shape=same, forward=np.sign, elementwise=True, differentiable=False, kink=at_zero,
      onnx=onnx_same("Sign"),
      doc="the sign of each element",
      signature="sign(z)", formula="−1 where z < 0, 0 at 0, 1 where z > 0",
      derivative="0 everywhere: no gradient flows through it",
      printed=printed_function("sign", "\\mathrm{sign}", "np.sign({0})"),
      torch=lambda t, x: x.sign())


defop("softplus", arity=1, shape=same, forward=stable_softplus, elementwise=True,
      onnx=onnx_same("Softplus"),
      doc="smooth ReLU",
      signature="softplus(z)", formula="log(1 + e^z), computed without overflow",
      derivative="σ(z)",
      vjp=(lambda d, g, out, x: d.mul(g, d.sigmoid(x)),),
      printed=printed_function("softplus", "\\mathrm{softplus}", "np.logaddexp(0.0, {0})"),
      torch=lambda t, x: t.torch.logaddexp(x, x.new_zeros(())))


def onnx_leaky_relu(e, x, slope):
    return e("Where", e("Greater", x, e.const(0.0)), x, e("Mul", x, slope))


defop("leaky_relu", arity=2, shape=broadcast, elementwise=True, kink=lambda x, s: x,
      onnx=onnx_leaky_relu,
      forward=lambda x, s: np.where(x > 0, x, x * s),
      doc="ReLU with a slope for negative inputs",
      signature="leaky_relu(z, slope)", formula="z where z > 0, else slope · z",
      derivative="∂/∂z = 1 where z > 0, else slope; at z = 0 it is the slope (as torch). "
                 "∂/∂slope = z where z ≤ 0, else 0",
      vjp=(lambda d, g, out, x, s: d.mul(g, d.add(d.step(x), d.mul(s, d.sub(1.0, d.step(x))))),
           lambda d, g, out, x, s: d.mul(g, d.mul(x, d.sub(1.0, d.step(x))))),
      printed=printed_function("leaky_relu", "\\mathrm{leaky}", "np.where({0} > 0, {0}, {0} * {1})"),
      torch=lambda t, x, s: t.torch.where(x > 0, x, x * s))


defop("identity", arity=1, shape=same, forward=lambda x: x, elementwise=True,
      onnx=onnx_same("Identity"),
      doc="its argument unchanged (binding a name to a named value makes one too)",
      signature="identity(z)", formula="z",
      derivative="1",
      vjp=(lambda d, g, out, x: g,),
      printed=printed_function("identity", Form("{0}", 0, (0,)), Form("{0}", 0, (0,))),
      torch=lambda t, x: x)


defop("exp", arity=1, shape=same, forward=np.exp, elementwise=True,
      onnx=onnx_same("Exp"),
      doc="exponential",
      signature="exp(z)", formula="e^z",
      derivative="e^z",
      vjp=(lambda d, g, out, x: d.mul(g, out),),
      printed=printed_function("exp", Form("e^{{{0}}}", 5, (0,)), "np.exp({0})"),
      torch=lambda t, x: x.exp())


defop("log", arity=1, shape=same, forward=np.log, elementwise=True,
      onnx=onnx_same("Log"),
      stable={"softmax": "log_softmax", "sigmoid": "log_sigmoid"},
      doc="natural logarithm",
      signature="log(z)", formula="ln z (−inf at 0, NaN below)",
      derivative="1 / z",
      vjp=(lambda d, g, out, x: d.div(g, x),),
      printed=printed_function("log", "\\log", "np.log({0})"),
      torch=lambda t, x: x.log())


defop("abs", arity=1, shape=same, forward=np.abs, elementwise=True, kink=at_zero,
      onnx=onnx_same("Abs"),
      doc="absolute value",
      signature="abs(z)", formula="|z|",
      derivative="sign(z); at z = 0 it is 0 (as torch.abs)",
      vjp=(lambda d, g, out, x: d.mul(g, d.sign(x)),),
      printed=printed_function("abs", Form("|{0}|", ATOM, (0,)), "np.abs({0})"),
      torch=lambda t, x: x.abs())


defop("sqrt", arity=1, shape=same, forward=np.sqrt, elementwise=True,
      onnx=onnx_same("Sqrt"),
      doc="square root",
      signature="sqrt(z)", formula="√z (NaN below 0)",
      derivative="1 / (2√z), infinite at 0",
      vjp=(lambda d, g, out, x: d.div(d.mul(g, 0.5), out),),
      printed=printed_function("sqrt", Form("\\sqrt{{{0}}}", ATOM, (0,)), "np.sqrt({0})"),
      torch=lambda t, x: x.sqrt())


def onnx_log_sigmoid(e, x):
    return e("Neg", e("Softplus", e("Neg", x)))


defop("log_sigmoid", arity=1, shape=same, elementwise=True,
      onnx=onnx_log_sigmoid,
      forward=lambda x: -stable_softplus(-x),
      doc="log of the sigmoid, finite for large |z|; log(sigmoid(z)) is rewritten to it",
      signature="log_sigmoid(z)", formula="log σ(z) = −softplus(−z)",
      derivative="σ(−z)",
      vjp=(lambda d, g, out, x: d.mul(g, d.sigmoid(d.neg(x))),),
      printed=printed_function("log_sigmoid", Form("\\log \\sigma({0})", 2, (0,)),
                                      Form("-np.logaddexp(0.0, -{0})", 3, (ATOM,))),
      torch=lambda t, x: t.F.logsigmoid(x))
