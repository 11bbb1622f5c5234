#!/usr/bin/env python3
"""Every benchmark workload with its target, in ONE process, interleaved in rounds: nndsl against
hand-written NumPy (the anchors' plain and tuned steps) and, when installed, PyTorch eager (the
anchor's torch step).

    python bench/all.py [--rounds N] [--workloads tiny,small,...] [--quick] [--json FILE]
                        [--no-torch] [--anchors DIR]

Workloads (float32):
  tiny       XOR 2-4-1, batch 4: one step (batch-mean loss and every gradient, no update)
  small      64-64-10 relu, batch 32, softmax cross-entropy: one step
  medium     784-256-256-10 relu, batch 128: one step
  large      784-1024-1024-10 relu, batch 512: one step; also the peak memory (tracemalloc) of
             one step of each side, nndsl beside the hand-written NumPy step
  train_xor  `Model.train` on XOR, full batch of 4, 2000 epochs of SGD a round, against the same
             loop by hand (bench/train_throughput.py's `xor`)
  train_mlp  `Model.train` on 784-256-10, batch 128, 5 shuffled epochs a round, against the same
             loop by hand (bench/train_throughput.py's `mlp`)

The per-step problems are the anchors' (`make_problem`); nndsl's side is `model.grad` on the
model sources of bench/mlp_step.py (bench/_common.py). Before anything is timed, every side must
give NumPy plain's loss and gradients, in float64 and in float32 (training: the same initial
loss, and both sides must learn, checked every round).

Unlike the anchors, which run each backend in a subprocess of its own, everything here runs in
this ONE process, interleaved, with the machine's thread settings: NumPy's BLAS and torch keep
the thread counts they start with, and their two thread pools share the cores. A round visits
every workload; within a workload the NumPy-based sides (nndsl, NumPy plain, NumPy tuned) run in
an order that rotates from round to round, torch after them. A side times one block: for a
step, as many calls as fill --block seconds, after untimed calls for half a block (the previous
side's BLAS or OpenMP threads may still be spinning); for training, one `train` call. Reported per side:
the median (min-max) over the rounds of the time per step (training: per epoch); ratio = the
median of the per-round ratios nndsl / NumPy plain, against the target. Machines are noisy:
compare ratios from one run, not absolute times across runs.

--quick runs 3 rounds of short blocks and skips the large workload (a smoke run). DIR holds the
reference anchors (default: ../shared/bench/anchors beside the checkout, or beside the main
checkout of a git worktree). Exit status 0 whatever the ratios (1: a side computes something
else).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import tracemalloc

import numpy as np

import train_throughput
from _common import build, default_anchors

STEPS = {   # key: (the anchors' size, label, target ratio)
    "tiny": ("tiny", "XOR 2-4-1, batch 4 (step)", 1.00),
    "small": ("small", "64-64-10 relu, batch 32 (step)", 1.05),
    "medium": ("medium", "784-256-256-10 relu, batch 128 (step)", 1.03),
    "large": ("large", "784-1024-1024-10 relu, batch 512 (step)", 1.02),
}
TRAINS = {  # key: (bench/train_throughput.py's workload, label, target ratio)
    "train_xor": (train_throughput.xor, "train XOR 2-4-1, batch 4 (epoch)", 1.05),
    "train_mlp": (train_throughput.mlp, "train 784-256-10, batch 128 (epoch)", 1.05),
}
LABELS = {**{k: v[1] for k, v in STEPS.items()}, **{k: v[1] for k, v in TRAINS.items()}}
SIDES = ("nndsl", "numpy plain", "numpy tuned", "torch")
MEMORY = ("large",)             # workloads whose peak memory is measured and part of the target


class Workload:
    def __init__(self, key, label, target, unit):
        self.key, self.label, self.target, self.unit = key, label, target, unit
        self.sides = {}         # side: () -> seconds per step (or epoch) of one timed block
        self.times = {}         # side: [seconds per step, one per round]
        self.ratios = []        # per round: nndsl / numpy plain
        self.peak = {}          # side: bytes traced during one step
        self.extra = {}


def steps(anchor, size, dtype, torch):
    """Every side's step on the anchors' problem `size` in `dtype`, and nndsl's parameter names."""
    ours, plain, names = build(anchor, size, dtype)
    cfg, params, X, Y = anchor.make_problem(size, dtype)
    fns = {"nndsl": ours, "numpy plain": plain, "numpy tuned": anchor.build_np_tuned(cfg, params, X, Y)}
    if torch is not None:
        fns["torch"] = anchor.build_torch(cfg, params, X, Y)
    return fns, names


def check(key, fns, names, dtype):
    """Every side's loss and gradients are NumPy plain's: in float64 to rounding (1e-9 of the
    largest gradient); in float32, the timed steps, to 1e-5 in norm, torch's to 1e-2: its BLAS sums
    in other orders, and in float32 a pre-activation next to relu's kink then lands on the other
    side, which moves gradients (torch's dW1 of 784-1024-1024 by 0.25%)."""
    ref_loss, ref_grads = fns["numpy plain"]()
    ref_loss, ref_grads = float(ref_loss), [np.array(g, dtype=np.float64) for g in ref_grads]
    for side, fn in fns.items():
        loss, grads = fn()
        if side == "nndsl":
            grads = [grads[n].T if grads[n].ndim == 2 else grads[n] for n in names]
        elif side == "torch":
            loss, grads = loss.item(), [g.numpy() for g in grads]
        loss, exact = float(loss), dtype == "float64"
        if not abs(loss - ref_loss) <= (1e-12 if exact else 1e-5) * max(1.0, abs(ref_loss)):
            raise SystemExit(f"{key} ({dtype}): {side} loss {loss!r} differs from numpy plain's {ref_loss!r}")
        for i, (g, r) in enumerate(zip(grads, ref_grads)):
            g = np.asarray(g, dtype=np.float64)
            if g.shape != r.shape:
                raise SystemExit(f"{key}: {side} gradient {i} has shape {g.shape}, numpy plain's {r.shape}")
            if exact:
                err, bound = float(np.max(np.abs(g - r))), 1e-9 * float(np.max(np.abs(r))) + 1e-15
            else:
                rel = 1e-2 if side == "torch" else 1e-5
                err, bound = float(np.linalg.norm(g - r)), rel * float(np.linalg.norm(r)) + 1e-12
            if not err <= bound:
                raise SystemExit(f"{key} ({dtype}): {side} gradient {i} differs from numpy plain's by {err:.3g} "
                                 f"(allowed {bound:.3g})")


def peak_bytes(fn) -> int:
    """Bytes allocated at the peak of one call, above what was allocated before it (NumPy reports
    its array buffers to tracemalloc); what the call returns counts, as it is alive at the end."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        del out
    finally:
        tracemalloc.stop()
    return peak


def step_workload(key, anchor, _timing, torch, block) -> Workload:
    size, label, target = STEPS[key]
    w = Workload(key, label, target, "step")
    check(key, *steps(anchor, size, "float64", torch), "float64")    # the same functions
    fns, names = steps(anchor, size, "float32", torch)                # the timed steps
    check(key, fns, names, "float32")

    for side, fn in fns.items():
        for _ in range(3):      # warm-up, as the anchors' timing does
            fn()
        n = _timing.calibrate(fn, block)

        def timed(fn=fn, n=n):
            t0 = time.perf_counter()
            while True:         # settle, untimed: the other side's BLAS or OpenMP threads may still spin
                fn()
                if time.perf_counter() - t0 >= block / 2:
                    break
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            return (time.perf_counter() - t0) / n
        w.sides[side] = timed
        w.extra.setdefault("calls_per_block", {})[side] = n
    if key in MEMORY:
        w.peak = {side: peak_bytes(fn) for side, fn in fns.items() if side != "torch"}  # torch's allocator is not traced
    return w


def train_workload(key, anchor) -> Workload:
    make, label, target = TRAINS[key]
    t = make(anchor)
    w = Workload(key, label, target, "epoch")
    a, b = t.initial
    if not abs(a - b) <= 1e-4 * max(1.0, abs(b)):
        raise SystemExit(f"{key}: initial losses differ: nndsl {a!r}, numpy plain {b!r}")
    for side, fn in (("nndsl", t.ours), ("numpy plain", t.theirs)):
        train_throughput.learned(fn(), side, t.name)      # warm-up (compiles nndsl's step), and the check

        def timed(side=side, fn=fn):
            t0 = time.perf_counter()
            losses = fn()
            seconds = (time.perf_counter() - t0) / t.epochs
            train_throughput.learned(losses, side, t.name)
            return seconds
        w.sides[side] = timed
    w.extra["outside_epochs_s"] = t.setup        # per nndsl `train` call: set-up and bookkeeping
    w.extra["epochs_per_call"] = t.epochs
    return w


def fmt(seconds: float) -> str:
    us = seconds * 1e6
    if us < 100:
        return f"{us:.1f} µs"
    if us < 1000:
        return f"{us:.0f} µs"
    return f"{us / 1e3:.2f} ms" if us < 1e5 else f"{us / 1e3:.0f} ms"


def cell(times) -> str:
    if not times:
        return "-"
    return f"{fmt(statistics.median(times))} ({fmt(min(times))}–{fmt(max(times))})"


def environment(torch) -> dict:
    env = {"python": sys.version.split()[0], "numpy": np.__version__, "cpus": os.cpu_count(),
           "threads_env": {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                      "MKL_NUM_THREADS") if k in os.environ}}
    if hasattr(os, "sched_getaffinity"):
        env["affinity"] = sorted(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        env["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    if torch is not None:
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    return env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, help="rounds (default 21; --quick: 3)")
    ap.add_argument("--workloads", help=f"comma list of {','.join(LABELS)} (default: all; --quick: all but large)")
    ap.add_argument("--quick", action="store_true", help="3 rounds of short blocks, without the large workload")
    ap.add_argument("--json", metavar="FILE", help="write every time, ratio and peak to FILE")
    ap.add_argument("--no-torch", action="store_true", help="leave torch out even when installed")
    ap.add_argument("--block", type=float, help="seconds a timed block of steps lasts at least (default 0.02; --quick: 0.002)")
    ap.add_argument("--anchors", default=default_anchors())
    args = ap.parse_args()
    rounds = args.rounds if args.rounds is not None else (3 if args.quick else 21)
    block = args.block if args.block is not None else (0.002 if args.quick else 0.02)
    keys = args.workloads.split(",") if args.workloads else [k for k in LABELS if not (args.quick and k == "large")]
    unknown = [k for k in keys if k not in LABELS]
    if unknown or rounds < 1:
        ap.error(f"unknown workload {unknown[0]!r}; choose from {','.join(LABELS)}" if unknown else "--rounds must be >= 1")
    if not os.path.isfile(os.path.join(args.anchors, "mlp_step.py")):
        ap.error(f"no reference anchors in {args.anchors} (give --anchors DIR)")

    sys.path.insert(0, args.anchors)
    import _timing
    import mlp_step as anchor
    if os.path.dirname(os.path.abspath(anchor.__file__)) != os.path.abspath(args.anchors):
        ap.error(f"mlp_step imported from {anchor.__file__}, not from the anchors in {args.anchors}")
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            pass

    env = environment(torch)
    print("# " + ", ".join(f"{k} {v}" for k, v in env.items()), flush=True)
    t_start = time.perf_counter()
    work = []
    for key in keys:            # set up and check every workload before timing any
        work.append(step_workload(key, anchor, _timing, torch, block) if key in STEPS else train_workload(key, anchor))

    for r in range(rounds):
        for w in work:
            order = [s for s in w.sides if s != "torch"]
            order = order[r % len(order):] + order[:r % len(order)] + (["torch"] if "torch" in w.sides else [])
            for side in order:
                w.times.setdefault(side, []).append(w.sides[side]())
            w.ratios.append(w.times["nndsl"][-1] / w.times["numpy plain"][-1])

    head = f"{'workload':38} " + " ".join(f"{s:>27}" for s in SIDES) + f" {'ratio':>6} {'target':>7} verdict"
    print(f"\n{head}\n{'-' * len(head)}")
    results = {}
    for key in LABELS:
        w = next((w for w in work if w.key == key), None)
        if w is None:
            if args.quick and not args.workloads and key == "large":
                print(f"{LABELS[key]:38} skipped (--quick)")
            continue
        ratio = statistics.median(w.ratios)
        ok = ratio <= w.target
        verdict = f"<= {w.target:.2f}"
        if w.peak:
            ok = ok and w.peak["nndsl"] <= w.peak["numpy plain"]
            verdict += " +mem"
        print(f"{w.label:38} " + " ".join(f"{cell(w.times.get(s, [])):>27}" for s in SIDES)
              + f" {ratio:6.2f} {verdict:>7} {'ok' if ok else 'MISSED'}")
        results[key] = {"label": w.label, "unit": w.unit, "target": w.target, "ratio": ratio, "ok": ok,
                        "ratios": w.ratios, "peak_bytes": w.peak, **w.extra,
                        "sides": {s: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
                                      "all_s": t} for s, t in w.times.items()}}
    for w in work:
        if w.peak:
            print(f"\npeak memory of one {w.key} step (tracemalloc): "
                  + ", ".join(f"{s} {b / 2**20:.2f} MiB" for s, b in w.peak.items())
                  + " (numpy tuned preallocates its buffers outside the step; torch's allocator is not traced)")
    spent = time.perf_counter() - t_start
    print(f"\ntimes per step (train: per epoch), median (min–max) of {rounds} rounds, one process, interleaved; "
          f"ratio = median of per-round nndsl / numpy plain; +mem: nndsl's peak <= numpy plain's too. "
          f"{spent:.0f} s in all" + (f", load average {os.getloadavg()[0]:.2f} at the end." if hasattr(os, "getloadavg") else "."))
    for w in work:
        if "outside_epochs_s" in w.extra:
            print(f"{w.key}: each nndsl train call also spent {fmt(statistics.median(w.extra['outside_epochs_s']))} "
                  f"outside its epochs' seconds (set-up, bookkeeping; in the times above)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "rounds": rounds, "block_s": block, "seconds": spent, "workloads": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
