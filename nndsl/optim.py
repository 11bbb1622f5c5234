"""Optimizers and learning-rate schedules: two registries, each entry defined once.

An optimizer entry holds its name, its hyperparameters (in positional order, with defaults and
the check each value must pass), one line of documentation with its update formula, the state it
keeps per parameter and its update rule. A schedule entry holds its name, its arguments, its
formula and what its `t` counts. The training loop, the `train` statement, the CLI's flags and
the documentation all read these tables; nothing else lists optimizers or schedules.

Update rules follow PyTorch's `torch.optim` exactly (same order of operations), so a run can be
compared with PyTorch to rounding. They update every parameter in one call, return the new
parameters as new arrays and update their state arrays in place: the caller keeps the previous
parameters for as long as it likes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: its name, default (None: required) and the values it accepts."""

    name: str
    default: float | None
    check: str                  # a key of CHECKS
    doc: str = ""


CHECKS = {
    "positive": (lambda v: v > 0, "a positive number"),
    "nonnegative": (lambda v: v >= 0, "a number >= 0"),
    "fraction": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "open_fraction": (lambda v: 0 < v < 1, "a number between 0 and 1"),
    "flag": (lambda v: v in (0, 1), "0 or 1"),
    "count": (lambda v: v >= 1 and v == int(v), "a positive whole number"),
}


def check_value(hyper: Hyper, value: float) -> str | None:
    """None if `value` is acceptable, else what it must be."""
    ok, what = CHECKS[hyper.check]
    return None if math.isfinite(value) and ok(value) else what


def bind(entry, args: tuple, kwargs: dict) -> tuple[dict, str | None]:
    """Hyperparameter values from positional and keyword arguments over the entry's defaults:
    ({name: value}, None), or (partial, a message saying what is wrong)."""
    names = [h.name for h in entry.hypers]
    values = {h.name: h.default for h in entry.hypers}
    what = f"{entry.kind} {entry.name}"
    if len(args) > len(names):
        return values, f"{what} takes at most {len(names)} argument{'s' * (len(names) != 1)} ({', '.join(names) or 'none'})"
    for h, v in zip(entry.hypers, args):
        values[h.name] = v
    for key, v in kwargs.items():
        if key not in values:
            return values, f"{what} has no argument '{key}' (it takes: {', '.join(names) or 'none'})"
        values[key] = v
    for h in entry.hypers:
        if values[h.name] is None:
            return values, f"{what} needs a value for '{h.name}'"
        problem = check_value(h, values[h.name])
        if problem:
            return values, f"{what}: {h.name} must be {problem}, not {values[h.name]:g}"
    return values, None


# ---- optimizers --------------------------------------------------------------------------
@dataclass(frozen=True)
class Optimizer:
    name: str
    hypers: tuple               # of Hyper, in positional order; `lr` first
    doc: str                    # one line, with the update formula
    state: tuple                # names of the per-parameter state arrays
    # (ps, gs, states, h dict, lr, t) -> the new parameters, a list of new arrays: every parameter
    # in one call (as torch.optim's `foreach` implementations), so that a step over many small
    # parameters pays for one call. states: a state dict per parameter; t = 1, 2, ... counts
    # the steps. The gradients gs are the caller's scratch: the rule may overwrite them.
    update: Callable
    kind: ClassVar[str] = "optimizer"


OPTIMIZERS: dict[str, Optimizer] = {}


def define(table: dict, kind, name: str, **fields):
    """One entry of a registry (OPTIMIZERS or SCHEDULES), defined once."""
    if name in table:
        raise ValueError(f"{kind.kind} {name!r} defined twice")
    entry = table[name] = kind(name=name, **fields)
    return entry


def defoptimizer(name: str, **fields) -> Optimizer:
    return define(OPTIMIZERS, Optimizer, name, **fields)


def descend(ps: list, directions: list, lr: float, scratch: bool) -> list:
    """[p − lr · d for each parameter p and direction d], new arrays. −lr is a 0-d array of the
    parameters' dtype (ufuncs take it twice as fast as a float, and round the same). Where the
    directions are scratch (no one else holds them), each result is written into its direction:
    (−lr · d) + p rounds exactly as p − lr · d does, and saves an allocation on every step (but
    for a 0-d array, for which NumPy's `out` costs more than a new array)."""
    step = np.array(-lr, ps[0].dtype if ps else np.float64)
    out = []
    for p, d in zip(ps, directions):
        if scratch and type(d) is np.ndarray and d.ndim and d.shape == p.shape and d.dtype == p.dtype:
            np.multiply(d, step, d)
            np.add(d, p, d)
            out.append(d)
        else:
            out.append(np.asarray(p + step * d))    # 0-d stays an array, not a NumPy scalar
    return out


def sgd_update(ps, gs, states, h, lr, t):
    wd, mu = h["weight_decay"], h["momentum"]
    if not wd and not mu:                       # plain SGD: θ − αg, into the gradients
        return descend(ps, gs, lr, scratch=True)
    directions = []
    for p, g, state in zip(ps, gs, states):
        if wd:
            g = g + wd * p
        if mu:
            buf = state["momentum_buffer"]
            if t == 1:
                buf[...] = g
            else:
                buf *= mu
                buf += (1 - h["dampening"]) * g
            g = g + mu * buf if h["nesterov"] else buf.copy()
        directions.append(g)
    return descend(ps, directions, lr, scratch=True)


def adam_update(ps, gs, states, h, lr, t, decoupled=False):
    b1, b2 = h["beta1"], h["beta2"]
    if decoupled:
        ps = [p * (1 - lr * h["weight_decay"]) for p in ps]
    directions = []
    for p, g, state in zip(ps, gs, states):
        if not decoupled and h["weight_decay"]:
            g = g + h["weight_decay"] * p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (g - m) * (1 - b1)
        v *= b2
        v += (1 - b2) * g * g
        denom = np.sqrt(v) / math.sqrt(1 - b2 ** t) + h["eps"]
        directions.append(m / denom)
    return descend(ps, directions, lr / (1 - b1 ** t), scratch=True)


BETAS = (Hyper("beta1", 0.9, "fraction", "decay of the first moment"),
         Hyper("beta2", 0.999, "fraction", "decay of the second moment"),
         Hyper("eps", 1e-8, "positive", "added to the denominator"))

defoptimizer(
    "sgd",
    hypers=(Hyper("lr", 0.01, "positive", "learning rate α"),
            Hyper("momentum", 0.0, "fraction", "momentum μ"),
            Hyper("dampening", 0.0, "fraction", "dampening τ of the momentum"),
            Hyper("weight_decay", 0.0, "nonnegative", "L2 penalty λ"),
            Hyper("nesterov", 0, "flag", "1: Nesterov momentum")),
    doc="stochastic gradient descent, PyTorch's convention: g ← g + λθ; v ← μv + (1 − τ)g "
        "(v = g at the first step); θ ← θ − α(g + μv) with Nesterov, θ ← θ − αv without",
    state=("momentum_buffer",),
    update=sgd_update)
defoptimizer(
    "adam",
    hypers=(Hyper("lr", 0.001, "positive", "learning rate α"),) + BETAS
           + (Hyper("weight_decay", 0.0, "nonnegative", "L2 penalty λ, added to the gradient"),),
    doc="Adam (Kingma & Ba 2015), as torch.optim.Adam: g ← g + λθ; m ← β₁m + (1 − β₁)g; "
        "v ← β₂v + (1 − β₂)g²; θ ← θ − α/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)",
    state=("exp_avg", "exp_avg_sq"),
    update=adam_update)
defoptimizer(
    "adamw",
    hypers=(Hyper("lr", 0.001, "positive", "learning rate α"),) + BETAS
           + (Hyper("weight_decay", 0.01, "nonnegative", "decoupled weight decay λ"),),
    doc="AdamW (Loshchilov & Hutter 2019), as torch.optim.AdamW: θ ← θ(1 − αλ), then Adam's "
        "step without the L2 term",
    state=("exp_avg", "exp_avg_sq"),
    update=lambda ps, gs, states, h, lr, t: adam_update(ps, gs, states, h, lr, t, decoupled=True))


def validate_optimizer(entry: Optimizer, h: dict) -> str | None:
    """Combinations PyTorch refuses too."""
    if entry.name == "sgd" and h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
        return "optimizer sgd: nesterov needs a momentum above 0 and no dampening"
    return None


def init_state(entry: Optimizer, params: dict) -> dict:
    """{parameter name: {state name: zeros like the parameter}}."""
    return {name: {s: np.zeros_like(p) for s in entry.state} for name, p in params.items()}


# ---- schedules ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    name: str
    hypers: tuple               # of Hyper, in positional order
    counts: str                 # what t counts: "steps" (optimizer steps) or "epochs" (completed)
    doc: str                    # the formula
    factor: Callable            # (t, h, total epochs) -> the multiplier of the base learning rate
    kind: ClassVar[str] = "schedule"


SCHEDULES: dict[str, Schedule] = {}


def defschedule(name: str, **fields) -> Schedule:
    return define(SCHEDULES, Schedule, name, **fields)


defschedule("constant", hypers=(), counts="steps", doc="α",
            factor=lambda t, h, total: 1.0)
defschedule("inverse", hypers=(Hyper("gamma", 1.0, "positive", "decay rate γ"),), counts="steps",
            doc="α / (1 + γt): the 1/t decay under which the perceptron settles on non-separable data",
            factor=lambda t, h, total: 1.0 / (1.0 + h["gamma"] * t))
defschedule("inv", hypers=(Hyper("gamma", 1e-4, "positive", "decay rate γ"), Hyper("power", 0.75, "positive", "power p")),
            counts="steps", doc="α (1 + γt)^−p, Caffe's `inv` policy",
            factor=lambda t, h, total: (1.0 + h["gamma"] * t) ** -h["power"])
defschedule("step", hypers=(Hyper("every", None, "count", "epochs between decays"),
                            Hyper("gamma", 0.1, "positive", "factor γ")),
            counts="epochs", doc="α γ^⌊t / every⌋, as torch.optim.lr_scheduler.StepLR",
            factor=lambda t, h, total: h["gamma"] ** (t // int(h["every"])))
defschedule("exp", hypers=(Hyper("gamma", None, "positive", "factor γ per epoch"),), counts="epochs",
            doc="α γ^t, as torch.optim.lr_scheduler.ExponentialLR",
            factor=lambda t, h, total: h["gamma"] ** t)
defschedule("cosine", hypers=(Hyper("min", 0.0, "nonnegative", "the last learning rate, as a fraction of α"),),
            counts="epochs",
            doc="α (m + (1 − m)(1 + cos(π t / T)) / 2), T the number of epochs, as "
                "torch.optim.lr_scheduler.CosineAnnealingLR with eta_min = mα",
            factor=lambda t, h, total: h["min"] + (1 - h["min"]) * (1 + math.cos(math.pi * t / total)) / 2)


def learning_rate(schedule: Schedule, h: dict, base: float, step: int, epoch: int, epochs: int) -> float:
    """The learning rate of the optimizer step numbered `step` (0, 1, ...), taken during epoch
    number `epoch` (0-based, = the epochs completed before it) of `epochs`."""
    if not schedule.hypers:                     # constant: the hot path of most runs
        return base
    t = step if schedule.counts == "steps" else epoch
    return base * schedule.factor(t, h, epochs)
