#!/usr/bin/env python3
"""One MLP training step (batch-mean loss and every gradient, no update) in nndsl, timed against
the hand-written NumPy step of the reference anchors, in the same process, and checked equal.

    python bench/mlp_step.py [--sizes tiny,small,medium,large] [--anchors DIR]

DIR holds the reference `mlp_step.py` and `_timing.py` (default: ../shared/bench/anchors beside
the checkout, or beside the main checkout of a git worktree). Reports medians and the ratio
nndsl / NumPy (lower is better; 1.0 = as fast as hand-written NumPy). Machines are noisy:
compare ratios from one run only.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from _common import build, default_anchors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="tiny,small,medium,large")
    ap.add_argument("--anchors", default=default_anchors())
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
