"""Training on the PyTorch backend, in one process or data-parallel under `torchrun`.

`TorchTrainer` is the NumPy `Trainer` (nndsl.training) with its step done by PyTorch: the
forward graph lowered to a torch.fx.GraphModule (nndsl.torch_backend), the gradient by
torch.autograd, the update by torch.optim (SGD, Adam, AdamW with nndsl's hyperparameters). The
rest is the Trainer's own: the (seed, epoch) order of samples, metrics, stopping rules,
checkpoints (the same file format, optimizer state included) and resuming.

Data parallel: launched by `torchrun --nproc-per-node N -m nndsl train ...` (or `nndsl train
--nproc N`), each of the N processes (ranks) builds the same global batches in the same order
and takes its share of each: the batch's samples split into N contiguous parts as
`numpy.array_split` splits them (sizes differ by one at most when N does not divide the batch).
A rank's gradient is that of its part's mean loss, weighted by N · (its samples) / (the batch's
samples); DistributedDataParallel averages the ranks' gradients (gloo on CPU, NCCL on CUDA), so
every rank steps with the gradient of the whole batch's mean loss, as one process would. A rank
whose part is empty (a last batch smaller than N) computes a sample with weight 0. Rank 0 alone
writes checkpoints, logs and the trained parameters; every rank can resume from a checkpoint.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np

from .errors import NndslError
from .optim import learning_rate
from .torch_backend import lower, require_torch, torch_dtype
from .training import Trainer


class Snapshot(Mapping):
    """Parameters as they were after a step: copies made on the device, without waiting for them,
    each turned into a NumPy array only when something reads it (the loop reads parameters at
    the end of an epoch, for checkpoints and after a non-finite loss, not at every step)."""

    def __init__(self, tensors: dict, dtype):
        self.tensors, self.dtype, self.arrays = tensors, dtype, {}

    def __getitem__(self, name):
        array = self.arrays.get(name)
        if array is None:
            array = self.arrays[name] = np.array(self.tensors[name].cpu().numpy(), dtype=self.dtype)
        return array

    def __iter__(self):
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def rank() -> int:
    return int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0


def share(index: np.ndarray, world: int, rank: int) -> tuple[np.ndarray, float]:
    """Rank `rank`'s part of a global batch (the sample numbers `index`) among `world` ranks, and
    the weight of its mean loss: averaged over the ranks, the weighted gradients are the
    gradient of the whole batch's mean loss."""
    part = np.array_split(index, world)[rank]
    return part, len(part) * world / len(index)


def make_optimizer(torch, settings, params: list):
    """torch.optim's optimizer for nndsl's settings (the same update, tested equal in tests/test_optim.py)."""
    h = settings.hypers
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=h["lr"], momentum=h["momentum"], dampening=h["dampening"],
                               weight_decay=h["weight_decay"], nesterov=bool(h["nesterov"]))
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[settings.optimizer]
    return kind(params, lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"], weight_decay=h["weight_decay"])


class TorchTrainer(Trainer):
    """One training run on PyTorch: on `model.device`, and data-parallel under torchrun."""

    def compile(self):
        super().compile()               # the NumPy plans stay: diagnostics of a non-finite loss use them
        torch = self.torch = require_torch()
        model = self.model
        self.world, self.rank = 1, 0
        device = model.device or "cpu"
        if launched_by_torchrun():
            import torch.distributed as dist
            self.world, self.rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
            if device.startswith("cuda"):
                device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
                torch.cuda.set_device(device)
            if device.startswith("mps"):
                raise NndslError("distributed training runs on cpu (gloo) or cuda (NCCL), not on mps")
            self.owns_group = not dist.is_initialized()
            if self.owns_group:
                dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
            self.dist = dist
        self.device = torch.device(device)
        self.dtype = torch_dtype(model.dtype, device)
        graph, objective = model.objective_graph()
        targets = {"objective": objective}
        if self.accuracy_node is not None:
            targets.update(prediction=self.accuracy_node[1][0], target=self.accuracy_node[1][1])
        self.module = lower(graph, targets, model.inputs, self.params, model.dtype).to(self.device)
        self.tparams = {}
        for name in self.names:         # a parameter the loss does not read still gets its (zero) update
            self.tparams[name] = (self.module.params[name] if name in self.module.params else
                                  torch.nn.Parameter(torch.from_numpy(self.params[name].copy()).to(self.device)))
        self.net = self.module
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel
            self.net = DistributedDataParallel(self.module, device_ids=[self.device] if self.device.type == "cuda" else None,
                                               find_unused_parameters=self.unused_parameters())
        self.torch_optimizer = make_optimizer(torch, self.settings, [self.tparams[n] for n in self.names])
        # The schedule as a torch.optim.lr_scheduler, stepped once per optimizer step: LambdaLR with
        # nndsl's own formula gives every step the rate the NumPy backend gives it, and needs no
        # state of its own in a checkpoint (step t falls in epoch t // batches).
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.torch_optimizer, self.factor)

    def factor(self, step: int) -> float:
        """The schedule's multiplier of the base learning rate at optimizer step `step` (0, 1, ...)."""
        s = self.settings
        return learning_rate(self.schedule, s.schedule_args, 1.0, step, step // self.batches, s.epochs)

    def unused_parameters(self) -> bool:
        """Whether some parameter of the module gets no gradient (it reaches the loss only through
        argmax, step or sign, say), which DistributedDataParallel must be told: found by one
        forward and backward pass on the first sample."""
        xs = [self.tensor(self.data[name][:1]) for name in self.module.input_names]
        params = list(self.module.params.values())
        objective = self.module(*xs)[0]
        if not objective.requires_grad:
            return bool(params)
        grads = self.torch.autograd.grad(objective, params, allow_unused=True)
        return any(g is None for g in grads)

    def run(self, *args, **kwargs):
        finished = False
        try:
            history = super().run(*args, **kwargs)
            finished = True
            return history
        finally:
            if self.world > 1 and self.owns_group:
                self.net = self.module              # DistributedDataParallel goes before its process group
                if finished:
                    self.dist.barrier()             # every rank done with its last collective
                self.dist.destroy_process_group()

    def tensor(self, array):
        return self.torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def step(self, order) -> bool:
        """One optimizer step on the next global batch, this rank computing its share of it."""
        torch, pos = self.torch, self.position
        lo = pos.batch * self.batch
        hi = min(lo + self.batch, self.n)
        index = np.arange(lo, hi) if order is None else order[lo:hi]
        size = hi - lo
        part, weight = share(index, self.world, self.rank)
        mine = part if len(part) else index[:1]
        xs = [self.tensor(self.data[name][mine]) for name in self.module.input_names]
        outs = self.net(*xs)
        objective = outs[0]
        c, a = self.count_correct([o.detach().cpu().numpy() for o in outs[1:]]) if len(part) else (0, 0)
        counts = torch.tensor([c, a], dtype=torch.float64, device=self.device)
        stats = torch.cat([(objective.detach().double() * len(part)).reshape(1), counts])
        if self.world > 1:
            self.dist.all_reduce(stats)             # on the device: NCCL reduces CUDA tensors alone
        stats = stats.tolist()
        loss = stats[0] / size
        batch = {k: v[index] for k, v in self.data.items()}
        if not math.isfinite(loss):
            self.nonfinite(loss, batch)
            return False
        (objective * weight).backward()
        for p in self.tparams.values():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        pos.loss_sum += loss * size
        pos.samples += size
        pos.correct, pos.answers = pos.correct + int(stats[1]), pos.answers + int(stats[2])
        self.lr = self.torch_optimizer.param_groups[0]["lr"]      # the scheduler's rate for this step
        pos.step += 1
        self.torch_optimizer.step()
        self.torch_optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.previous, self.previous_batch = self.params, batch
        self.params = Snapshot({n: p.detach().clone() for n, p in self.tparams.items()}, self.model.dtype)
        pos.batch += 1
        return True

    def forward(self, part: dict) -> tuple[float, list]:
        """The mean loss over `part` at the current parameters, and the values accuracy reads."""
        with self.torch.no_grad():
            outs = self.module(*[self.tensor(part[name]) for name in self.module.input_names])
        return float(outs[0]), [o.cpu().numpy() for o in outs[1:]]

    # ---- checkpoints: the NumPy trainer's format, the optimizer state from torch.optim --------
    def save(self, path) -> None:
        state = self.torch_optimizer.state
        for name, p in self.tparams.items():
            for key in self.optimizer.state:
                value = state.get(p, {}).get(key)
                self.state[name][key] = (np.zeros(p.shape, dtype=self.model.dtype) if value is None else
                                         np.array(value.detach().cpu().numpy(), dtype=self.model.dtype))
        if self.rank == 0:
            super().save(path)

    def restore(self, path) -> None:
        super().restore(path)
        torch = self.torch
        with torch.no_grad():
            for name, p in self.tparams.items():
                p.copy_(self.tensor(self.params[name]))
        self.scheduler.last_epoch = self.position.step
        for group, base in zip(self.torch_optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base * self.factor(self.position.step)
        if self.position.step == 0:
            return
        for name, p in self.tparams.items():
            entry = {key: self.tensor(self.state[name][key]).clone() for key in self.optimizer.state}
            if self.settings.optimizer == "sgd" and not self.settings.hypers["momentum"]:
                entry = {}
            if self.settings.optimizer != "sgd":
                entry["step"] = torch.tensor(float(self.position.step))
            self.torch_optimizer.state[p] = entry
