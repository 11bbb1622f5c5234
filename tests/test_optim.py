"""Optimizers and schedules against PyTorch: torch.optim and torch.optim.lr_scheduler are the
oracle, run on the same model, data and initial parameters in float64."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nndsl
from nndsl.optim import OPTIMIZERS, SCHEDULES, learning_rate

MLP = """
input x[3]
input t[2]
param W1[5, 3] = normal(0.5)
param b1[5] = uniform(-0.1, 0.1)
param W2[4, 5] = normal(0.5)
param b2[4]
param W3[2, 4] = normal(0.5)
h1 = tanh(W1 x + b1)
h2 = σ(W2 h1 + b2)
loss L = mse(W3 h2, t)
"""


def problem(n=16):
    model = nndsl.compile(MLP, dtype="float64")
    rng = np.random.default_rng(3)
    data = {"x": rng.normal(size=(n, 3)), "t": rng.normal(size=(n, 2))}
    return model, model.init(seed=1), data


def torch_params(params):
    return {k: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True) for k, v in params.items()}


def torch_loss(p, x, t):
    h1 = torch.tanh(x @ p["W1"].T + p["b1"])
    h2 = torch.sigmoid(h1 @ p["W2"].T + p["b2"])
    return torch.mean((h2 @ p["W3"].T - t) ** 2)


def torch_train(params, data, make_optimizer, steps, make_scheduler=None, batch=None, per="epoch"):
    """Full-batch (or in-order mini-batch) training with torch.optim; the scheduler steps once
    per epoch or once per optimizer step."""
    p = torch_params(params)
    x, t = (torch.tensor(data[k]) for k in ("x", "t"))
    opt = make_optimizer(list(p.values()))
    sched = make_scheduler(opt) if make_scheduler else None
    n = len(x)
    batch = batch or n
    for _ in range(steps):
        for lo in range(0, n, batch):
            opt.zero_grad()
            torch_loss(p, x[lo:lo + batch], t[lo:lo + batch]).backward()
            opt.step()
            if sched is not None and per == "step":
                sched.step()
        if sched is not None and per == "epoch":
            sched.step()
    return {k: v.detach().numpy() for k, v in p.items()}


def assert_same(ours, theirs, tol=1e-10):
    for name in theirs:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=tol, atol=tol, err_msg=name)


# (nndsl optimizer setting, torch.optim factory)
OPTIMIZER_CASES = {
    "sgd": ("sgd(lr = 0.3)", lambda ps: torch.optim.SGD(ps, lr=0.3)),
    "momentum": ("sgd(lr = 0.1, momentum = 0.9)", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    "dampening": ("sgd(lr = 0.1, momentum = 0.8, dampening = 0.5)",
                  lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.8, dampening=0.5)),
    "nesterov": ("sgd(lr = 0.1, momentum = 0.9, nesterov = 1)",
                 lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)),
    "weight_decay": ("sgd(lr = 0.2, momentum = 0.5, weight_decay = 0.01)",
                     lambda ps: torch.optim.SGD(ps, lr=0.2, momentum=0.5, weight_decay=0.01)),
    "adam": ("adam(lr = 0.01)", lambda ps: torch.optim.Adam(ps, lr=0.01)),
    "adam_defaults": ("adam", lambda ps: torch.optim.Adam(ps)),
    "adam_l2": ("adam(lr = 0.01, beta1 = 0.8, beta2 = 0.99, eps = 1e-6, weight_decay = 0.1)",
                lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    "adamw": ("adamw(lr = 0.01)", lambda ps: torch.optim.AdamW(ps, lr=0.01)),
    "adamw_defaults": ("adamw", lambda ps: torch.optim.AdamW(ps)),
    "adamw_decay": ("adamw(lr = 0.02, weight_decay = 0.3)", lambda ps: torch.optim.AdamW(ps, lr=0.02, weight_decay=0.3)),
}


@pytest.mark.parametrize("case", OPTIMIZER_CASES)
def test_optimizer_matches_torch_over_20_steps(case):
    setting, make = OPTIMIZER_CASES[case]
    model, params, data = problem()
    ours, history = model.train(params, **data, optimizer=setting, epochs=20, batch=16)
    assert len(history) == 20
    assert_same(ours, torch_train(params, data, make, steps=20))


@pytest.mark.parametrize("case", ["momentum", "adam"])
def test_optimizer_matches_torch_with_mini_batches_in_order(case):
    setting, make = OPTIMIZER_CASES[case]
    model, params, data = problem(n=20)
    ours, _ = model.train(params, **data, optimizer=setting, epochs=5, batch=6, shuffle=False)
    assert_same(ours, torch_train(params, data, make, steps=5, batch=6))


def test_every_optimizer_is_tested_against_torch():
    tested = {setting.split("(")[0] for setting, _ in OPTIMIZER_CASES.values()}
    assert tested == set(OPTIMIZERS)


# (nndsl schedule setting, torch scheduler factory, what t counts)
SCHEDULE_CASES = {
    "constant": ("constant", lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1.0), "step"),
    "inverse": ("inverse(0.5)", lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 / (1 + 0.5 * t)), "step"),
    "inv": ("inv(0.1, 0.75)", lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: (1 + 0.1 * t) ** -0.75), "step"),
    "step": ("step(3, 0.5)", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), "epoch"),
    "exp": ("exp(0.9)", lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9), "epoch"),
    "cosine": ("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=12), "epoch"),
    "cosine_min": ("cosine(0.1)", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=12, eta_min=0.03), "epoch"),
}


@pytest.mark.parametrize("case", SCHEDULE_CASES)
@pytest.mark.filterwarnings("ignore:Detected call of")      # the lone learning-rate probe below
def test_schedule_matches_torch_lr_scheduler(case):
    setting, make, per = SCHEDULE_CASES[case]
    model, params, data = problem(n=12)
    ours, history = model.train(params, **data, optimizer="sgd(lr = 0.3, momentum = 0.5)", schedule=setting,
                                epochs=12, batch=4, shuffle=False)
    theirs = torch_train(params, data, lambda ps: torch.optim.SGD(ps, lr=0.3, momentum=0.5), steps=12,
                         make_scheduler=make, batch=4, per=per)
    assert_same(ours, theirs)
    # the learning rates themselves, step by step
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    sched = make(opt)
    entry = SCHEDULES[setting.split("(")[0]]
    settings = model.train_settings([{"schedule": setting, "epochs": 12}])
    for epoch in range(12):
        for b in range(3):
            step = epoch * 3 + b
            ours_lr = learning_rate(entry, settings.schedule_args, 0.3, step, epoch, 12)
            assert ours_lr == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=1e-15), (epoch, b)
            if per == "step":
                sched.step()
        if per == "epoch":
            sched.step()


def test_every_schedule_is_tested_against_torch():
    assert {setting.split("(")[0] for setting, _, _ in SCHEDULE_CASES.values()} == set(SCHEDULES)


def test_what_t_counts_is_stated():
    for entry in SCHEDULES.values():
        assert entry.counts in ("steps", "epochs")


def test_the_seeds_one_dimensional_example():
    """x = 2, y = 1, w = 1, α = 0.1: dL/dw = 2, one SGD step gives w = 0.8."""
    model = nndsl.load("models/backprop_1d.nn")
    params, history = model.train(epochs=1)
    assert float(params["w"]) == pytest.approx(0.8, abs=1e-7)
    assert history["loss"] == [0.5]
    assert history["lr"] == [pytest.approx(0.1)]


def test_schedule_lr_per_epoch_is_logged():
    model, params, data = problem(n=4)
    _, history = model.train(params, **data, lr=1.0, schedule="exp(0.5)", epochs=4)
    assert history["lr"] == [1.0, 0.5, 0.25, 0.125]
    _, history = model.train(params, **data, lr=1.0, schedule="inverse(1)", epochs=3, batch=2)
    # two steps an epoch; the row shows the rate of the epoch's last step: t = 1, 3, 5
    assert history["lr"] == [pytest.approx(1 / 2), pytest.approx(1 / 4), pytest.approx(1 / 6)]


def test_cosine_reaches_its_minimum_at_the_end():
    entry = SCHEDULES["cosine"]
    assert learning_rate(entry, {"min": 0.0}, 2.0, 0, 0, 10) == 2.0
    assert learning_rate(entry, {"min": 0.0}, 2.0, 0, 10, 10) == pytest.approx(0.0, abs=1e-15)
    assert learning_rate(entry, {"min": 0.25}, 2.0, 0, 5, 10) == pytest.approx(2.0 * (0.25 + 0.75 / 2))
    assert not math.isnan(learning_rate(entry, {"min": 0.0}, 1.0, 0, 0, 1))
