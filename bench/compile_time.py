#!/usr/bin/env python3
"""Compile time and first-gradient time of a deep chain, per number of layers: is compiling linear?

A chain of N layers, a weight matrix each (2N + 2 lines):

    input x[4]
    param W0[4, 4]
    h0 = tanh(W0 x)
    param W1[4, 4]
    h1 = tanh(W1 h0)
    ...
    loss L = sum(hN-1)

Timed with time.perf_counter: `nndsl.compile(text)` (parse, resolve, lower, rewrite), then the
first `model.grad(model.init(), x=...)` (initial parameters, the backward graph, its schedule and
one run on a batch of 2). Reported: both, their sum, and the sum per line of source, which stays
flat when compiling is linear. Each N is measured `--repeat` times in this process (the best
is kept), each after the models of the last one are freed. `--profile N` instead prints where
the time goes for N layers (cProfile, by cumulative and by own time).

    python bench/compile_time.py [--layers 1000,2000,5000,10000] [--repeat 3] [--profile N]
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import time

import numpy as np

import nndsl


def chain(n: int) -> str:
    lines = ["input x[4]"]
    previous = "x"
    for i in range(n):
        lines += [f"param W{i}[4, 4]", f"h{i} = tanh(W{i} {previous})"]
        previous = f"h{i}"
    lines.append(f"loss L = sum({previous})")
    return "\n".join(lines) + "\n"


def compile_and_differentiate(text: str) -> tuple[float, float]:
    """Seconds to compile `text`, and to take the first gradient of the compiled model."""
    start = time.perf_counter()
    model = nndsl.compile(text)
    compiled = time.perf_counter()
    model.grad(model.init(), x=np.ones((2, 4)))
    return compiled - start, time.perf_counter() - compiled


def profile(n: int) -> None:
    text = chain(n)
    profiler = cProfile.Profile()
    profiler.runcall(compile_and_differentiate, text)
    stats = pstats.Stats(profiler)
    for key in ("cumulative", "tottime"):
        print(f"---- {n} layers, by {key} ----")
        stats.sort_stats(key).print_stats(25)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default="1000,2000,5000,10000", help="the chain lengths N, comma-separated")
    ap.add_argument("--repeat", type=int, default=3, help="runs per N; the best is reported")
    ap.add_argument("--profile", type=int, metavar="N", help="profile N layers instead")
    args = ap.parse_args()
    if args.profile:
        profile(args.profile)
        return 0
    compile_and_differentiate(chain(10))              # warm up: imports, regular expressions
    print(f"{'layers':>7} {'lines':>7} {'compile s':>10} {'grad s':>8} {'total s':>8} {'ms/line':>8}")
    for n in (int(s) for s in args.layers.split(",")):
        text = chain(n)
        lines = text.count("\n")
        runs = []
        for _ in range(args.repeat):
            gc.collect()                                 # the last run's models are gone
            runs.append(compile_and_differentiate(text))
        compile_s, grad_s = min(runs, key=sum)
        total = compile_s + grad_s
        print(f"{n:>7} {lines:>7} {compile_s:>10.3f} {grad_s:>8.3f} {total:>8.3f} {1e3 * total / lines:>8.3f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
