"""Linear algebra: the transpose, the matrix product (juxtaposition, ·, @) and the outer product the
differentiator writes for the gradient of W x. Over a batch each is one matrix product, never a
loop over samples; a product whose value has no batch axis sums over it in the same product.
"""
from __future__ import annotations

import numpy as np

from .core import ATOM, call, defop, enclosed, ends_with_name, fmt_shape, Form, KernelInfo, paren, Printed, Shape, ShapeError


def transpose_kernel(info: KernelInfo):
    rank = len(info.shape)
    if info.batched:
        axes = (0,) + tuple(range(rank, 0, -1))
        return lambda x: x.transpose(axes)
    return lambda x: x.T                            # cheaper than np.transpose's wrapper


def onnx_transpose(e, x):
    rank = len(e.arg_shapes[0])
    if rank < 2:
        return e("Identity", x)
    lead = [0] if e.arg_batched[0] else []
    start = len(lead)
    return e("Transpose", x, perm=lead + [start + i for i in reversed(range(rank))])


def py_transpose(info, x):
    rank = len(info.shape)
    if rank < 2:
        return x
    if info.batched:
        return f"{paren(*x, ATOM)}.transpose{(0,) + tuple(range(rank, 0, -1))}", ATOM
    return f"{paren(*x, ATOM)}.T", ATOM


def torch_transpose(t, x):
    rank = len(t.shape)
    if rank < 2:
        return x
    lead = (0,) if t.arg_batched[0] else ()
    return x.permute(lead + tuple(len(lead) + i for i in reversed(range(rank))))


defop("transpose", arity=1, shape=lambda x: tuple(reversed(x)), forward=None, kernel_factory=transpose_kernel,
      onnx=onnx_transpose,
      doc="reverses the per-sample axes: a matrix is transposed, a vector or a scalar is unchanged",
      signature="transpose(a) or aᵀ", formula="[m, n] → [n, m]: (aᵀ)_ji = a_ij",
      derivative="the transpose of the incoming gradient",
      vjp=(lambda d, g, out, x: d.transpose(g),),
      printed=Printed(Form("{0}ᵀ", 6, (8,)), Form("{0}^{{\\top}}", 6, (ATOM,)), py_transpose),
      torch=torch_transpose)


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


def matmul_kernel(info: KernelInfo):
    """np.dot where the operands are vectors and matrices at run time (it equals np.matmul there,
    and costs about 0.3 µs less a call on small operands), np.matmul or einsum where a batch
    makes one of them 3-D."""
    (ra, rb) = (len(info.arg_shapes[0]), len(info.arg_shapes[1]))
    (ba, bb), bo = info.arg_batched, info.batched
    dot = np.dot
    if not ba and not bb:
        return dot
    if bo and not ba and ra == 2 and bb and rb == 1:
        return lambda a, b: dot(b, a.T)                # W x over a batch: one matrix product
    if bo and ba and not bb and rb == 2:
        return dot if ra == 1 else np.matmul           # x W, batched rows times a matrix
    if bo and not ba and ra == 2 and bb and rb == 2:
        return np.matmul
    if bo and (ra, rb) == (1, 1) and ba != bb:          # w · x over a batch: one matrix-vector product
        return dot if ba else (lambda a, b: dot(b, a))
    sa, sb, so = MATMUL_CASES[(ra, rb)]
    spec = f"{'z' if ba else ''}{sa},{'z' if bb else ''}{sb}->{'z' if bo else ''}{so}"
    return lambda a, b: np.einsum(spec, a, b, optimize=True)


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


def nn_matmul(info, a, b):
    """Juxtaposition for a matrix (`W x`), `·` for two vectors (`w · x`). Not before `[`, which
    would index, nor before a `(` that would call what ends the left operand or that something
    follows: `W (x)ᵀ` reads as `(W x)ᵀ`, `A^v (x)` as `A^(v x)`."""
    a_text, b_text = paren(*a, 5), paren(*b, 4)
    call_like = b_text.startswith("(") and (not enclosed(b_text) or (ends_with_name(a_text) and not a_text.isidentifier()))
    if len(info.arg_shapes[0]) == 2 and not b_text.startswith("[") and not call_like:
        return f"{a_text} {b_text}", 4
    return f"{a_text} · {b_text}", 4


def latex_matmul(info, a, b):
    if info.arg_shapes[0] == info.arg_shapes[1] and len(info.arg_shapes[0]) == 1:
        return f"{paren(*a, 5)} \\cdot {paren(*b, 5)}", 4
    return f"{paren(*a, 5)} {paren(*b, 4)}", 4


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


defop("matmul", arity=2, shape=matmul_shape, forward=None, callable=False, kernel_factory=matmul_kernel, symbol="·",
      onnx=onnx_matmul,
      batch_reducible=True, reduces_batch=True,
      doc="matrix product of per-sample vectors and matrices",
      signature="a b or a · b or a @ b (also ∙ and ⋅); with a scalar side it is scaling, mul",
      formula="Σ_k a_ik b_kj: [m, n]·[n] → [m], [n]·[n] → [], [m, n]·[n, p] → [m, p], [n]·[n, p] → [p]",
      derivative="∂a = g bᵀ, ∂b = aᵀ g for the incoming gradient g (an outer product where a side is a vector)",
      vjp=(matmul_grad_a, matmul_grad_b),
      printed=Printed(nn_matmul, latex_matmul, py_matmul),
      torch=torch_matmul)


def outer_shape(a: Shape, b: Shape) -> Shape:
    if len(a) != 1 or len(b) != 1:
        raise ShapeError(f"outer product takes two vectors, not {fmt_shape(a)} and {fmt_shape(b)}")
    return a + b


def outer_kernel(info: KernelInfo):
    (ba, bb), bo = info.arg_batched, info.batched
    if ba and bb and not bo:
        dot = np.dot
        return lambda a, b: dot(a.T, b)                # sum over the batch of outer products
    spec = f"{'z' if ba else ''}m,{'z' if bb else ''}n->{'z' if bo else ''}mn"
    if not ba and not bb:
        return np.outer
    return lambda a, b: np.einsum(spec, a, b, optimize=True)


def onnx_outer(e, a, b):
    return e("Mul", e.unsqueeze(a, [-1]), e.unsqueeze(b, [-2]))


def py_outer(info, a, b):
    (ba, bb), bo = info.arg_batched, info.batched
    a, b = paren(*a, ATOM), paren(*b, ATOM)
    if not ba and not bb:
        return f"np.outer({a}, {b})", ATOM
    if ba and bb and not bo:
        return f"{a}.T @ {b}", 2
    return f"np.einsum('{'z' if ba else ''}m,{'z' if bb else ''}n->{'z' if bo else ''}mn', {a}, {b})", ATOM


def torch_outer(t, a, b):
    ba, bb = t.arg_batched
    if not ba and not bb:
        return t.torch.outer(a, b)
    return t.torch.einsum(f"{'z' if ba else ''}m,{'z' if bb else ''}n->zmn", a, b)


defop("outer", arity=2, shape=outer_shape, forward=None, kernel_factory=outer_kernel,
      onnx=onnx_outer,
      batch_reducible=True, reduces_batch=True,
      doc="outer product of two vectors",
      signature="outer(a, b)", formula="a bᵀ: [m] and [n] → [m, n]",
      derivative="∂a = g b, ∂b = gᵀ a for the incoming gradient g",
      vjp=(lambda d, g, out, a, b: d.matmul(g, b),
           lambda d, g, out, a, b: d.matmul(a, g)),
      printed=Printed(call("outer"), Form("{0} {1}^{{\\top}}", 4, (5, ATOM)), py_outer),
      torch=torch_outer)
