"""The example models in models/: each one compiles, checks, runs and differentiates, and the
trainable ones actually learn with their declared initialisers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nndsl
from nndsl.cli import main
from oracles import data_for

ROOT = Path(__file__).parent.parent
MODELS = ROOT / "models"
PATHS = sorted(MODELS.glob("*.nn"))
WITH_LOSS = [p for p in PATHS if nndsl.load(p).loss_name is not None]


def model_path(name: str) -> Path:
    return MODELS / f"{name}.nn"


def sgd(model, params: dict, data: dict, lr: float, steps: int) -> dict:
    """Plain full-batch gradient descent through the Python API."""
    for _ in range(steps):
        _, grads = model.grad(params, **data)
        params = {name: params[name] - lr * grads[name] for name in params}
    return params


# ---- every model ---------------------------------------------------------------------------
def test_the_examples_are_there():
    names = {p.stem for p in PATHS}
    expected = {"perceptron", "sigmoid_neuron", "xor", "linear", "mlp2", "mlp3", "mlp4_tanh",
                "mlp5_sigmoid", "still_linear", "sign_neuron", "backprop_1d", "sin_fit", "iris",
                "residual", "shared_weights", "functions"}
    assert expected <= names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_has_a_header_comment(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith(f"# {path.name} -- "), "the first line names the file and says what it shows"
    header = [line for line in lines[:40] if line.startswith("#")]
    assert len(header) >= 5


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_check_command(path, capsys):
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert ": ok" in out and "total parameters" in out


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_run_command(path, capsys):
    assert main(["run", str(path)]) == 0, capsys.readouterr().err
    assert main(["run", str(path), "--format", "json"]) == 0
    assert "null" not in capsys.readouterr().out          # json writes non-finite values as null


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_forward_is_finite(path):
    model = nndsl.load(path)
    params = model.init(seed=0)
    assert all(np.all(np.isfinite(v)) for v in params.values())
    outputs = model.run(params, **data_for(model))
    assert outputs
    for name, value in outputs.items():
        assert np.all(np.isfinite(value)), name


@pytest.mark.parametrize("path", WITH_LOSS, ids=lambda p: p.name)
def test_gradients_are_finite(path, capsys, tmp_path):
    model = nndsl.load(path)
    params = model.init(seed=0)
    data = data_for(model)
    loss, grads = model.grad(params, **data)
    assert np.isfinite(loss)
    assert set(grads) == set(params) and grads
    for name, g in grads.items():
        assert g.shape == params[name].shape
        assert np.all(np.isfinite(g)), name
    # the command, given the same data in a file, computes the same
    np.savez(tmp_path / "d.npz", **data)
    assert main(["grad", str(path), "--data", str(tmp_path / "d.npz"), "--format", "json"]) == 0, \
        capsys.readouterr().err
    doc = json.loads(capsys.readouterr().out)
    assert doc["loss"] == pytest.approx(loss, rel=1e-6)
    assert doc["gradients"].keys() == grads.keys()
    for name, g in grads.items():
        np.testing.assert_allclose(doc["gradients"][name], g, rtol=1e-6, atol=1e-7)


# ---- specific models -------------------------------------------------------------------------
def test_backprop_1d():
    model = nndsl.load(model_path("backprop_1d"), dtype="float64")
    params = model.init()
    assert params["w"] == 1.0
    data = model.default_data()
    assert model.run(params, **data)["ŷ"] == 2.0
    loss, grads = model.grad(params, **data)
    assert loss == 0.5
    assert grads["w"] == 2.0                          # (ŷ − y) x = (2 − 1) · 2
    w = params["w"] - 0.1 * grads["w"]
    assert w == 0.8
    assert model.loss({"w": w}, **data) == pytest.approx(0.5 * (1.6 - 1) ** 2)


def test_backprop_1d_float32_and_cli(capsys):
    model = nndsl.load(model_path("backprop_1d"))
    loss, grads = model.grad(model.init(), **model.default_data())
    assert grads["w"] == np.float32(2.0)
    assert main(["grad", str(model_path("backprop_1d")), "--check"]) == 0
    assert "passed" in capsys.readouterr().out


def test_still_linear_is_linear():
    model = nndsl.load(model_path("still_linear"), dtype="float64")
    params = model.init(seed=3)
    x = np.random.default_rng(1).normal(size=(7, 4))
    out = model.run(params, x=x)
    product = params["W3"] @ params["W2"] @ params["W1"]
    expected = x @ product.T
    assert out["f"].shape == (7, 3)
    np.testing.assert_allclose(out["f"], expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(out["g"], expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(out["W4"], product, rtol=0, atol=1e-12)


def test_sign_neuron_values():
    model = nndsl.load(model_path("sign_neuron"))
    out = model.run(model.init(), **model.default_data())
    np.testing.assert_array_equal(out["f"], [1, -1, 0, -1])


def test_seed_formulas_shapes():
    """The formulas of SPEC section 9 with a batch: [B, n_in] -> [B, n_out]."""
    x = np.random.default_rng(0).normal(size=(5, 4))
    for name in ("linear", "mlp2", "mlp3", "mlp4_tanh", "mlp5_sigmoid"):
        model = nndsl.load(model_path(name))
        assert model.run(model.init(), x=x)["f"].shape == (5, 3), name
        assert model.run(model.init(), x=x[0])["f"].shape == (3,), name


def test_mlp3_matches_numpy():
    model = nndsl.load(model_path("mlp3"), dtype="float64")
    p = model.init(seed=1)
    x = np.random.default_rng(2).normal(size=(6, 4))
    def relu(z):
        return np.maximum(z, 0)
    expected = relu(relu(x @ p["W1"].T) @ p["W2"].T) @ p["W3"].T
    np.testing.assert_allclose(model.run(p, x=x)["f"], expected, atol=1e-12)


def test_shared_and_residual_gradients_check(capsys):
    for name, extra in (("shared_weights", []), ("residual", ["--wrt", "W1,W2,V1,V2,h"]),
                        ("functions", [])):
        assert main(["grad", str(model_path(name)), "--check", *extra]) == 0, name
    capsys.readouterr()


def test_iris_data():
    model = nndsl.load(model_path("iris"))
    data = model.default_data()
    assert data["x"].shape == (150, 4)
    assert data["k"].shape == (150,)
    assert np.bincount(data["k"].astype(int)).tolist() == [50, 50, 50]
    np.testing.assert_array_equal(data["x"][0], [6.1, 2.8, 4.0, 1.3])
    # Rows are in a shuffled order, so that a validation split of the last rows holds every species.
    assert np.bincount(data["k"][-30:].astype(int)).tolist() == [8, 12, 10]


# ---- they learn ------------------------------------------------------------------------------
def test_perceptron_converges_with_sgd_batch_1():
    model = nndsl.load(model_path("perceptron"))
    data = model.default_data()
    params = model.init()
    n = len(data["t"])
    for epoch in range(20):
        updates = 0
        for i in range(n):
            _, grads = model.grad(params, x=data["x"][i], t=data["t"][i])
            updates += any(np.any(g != 0) for g in grads.values())
            params = {k: params[k] - 1.0 * grads[k] for k in params}
        if updates == 0:
            break
    else:
        pytest.fail("the perceptron did not converge in 20 epochs")
    z = data["x"] @ params["w"] + params["b"]
    assert np.all(data["t"] * z > 0)                  # zero mistakes, none on the boundary
    f = model.run(params, **data)["f"]
    np.testing.assert_array_equal(2 * f - 1, data["t"])
    assert model.loss(params, **data) == 0.0
    assert epoch + 1 == 8                             # as the header comment says: 7 epochs + 1 quiet
    np.testing.assert_array_equal(params["w"], [3, 3])
    assert params["b"] == -8


def test_xor_learns():
    model = nndsl.load(model_path("xor"))
    data = model.default_data()
    params = model.init(seed=0)
    start = model.loss(params, **data)
    params = sgd(model, params, data, lr=1.0, steps=1000)
    final = model.loss(params, **data)
    assert start > 0.5 and final < 0.1
    p = model.run(params, **data)["p"]
    np.testing.assert_array_equal(p > 0.5, data["t"] == 1)


def test_sigmoid_neuron_learns():
    model = nndsl.load(model_path("sigmoid_neuron"))
    data = model.default_data()
    params = sgd(model, model.init(), data, lr=0.5, steps=1000)
    assert model.loss(params, **data) == pytest.approx(0.347, abs=1e-3)
    p = model.run(params, **data)["p"]
    assert np.mean((p > 0.5) == (data["t"] == 1)) == 0.8


def test_sin_fit_learns():
    model = nndsl.load(model_path("sin_fit"))
    data = model.default_data()
    assert data["x"].shape == (64,)
    params = model.init(seed=0)
    start = model.loss(params, **data)
    params = sgd(model, params, data, lr=0.1, steps=3000)
    final = model.loss(params, **data)
    assert start > 0.4 and final < 1e-3
    y = model.run(params, **data)["y"]
    assert np.max(np.abs(y - np.sin(data["x"]))) < 0.1


def test_iris_learns():
    model = nndsl.load(model_path("iris"))
    data = model.default_data()
    params = model.init(seed=0)
    start = model.loss(params, **data)
    params = sgd(model, params, data, lr=0.5, steps=300)
    final = model.loss(params, **data)
    assert final < 0.1 < start
    p = model.run(params, **data)["p"]
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    accuracy = np.mean(p.argmax(axis=1) == data["k"])
    assert accuracy > 0.9
