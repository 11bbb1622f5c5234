"""Gradient checking by central finite differences, in float64.

For each element checked, error = |analytic - numeric| / max(1, |analytic|, |numeric|): relative
for large gradients, absolute for small ones (where a relative error only measures noise). A
non-finite loss, gradient or difference fails the check outright. Where the check fails and a
non-differentiable op (its registry entry has a `kink` rule) has values at its kink, the report
says so: there no derivative exists for finite differences to confirm.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import NndslError
from .graph import arguments, span_of
from .ops import REGISTRY

EPS = 1e-6
KINK_TOLERANCE = 10 * EPS          # a finite difference this close to a kink may straddle it


@dataclass
class Check:
    """The check of one gradient."""

    name: str
    error: float = 0.0             # the largest error over the elements checked (inf: non-finite)
    checked: int = 0
    problem: str | None = None     # a non-finite value, in words
    notes: list = field(default_factory=list)   # NndslError notes located at kinks

    def failed(self, tol: float) -> bool:
        return self.problem is not None or self.error > tol


def check_gradients(model, params: dict, data: dict, loss: float, grads: dict, tol: float,
                    samples: int = 200, seed: int = 0) -> dict:
    """{name: Check} over at most `samples` elements of each gradient. `model` computes in float64."""
    if samples < 1:
        raise NndslError(f"samples: check at least one element per gradient, not {samples}")
    rng = np.random.default_rng(seed)
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    data = {k: np.array(v, dtype=np.float64) for k, v in data.items()}
    checks = {}
    for name, analytic in grads.items():
        check = checks[name] = Check(name)
        analytic = np.asarray(analytic, dtype=np.float64).reshape(-1)
        if not np.isfinite(loss):
            check.problem, check.error = f"the loss is {loss}", np.inf
            continue
        bad = np.flatnonzero(~np.isfinite(analytic))
        if bad.size:
            check.problem, check.error = f"the gradient is {analytic[bad[0]]} at element {bad[0]}", np.inf
            continue
        holder = params if name in params else data
        flat = holder[name].reshape(-1)
        indices = np.arange(flat.size) if flat.size <= samples else rng.choice(flat.size, samples, replace=False)
        for i in indices:
            original = flat[i]
            flat[i] = original + EPS
            up = model.loss(params, inputs=data)
            flat[i] = original - EPS
            down = model.loss(params, inputs=data)
            flat[i] = original
            numeric = (up - down) / (2 * EPS)
            check.checked += 1
            if not np.isfinite(numeric):
                check.problem, check.error = f"the finite difference is {numeric} at element {i}", np.inf
                break
            a = analytic[i]
            check.error = max(check.error, abs(a - numeric) / max(1.0, abs(a), abs(numeric)))
    if any(c.failed(tol) for c in checks.values()):
        notes = kinks(model, params, data)
        for c in checks.values():
            if c.failed(tol):
                c.notes = notes
    return checks


def kinks(model, params: dict, data: dict) -> list:
    """Notes located at every non-differentiable op with values at (or within a finite
    difference of) its kink, at these parameters and data."""
    graph, objective = model.objective_graph()
    values = model.values(graph, [objective], params, data)
    notes = []
    for node, value in values.items():
        op = REGISTRY[graph.nodes[node]["op"]]
        if op.kink is None:
            continue
        distance = np.asarray(op.kink(*[values[a] for a in arguments(graph, node)]))
        count = int(np.sum(np.abs(distance) <= KINK_TOLERANCE))
        if count:
            notes.append(NndslError(
                f"{op.name} is at its kink for {count} value{'s' * (count != 1)} here, where it has no derivative: "
                f"finite differences straddle the kink, and nndsl's gradient follows its rule for the kink",
                span_of(graph, node), filename=model.filename, source=model.program.source))
    return notes
