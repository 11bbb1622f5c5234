"""Gradient checking by central finite differences, in float64.

For each element checked, error = |analytic - numeric| / max(1, |analytic|, |numeric|): relative
for large gradients, absolute for small ones (where a relative error only measures noise).
"""
from __future__ import annotations

import numpy as np

EPS = 1e-6


def check_gradients(model, params: dict, data: dict, grads: dict, samples: int = 200, seed: int = 0) -> dict:
    """{name: max error over at most `samples` elements of that tensor}. `model` computes in float64."""
    rng = np.random.default_rng(seed)
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    data = {k: np.array(v, dtype=np.float64) for k, v in data.items()}
    errors = {}
    for name, analytic in grads.items():
        holder = params if name in params else data
        values = holder[name]
        flat = values.reshape(-1)
        size = flat.size
        indices = np.arange(size) if size <= samples else rng.choice(size, samples, replace=False)
        worst = 0.0
        analytic = np.asarray(analytic, dtype=np.float64).reshape(-1)
        for i in indices:
            original = flat[i]
            flat[i] = original + EPS
            up = model.loss(params, **data)
            flat[i] = original - EPS
            down = model.loss(params, **data)
            flat[i] = original
            numeric = (up - down) / (2 * EPS)
            a = analytic[i]
            worst = max(worst, abs(a - numeric) / max(1.0, abs(a), abs(numeric)))
        errors[name] = float(worst)
    return errors
