"""What the benchmark scripts share: where the reference anchors live, and the per-step MLP
problems (nndsl sources and problem construction) that `mlp_step.py` and `all.py` time."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

import nndsl

HERE = Path(__file__).resolve().parent


def default_anchors() -> str:
    """The reference anchors: ../shared/bench/anchors beside the checkout, or, in a git worktree
    kept elsewhere, beside the main checkout. Returns the first guess when neither exists."""
    first = HERE.parents[1] / "shared" / "bench" / "anchors"
    if first.is_dir():
        return str(first)
    try:
        common = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--path-format=absolute", "--git-common-dir"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        common = ""
    if common:
        other = Path(common).parents[1] / "shared" / "bench" / "anchors"     # <main>/.git -> ../shared
        if other.is_dir():
            return str(other)
    return str(first)


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


def build(anchor, size, dtype="float32"):
    """nndsl's step for the anchor's problem `size` (`model.grad`: batch-mean loss and every
    gradient), the anchor's plain NumPy step on the same problem, and nndsl's parameter names in
    the anchor's order. nndsl's weights are [out, in], the anchor's [in, out]."""
    cfg, params, X, Y = anchor.make_problem(size, dtype)
    source = XOR if cfg["kind"] == "xor" else classifier(cfg["layers"])
    model = nndsl.compile(source, dtype=dtype)
    names = [n for n in model.params]
    ours = {name: (p.T.copy() if p.ndim == 2 else p) for name, p in zip(names, params)}
    data = {"x": X, "t": Y} if cfg["kind"] == "xor" else {"x": X, "k": Y.astype(dtype)}

    def step():
        return model.grad(ours, **data)
    return step, anchor.build_np_plain(cfg, params, X, Y), names
