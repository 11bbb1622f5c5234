#!/usr/bin/env python3
"""Training throughput: whole epochs of plain SGD through `Model.train`, timed against the same
loop written by hand in NumPy, in the same process, in interleaved rounds, and checked to learn.

    python bench/train_throughput.py [--rounds N] [--workloads xor,mlp] [--anchors DIR]

Workloads (float32):
  xor  2-4-1, sigmoid hidden, sigmoid output with bce; the full batch of 4, no shuffling,
       lr 1.0, 2000 epochs a round. The hand-written side is the anchor's plain NumPy step
       (`build_np_plain`, size "tiny") followed by an in-place update.
  mlp  784-256-10 relu, softmax cross-entropy with class indices; 2048 synthetic samples,
       batch 128, shuffled every epoch, lr 0.05, 5 epochs a round. The anchor's step is bound
       to one fixed batch, so the hand-written loop is spelled out here, in the anchor's plain
       style, with the same per-epoch cost of a permutation and fancy indexing.

Each round times one `model.train(...)` call (everything it does, its set-up included) and one
hand-written run of the same epochs from the same initial parameters; the order alternates.
Reports medians of seconds per epoch and the median of the per-round ratios nndsl / NumPy (lower
is better; 1.0 = as fast as hand-written NumPy), and the time of each `train` call spent outside
the `seconds` its history gives the epochs (set-up: scheduling the step, a forward pass over the
data to validate it; and the per-epoch bookkeeping). DIR holds the reference `mlp_step.py` (default: ../shared/bench/anchors
beside the checkout). Machines are noisy: compare ratios from one run only.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import nndsl
from _common import default_anchors

GOAL = 1.10

XOR = """\
model xor
input x[2]
input t
param W1[4, 2] = normal(1)
param b1[4]
param w2[4] = normal(1)
param b2
h = σ(W1 x + b1)
output p = σ(w2 · h + b2)
loss L = bce(p, t)
"""

MLP = """\
model mlp
input x[784]
input k
param W1[256, 784] = he
param b1[256]
param W2[10, 256] = xavier
param b2[10]
h = max(0, W1 x + b1)
output p = softmax(W2 h + b2)
loss L = sparse_cross_entropy(p, k)
"""


class Workload:
    """`ours()` and `theirs()` each train from the same initial parameters for `epochs` epochs
    and return the per-epoch mean losses; `initial` holds both sides' loss before training."""

    def __init__(self, name, epochs, ours, theirs, initial, setup):
        self.name, self.epochs, self.ours, self.theirs = name, epochs, ours, theirs
        self.initial, self.setup = initial, setup


def xor(anchor) -> Workload:
    epochs, lr = 2000, 1.0
    cfg, start, X, Y = anchor.make_problem("tiny")      # [in, out] layout, Y [4, 1]
    W1, b1, W2, b2 = start
    model = nndsl.compile(XOR, dtype="float32")
    params = {"W1": W1.T.copy(), "b1": b1.copy(), "w2": W2[:, 0].copy(), "b2": b2.reshape(())}
    T = Y[:, 0].copy()
    seconds = []

    def ours():
        t0 = time.perf_counter()
        _, history = model.train(params, x=X, t=T, lr=lr, epochs=epochs, batch=4, optimizer="sgd",
                                 shuffle=False)
        seconds.append(time.perf_counter() - t0 - sum(history["seconds"]))
        return history["loss"]

    def theirs():
        ps = [p.copy() for p in start]
        step = anchor.build_np_plain(cfg, ps, X, Y)
        losses = []
        for _ in range(epochs):
            loss, grads = step()
            for p, g in zip(ps, grads):
                p -= lr * g
            losses.append(float(loss))
        return losses

    initial = (model.loss(params, x=X, t=T), float(anchor.build_np_plain(cfg, start, X, Y)()[0]))
    return Workload("XOR 2-4-1, batch 4", epochs, ours, theirs, initial, seconds)


def mlp(anchor) -> Workload:
    epochs, lr, batch, n = 5, 0.05, 128, 2048
    rng = np.random.default_rng(1234)
    X = rng.standard_normal((n, 784)).astype(np.float32)
    K = rng.integers(0, 10, n)
    Kf = K.astype(np.float32)                   # nndsl's inputs are float arrays
    model = nndsl.compile(MLP, dtype="float32")
    params = model.init(seed=0)
    start = [params["W1"].T.copy(), params["b1"].copy(), params["W2"].T.copy(), params["b2"].copy()]
    seconds = []

    def ours():
        t0 = time.perf_counter()
        _, history = model.train(params, x=X, k=Kf, lr=lr, epochs=epochs, batch=batch, optimizer="sgd",
                                 shuffle=True)
        seconds.append(time.perf_counter() - t0 - sum(history["seconds"]))
        return history["loss"]

    def full_loss(W1, b1, W2, b2):
        z = np.maximum(X @ W1 + b1, 0) @ W2 + b2
        zs = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(zs).sum(axis=1)) - zs[np.arange(n), K]))

    def theirs():
        W1, b1, W2, b2 = [p.copy() for p in start]
        order = np.random.default_rng(0)
        ar = np.arange(batch)
        losses = []
        for _ in range(epochs):
            perm = order.permutation(n)
            total = 0.0
            for lo in range(0, n, batch):
                index = perm[lo:lo + batch]
                x, k = X[index], K[index]
                B = len(index)
                a = ar[:B]
                h = np.maximum(x @ W1 + b1, 0)
                z = h @ W2 + b2
                zs = z - z.max(axis=1, keepdims=True)
                e = np.exp(zs)
                s = e.sum(axis=1, keepdims=True)
                total += float(np.sum(np.log(s[:, 0]) - zs[a, k]))
                g = e / s
                g[a, k] -= 1.0
                g /= B
                dW2 = h.T @ g
                db2 = g.sum(0)
                gh = (g @ W2.T) * (h > 0)
                dW1 = x.T @ gh
                db1 = gh.sum(0)
                W1 -= lr * dW1
                b1 -= lr * db1
                W2 -= lr * dW2
                b2 -= lr * db2
            losses.append(total / n)
        return losses

    initial = (model.loss(params, x=X, k=Kf), full_loss(*start))
    return Workload(f"784-256-10, batch {batch}", epochs, ours, theirs, initial, seconds)


WORKLOADS = {"xor": xor, "mlp": mlp}


def learned(losses, side, name):
    """Both loops must actually train: finite losses, the last epoch well below the first."""
    first, last = losses[0], losses[-1]
    if not (np.all(np.isfinite(losses)) and last < 0.8 * first):
        raise SystemExit(f"{name}: {side} did not learn: loss {first:.4g} -> {last:.4g}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--workloads", default="xor,mlp")
    ap.add_argument("--anchors", default=default_anchors())
    args = ap.parse_args()
    sys.path.insert(0, args.anchors)
    import mlp_step as anchor

    print(f"{'workload':22} {'nndsl':>11} {'numpy plain':>11} {'ratio':>6} {'goal':>6}  "
          f"{'outside/call':>12}  loss first -> last epoch (nndsl; numpy)")
    for key in args.workloads.split(","):
        w = WORKLOADS[key](anchor)
        a, b = w.initial
        assert abs(a - b) <= 1e-4 * max(1.0, abs(b)), (w.name, "initial losses differ", a, b)
        for side, fn in (("nndsl", w.ours), ("numpy", w.theirs)):    # warm-up, and the check
            learned(fn(), side, w.name)
        times = {"nndsl": [], "numpy": []}
        losses = {}
        ratios = []
        for r in range(args.rounds):
            pair = [("nndsl", w.ours), ("numpy", w.theirs)]
            for side, fn in (pair if r % 2 == 0 else pair[::-1]):
                t0 = time.perf_counter()
                losses[side] = fn()
                times[side].append((time.perf_counter() - t0) / w.epochs)
                learned(losses[side], side, w.name)
            ratios.append(times["nndsl"][-1] / times["numpy"][-1])
        a, b, ratio = statistics.median(times["nndsl"]), statistics.median(times["numpy"]), statistics.median(ratios)
        lo, lt = losses["nndsl"], losses["numpy"]
        setup = statistics.median(w.setup)
        print(f"{w.name:22} {fmt(a):>11} {fmt(b):>11} {ratio:6.2f} {'ok' if ratio <= GOAL else '>' + str(GOAL):>6}  "
              f"{fmt(setup):>12}  {lo[0]:.3f} -> {lo[-1]:.3f}; {lt[0]:.3f} -> {lt[-1]:.3f}")
    print(f"\ntimes are per epoch (medians of {args.rounds} rounds); ratio = median of per-round nndsl / numpy; "
          f"goal <= {GOAL:.2f}")
    return 0


def fmt(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:.1f} µs" if us < 1000 else f"{us / 1e3:.2f} ms"


if __name__ == "__main__":
    sys.exit(main())
