#!/usr/bin/env python3
"""One MLP training step (batch-mean loss and every gradient, no update) in nndsl, timed against
the hand-written NumPy step of the reference anchors, in the same process, and checked equal.

    python bench/mlp_step.py [--sizes tiny,small,medium,large] [--anchors DIR]

DIR holds the reference `mlp_step.py` and `_timing.py` (default: ../shared/bench/anchors beside
the checkout). Reports medians and the ratio nndsl / NumPy (lower is better; 1.0 = as fast as
hand-written NumPy). Machines are noisy: compare ratios from one run only.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import nndsl

XOR = """\
input x[2]
input t[1]
param W1[4, 2]
param b1[4]
param W2[1, 4]
param b2[1]
a = sigmoid(W1 x + b1)
loss L = bce(sigmoid(W2 a + b2), t)
"""


def classifier(layers: list[int]) -> str:
    lines = [f"input x[{layers[0]}]", "input k"]
    h = "x"
    for i, (fi, fo) in enumerate(zip(layers[:-1], layers[1:]), start=1):
        lines += [f"param W{i}[{fo}, {fi}]", f"param b{i}[{fo}]"]
        z = f"W{i} {h} + b{i}"
        if i < len(layers) - 1:
            lines.append(f"h{i} = max(0, {z})")
            h = f"h{i}"
        else:
            lines.append(f"z = {z}")
    lines.append("loss L = sparse_cross_entropy(softmax(z), k)")
    return "\n".join(lines) + "\n"


def build(anchor, size):
    cfg, params, X, Y = anchor.make_problem(size)
    source = XOR if cfg["kind"] == "xor" else classifier(cfg["layers"])
    model = nndsl.compile(source)
    names = [n for n in model.params]
    ours = {name: (p.T.copy() if p.ndim == 2 else p) for name, p in zip(names, params)}
    data = {"x": X, "t": Y} if cfg["kind"] == "xor" else {"x": X, "k": Y.astype(np.float32)}

    def step():
        return model.grad(ours, **data)
    return step, anchor.build_np_plain(cfg, params, X, Y), names


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="tiny,small,medium,large")
    ap.add_argument("--anchors", default=str(Path(__file__).resolve().parents[2] / "shared" / "bench" / "anchors"))
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--target", type=float, default=0.05)
    args = ap.parse_args()
    sys.path.insert(0, args.anchors)
    import _timing
    import mlp_step as anchor

    print(f"{'size':8} {'nndsl':>12} {'numpy plain':>12} {'ratio':>7}  max |grad diff|")
    for size in args.sizes.split(","):
        ours, theirs, names = build(anchor, size)
        loss, grads = ours()
        ref_loss, ref_grads = theirs()
        diff = max(float(np.max(np.abs((grads[n].T if grads[n].ndim == 2 else grads[n]) - g)))
                   for n, g in zip(names, ref_grads))
        assert abs(loss - float(ref_loss)) < 1e-4, (loss, ref_loss)
        a = _timing.measure(ours, args.repeat, args.target)["median_us"]
        b = _timing.measure(theirs, args.repeat, args.target)["median_us"]
        print(f"{size:8} {a:10.1f}us {b:10.1f}us {a / b:7.2f}  {diff:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
