"""Every op in the registry: forward against NumPy (sample by sample), gradients against torch
and central finite differences in float64, second derivatives against torch's double backward;
each in every batch layout, with its oracle's argument shapes and the further shapes it lists
(`broadcasts`: losses of operands of different per-sample rank and size-1 axes)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nndsl.autodiff import batch_mean, differentiate
from nndsl.graph import GraphBuilder
from nndsl.interpreter import execute, schedule
from nndsl.ops import REGISTRY, KernelInfo, kernel

from oracles import CASES, LEAVES, sample

OPS = sorted(set(REGISTRY) - LEAVES)
B = 3
# Which arguments carry the batch axis: all, all but the first (a parameter), all but the last,
# none.
LAYOUTS = ["batched", "param_first", "param_last", "unbatched"]


def test_every_op_has_a_reference():
    missing = sorted(set(OPS) - set(CASES))
    assert not missing, f"ops without a reference in tests/oracles.py: {missing}"


def layout_flags(layout: str, n: int) -> list[bool]:
    if layout == "batched":
        return [True] * n
    if layout == "param_first":
        return [False] + [True] * (n - 1)
    if layout == "param_last":
        return [True] * (n - 1) + [False]
    return [False] * n


def shape_id(shapes) -> str:
    return "-".join(str(list(s)).replace(" ", "") for s in shapes)


def cases(ops, layouts):
    """(opname, argument shapes, layout) for each op's own shapes and its `broadcasts`; a layout
    that repeats another for the op's arity (one argument: param_first is param_last) is left out."""
    out = []
    for op in ops:
        case = CASES[op]
        for shapes in (case.shapes,) + case.broadcasts:
            seen = set()
            for layout in layouts:
                flags = tuple(layout_flags(layout, len(shapes)))
                if flags in seen:
                    continue
                seen.add(flags)
                label = op if shapes == case.shapes else f"{op}-{shape_id(shapes)}"
                out.append(pytest.param(op, shapes, layout, id=f"{label}-{layout}"))
    return out


def build(opname: str, layout: str, seed: int = 0, shapes: tuple | None = None):
    """A graph applying `opname` to leaves; returns (graph, leaf nodes, output node, leaf values)."""
    case = CASES[opname]
    shapes = case.shapes if shapes is None else shapes
    rng = np.random.default_rng(seed)
    builder = GraphBuilder()
    flags = layout_flags(layout, len(shapes))
    leaves, values = [], []
    for i, (shape, batched) in enumerate(zip(shapes, flags)):
        domain = case.domains[i] if case.domains else "normal"
        leaves.append(builder.add("input" if batched else "param", shape=shape, batched=batched, name=f"a{i}"))
        values.append(sample(domain, ((B,) if batched else ()) + shape, rng))
    explicit = dict(case.explicit)
    if "shape" in explicit:
        explicit["batched"] = any(flags)
    out = builder.add(opname, *leaves, **explicit)
    return builder.graph, leaves, out, values, flags


def reference(opname: str, values, flags, out_batched: bool):
    fn = CASES[opname].numpy
    if not any(flags):
        return fn(*values)
    per_sample = [fn(*[v[b] if f else v for v, f in zip(values, flags)]) for b in range(B)]
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in per_sample])
    return stacked if out_batched else stacked.sum(0)


def run(graph, targets, feeds, dtype=np.float64):
    return execute(schedule(graph, targets, dtype), graph, feeds)


@pytest.mark.parametrize("opname, shapes, layout",
                         cases([op for op in OPS if CASES.get(op) and CASES[op].numpy is not None], LAYOUTS))
def test_forward_matches_numpy(opname, shapes, layout):
    graph, leaves, out, values, flags = build(opname, layout, shapes=shapes)
    (got,) = run(graph, [out], dict(zip(leaves, values)))
    want = reference(opname, values, flags, graph.nodes[out]["batched"])
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("opname, shapes, layout", cases(OPS, ["batched", "param_first", "param_last"]))
def test_float32_stays_float32_forward_and_backward(opname, shapes, layout):
    graph, leaves, out, values, flags = build(opname, layout, shapes=shapes)
    feeds = {n: v.astype(np.float32) for n, v in zip(leaves, values)}
    targets = [out]
    if opname in GRAD_OPS:
        objective, _ = objective_of(graph, out)
        wrt = [leaves[i] for i in differentiable(opname, flags)]
        graph, grads = differentiate(graph, objective, wrt)
        targets += [grads[n] for n in wrt]
    for value in run(graph, targets, feeds, np.float32):
        assert np.asarray(value).dtype == np.float32, opname


def test_batch_size():
    builder = GraphBuilder()
    x = builder.add("input", shape=(3,), batched=True)
    n = builder.add("batch_size", x)
    assert builder.graph.nodes[n]["batched"] is False
    (got,) = run(builder.graph, [n], {x: np.zeros((7, 3))})
    assert got == 7


def objective_of(graph, out, seed=1):
    """mean over the batch of sum(out * R): every output element gets a distinct weight."""
    builder = GraphBuilder(graph)
    weights = np.random.default_rng(seed).normal(0, 1, graph.nodes[out]["shape"])
    weighted = builder.add("sum", builder.add("mul", out, builder.const(weights)))
    return batch_mean(builder, weighted), weights


def differentiable(opname, flags):
    case = CASES[opname]
    return [i for i in range(len(case.shapes)) if i not in case.no_grad]


GRAD_OPS = [op for op in OPS if REGISTRY[op].differentiable and differentiable(op, [True] * 9)]
GRAD_LAYOUTS = ["batched", "param_first", "param_last"]


@pytest.mark.parametrize("opname, shapes, layout", cases(GRAD_OPS, GRAD_LAYOUTS))
def test_gradient_matches_finite_differences(opname, shapes, layout):
    graph, leaves, out, values, flags = build(opname, layout, shapes=shapes)
    objective, _ = objective_of(graph, out)
    wrt = [leaves[i] for i in differentiable(opname, flags)]
    full, grads = differentiate(graph, objective, wrt)
    feeds = dict(zip(leaves, values))
    analytic = run(full, [grads[n] for n in wrt], feeds)
    loss_plan = schedule(graph, [objective], np.float64)
    eps = 1e-6
    for node, g in zip(wrt, analytic):
        value = feeds[node]
        assert g.shape == value.shape
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            keep = value[idx]
            value[idx] = keep + eps
            (up,) = execute(loss_plan, graph, feeds)
            value[idx] = keep - eps
            (down,) = execute(loss_plan, graph, feeds)
            value[idx] = keep
            numeric[idx] = (up - down) / (2 * eps)
        err = np.abs(g - numeric) / np.maximum(1.0, np.maximum(np.abs(g), np.abs(numeric)))
        assert err.max() < 1e-6, (opname, graph.nodes[node]["name"], g, numeric)


def torch_objective(opname, values, flags, weights, create_graph=False):
    fn = CASES[opname].torch
    tensors = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    w = torch.tensor(weights, dtype=torch.float64)
    total = 0
    for b in range(B):
        args = [t[b] if f else t for t, f in zip(tensors, flags)]
        total = total + (fn(*args) * w).sum()
    return total / B, tensors


@pytest.mark.parametrize("opname, shapes, layout", cases([op for op in GRAD_OPS if CASES[op].torch is not None],
                                                         GRAD_LAYOUTS))
def test_gradient_and_second_derivative_match_torch(opname, shapes, layout):
    graph, leaves, out, values, flags = build(opname, layout, shapes=shapes)
    objective, weights = objective_of(graph, out)
    wrt_idx = differentiable(opname, flags)
    wrt = [leaves[i] for i in wrt_idx]
    full, grads = differentiate(graph, objective, wrt)
    feeds = dict(zip(leaves, values))
    ours = run(full, [objective] + [grads[n] for n in wrt], feeds)

    loss, tensors = torch_objective(opname, values, flags, weights)
    theirs = torch.autograd.grad(loss, [tensors[i] for i in wrt_idx], create_graph=True)
    np.testing.assert_allclose(ours[0], loss.item(), rtol=1e-10)
    for g, t in zip(ours[1:], theirs):
        np.testing.assert_allclose(g, t.detach().numpy(), rtol=1e-6, atol=1e-10)

    # Differentiate the backward graph again: d/dx (grad · v) is a Hessian-vector product.
    rng = np.random.default_rng(2)
    directions = [rng.normal(0, 1, feeds[n].shape) for n in wrt]
    builder = GraphBuilder(full)
    dirs = {n: builder.add("input" if full.nodes[n]["batched"] else "param", shape=full.nodes[n]["shape"],
                           batched=full.nodes[n]["batched"]) for n in wrt}
    terms = [builder.add("sum_to", builder.add("mul", grads[n], dirs[n]), shape=(), batched=False) for n in wrt]
    total = terms[0]
    for t in terms[1:]:
        total = builder.add("add", total, t)
    second_graph, second = differentiate(full, total, wrt)
    feeds2 = dict(feeds)
    feeds2.update({dirs[n]: v for n, v in zip(wrt, directions)})
    hvp = run(second_graph, [second[n] for n in wrt], feeds2)
    dot = sum((t * torch.tensor(v)).sum() for t, v in zip(theirs, directions))
    if not dot.requires_grad:            # torch: the gradient does not depend on the inputs
        expected = [np.zeros_like(v) for v in directions]
    else:
        expected = [e.numpy(force=True) if e is not None else np.zeros_like(v) for e, v in
                    zip(torch.autograd.grad(dot, [tensors[i] for i in wrt_idx], allow_unused=True), directions)]
    for h, e in zip(hvp, expected):
        np.testing.assert_allclose(h, e, rtol=1e-6, atol=1e-9)


# ---- the kinks, decided once and matching PyTorch -------------------------------------------
def grad_at(opname, values):
    builder = GraphBuilder()
    leaves = [builder.add("param", shape=np.shape(v), batched=False) for v in values]
    out = builder.add(opname, *leaves)
    objective = batch_mean(builder, builder.add("sum", out) if builder.graph.nodes[out]["shape"] else out)
    full, grads = differentiate(builder.graph, objective, leaves)
    return run(full, [grads[n] for n in leaves], dict(zip(leaves, [np.asarray(v, float) for v in values])))


def torch_grad(fn, values):
    tensors = [torch.tensor(np.asarray(v, float), requires_grad=True) for v in values]
    fn(*tensors).sum().backward()
    return [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("opname, values, fn", [
    ("relu", [np.array([-1.0, 0.0, 2.0])], torch.relu),
    ("abs", [np.array([-1.0, 0.0, 2.0])], torch.abs),
    ("max", [np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 4.0])], torch.maximum),
    ("min", [np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 4.0])], torch.minimum),
    ("leaky_relu", [np.array([-1.0, 0.0, 2.0]), np.array(0.1)], lambda x, s: torch.where(x > 0, x, s * x)),
    ("hinge", [np.array([1.0, -1.0, 0.5]), np.array([1.0, -1.0, 1.0])],
     lambda y, t: torch.clamp(1 - t * y, min=0).mean()),
    ("perceptron", [np.array([0.0, 0.0, 1.0]), np.array([1.0, -1.0, 1.0])],
     lambda y, t: torch.clamp(-t * y, min=0).mean()),
])
def test_kink_rules_match_pytorch(opname, values, fn):
    for ours, theirs in zip(grad_at(opname, values), torch_grad(fn, values)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


# ---- float32 keeps its digits in the stable kernels ----------------------------------------------
STABLE = ["sigmoid", "log_sigmoid", "softplus", "softmax", "log_softmax", "bce_logits", "cross_entropy_logits",
          "nll(log_softmax)"]
TARGETS = {"bce_logits": [0.999, 0.9999, 0.99, 1.0],           # z (1 - t) is small where z > 0
           "cross_entropy_logits": [0.1, 0.2, 0.3, 0.4],
           "nll(log_softmax)": 1.0}
LOGITS = {"clustered": lambda m: m + np.arange(4.0),                  # 10000, 10001, 10002, 10003
          "clustered_below_zero": lambda m: np.arange(4.0) - m,
          "spread": lambda m: m * np.array([-1.0, -0.3, 0.6, 1.0])}
TINY32 = float(np.finfo(np.float32).tiny)        # below it float32 holds only subnormals


def stable_values(opname, args, dtype):
    """The op's value on float32-representable arguments, and its gradients, in `dtype`."""
    builder = GraphBuilder()
    leaves = [builder.add("param", shape=np.shape(a), batched=False) for a in args]
    if opname == "nll(log_softmax)":            # the sparse cross entropy from logits, as rewritten
        out = builder.add("nll", builder.add("log_softmax", leaves[0]), leaves[1])
        wrt = leaves[:1]
    else:
        out = builder.add(opname, *leaves)
        wrt = [leaves[i] for i in differentiable(opname, [False] * len(args))]
    objective, weights = objective_of(builder.graph, out)
    graph, grads = differentiate(builder.graph, objective, wrt)
    value, *gradients = run(graph, [out] + [grads[n] for n in wrt], dict(zip(leaves, (a.astype(dtype) for a in args))),
                            dtype)
    return value, gradients, weights


@pytest.mark.parametrize("kind", LOGITS)
@pytest.mark.parametrize("magnitude", [1, 10, 100, 1e3, 1e4])
@pytest.mark.parametrize("opname", STABLE)
def test_stable_kernels_in_float32_are_float64_to_a_few_ulps(opname, magnitude, kind):
    """Values to a few float32 ulps (1e-6 relative; below the smallest normal float32, to it).
    Gradients too, except that where a rule subtracts terms of the incoming gradient's size
    (softmax(z) Σ g - g, sigmoid(z) - t) the difference is exact to a few ulps of that size."""
    args = [LOGITS[kind](magnitude).astype(np.float32)]
    args += [np.asarray(TARGETS[opname], np.float32)] if opname in TARGETS else []
    value32, grads32, weights = stable_values(opname, args, np.float32)
    value64, grads64, _ = stable_values(opname, args, np.float64)
    np.testing.assert_allclose(value32, value64, rtol=1e-6, atol=TINY32)
    for g32, g64 in zip(grads32, grads64):
        np.testing.assert_allclose(g32, g64, rtol=1e-6, atol=1e-6 * np.abs(weights).max())


@pytest.mark.parametrize("opname", ["sigmoid", "log_sigmoid", "softplus"])
def test_saturated_sigmoid_gradients_keep_their_float32_digits(opname):
    """sigmoid'(z) = sigmoid(z) sigmoid(-z): where sigmoid(z) rounds to 1, 1 - sigmoid(z) would
    keep none of the digits of the small gradient."""
    args = [np.array([-30.0, -12.0, 9.5, 12.0, 17.0, 30.0], np.float32)]
    (g32,) = stable_values(opname, args, np.float32)[1]
    (g64,) = stable_values(opname, args, np.float64)[1]
    np.testing.assert_allclose(g32, g64, rtol=1e-6, atol=TINY32)


@pytest.mark.parametrize("rows", [
    [[1.0, 1.0, 0.0], [2.0, -1.0, 0.5]],            # a tie for the largest in one row
    [[3.0, 3.0, 3.0], [0.0, 0.0, -80.0]],           # every element tied; two of three
    [[0.0, -30.0, -40.0], [5.0, 4.0, 3.0]],         # one dominant element: the sum is 1 + 1e-13
])
def test_log_softmax_and_sparse_cross_entropy_with_ties_in_float32(rows):
    """Rows with several largest elements take the general path of the log-sum-exp, rows with
    one the short one; both keep float32's digits (against float64)."""
    z = np.array(rows)
    shifted = z - z.max(-1, keepdims=True)          # log Σ exp = log1p(the sum less one exp(0) = 1), in float64
    top = shifted == 0
    rest = np.where(top, 0.0, np.exp(shifted)).sum(-1, keepdims=True) + (top.sum(-1, keepdims=True) - 1)
    reference = shifted - np.log1p(rest)
    got = REGISTRY["log_softmax"].forward(None, z.astype(np.float32))
    np.testing.assert_allclose(got, reference, rtol=1e-6, atol=1e-30)
    info = KernelInfo((), True, ((3,), ()), (True, True), {}, np.dtype(np.float32))
    k = np.array([0.0, 0.0])
    np.testing.assert_allclose(REGISTRY["nll"].forward(info, got, k), -reference[:, 0], rtol=1e-6)


@pytest.mark.parametrize("opname", ["max", "min", "relu"])
@pytest.mark.parametrize("shape", [(7,), (32, 32), (128, 256), (3, 128, 128), (5, 3, 4097), (300, 1000)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_against_a_scalar_equal_numpy(opname, shape, dtype):
    """max(c, z), max(z, c), min and relu read a scalar from a row of its copies once z has 4096
    elements or more (NumPy is several times slower against a scalar): the values must be
    NumPy's own, bit for bit, for every size (a part of the row, whole rows, rows and a rest),
    for strided z, and for constants that are NaN, -0.0 or infinite."""
    rng = np.random.default_rng(len(shape))
    z = rng.standard_normal(shape).astype(dtype)
    z.reshape(-1)[::97] = 0.0
    z.reshape(-1)[::101] = np.nan
    z.reshape(-1)[::103] = -np.inf
    ufunc = {"max": np.maximum, "min": np.minimum, "relu": np.maximum}[opname]
    constants = [0.0] if opname == "relu" else [0.0, -0.0, 0.5, np.nan, np.inf]
    for c in constants:
        c = np.asarray(c, dtype)
        for x in (z, z[..., ::2]):
            expected = ufunc(x, c)
            if opname == "relu":
                fn = kernel(REGISTRY["relu"], KernelInfo(x.shape[1:], True, (x.shape[1:],), (True,), {}, np.dtype(dtype)))
                got = [fn(x)]
            else:
                op = REGISTRY[opname]
                left = kernel(op, KernelInfo(x.shape[1:], True, ((), x.shape[1:]), (False, True), {}, np.dtype(dtype)))
                right = kernel(op, KernelInfo(x.shape[1:], True, (x.shape[1:], ()), (True, False), {}, np.dtype(dtype)))
                got = [left(c, x), right(x, c)]
            for value in got:
                assert value.dtype == dtype and value.shape == x.shape
                np.testing.assert_array_equal(value, expected)


@pytest.mark.parametrize("shape", [(3,), (4, 10), (32, 10), (128, 10), (5, 7, 10), (64, 64), (64, 65), (17, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_max_is_numpys_maximum_along_the_last_axis(shape, dtype):
    """Softmax and log-sum-exp take the largest element of each row from a transposed copy
    when rows are short and many: the same values as np.maximum.reduce, NaN and -0.0 included."""
    from nndsl.ops.reductions import row_max
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::13] = np.nan
    x.reshape(-1)[1::11] = -0.0
    x.reshape(-1)[2::17] = -np.inf
    got, expected = row_max(x), np.maximum.reduce(x, axis=-1, keepdims=True)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


@pytest.mark.parametrize("shapes", [((), ()), ((), (5,)), ((5,), ()), ((), (3, 4)), ((3, 4), ()), ((5,), (5,)),
                                    ((3, 4), (3, 4)), ((3, 1), (1, 4)), ((4,), (3, 4))])
@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_reduced_elementwise_kernels_sum_the_per_sample_values(shapes, batch, dtype):
    """A batch-reduced node's value is the sum over the batch of its per-sample values: `mul`
    with one number per sample computes it as one matrix-vector product (`batch_kernel`), the
    others sum afterwards (a product with ones for a scalar or vector per sample). Both are
    NumPy's product and sum over the batch, to rounding, in the dtype, with NaN and inf kept."""
    rng = np.random.default_rng(batch)
    a, b = (rng.standard_normal((batch,) + s).astype(dtype) for s in shapes)
    a.reshape(-1)[3::11] = np.inf
    b.reshape(-1)[5::13] = np.nan
    out = np.broadcast_shapes(*shapes)
    pads = [(slice(None),) + (None,) * (len(out) - len(s)) for s in shapes]
    for opname, ufunc in (("mul", np.multiply), ("add", np.add), ("sub", np.subtract)):
        fn = kernel(REGISTRY[opname], KernelInfo(out, False, shapes, (True, True), {}, np.dtype(dtype)))
        with np.errstate(invalid="ignore"):        # inf - inf in the sums: NaN, on both sides
            got = np.asarray(fn(a, b))
            expected = ufunc(a[pads[0]], b[pads[1]]).sum(axis=0, dtype=np.float64)
        assert got.shape == out and got.dtype == dtype, opname
        np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5, err_msg=opname)
        assert np.array_equal(np.isnan(got), np.isnan(expected)) and np.array_equal(np.isinf(got), np.isinf(expected))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_class_indices_accept_whole_numbers_in_range_and_name_the_first_that_is_not(dtype):
    from nndsl.ops import class_indices
    good = np.array([0, 2, 9, -0.0, 1], dtype=dtype)
    got = class_indices(good, 10)
    assert got.dtype == np.intp and got.tolist() == [0, 2, 9, 0, 1]
    assert class_indices(good.reshape(5, 1), 10).shape == (5, 1)
    bad = [(10, "10"), (-1, "-1"), (1e30, "1e+30")]
    if dtype != np.int64:
        bad += [(2.5, "2.5"), (-0.5, "-0.5"), (np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")]
    if dtype == np.float64:
        bad += [(9.0000001, "9.0000001")]           # not 9, which %g would print
    for value, text in bad:
        if dtype == np.int64 and not -2**62 < value < 2**62:
            continue
        k = np.array([1, 2, value, 3, 10], dtype=dtype)
        with np.errstate(invalid="ignore"), pytest.raises(FloatingPointError) as info:
            class_indices(k, 10)
        assert str(info.value) == f"class index {text} is not an integer in [0, 10)"


@pytest.mark.parametrize("full, per_sample, batched", [((10,), (10,), False), ((32, 10), (10,), True),
                                                        ((3, 4, 10), (4, 10), True), ((1, 1), (1,), True)])
@pytest.mark.parametrize("checked", [False, True])
def test_nll_log_softmax_grad_kernel_is_its_forward_bit_for_bit(full, per_sample, batched, checked):
    """The kernel subtracts 1 at each row's class in the flat array; the forward, the reference,
    subtracts a one-hot array: the same values, for contiguous and transposed log-probabilities."""
    rng = np.random.default_rng(len(full))
    info = KernelInfo(per_sample, batched, (per_sample, per_sample[:-1]), (batched, batched), {}, np.dtype(np.float32), checked)
    fn = kernel(REGISTRY["nll_log_softmax_grad"], info)
    lp = rng.standard_normal(full).astype(np.float32)
    k = rng.integers(0, full[-1], full[:-1]).astype(np.float32)
    expected = REGISTRY["nll_log_softmax_grad"].forward(info, lp, k)
    for x in (lp, np.asfortranarray(lp)):
        got = fn(x, k)
        assert got.dtype == np.float32 and got.shape == full
        np.testing.assert_array_equal(got, expected)
    if not checked:
        with pytest.raises(FloatingPointError):
            fn(lp, np.full(full[:-1], full[-1], np.float32))


@pytest.mark.parametrize("full, per_sample, batched", [((10,), (10,), False), ((32, 10), (10,), True),
                                                        ((3, 4, 10), (4, 10), True), ((1, 1), (1,), True)])
@pytest.mark.parametrize("checked", [False, True])
def test_nll_kernel_is_its_forward_bit_for_bit(full, per_sample, batched, checked):
    """The kernel reads each row's class at its flat position; the forward indexes rows and
    columns: the same values, for contiguous and transposed log-probabilities."""
    rng = np.random.default_rng(len(full))
    info = KernelInfo(per_sample[:-1], batched, (per_sample, per_sample[:-1]), (batched, batched), {}, np.dtype(np.float64), checked)
    fn = kernel(REGISTRY["nll"], info)
    lp = rng.standard_normal(full)
    k = rng.integers(0, full[-1], full[:-1]).astype(np.float64)
    expected = REGISTRY["nll"].forward(info, lp, k)
    for x in (lp, np.asfortranarray(lp)):
        np.testing.assert_array_equal(fn(x, k), expected)
    if not checked:
        with pytest.raises(FloatingPointError):
            fn(lp, np.full(full[:-1], -1.0))


def test_batch_sums_stay_right_over_many_batch_sizes():
    """The vectors of ones a batch sum keeps per batch size are a few (the cache is emptied past
    16 sizes): sums over 40 sizes, then the first again, are exact."""
    from nndsl.ops.core import batch_total
    total = batch_total(np.float64)
    for n in list(range(1, 41)) + [1, 7]:
        x = np.arange(3.0 * n).reshape(n, 3)
        np.testing.assert_array_equal(total(x), x.sum(axis=0))
        assert total(x[:, 0]) == x[:, 0].sum()
    cached = [c.cell_contents for c in total.__closure__ if isinstance(c.cell_contents, dict)]
    assert cached and all(len(c) <= 16 for c in cached)
