#!/usr/bin/env python3
"""Per-op dispatch overhead of nndsl's interpreter, beside the reference variants of the anchor
`op_overhead.py` (NumPy ufuncs, a tuple interpreter, a closure tape), measured in one process.

A chain of N elementwise ops alternating `h * a` and `h + b` (float32) on a 1- and 100-element
input, as the anchor does. Reported in microseconds per op: forward (`model.run`) and forward
plus backward (`model.grad` of a loss on the chain's end, per forward op).

    python bench/op_overhead.py [--n 1000] [--sizes 1,100] [--anchors DIR]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import nndsl
from _common import default_anchors


def chain(n: int, size: int) -> str:
    lines = [f"input x[{size}]", "input t", "param a = 1.0001", "param b = 0.0001", "h0 = x"]
    lines += [f"h{i} = h{i - 1} * a" if i % 2 else f"h{i} = h{i - 1} + b" for i in range(1, n + 1)]
    lines += [f"loss L = mean(h{n}) - t"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--sizes", default="1,100")
    ap.add_argument("--anchors", default=default_anchors())
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    sys.path.insert(0, args.anchors)
    import _timing
    import op_overhead as anchor

    print(f"{'size':>4}  {'variant':22} {'us/op':>8}")
    for size in (int(s) for s in args.sizes.split(",")):
        model = nndsl.compile(chain(args.n, size))
        params = model.init(0)
        x = np.ones(size, dtype=np.float32)
        rows = {
            "nndsl run": lambda: model.run(params, x=x),
            "nndsl grad wrt x": lambda: model.grad(params, wrt=["x"], x=x, t=0.0),   # as the tape
            "nndsl grad wrt a, b": lambda: model.grad(params, x=x, t=0.0),
        }
        for name, fn in anchor.numpy_variants(size, args.n).items():
            if name in ("np_ufunc", "np_tuple_interp", "np_tape_fwd_bwd"):
                rows[name] = fn
        for name, fn in rows.items():
            us = _timing.measure(fn, args.repeat, 0.05)["median_us"] / args.n
            print(f"{size:>4}  {name:22} {us:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
