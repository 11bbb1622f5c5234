"""The PyTorch backend against the NumPy interpreter: every model in models/ and generated
programs, outputs and gradients (by torch.autograd through the lowered forward graph) to 1e-10
in float64 and 1e-5 in float32; every registry op's mapping, through lowered backward graphs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import nndsl
from nndsl.ops import REGISTRY
from nndsl.torch_backend import lower

from oracles import data_for
from test_generated import generate

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted((ROOT / "models").glob("*.nn"))
N_GENERATED = int(os.environ.get("NNDSL_GENERATED_TORCH", "60"))
TOL = {"float64": 1e-10, "float32": 1e-5}


def close(ours, theirs, dtype: str, what: str):
    theirs = np.asarray(theirs, dtype=np.float64)
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape, what
    assert ours.dtype == np.dtype(dtype), what
    scale = max(1.0, float(np.max(np.abs(theirs), initial=0.0)))
    np.testing.assert_allclose(ours, theirs, rtol=TOL[dtype], atol=TOL[dtype] * scale, err_msg=what)


def compare(model, params: dict, data: dict, dtype: str):
    """run, loss and grad on both backends, and the lowered backward graph against the interpreter."""
    numpy_model = model.astype(dtype)
    torch_model = numpy_model.on("torch")
    ran, ran_t = numpy_model.run(params, inputs=data), torch_model.run(params, inputs=data)
    assert list(ran) == list(ran_t)
    for name in ran:
        close(ran_t[name], ran[name], dtype, f"run: {name}")
    if model.loss_name is None:
        return
    loss, grads = numpy_model.grad(params, inputs=data)
    loss_t, grads_t = torch_model.grad(params, inputs=data)
    assert loss_t == pytest.approx(loss, rel=TOL[dtype], abs=TOL[dtype])
    assert torch_model.loss(params, inputs=data) == pytest.approx(loss, rel=TOL[dtype], abs=TOL[dtype])
    for name in grads:
        close(grads_t[name], grads[name], dtype, f"grad: {name}")
    if dtype == "float64":           # every mapping of the backward graph, too
        graph, objective, nodes = numpy_model.gradient_graph(tuple(numpy_model.params))
        module = lower(graph, {"objective": objective, **nodes}, model.inputs, numpy_model.check_params(params),
                       np.float64)
        feeds, _ = numpy_model.feeds(data)
        outs = module(*[torch.from_numpy(feeds[model.inputs[n]]) for n in module.input_names])
        assert float(outs[0].detach()) == pytest.approx(loss, rel=1e-10, abs=1e-12)
        for name, out in zip(nodes, outs[1:]):
            close(out.detach().numpy(), grads[name], "float64", f"lowered backward graph: {name}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_every_model_agrees_with_numpy(path, dtype):
    model = nndsl.load(path)
    compare(model, model.init(0), data_for(model, batch=5), dtype)


@pytest.mark.parametrize("seed", range(N_GENERATED))
def test_generated_program_agrees_with_numpy(seed):
    program = generate(seed)
    model = nndsl.compile(program.source, filename=f"generated{seed}.nn")
    try:
        compare(model, program.values, program.data, "float64")
        if seed % 4 == 0:
            compare(model, program.values, program.data, "float32")
        if program.wrt_input:
            wrt = [program.wrt_input, next(iter(program.params))]
            m64 = model.astype("float64")
            _, expected = m64.grad(program.values, wrt=wrt, inputs=program.data)
            _, got = m64.on("torch").grad(program.values, wrt=wrt, inputs=program.data)
            for name in wrt:
                close(got[name], expected[name], "float64", f"grad with an input: {name}")
    except Exception as err:
        raise AssertionError(f"generated program {seed} fails on the torch backend:\n{program.source}") from err


def test_every_op_has_a_torch_mapping():
    """A new op fails here until it says what it computes on PyTorch (`torch=` in its defop, nndsl/ops/)."""
    missing = sorted(name for name, op in REGISTRY.items() if op.torch is None)
    assert not missing, f"ops without a torch mapping: {missing}"


def test_one_sample_and_named_values():
    model = nndsl.load(ROOT / "models" / "xor.nn", dtype="float64")
    t = model.on("torch")
    params = model.init(3)
    x = np.array([0.0, 1.0])
    for show in (None, ["h"]):
        a, b = model.run(params, x=x, show=show), t.run(params, x=x, show=show)
        for name in a:
            assert np.shape(b[name]) == np.shape(a[name])
            np.testing.assert_allclose(b[name], a[name], rtol=1e-12)
    data = model.default_data()
    _, g = model.grad(params, wrt=["h", "x"], inputs=data)
    _, gt = t.grad(params, wrt=["h", "x"], inputs=data)
    for name in g:
        np.testing.assert_allclose(gt[name], g[name], rtol=1e-10, atol=1e-14)


def test_to_torch_is_an_nn_module_of_the_params():
    model = nndsl.load(ROOT / "models" / "iris.nn")
    params = model.init(1)
    module = model.to_torch(params)
    assert isinstance(module, torch.fx.GraphModule) and isinstance(module, torch.nn.Module)
    assert dict(module.named_parameters()).keys() == {f"params.{n}" for n in model.params}
    for name, p in module.params.items():
        np.testing.assert_array_equal(p.detach().numpy(), params[name])
    data = model.default_data()
    outs = module(*[torch.tensor(data[n], dtype=torch.float32) for n in module.input_names])
    ran = model.run(params, inputs=data)
    for name, out in zip(module.output_names, outs):
        np.testing.assert_allclose(out.detach().numpy(), ran[name], rtol=1e-5, atol=1e-6)


def test_class_indices_out_of_range_are_bad_input():
    model = nndsl.load(ROOT / "models" / "iris.nn").on("torch")
    data = model.default_data()
    data["k"] = data["k"].copy()
    data["k"][3] = 7
    with pytest.raises(nndsl.NndslError, match="class index 7 is not an integer in") as on_torch:
        model.grad(None, inputs=data)
    with pytest.raises(nndsl.NndslError) as on_numpy:      # the same message, at the same place
        nndsl.load(ROOT / "models" / "iris.nn").grad(None, inputs=data)
    assert on_torch.value.render() == on_numpy.value.render()


def test_api_checks_backend_and_device():
    with pytest.raises(nndsl.NndslError, match="unknown backend 'jax'"):
        nndsl.compile("input x\noutput y = 2 x\n", backend="jax")
    with pytest.raises(nndsl.NndslError, match="add --backend torch"):
        nndsl.compile("input x\noutput y = 2 x\n", device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(nndsl.NndslError, match="CUDA is not available"):
            nndsl.compile("input x\noutput y = 2 x\n", backend="torch", device="cuda")


# ---- training: torch.optim and torch.optim.lr_scheduler, within nndsl's loop ----------------------
SETTINGS = [
    dict(epochs=6, batch=32, optimizer="sgd(lr = 0.1, momentum = 0.9, nesterov = 1, weight_decay = 0.01)",
         schedule="step(2, 0.5)"),
    dict(epochs=6, batch=25, optimizer="adam(lr = 0.01)", schedule="cosine", val=0.2),
    dict(epochs=5, batch=16, optimizer="adamw(lr = 0.01)", schedule="inverse(0.1)"),
    dict(epochs=5, batch=40, optimizer="sgd(lr = 0.2, dampening = 0.5, momentum = 0.5)", schedule="exp(0.9)"),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: s["optimizer"].split("(")[0] + "-" + s["schedule"])
def test_training_on_torch_matches_numpy(settings):
    model = nndsl.load(ROOT / "models" / "iris.nn", dtype="float64")
    expected, history = model.train(**settings)
    got, torch_history = model.on("torch").train(**settings)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-10, atol=1e-12, err_msg=name)
    assert torch_history["lr"] == history["lr"]
    for column in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(np.array(torch_history[column], dtype=float),
                                   np.array(history[column], dtype=float), rtol=1e-10, err_msg=column)


@pytest.mark.parametrize("settings", [SETTINGS[0], dict(SETTINGS[1], schedule="exp(0.8)")], ids=["sgd", "adam"])
def test_resumed_torch_run_is_bit_identical(settings, tmp_path):
    """(cosine's rate depends on the number of epochs, so a shorter first run would not be a
    prefix of the whole one)"""
    model = nndsl.load(ROOT / "models" / "iris.nn").on("torch")
    whole, _ = model.train(**settings)
    half = dict(settings, epochs=settings["epochs"] // 2)
    model.train(**half, checkpoint=tmp_path / "ck.npz")
    resumed, history = model.train(**settings, resume=tmp_path / "ck.npz")
    assert len(history) == settings["epochs"]
    for name in whole:
        np.testing.assert_array_equal(resumed[name], whole[name], err_msg=name)


def test_command_line_backends_agree(tmp_path, capsys):
    from nndsl.cli import main
    xor = str(ROOT / "models" / "xor.nn")
    for backend in ("numpy", "torch"):
        assert main(["run", xor, "--backend", backend, "--dtype", "float64", "-o", str(tmp_path / f"run_{backend}.npz")]) == 0
        assert main(["grad", xor, "--backend", backend, "--dtype", "float64",
                     "-o", str(tmp_path / f"grad_{backend}.npz")]) == 0
        assert main(["train", xor, "--backend", backend, "--dtype", "float64", "--epochs", "50", "-q",
                     "-o", str(tmp_path / f"train_{backend}.npz")]) == 0
    capsys.readouterr()
    for kind in ("run", "grad", "train"):
        a, b = np.load(tmp_path / f"{kind}_numpy.npz"), np.load(tmp_path / f"{kind}_torch.npz")
        assert a.files == b.files
        for name in a.files:
            np.testing.assert_allclose(b[name], a[name], rtol=1e-10, atol=1e-12, err_msg=f"{kind}: {name}")


@pytest.mark.parametrize("source, flags", [
    ("input x\ninput t\nparam w = 1\ny = w x\nloss L = mse(y, t)\ndata x = [1, 2, 3]\ndata t = [2, 4, 7]\n",
     ["--lr", "10", "--epochs", "50"]),
    ("input x\nparam w = 0\nloss L = sqrt(w) + x\ndata x = [1, 2]\n", ["--epochs", "5"]),
], ids=["inf-loss", "inf-gradient"])
def test_a_diverging_run_stops_alike_on_both_backends(tmp_path, capsys, source, flags):
    from nndsl.cli import main
    path = tmp_path / "m.nn"
    path.write_text(source)
    results = {}
    for backend in ("numpy", "torch"):
        out = tmp_path / f"{backend}.npz"
        assert main(["train", str(path), "-q", "--backend", backend, *flags, "-o", str(out)]) == 1
        results[backend] = (capsys.readouterr().err, dict(np.load(out)))
    assert results["torch"][0] == results["numpy"][0]
    np.testing.assert_array_equal(results["torch"][1]["w"], results["numpy"][1]["w"])
