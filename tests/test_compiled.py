"""The compiled plan (straight-line Python, used from a plan's second run on) computes exactly
what the interpreter computes, on every model and on generated programs, and never runs text
from a model file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nndsl
from nndsl.interpreter import compile_plan, execute, fold, interpret
from oracles import data_for
from test_generated import generate

ROOT = Path(__file__).resolve().parent.parent
WITH_LOSS = [p for p in sorted((ROOT / "models").glob("*.nn")) if nndsl.load(p).loss_name is not None]


def both_ways(model, params, data):
    """Loss and gradients through the gradient plan: interpreted, then compiled."""
    graph, objective, grads = model.gradient_graph(tuple(model.params))
    plan = model.plan(("compiled-test",), graph, [objective, *grads.values()])
    feeds, _ = model.feeds(data)
    feeds.update({model.params[n]: v for n, v in model.check_params(params).items()})
    first = interpret(plan, graph, feeds)
    batch = feeds[plan.batch_leaf].shape[0] if plan.batch_leaf is not None else None
    compiled = compile_plan(plan, batch)            # for this batch size: 1/B and the like folded in
    return first, compiled(feeds)


@pytest.mark.parametrize("path", WITH_LOSS, ids=lambda p: p.stem)
def test_compiled_plan_equals_the_interpreter_on_every_model(path):
    model = nndsl.load(path, dtype="float64")
    data = data_for(model)
    first, compiled = both_ways(model, model.init(seed=1), data)
    for a, b in zip(first, compiled):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", range(0, 300, 6))
def test_compiled_plan_equals_the_interpreter_on_generated_programs(seed):
    program = generate(seed)
    model = nndsl.compile(program.source, dtype="float64")
    if not model.params:
        pytest.skip("a program without parameters has no gradient plan")
    first, compiled = both_ways(model, model.init(seed=seed), dict(program.data))
    for a, b in zip(first, compiled):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


def test_second_run_uses_the_compiled_plan_and_errors_still_point_at_the_source():
    model = nndsl.compile("input x[2]\ninput k\nparam W[3, 2]\nloss L = sparse_cross_entropy(softmax(W x), k)\n",
                          filename="m.nn")
    data = {"x": np.ones((2, 2)), "k": np.array([0.0, 2.0])}
    model.grad(**data)
    model.grad(**data)
    (plan,) = [p for key, p in model._plans.items() if key[0] == "grad"]
    assert plan.compiled is not None and plan.runs == 2
    with pytest.raises(nndsl.NndslError) as info:
        model.grad(x=np.ones((2, 2)), k=np.array([0.0, 3.0]))
    assert info.value.render().startswith("m.nn:4:10: error: class index 3 is not an integer in [0, 3)")


def test_the_generated_source_holds_no_model_text():
    """Names, comments and numbers of the model never reach the compiled source."""
    model = nndsl.compile('input x\nparam évil = 2  # __import__("os")\nloss L = (évil x - 1)^2\n')
    graph, objective, grads = model.gradient_graph(("évil",))
    plan = model.plan(("source-test",), graph, [objective, *grads.values()])
    code = compile_plan(plan).__code__
    assert not any("évil" in str(c) or "import" in str(c) for c in code.co_consts)
    ownership = {"taken", "ndarray", "asarray", "constant_ids", "id", "set", "map", "values", "add", "base", "copy",
                 "__class__"}
    assert all(name.startswith(("v", "k", "c", "r", "feeds")) or name in ownership
               for name in code.co_varnames + code.co_names)
    assert execute(plan, graph, {model.inputs["x"]: np.ones((1,), np.float32),
                                 model.params["évil"]: np.float32(2)})[0] == 1.0


def test_the_generated_guard_holds_no_model_text():
    """The fast call a guard makes (its checks and the compiled plan) passes names in as values."""
    model = nndsl.compile('input évil\ninput k\nparam W_import[3] = normal(1)\n'
                          'loss L = sparse_cross_entropy(softmax(W_import évil), k)\n')
    params, data = model.init(), {"évil": np.ones(4, np.float32), "k": np.array([0, 1, 2, 0], np.float32)}
    for _ in range(3):
        loss, _ = model.grad(params, **data)
    (guard,) = [g for key, guards in model._guards.items() if key[0] == "grad" for g in guards]
    code = guard.entry.__code__
    assert not any("évil" in str(c) or "import" in str(c) for c in code.co_consts)
    assert not any("évil" in name or "import" in name for name in code.co_varnames + code.co_names)
    assert guard.entry(params, data)[0] == loss


def unsimplified_and_simplified(model, params, data):
    """Loss and gradients from the backward graph as differentiate writes it, and as the model
    runs it (simplified)."""
    from nndsl.autodiff import differentiate
    from nndsl.interpreter import schedule
    objective_graph, objective = model.objective_graph()
    raw, grads = differentiate(objective_graph, objective, [model.params[n] for n in model.params])
    feeds, _ = model.feeds(data)
    feeds.update({model.params[n]: v for n, v in model.check_params(params).items()})
    targets = [objective] + [grads[model.params[n]] for n in model.params]
    plain = interpret(schedule(raw, targets, model.dtype), raw, feeds)
    loss, simplified = model.grad(params, inputs=data)
    return plain, [loss, *simplified.values()], len(raw), len(model.gradient_graph(tuple(model.params))[0])


@pytest.mark.parametrize("path", WITH_LOSS, ids=lambda p: p.stem)
def test_simplified_backward_graph_equals_the_plain_one_on_every_model(path):
    model = nndsl.load(path, dtype="float64")
    data = data_for(model)
    plain, simplified, before, after = unsimplified_and_simplified(model, model.init(seed=1), data)
    for a, b in zip(plain, simplified):
        np.testing.assert_allclose(np.squeeze(a), np.squeeze(b), rtol=1e-12, atol=1e-15)
    assert after <= before


@pytest.mark.parametrize("seed", range(1, 300, 6))
def test_simplified_backward_graph_equals_the_plain_one_on_generated_programs(seed):
    program = generate(seed)
    model = nndsl.compile(program.source, dtype="float64")
    if not model.params:
        pytest.skip("a program without parameters has no gradient plan")
    plain, simplified, _, _ = unsimplified_and_simplified(model, model.init(seed=seed), dict(program.data))
    for a, b in zip(plain, simplified):
        np.testing.assert_allclose(np.squeeze(a), np.squeeze(b), rtol=1e-12, atol=1e-15)


def test_simplification_removes_what_a_hand_written_step_would_not_compute():
    model = nndsl.load("models/xor.nn")
    graph, objective, grads = model.gradient_graph(tuple(model.params))
    ops = [graph.nodes[n]["op"] for n in graph if graph.nodes[n]["role"] == "backward"]
    assert "broadcast_like" not in ops                      # 1/B times a batched value: mul broadcasts
    ones = [n for n in graph if graph.nodes[n]["op"] == "mul"
            and any(graph.nodes[a]["op"] == "const" and graph.nodes[a]["value"] == 1.0 for a in graph.predecessors(n))]
    assert ones == []


def test_the_guard_takes_checked_arrays_as_they_are_and_everything_else_through_the_checks():
    model = nndsl.load(ROOT / "models" / "xor.nn")
    params = model.init()
    data = {k: v.astype(np.float32) for k, v in model.default_data().items()}
    first = model.grad(params, **data)
    again = model.grad(params, **data)                   # the guard: same kinds, dtypes and shapes
    (guard,) = [g for key, guards in model._guards.items() if key[0] == "grad" for g in guards]
    assert first[0] == again[0] and all(np.array_equal(first[1][k], again[1][k]) for k in first[1])
    assert guard.entry is not None                       # the guard and the compiled plan as one call
    values = guard.entry(params, data)
    assert values[0] == first[0] and all(np.array_equal(v, first[1][k]) for v, k in zip(values[1:], first[1]))
    third = model.grad(params, **data)
    assert third[0] == first[0] and all(np.array_equal(first[1][k], third[1][k]) for k in first[1])
    assert guard.entry({k: v.tolist() for k, v in params.items()}, data) is None
    assert guard.entry(params, {**data, "x": data["x"].astype(np.float64)}) is None
    assert guard.entry(params, {"x": data["x"]}) is None and guard.entry(None, data) is None
    lists = model.grad({k: v.tolist() for k, v in params.items()}, x=data["x"].tolist(), t=data["t"].tolist())
    assert lists[0] == pytest.approx(first[0], rel=1e-6)  # other kinds go through the checks
    with pytest.raises(nndsl.NndslError) as info:        # and so do other shapes, with the same message
        model.grad(params, x=np.ones((4, 3), np.float32), t=data["t"])
    assert "data for input 'x' has shape [4, 3]" in info.value.message
    with pytest.raises(nndsl.NndslError, match="has a value for 'W'"):
        model.grad({**params, "W": params["W1"]}, **data)
    float64 = {k: v.astype(np.float64) for k, v in params.items()}
    assert model.grad(float64, **data)[0] == pytest.approx(first[0], rel=1e-6)


def test_a_plan_compiled_for_a_batch_size_computes_what_depends_on_it_once():
    model = nndsl.load(ROOT / "models" / "xor.nn", dtype="float64")
    params, data = model.init(seed=0), model.default_data()
    model.grad(params, **data)
    model.grad(params, **data)
    (plan,) = [p for key, p in model._plans.items() if key[0] == "grad"]
    kernels = lambda fn: [name for name in fn.__code__.co_names if name.startswith("k")]  # noqa: E731
    (key,) = plan.compiled                           # one variant, for the batch of 4
    batch = key[0]
    assert batch == 4
    known, folded = fold(plan, batch)
    ops = {model._grad_graphs[tuple(model.params)][0].nodes[plan.steps[i][4]]["op"] for i in folded}
    assert "batch_size" in ops                       # B, and 1/B with it
    assert len(kernels(plan.compiled[key])) == len(plan.steps) - len(folded) < len(kernels(compile_plan(plan)))
    smaller = {k: v[:3] for k, v in data.items()}    # another batch size: a variant of its own, right
    loss, grads = model.grad(params, **smaller)
    model.grad(params, **smaller)
    assert {key[0] for key in plan.compiled} == {3, 4}
    again, grads_again = model.grad(params, **smaller)
    assert again == loss and all(np.array_equal(grads[k], grads_again[k]) for k in grads)
    fresh = nndsl.load(ROOT / "models" / "xor.nn", dtype="float64")
    reference = fresh.grad(params, **smaller)        # interpreted: its first run
    assert reference[0] == pytest.approx(loss, rel=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k], reference[1][k], rtol=1e-12)


def test_the_sigmoid_far_below_zero_is_zero_without_a_warning_interpreted_and_compiled():
    import warnings
    model = nndsl.compile("input x\noutput y = σ(x)\n")
    x = np.array([-1e4, -100.0, 0.0, 100.0, 1e4], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # numpy's overflow warning would raise here
        for _ in range(3):                            # the first run interprets, the others are compiled
            y = model.run(x=x)["y"]
            np.testing.assert_array_equal(y, np.array([0.0, 0.0, 0.5, 1.0, 1.0], np.float32))
    assert np.geterr()["over"] == "warn"              # and the setting is the caller's again afterwards


def test_class_indices_an_input_holds_are_checked_once_when_fed_not_in_each_kernel():
    model = nndsl.compile("input x[2]\ninput k\nparam W[3, 2]\nloss L = sparse_cross_entropy(softmax(W x), k)\n",
                          filename="m.nn")
    data = {"x": np.ones((2, 2)), "k": np.array([0.0, 2.0])}
    model.grad(**data)
    (plan,) = [p for key, p in model._plans.items() if key[0] == "grad"]
    # the loss and its gradient both read k: one check, against the 3 classes, located at the loss
    assert [(leaf, n) for leaf, n, _ in plan.index_checks] == [(model.inputs["k"], 3)]
    graph = model._grad_graphs[tuple(model.params)][0]
    assert graph.nodes[plan.index_checks[0][2]]["op"] == "nll"
    for bad in ([0.0, 3.0], [0.0, -1.0], [0.5, 1.0]):       # and it still refuses, compiled or not
        with pytest.raises(nndsl.NndslError, match="is not an integer in \\[0, 3\\)"):
            model.grad(x=data["x"], k=np.array(bad))
    computed = nndsl.compile("input x[2]\nparam W[3, 2]\nloss L = sparse_cross_entropy(softmax(W x), sum(x))\n")
    computed.grad(x=np.ones((2, 2)))                          # indices computed in the model: the kernel checks
    (plan,) = [p for key, p in computed._plans.items() if key[0] == "grad"]
    assert plan.index_checks == ()
    with pytest.raises(nndsl.NndslError, match="class index 4 is not an integer"):
        computed.grad(x=np.full((2, 2), 2.0))


def test_compiled_plans_return_owned_targets_as_arrays_no_one_else_holds():
    """What `owned` makes of the interpreter's results, the compiled plan makes of its own: a
    target that is a feed, a constant, a view of either or a value returned twice comes back a
    copy; the targets not selected come back as they are."""
    from nndsl.interpreter import ALL, schedule
    model = nndsl.compile("input x[3]\nparam W[2, 3]\noutput a = x\noutput b = W\noutput c = transpose(W)\n"
                          "output d = 2\noutput e = sum(x)\noutput f = W x\n", dtype="float64")
    graph = model.graph
    nodes = [model.lowered.named[name] for name in "abcdef"]
    targets = nodes + [nodes[0], nodes[5]]                # a feed and a result, each twice
    plan = schedule(graph, targets, np.float64)
    x, W = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    feeds = {model.inputs["x"]: x, model.params["W"]: W}
    constants = {id(value) for _, value in plan.constants}
    for own in (ALL, slice(1, None), slice(0, 0)):
        compiled = compile_plan(plan, 2, own)
        for values in (compiled(feeds), interpret(plan, graph, dict(feeds), own)):
            assert len(values) == len(targets)
            selected = set(range(*own.indices(len(values))))
            expected = [x, W, W.T, 2.0, x.sum(axis=1), x @ W.T, x, x @ W.T]
            seen = []
            for j, value in enumerate(values):
                np.testing.assert_array_equal(value, expected[j])
                if j in selected:
                    assert type(value) is np.ndarray and value.base is None and value.flags.writeable
                    assert value is not x and value is not W and id(value) not in constants
                    assert all(value is not other for other in seen)
                seen.append(value)


def test_the_fast_call_is_made_once_per_guard_and_feeds_inputs_the_plan_does_not_read():
    """`run` given the loss's input too, then without it: each guard gets its one generated call
    (the plan reads fewer inputs than the guard checks in the first case), and both give what
    the interpreter gave on the first call."""
    model = nndsl.compile("input x[2]\ninput t\nparam W[2]\noutput y = W · x\nloss L = (y - t)^2\n")
    params = model.init()
    x, t = np.arange(6, dtype=np.float32).reshape(3, 2), np.ones(3, np.float32)
    for data in ({"x": x, "t": t}, {"x": x}):
        first = model.run(params, **data)
        for _ in range(3):
            again = model.run(params, **data)
            assert again.keys() == first.keys() and all(np.array_equal(again[k], first[k]) for k in first)
    guards = [g for key, gs in model._guards.items() for g in gs]
    assert len(guards) == 2 and all(g.entry is not None for g in guards)
