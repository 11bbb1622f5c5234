"""Data-parallel training: two CPU processes under torchrun (gloo) end with the parameters one
process reaches with the same global batch, also when the batch does not split evenly, and a
run resumed from a checkpoint written by rank 0 ends where an uninterrupted one does. Then the
command line's bad flag combinations, each a one-line error with exit status 2."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nndsl

ROOT = Path(__file__).resolve().parents[1]
XOR = ROOT / "models" / "xor.nn"
IRIS = ROOT / "models" / "iris.nn"


def env(**extra) -> dict:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def nndsl_cli(*args, cwd, extra_env=None):
    return subprocess.run([sys.executable, "-m", "nndsl", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env(**(extra_env or {})), timeout=300)


def torchrun(*args, cwd):
    """`torchrun --standalone --nproc-per-node 2 -m nndsl ARGS` (as docs/training.md writes it)."""
    launcher = shutil.which("torchrun")
    command = [launcher] if launcher else [sys.executable, "-m", "torch.distributed.run"]
    proc = subprocess.run(command + ["--standalone", "--nproc-per-node", "2", "-m", "nndsl", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env(), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    return proc


def assert_same_params(got: dict, expected: dict, rtol: float = 1e-6):
    assert got.keys() == expected.keys()
    for name in expected:
        scale = max(1.0, float(np.max(np.abs(expected[name]))))
        np.testing.assert_allclose(got[name], expected[name], rtol=rtol, atol=rtol * scale, err_msg=name)


def one_process(path, **settings) -> dict:
    """One process on the torch backend, with one thread as each torchrun worker has (on a busy
    machine, torch's thread pool makes tiny steps slow)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        params, _ = nndsl.load(path).on("torch").train(**settings)
    finally:
        torch.set_num_threads(threads)
    return params


@pytest.mark.slow
def test_xor_on_two_processes_matches_one(tmp_path):
    """The model's own settings: full batch of 4, two samples per rank, 1000 epochs of SGD."""
    proc = nndsl_cli("train", XOR, "--nproc", 2, "-q", "-o", "two.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("wrote two.npz") == 1            # rank 0 alone reports and writes
    assert_same_params(dict(np.load(tmp_path / "two.npz")), one_process(XOR))


@pytest.mark.slow
def test_iris_on_two_processes_matches_one_uneven_batches_and_resume(tmp_path):
    """Batches of 25 (13 and 12 per rank; the last of 120 samples 20), shuffled, momentum; ten
    epochs with a checkpoint, then a resumed run to twenty, against one process's twenty."""
    flags = ["--batch-size", 25, "--optimizer", "sgd(lr = 0.1, momentum = 0.9)", "-q"]
    torchrun("train", IRIS, *flags, "--epochs", 10, "--checkpoint", "ck.npz", "-o", "ten.npz", cwd=tmp_path)
    assert (tmp_path / "ck.npz").exists()
    assert_same_params(dict(np.load(tmp_path / "ten.npz")),
                       one_process(IRIS, batch=25, optimizer="sgd(lr = 0.1, momentum = 0.9)", epochs=10))
    torchrun("train", IRIS, *flags, "--epochs", 20, "--resume", "ck.npz", "-o", "twenty.npz", cwd=tmp_path)
    expected = one_process(IRIS, batch=25, optimizer="sgd(lr = 0.1, momentum = 0.9)", epochs=20)
    assert_same_params(dict(np.load(tmp_path / "twenty.npz")), expected)
    numpy_params, _ = nndsl.load(IRIS).train(batch=25, optimizer="sgd(lr = 0.1, momentum = 0.9)", epochs=20)
    assert_same_params(expected, numpy_params, rtol=1e-5)     # and the NumPy backend, to float32 rounding


@pytest.mark.parametrize("size, world", [(4, 2), (25, 2), (7, 3), (1, 2), (2, 3)])
def test_weighted_shares_average_to_the_whole_batch_gradient(size, world):
    """Each rank's share of a batch and its weight (also when the batch does not split evenly, or
    has fewer samples than there are ranks): the average over ranks of the weighted gradients,
    as DistributedDataParallel takes it, is the whole batch's gradient."""
    from nndsl.torch_backend import lower
    from nndsl.torch_training import share
    model = nndsl.load(IRIS, dtype="float64")
    graph, objective = model.objective_graph()
    module = lower(graph, {"L": objective}, model.inputs, model.init(0), np.float64)
    data = model.default_data()
    order = np.random.default_rng(size).permutation(len(data["k"]))[:size]

    def gradient(index, weight=1.0):
        module.zero_grad()
        xs = [torch.from_numpy(data[name][index].astype(np.float64)) for name in module.input_names]
        (module(*xs)[0] * weight).backward()
        return [p.grad.clone() for p in module.parameters()]

    import torch
    total = [torch.zeros_like(p) for p in module.parameters()]
    parts = []
    for rank in range(world):
        part, weight = share(order, world, rank)
        parts.append(part)
        if len(part) == 0:
            assert weight == 0
            continue
        total = [t + g / world for t, g in zip(total, gradient(part, weight))]
    assert np.array_equal(np.concatenate(parts), order)
    for got, expected in zip(total, gradient(order)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12, atol=1e-15)


# ---- bad flag combinations: one line, exit status 2 ----------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["train", XOR, "--nproc", "0"], "--nproc 0: give a positive number of processes"),
    (["train", XOR, "--nproc", "2", "--backend", "numpy"], "use --backend torch, not numpy"),
    (["run", XOR, "--device", "cpu"], "--device cpu runs on PyTorch: add --backend torch"),
    (["run", XOR, "--backend", "torch", "--device", "tpu"], "unknown device 'tpu'"),
    (["train", XOR, "--nproc", "2", "--device", "mps"], None),
])
def test_bad_flags_are_one_line_errors(tmp_path, args, message):
    proc = nndsl_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    if message:
        assert message in lines[0]


def test_cuda_without_cuda_is_a_one_line_error(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for command in (["run", XOR], ["grad", XOR], ["train", XOR, "--epochs", "1"]):
        proc = nndsl_cli(*command, "--backend", "torch", "--device", "cuda", cwd=tmp_path)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "CUDA is not available" in proc.stderr


def test_torch_backend_without_torch_says_how_to_install(tmp_path):
    fake = tmp_path / "no_torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named torch')\n")
    for command in (["run", XOR, "--backend", "torch"], ["train", XOR, "--nproc", "2"],
                    ["export", XOR, "--format", "torch"]):
        proc = nndsl_cli(*command, cwd=tmp_path, extra_env={"PYTHONPATH": f"{fake.parent}{os.pathsep}{ROOT}"})
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "pip install 'nndsl[torch]'" in proc.stderr, proc.stderr
    proc = nndsl_cli("run", XOR, cwd=tmp_path, extra_env={"PYTHONPATH": f"{fake.parent}{os.pathsep}{ROOT}"})
    assert proc.returncode == 0, proc.stderr               # the NumPy backend needs no torch
