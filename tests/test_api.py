"""The Python API validates what the CLI validates, speaks without CLI flags, never lets an input's
name collide with its own arguments, and hands out arrays that are the caller's own."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nndsl
from nndsl import NndslError
from nndsl.cli import main

ROOT = Path(__file__).resolve().parent.parent

MODEL = """\
input x[2]
input t
param w[2] = [1, 2]
param b
y = w · x + b
loss L = mse(y, t)
data x = [[0, 1], [1, 0]]
data t = [1, 2]
"""


@pytest.mark.parametrize("dims, message", [
    ({"h": 2.5}, "dims: 'h' must be a positive whole number, not 2.5"),
    ({"h": 0}, "dims: 'h' must be a positive whole number, not 0"),
    ({"h": -3}, "dims: 'h' must be a positive whole number, not -3"),
    ({"h": "4"}, "dims: 'h' must be a positive whole number, not '4'"),
    ({"h": True}, "dims: 'h' must be a positive whole number, not True"),
])
def test_dims_are_checked(dims, message):
    with pytest.raises(NndslError) as info:
        nndsl.compile("dim h = 3\ninput x[h]\ny = x\n", dims)
    assert info.value.message == message


@pytest.mark.parametrize("dtype", ["int32", "float16", "complex64", "banana", int])
def test_only_float32_and_float64(dtype):
    with pytest.raises(NndslError, match="nndsl computes in float32 or float64"):
        nndsl.compile(MODEL, dtype=dtype)
    with pytest.raises(NndslError, match="nndsl computes in float32 or float64"):
        nndsl.compile(MODEL).astype(dtype)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_init_seed_is_checked(seed):
    with pytest.raises(NndslError, match="seed must be a whole number >= 0"):
        nndsl.compile(MODEL).init(seed)


def test_messages_do_not_name_cli_flags():
    model = nndsl.compile(MODEL)
    with pytest.raises(NndslError) as info:
        model.grad(wrt=["nope"], x=[1, 2], t=1)
    assert info.value.render() == ("error: cannot differentiate with respect to 'nope': the model has no value of "
                                   "that name (named values: x, t, w, b, y, L)")
    with pytest.raises(NndslError) as info:
        model.run(t=1)
    assert "-i" not in info.value.render() and "--data" not in info.value.render()
    assert info.value.render(hint=True).splitlines()[0].endswith("(give it with -i x=VALUE or --data)")


def test_misspelt_or_extra_parameters_are_errors():
    model = nndsl.compile(MODEL)
    params = model.init()
    with pytest.raises(NndslError) as info:
        model.run({**params, "W": np.zeros(2)}, x=[1, 2])
    assert info.value.message == ("parameters has a value for 'W', which is not a parameter of the model; did you "
                                  "mean 'w'? (parameters: w, b)")
    with pytest.raises(NndslError, match="has no value for parameter 'b'"):
        model.run({"w": params["w"]}, x=[1, 2])


def test_scalar_results_are_0d_arrays():
    model = nndsl.compile(MODEL)
    _, grads = model.grad(**model.default_data())
    assert isinstance(grads["b"], np.ndarray) and grads["b"].shape == ()
    params, _ = model.train(epochs=2)
    assert isinstance(params["b"], np.ndarray) and params["b"].shape == ()
    assert isinstance(model.init()["b"], np.ndarray)


@pytest.mark.parametrize("name", ["params", "wrt", "inputs", "vector", "self", "dims"])
def test_inputs_named_like_api_arguments(name, tmp_path, capsys):
    """Any legal input name works through inputs={...}, and from the command line."""
    source = f"input {name}\nparam a = 2\nloss L = (a {name} - 1)^2\ndata {name} = [1, 2]\n"
    model = nndsl.compile(source, dtype="float64")
    data = {name: np.array([1.0, 2.0])}
    assert model.run(inputs=data)["L"].tolist() == [1.0, 9.0]
    loss, grads = model.grad(inputs=data)
    assert loss == 5.0 and float(grads["a"]) == pytest.approx((2 * 1 * 1 + 2 * 3 * 2) / 2)
    loss, grads = model.grad(wrt=[name], inputs=data)
    assert grads[name].shape == (2,)
    assert model.loss(inputs=data) == 5.0
    assert float(model.hvp(None, {"a": np.array(1.0)}, inputs=data)["a"]) == pytest.approx((2 * 1 + 2 * 4) / 2)
    path = tmp_path / "m.nn"
    path.write_text(source)
    for command in (["run"], ["grad"], ["grad", "--wrt", name], ["check"], ["train", "-q", "--epochs", "1",
                                                                            "-o", str(tmp_path / "p.npz")]):
        assert main([command[0], str(path), *command[1:]]) == 0, command
    capsys.readouterr()


def test_an_input_given_twice_is_an_error():
    model = nndsl.compile(MODEL)
    with pytest.raises(NndslError, match="input 'x' is given twice"):
        model.run(x=[1, 2], inputs={"x": [1, 2]})


def test_hvp_needs_parameters():
    model = nndsl.compile("input x\ninput t\nloss L = mse(x, t)\n")
    with pytest.raises(NndslError, match="the model has no parameters"):
        model.hvp(None, {}, x=[1.0], t=[2.0])


def test_grad_without_parameters_names_what_is_missing():
    model = nndsl.compile("input x\ninput t\nloss L = mse(x, t)\n")
    with pytest.raises(NndslError, match="the model has no parameters, and wrt names no input"):
        model.grad(x=[1.0], t=[2.0])
    _, grads = model.grad(wrt=["x"], x=[1.0], t=[2.0])
    assert grads["x"].tolist() == [-2.0]


# ---- no array handed out is shared with the model ---------------------------------------------------
def test_default_data_is_the_callers_own():
    model = nndsl.compile(MODEL)
    data = model.default_data()
    data["x"] += 100
    assert model.default_data()["x"].tolist() == [[0, 1], [1, 0]]


def test_init_is_the_callers_own():
    model = nndsl.compile(MODEL)
    params = model.init()
    params["w"] += 100
    assert model.init()["w"].tolist() == [1, 2]


def test_run_returns_no_view_of_inputs_or_parameters():
    model = nndsl.compile("input x[2]\nparam W[2, 2]\noutput a = x\noutput b = W\noutput c = transpose(W)\n")
    params = model.init()
    x = np.array([1.0, 2.0], dtype=np.float32)
    out = model.run(params, x=x)
    for value in out.values():
        assert not np.shares_memory(value, x) and not np.shares_memory(value, params["W"])


def test_hvp_and_loss_results_are_fresh():
    model = nndsl.compile(MODEL, dtype="float64")
    params, data = model.init(), model.default_data()
    vector = {"w": np.ones(2), "b": np.array(1.0)}
    first = model.hvp(params, vector, **data)
    first["w"] += 5
    again = model.hvp(params, vector, **data)
    assert not np.array_equal(first["w"], again["w"])


def test_results_never_share_memory_with_the_inputs_even_through_views_of_views():
    model = nndsl.compile("input x[3]\nparam W[4, 3]\noutput first = x[0]\noutput same = x\noutput y = W x\n"
                          "loss L = sum(W x)\n")
    data = np.arange(12.0, dtype=np.float32).reshape(4, 3)
    batch = data[1:3]                                  # the caller's view of its own array, fed as it is
    params = model.init()
    for _ in range(3):                                 # interpreted, then compiled
        out = model.run(params, x=batch)
        for name, value in out.items():
            assert not np.shares_memory(value, data), name
            assert not np.shares_memory(value, params["W"]), name
    wide = nndsl.compile("input x[5]\nparam W[2, 5]\nloss L = sum(W x)\n")
    p = wide.init()
    for _ in range(3):
        _, grads = wide.grad(p, x=np.ones((3, 5)))
        assert grads["W"].shape == (2, 5) and grads["W"].flags.writeable
        assert not np.shares_memory(grads["W"], p["W"])
        np.testing.assert_allclose(grads["W"], np.full((2, 5), 1.0))


@pytest.mark.parametrize("call", ["grad", "run", "loss", "train"])
def test_parameters_and_inputs_of_the_wrong_kind_are_errors_before_and_after_the_fast_path(call):
    """Bad arguments to the Python API are NndslErrors, the first time and once the guard and
    the compiled plan take calls with arrays of known kinds (which they must hand on)."""
    model = nndsl.load(ROOT / "models" / "xor.nn")
    params = model.init()
    data = {k: v.astype(np.float32) for k, v in model.default_data().items()}
    method = getattr(model, call)
    extra = {"epochs": 1} if call == "train" else {}
    for _ in range(3):
        for bad in ([1, 2, 3, 4], "W1", 5):
            with pytest.raises(nndsl.NndslError, match=f"parameters must be a mapping .* not {type(bad).__name__}"):
                method(bad, **data, **extra)
        with pytest.raises(nndsl.NndslError, match="inputs must be a mapping of input names to arrays, not list"):
            method(params, inputs=[data["x"], data["t"]], **extra)
        with pytest.raises(nndsl.NndslError, match="has a value for '3', which is not a parameter"):
            method({**params, 3: params["b2"]}, **data, **extra)
        method(params, **data, **extra)
