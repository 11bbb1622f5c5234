#!/usr/bin/env python3
"""The NumPy and PyTorch backends on one step of the large workload: 784-1024-1024-10 relu,
softmax cross-entropy, batch 512, float32 — the batch-mean loss and every gradient, no update.

    python bench/backends.py [--rounds 11] [--block 0.3] [--batch 512] [--layers 784,1024,1024,10]

Sides, interleaved in rounds in one process (median, min-max of the rounds):
  numpy        `model.grad(params, x=X, k=K)`: the interpreter
  torch cpu    `model.on("torch").grad(...)`: the same call on the torch backend (arrays in and out,
               so it includes copying the parameters in and the gradients out)
  torch cpu, module   the lowered torch.fx module alone, tensors already in place: forward and
               torch.autograd.grad, what a torch training loop pays per step
  torch cuda   the same two on the GPU, when one is present (skipped otherwise, with the reason);
               timed with torch.cuda.synchronize() after each step

Before timing, every side's loss must be NumPy's to 1e-5 and its gradients to 1e-2 in norm (in
float32, a pre-activation next to relu's kink lands on the other side under another summation
order). Machines are noisy: compare the numbers of one run. Needs no reference anchors.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import nndsl
from _common import classifier


def problem(layers, batch, dtype="float32"):
    rng = np.random.default_rng(1234)
    model = nndsl.compile(classifier(layers), dtype=dtype)
    params = model.init(0)
    data = {"x": rng.standard_normal((batch, layers[0])).astype(dtype),
            "k": rng.integers(0, layers[-1], size=batch).astype(dtype)}
    return model, params, data


def module_step(model, params, data, device):
    """The lowered module's forward and torch.autograd.grad, inputs already on `device`."""
    import torch
    graph, objective = model.objective_graph()
    from nndsl.torch_backend import lower
    module = lower(graph, {"L": objective}, model.inputs, params, model.dtype).to(device)
    xs = [torch.from_numpy(data[n]).to(device) for n in module.input_names]
    leaves = list(module.params.values())
    names = list(module.params.keys())
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def step():
        loss = module(*xs)[0]
        grads = torch.autograd.grad(loss, leaves)
        sync()
        return loss, grads

    def as_numpy():
        loss, grads = step()
        return float(loss.detach()), {n: g.cpu().numpy() for n, g in zip(names, grads)}
    return step, as_numpy


def api_step(model, params, data):
    def step():
        return model.grad(params, inputs=data)
    return step, step


def check(name, fn, ref_loss, ref_grads):
    loss, grads = fn()
    if not abs(loss - ref_loss) <= 1e-5 * max(1.0, abs(ref_loss)):
        raise SystemExit(f"{name}: loss {loss!r} differs from numpy's {ref_loss!r}")
    for key, ref in ref_grads.items():
        err, bound = float(np.linalg.norm(grads[key] - ref)), 1e-2 * float(np.linalg.norm(ref)) + 1e-12
        if not err <= bound:
            raise SystemExit(f"{name}: gradient of {key} differs from numpy's by {err:.3g} (allowed {bound:.3g})")


def timed(fn, block):
    for _ in range(2):
        fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= block:
            return elapsed / n


def fmt(seconds):
    return f"{seconds * 1e3:.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--block", type=float, default=0.3, help="seconds of steps per side per round (default 0.3)")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--layers", default="784,1024,1024,10")
    args = ap.parse_args()
    layers = [int(v) for v in args.layers.split(",")]
    try:
        import torch
    except ImportError:
        print("torch is not installed (pip install 'nndsl[torch]'): nothing to compare")
        return 0
    model, params, data = problem(layers, args.batch)
    on_torch = model.on("torch")
    sides = {"numpy": api_step(model, params, data), "torch cpu": api_step(on_torch, params, data),
             "torch cpu, module": module_step(model, params, data, "cpu")}
    if torch.cuda.is_available():
        on_cuda = model.on("torch", "cuda")
        sides["torch cuda"] = api_step(on_cuda, params, data)
        sides["torch cuda, module"] = module_step(model, params, data, "cuda")
        cuda_note = f"cuda: {torch.cuda.get_device_name()}"
    else:
        reason = "this PyTorch has no CUDA support" if torch.version.cuda is None else "no GPU found"
        cuda_note = f"cuda: skipped ({reason})"
    ref_loss, ref_grads = sides["numpy"][1]()
    for name, (_, as_numpy) in sides.items():
        check(name, as_numpy, ref_loss, ref_grads)
    print(f"# {'-'.join(map(str, layers))} relu, batch {args.batch}, float32, one step (loss and every gradient); "
          f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}; {cuda_note}", flush=True)
    times = {name: [] for name in sides}
    for r in range(args.rounds):
        order = list(sides)[r % len(sides):] + list(sides)[:r % len(sides)]
        for name in order:
            times[name].append(timed(sides[name][0], args.block))
    base = statistics.median(times["numpy"])
    print(f"{'side':20} {'median':>10} {'min-max':>20} {'vs numpy':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:20} {fmt(med):>10} {fmt(min(ts)) + '-' + fmt(max(ts)):>20} {med / base:9.2f}")
    if not torch.cuda.is_available():
        print(cuda_note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
