"""`nndsl export --format torch`: a standalone module (no nndsl import) whose Model computes what
the NumPy interpreter computes, for every model in models/."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nndsl
from nndsl.cli import main

from oracles import data_for

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted((ROOT / "models").glob("*.nn"))


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_exported_module_matches_the_interpreter(path, dtype, tmp_path, capsys):
    model = nndsl.load(path, dtype=dtype)
    params = model.init(1)
    np.savez(tmp_path / "p.npz", **params)
    out = tmp_path / f"{path.stem}_model.py"
    assert main(["export", str(path), "--dtype", dtype, "--params", str(tmp_path / "p.npz"), "--format", "torch",
                 "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "nndsl" not in "".join(line for line in text.splitlines() if "import" in line)
    exported = load_module(out)
    net = exported.Model()
    for name, p in net.params.items():
        np.testing.assert_array_equal(p.detach().numpy(), params[name])
    data = data_for(model, batch=4)
    feeds, _ = model.feeds(data)
    results = net(*[torch.from_numpy(feeds[model.inputs[n]]) for n in exported.INPUTS])
    expected = model.run(params, inputs=data)
    tol = 1e-10 if dtype == "float64" else 1e-5
    assert list(exported.OUTPUTS) == [n for n in expected if n in exported.OUTPUTS]
    for name, value in zip(exported.OUTPUTS, results):
        np.testing.assert_allclose(value.detach().numpy(), expected[name], rtol=tol, atol=tol, err_msg=name)
    if model.loss_name is not None:                  # and torch.autograd through it gives nndsl's gradients
        loss = results[exported.OUTPUTS.index(model.loss_name)].mean()
        loss.backward()
        _, grads = model.grad(params, inputs=data)
        for name, p in net.params.items():
            np.testing.assert_allclose(p.grad.numpy(), grads[name], rtol=tol, atol=tol, err_msg=name)


def test_large_parameters_travel_as_bytes_and_the_file_needs_no_nndsl(tmp_path):
    source = "input x[100]\nparam W[20, 100] = normal(1)\nparam θ[20]\noutput y = tanh(W x + θ)\n"
    model = nndsl.compile(source, dtype="float64")
    params = model.init(2)
    out = tmp_path / "big.py"
    from nndsl.export import export
    out.write_text(export(model, "torch", params=params), encoding="utf-8")
    script = ("import sys, numpy as np, torch; sys.modules['nndsl'] = None; sys.path.insert(0, sys.argv[1]); import big; "
              "m = big.Model(); x = torch.from_numpy(np.load(sys.argv[2])); print(repr(m(x)[0].detach().numpy().tolist()))")
    x = np.random.default_rng(0).normal(size=(3, 100))
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, PYTHONPATH="")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(tmp_path / "x.npy")], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.array(eval(proc.stdout)), model.run(params, x=x)["y"], rtol=1e-12)
    assert "base64" in out.read_text(encoding="utf-8")


def test_grad_is_not_exported_as_a_module(tmp_path, capsys):
    assert main(["export", str(ROOT / "models" / "xor.nn"), "--format", "torch", "--grad"]) == 2
    assert "torch.autograd gives its gradients" in capsys.readouterr().err
