"""Generated programs against an independent PyTorch evaluation of their source.

Each test draws one well-typed random .nn program from its seed. Across the suite the programs
have fan-out (a binding read more than once), shared weights (a parameter read more than once),
a `def` called at least twice (and defs calling defs, or reading global bindings), aliases
(`q = p`), the stable rewrites (`bce(σ(z), t)`, `log(softmax(z))`, ... inline or through a
name), every callable built-in and every loss, computed targets, broadcasting with size-1 axes,
values with and without the batch axis, rank-3 values, juxtaposition and every spelling of the
product, dims used as numbers, array literals, and data given as a batch or as one sample.

Beside the text, the generator builds what the program means as a torch function of one
sample, written from SPEC sections 3-5 over the generator's own syntax tree: it shares nothing
with nndsl's parser, lowering, rewrites, graph or gradient rules. Then, in float64:

- `model.run` gives the declared outputs (or the last binding) and the per-sample loss of the
  torch evaluation, with the batch axis exactly where the program's inputs put it;
- `model.grad` gives its batch-mean loss and the torch.autograd gradient of every parameter
  (and, for some programs, of an input with a parameter);
- `model.hvp` gives torch's Hessian-vector product (double backward);
- in float32 (every fourth program), every result is float32.

Non-smooth ops are compared where both sides agree on the answer: a program whose torch
evaluation puts an argument of relu, abs, step, sign, max, min, leaky_relu, mae or a margin loss
within 1e-7 of its kink (but not exactly on it, where nndsl's rules are torch's) is drawn again
from the same random stream, as is one with a non-finite or huge value, the argument of a log,
sqrt or division near 0, or a probability near 0 or 1.

The default suite runs 300 programs, seeds 0 to 299 (about 10 s). A longer campaign:

    NNDSL_GENERATED=5000 python -m pytest -q tests/test_generated.py

A failure prints the program's text and seed; `python tests/test_generated.py SEED` prints a
program on its own.
"""
from __future__ import annotations

import functools
import os
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
import torch

import nndsl
from nndsl.ops import REGISTRY, user_functions

N_PROGRAMS = int(os.environ.get("NNDSL_GENERATED", "300"))
F64 = torch.float64
RTOL = 1e-7
KINK = 1e-7                   # arguments this close to a kink, but not on it, are drawn again
LOSSES = ["mse", "mae", "bce", "cross_entropy", "sparse_cross_entropy", "nll", "hinge", "squared_hinge", "perceptron"]


# ---- the generator's syntax tree: text and meaning side by side --------------------------
class Guard:
    """Notes the first place where a torch evaluation leaves the region where the comparison
    means something (near a kink, near a pole, non-finite or huge)."""

    def __init__(self):
        self.problem = None

    def fail(self, why: str):
        if self.problem is None:
            self.problem = why

    def value(self, v, what: str):
        if not torch.isfinite(v).all() or v.abs().max() > 1e6:
            self.fail(f"{what}: value {v}")

    def kink(self, z, what: str):
        d = z.detach().abs()
        if ((d > 0) & (d < KINK)).any():
            self.fail(f"{what}: argument {z} near its kink")

    def positive(self, z, what: str, low=1e-6):
        if (z.detach() < low).any():
            self.fail(f"{what}: argument {z} near 0")

    def unit(self, p, what: str):
        if ((p.detach() < 1e-6) | (p.detach() > 1 - 1e-6)).any():
            self.fail(f"{what}: probability {p} near 0 or 1")


@dataclass(frozen=True)
class Expr:
    text: str
    shape: tuple
    deps: frozenset                  # the inputs it depends on (batched iff any), and "@a" for a def's a
    fn: Callable                     # (env, guard or None) -> the value for one sample
    atomic: bool = True              # may stand as an operand without parentheses
    name: str | None = None          # a bare name (so `name(z)` is the product `name z`)


SUPERSCRIPTS = {"2": "²", "3": "³", "-1": "⁻¹"}


def wrap(e: Expr) -> str:
    return e.text if e.atomic else f"({e.text})"


def indexable(e: Expr) -> str:
    """`e` as it may stand before `[` or `ᵀ`: a name or a call as it is, anything else in parentheses."""
    return e.text if e.atomic and (e.name is not None or e.text.endswith(")")) else f"({e.text})"


def const(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=F64)


def top_gap(z):
    """How far the largest element along the last axis is from the next: 0 at a tie (a kink)."""
    top = torch.topk(z, 2, dim=-1).values if z.shape[-1] > 1 else torch.stack([z[..., 0], z[..., 0] - 1], -1)
    return top[..., 0] - top[..., 1]


def transpose(z):
    return z.permute(*reversed(range(z.dim()))) if z.dim() > 1 else z


def broadcast(*shapes) -> tuple:
    return tuple(np.broadcast_shapes(*shapes))


# Each built-in a .nn file can call: what it means for one sample, written from the SPEC, and
# the guard on its arguments. Losses are per-sample scalars over broadcast arguments.
def guarded(check, fn):
    def call(g, *xs):
        if g is not None:
            check(g, *xs)
        return fn(*xs)
    return call


def no_check(g, *xs):
    pass


def kink_at_zero(name):
    return lambda g, z, *rest: g.kink(z, name)


def pairwise(fn):
    return lambda y, t: fn(*torch.broadcast_tensors(y, t)).mean()


def cross_entropy(p, t):
    p, t = torch.broadcast_tensors(p, t)
    return (-(t * torch.log(p)).sum(-1)).mean()


BUILTINS = {
    "relu": guarded(kink_at_zero("relu"), torch.relu),
    "sigmoid": guarded(no_check, torch.sigmoid),
    "σ": guarded(no_check, torch.sigmoid),
    "tanh": guarded(no_check, torch.tanh),
    "step": guarded(kink_at_zero("step"), lambda z: (z > 0).to(F64)),
    "sign": guarded(kink_at_zero("sign"), torch.sign),
    # torch.logaddexp(0, z) is exact but its double backward overflows to NaN for large |z|
    "softplus": guarded(no_check, torch.nn.functional.softplus),
    "leaky_relu": guarded(kink_at_zero("leaky_relu"), lambda z, s: torch.where(z > 0, z, s * z)),
    "identity": guarded(no_check, lambda z: z),
    "exp": guarded(no_check, torch.exp),
    "log": guarded(lambda g, z: g.positive(z, "log"), torch.log),
    "abs": guarded(kink_at_zero("abs"), torch.abs),
    "sqrt": guarded(lambda g, z: g.positive(z, "sqrt"), torch.sqrt),
    "log_sigmoid": guarded(no_check, torch.nn.functional.logsigmoid),
    "softmax": guarded(no_check, lambda z: torch.softmax(z, -1)),
    "log_softmax": guarded(no_check, lambda z: torch.log_softmax(z, -1)),
    "max": guarded(lambda g, a, b: g.kink(a - b, "max"), torch.maximum),
    "min": guarded(lambda g, a, b: g.kink(a - b, "min"), torch.minimum),
    "sum": guarded(no_check, torch.sum),
    "mean": guarded(no_check, torch.mean),
    "transpose": guarded(no_check, transpose),
    "concat": guarded(no_check, lambda *xs: torch.cat(xs, -1)),
    "argmax": guarded(lambda g, z: g.kink(top_gap(z), "argmax"), lambda z: torch.argmax(z, -1).to(F64)),
    "mse": guarded(no_check, pairwise(lambda y, t: (y - t) ** 2)),
    "mae": guarded(lambda g, y, t: g.kink(y - t, "mae"), pairwise(lambda y, t: (y - t).abs())),
    "bce": guarded(lambda g, p, t: g.unit(p, "bce"),
                   pairwise(lambda p, t: -(t * torch.log(p) + (1 - t) * torch.log(1 - p)))),
    "cross_entropy": guarded(lambda g, p, t: g.positive(p, "cross_entropy"), cross_entropy),
    "sparse_cross_entropy": guarded(lambda g, p, k: g.positive(p, "sparse_cross_entropy"),
                                    lambda p, k: -torch.log(p[int(k)])),
    "nll": guarded(no_check, lambda lp, k: -lp[int(k)]),
    "hinge": guarded(lambda g, y, t: g.kink(1 - t * y, "hinge"),
                     pairwise(lambda y, t: torch.clamp(1 - t * y, min=0))),
    "squared_hinge": guarded(lambda g, y, t: g.kink(1 - t * y, "squared_hinge"),
                             pairwise(lambda y, t: torch.clamp(1 - t * y, min=0) ** 2)),
    "perceptron": guarded(lambda g, y, t: g.kink(t * y, "perceptron"),
                          pairwise(lambda y, t: torch.clamp(-t * y, min=0))),
}
GRADIENT_FUNCTIONS = {"batch_sum", "batch_size", "unbroadcast", "broadcast_like", "tie_mask", "one_hot", "sum_last",
                      "outer", "index_grad"}
ELEMENTWISE = ["relu", "sigmoid", "σ", "tanh", "step", "sign", "softplus", "identity", "exp", "abs", "log_sigmoid"]
# a built-in the generator cannot write is a failure of test_every_builtin_and_loss_is_generated
ARITHMETIC = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "−": lambda a, b: a - b,
    "*": lambda a, b: a * b, "⊙": lambda a, b: a * b, "/": lambda a, b: a / b,
}
NUMBER_SPELLINGS = {0.5: ["0.5", ".5", "5e-1"], 2.0: ["2", "2.", "2.0"], 0.1: ["0.1", "1e-1", "1E-1"],
                    1.0: ["1", "1."], 0.25: ["0.25"], 1.5: ["1.5"], 3.0: ["3"], 0.3: ["0.3"]}


# ---- the program generator ---------------------------------------------------------------
@dataclass
class Program:
    seed: int
    source: str
    inputs: dict                 # name -> (per-sample shape, domain)
    params: dict                 # name -> shape
    statements: list             # (name, Expr), in order
    outputs: list                # the names `run` reports, in order (the loss last)
    loss: str
    used: Counter                # built-ins written, by spelling
    batch: int | None            # None: one sample, no batch axis
    data: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    direction: dict = field(default_factory=dict)
    wrt_input: str | None = None


class Generator:
    def __init__(self, rng: random.Random, loss: str):
        self.rng = rng
        self.loss_name = loss
        self.dims = {"n": rng.choice([2, 3]), "m": rng.choice([2, 3, 4])}
        self.decls: list = []
        self.inputs: dict = {}
        self.params: dict = {}
        self.bindings: dict = {}      # name -> the Expr bound to it (for its shape and deps)
        self.locals: dict | None = None
        self.defs: list = []          # (name, params [(name, shape)], body Expr)
        self.lines: list = []
        self.statements: list = []
        self.outputs: list = []
        self.used = Counter()
        self.refs = Counter()
        self.calls = Counter()
        self.declare_outputs = rng.random() < 0.8     # else `run` reports the last binding
        self.late_def = False

    # -- small helpers
    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def size(self) -> int:
        return self.rng.choice([1, 2, 2, 3, 3, 4, 4, self.dims["n"], self.dims["m"]])

    def shape(self, max_rank=2) -> tuple:
        rank = self.rng.choice([0, 1, 1, 2, 2] + [3] * (max_rank >= 3))
        return tuple(self.size() for _ in range(rank))

    def size_text(self, s: int) -> str:
        names = [n for n, v in self.dims.items() if v == s]
        return self.rng.choice(names) if names and self.chance(0.6) else str(s)

    def shape_text(self, shape) -> str:
        if not shape:
            return self.rng.choice(["", "[]"])
        return "[" + ", ".join(self.size_text(s) for s in shape) + "]"

    def number(self, value: float) -> Expr:
        text = self.rng.choice(NUMBER_SPELLINGS.get(abs(value), [repr(abs(value))]))
        if value < 0:
            return Expr(f"-{text}", (), frozenset(), lambda env, g, v=value: const(v), atomic=False)
        return Expr(text, (), frozenset(), lambda env, g, v=value: const(v))

    def name(self, name: str, shape: tuple, deps: frozenset) -> Expr:
        self.refs[name] += 1
        return Expr(name, shape, deps, lambda env, g: env[name], name=name)

    def call(self, spelling: str, *args: Expr, shape=None) -> Expr:
        self.used[spelling] += 1
        fn = BUILTINS[spelling]
        shape = args[0].shape if shape is None else shape
        deps = frozenset().union(*(a.deps for a in args))

        def value(env, g):
            out = fn(g, *[a.fn(env, g) for a in args])
            if g is not None:
                g.value(out, spelling)
            return out
        return Expr(f"{spelling}(" + ", ".join(a.text for a in args) + ")", shape, deps, value)

    def binary(self, op: str, a: Expr, b: Expr, check=None) -> Expr:
        fn = ARITHMETIC[op]

        def value(env, g):
            x, y = a.fn(env, g), b.fn(env, g)
            if g is not None and check is not None:
                check(g, x, y)
            out = fn(x, y)
            if g is not None:
                g.value(out, op)
            return out
        return Expr(f"{wrap(a)} {op} {wrap(b)}", broadcast(a.shape, b.shape), a.deps | b.deps, value, atomic=False)

    def new_input(self, shape: tuple, domain: str = "normal", prefix: str = "x") -> Expr:
        name = f"{prefix}{len(self.inputs)}"
        self.inputs[name] = (shape, domain)
        self.decls.append(f"input {name}{self.shape_text(shape)}")
        return self.name(name, shape, frozenset([name]))

    def new_param(self, shape: tuple) -> Expr:
        name = f"{'W' if len(shape) >= 2 else 'b'}{len(self.params)}"
        self.params[name] = shape
        inits = ["", " = normal(0.5)", " = uniform(-1, 1)", " = zeros", " = ones", " = 0.5"]
        if len(shape) >= 2:
            inits += [" = xavier", " = he"]
        self.decls.append(f"param {name}{self.shape_text(shape)}{self.rng.choice(inits)}")
        return self.name(name, shape, frozenset())

    # -- leaves: a value in scope of exactly this shape, a literal, a dim, or a new declaration
    def leaf(self, shape: tuple) -> Expr:
        scope = [(n, s, frozenset()) for n, s in self.params.items() if s == shape]
        if self.locals is not None:
            local = [(n, s, frozenset([f"@{n}"])) for n, s in self.locals.items() if s == shape]
            scope += local * 4
            if self.late_def:              # a def after some bindings may read them
                scope += [(n, e.shape, e.deps) for n, e in self.bindings.items() if e.shape == shape]
        else:
            scope += [(n, s, frozenset([n])) for n, (s, d) in self.inputs.items() if s == shape and d == "normal"]
            scope += [(n, e.shape, e.deps) for n, e in self.bindings.items() if e.shape == shape] * 3
        if scope and self.chance(0.8):
            return self.name(*self.rng.choice(scope))
        roll = self.rng.random()
        if shape == () and roll < 0.4:
            return self.number(self.rng.choice([0.5, 2.0, 0.1, -1.0, 1.5, -0.5, 3.0]))
        if shape == () and roll < 0.55:
            dim = self.rng.choice(sorted(self.dims))
            return Expr(dim, (), frozenset(), lambda env, g, v=self.dims[dim]: const(float(v)))
        if 0 < len(shape) <= 2 and roll < 0.25:
            values = np.round(np.array([self.rng.uniform(-2, 2) for _ in range(int(np.prod(shape)))]), 1)
            values = values.reshape(shape)
            text = np.array2string(values, separator=", ").replace("\n", "").replace("  ", " ")
            return Expr(text, shape, frozenset(), lambda env, g, v=values: const(v))
        if self.locals is None and len(self.inputs) < 5 and roll < 0.6:
            return self.new_input(shape)
        return self.new_param(shape)

    # -- expressions of a given per-sample shape
    def gen(self, shape: tuple, depth: int) -> Expr:
        if depth <= 0 or self.chance(0.2):
            return self.leaf(shape)
        builders = [(3, self.g_elementwise), (2, self.g_arithmetic), (2, self.g_matmul), (1, self.g_maxmin),
                    (1, self.g_pow), (1, self.g_neg), (1, self.g_logsqrt), (1, self.g_leaky),
                    (1, self.g_transpose), (1, self.g_index), (1, self.g_argmax)]
        if shape and shape[-1] >= 2:
            builders += [(1, self.g_concat)]
        if shape == ():
            builders += [(2, self.g_reduce)]
        if shape:
            builders += [(1, self.g_softmax)]
        if any(body.shape == shape for _, _, body in self.defs):
            builders += [(3, self.g_defcall)]
        weights = [w for w, _ in builders]
        builder = self.rng.choices([b for _, b in builders], weights)[0]
        return builder(shape, depth - 1)

    def suffix(self, shape: tuple) -> tuple:
        """A shape that broadcasts to `shape` (a trailing part of it)."""
        return shape[self.rng.randint(0, len(shape)):]

    def pair(self, shape: tuple) -> tuple:
        """Two shapes that broadcast to `shape`: on each axis at least one has its size, the
        other that size or 1; one of them may lack leading axes."""
        short = [self.rng.random() for _ in shape]
        a = tuple(1 if r < 0.15 else s for r, s in zip(short, shape))
        b = tuple(1 if 0.15 <= r < 0.3 else s for r, s in zip(short, shape))
        if self.chance(0.5):
            drop = self.rng.randint(0, len(shape))
            if all(s == n for s, n in zip(b[:drop], shape)):
                a = a[drop:]
            elif all(s == n for s, n in zip(a[:drop], shape)):
                b = b[drop:]
        return (a, b) if self.chance(0.5) else (b, a)

    def g_elementwise(self, shape, depth):
        return self.call(self.rng.choice(ELEMENTWISE), self.gen(shape, depth))

    def g_neg(self, shape, depth):
        a = self.gen(shape, depth)
        return Expr(f"{self.rng.choice(['-', '−'])}{wrap(a)}", shape, a.deps, lambda env, g: -a.fn(env, g),
                    atomic=False)

    def g_arithmetic(self, shape, depth):
        op = self.rng.choice(["+", "-", "−", "*", "⊙", "/"])
        sa, sb = self.pair(shape)
        if op == "/":
            return self.binary(op, self.gen(sa, depth), self.positive(sb, depth),
                               check=lambda g, x, y: g.positive(y, "/"))
        return self.binary(op, self.gen(sa, depth), self.gen(sb, depth))

    def g_maxmin(self, shape, depth):
        sa, sb = self.pair(shape)
        a = self.number(0.0) if self.chance(0.25) else self.gen(sa, depth)
        b = self.gen(shape if a.shape == () else sb, depth)
        if self.chance(0.5):
            a, b = b, a
        return self.call(self.rng.choice(["max", "min"]), a, b, shape=shape)

    def g_pow(self, shape, depth):
        spelling = self.rng.choice(["^", "**"])
        kind = self.rng.random()
        if kind < 0.4:                                    # any base, whole exponent
            base, exponent = self.gen(shape, depth), self.number(self.rng.choice([2.0, 3.0]))
        elif kind < 0.7:                                  # positive base, any exponent
            base, exponent = self.positive(shape, depth), self.number(self.rng.choice([0.5, -1.0, 1.5, -0.5]))
        else:                                             # positive base, a tensor exponent
            sa, sb = self.pair(shape)
            base, exponent = self.positive(sa, depth), self.gen(sb, depth)
        exp_text = exponent.text if exponent.text.startswith("-") and self.chance(0.5) else wrap(exponent)
        sup = SUPERSCRIPTS.get(exponent.text)
        text = (f"{indexable(base)}{sup}" if sup and self.chance(0.5)
                else f"{wrap(base)} {spelling} {exp_text}")

        def value(env, g):
            b, e = base.fn(env, g), exponent.fn(env, g)
            out = b ** e
            if g is not None:
                g.value(out, "^")
            return out
        return Expr(text, broadcast(base.shape, exponent.shape), base.deps | exponent.deps, value, atomic=False)

    def g_logsqrt(self, shape, depth):
        return self.call(self.rng.choice(["log", "sqrt"]), self.positive(shape, depth))

    def g_leaky(self, shape, depth):
        slope = self.number(self.rng.choice([0.1, 0.25])) if self.chance(0.6) else self.leaf(self.suffix(shape))
        return self.call("leaky_relu", self.gen(shape, depth), slope, shape=shape)

    def g_transpose(self, shape, depth):
        a = self.gen(tuple(reversed(shape)), depth)
        if self.chance(0.5):
            return self.call("transpose", a, shape=shape)
        return Expr(f"{indexable(a)}ᵀ", shape, a.deps, lambda env, g: transpose(a.fn(env, g)))

    def g_index(self, shape, depth):
        """`a[i]`, `a[-1]`, `a[1:]`, `a[:, j]`, ...: an operand one axis larger, or sliced."""
        n = self.size() + 1
        if self.chance(0.5):                              # a position: the first axis goes
            a = self.gen((n,) + shape, depth)
            i = self.rng.randrange(-n, n)
            key, text = (i,), f"[{i}]"
        elif shape:                                       # a slice of the first axis
            n = shape[0] + self.rng.randint(0, 2)
            a = self.gen((n,) + shape[1:], depth)
            start = self.rng.randint(0, n - shape[0])
            stop = start + shape[0]
            key = (slice(start, stop),)
            text = f"[{start if start else ''}:{stop if stop != n else ''}]"
        else:
            return self.leaf(shape)
        if shape and isinstance(key[0], int) and self.chance(0.3):     # on the second axis: `a[:, i]`
            a = self.gen(shape[:1] + a.shape[:1] + shape[1:], depth)
            key, text = (slice(None),) + key, "[:, " + text[1:]
        return Expr(f"{indexable(a)}{text}", shape, a.deps, lambda env, g, k=key: a.fn(env, g)[k])

    def g_concat(self, shape, depth):
        k = self.rng.randint(1, shape[-1] - 1)
        a, b = self.gen(shape[:-1] + (k,), depth), self.gen(shape[:-1] + (shape[-1] - k,), depth)
        return self.call("concat", a, b, shape=shape)

    def g_argmax(self, shape, depth):
        return self.call("argmax", self.gen(shape + (self.size() + 1,), depth), shape=shape)

    def g_reduce(self, shape, depth):
        return self.call(self.rng.choice(["sum", "mean"]), self.gen(self.shape(3), depth), shape=())

    def g_softmax(self, shape, depth):
        return self.call(self.rng.choice(["softmax", "log_softmax"]), self.gen(shape, depth))

    def g_matmul(self, shape, depth):
        """Juxtaposition or `@ · ∙ ⋅` (or `W(z)`): a matrix product, or scaling by a scalar."""
        k = self.size()
        if len(shape) > 2 or self.chance(0.2):            # scaling: a scalar on either side
            a, b = self.gen((), depth), self.gen(shape, depth)
            if self.chance(0.5):
                a, b = b, a
        elif shape == ():
            a, b = self.gen((k,), depth), self.gen((k,), depth)
        elif len(shape) == 1 and self.chance(0.5):
            a, b = self.gen((shape[0], k), depth), self.gen((k,), depth)
        elif len(shape) == 1:
            a, b = self.gen((k,), depth), self.gen((k, shape[0]), depth)
        else:
            a, b = self.gen((shape[0], k), depth), self.gen((k, shape[1]), depth)
        scaling = () in (a.shape, b.shape)
        ops = ["", "", "@", "·", "∙", "⋅"] + (["call"] if a.name is not None else [])
        op = self.rng.choice(ops)
        if op == "" and (wrap(b).startswith(("[", "-")) or wrap(a).endswith("]")
                         or (a.name is not None and wrap(b).startswith("("))):
            op = "·"                  # `W [1, 2]` would read as an index, `W (z)ᵀ` as `(W(z))ᵀ`
        if op == "call":
            text = f"{a.name}({b.text})"
        elif op == "":
            text = f"{wrap(a)} {wrap(b)}"
        else:
            text = f"{wrap(a)} {op} {wrap(b)}"

        def value(env, g):
            x, y = a.fn(env, g), b.fn(env, g)
            out = x * y if scaling else torch.matmul(x, y)
            if g is not None:
                g.value(out, "matmul")
            return out
        return Expr(text, shape, a.deps | b.deps, value, atomic=op == "call")

    def g_defcall(self, shape, depth, which=None):
        name, params, body = which or self.rng.choice([d for d in self.defs if d[2].shape == shape])
        args = [self.gen(s, depth) for _, s in params]
        self.calls[name] += 1
        deps = frozenset(d for d in body.deps if not d.startswith("@")).union(
            *(a.deps for (p, _), a in zip(params, args) if f"@{p}" in body.deps))

        def value(env, g):
            local = dict(env)
            local.update({p: a.fn(env, g) for (p, _), a in zip(params, args)})
            return body.fn(local, g)
        return Expr(f"{name}(" + ", ".join(a.text for a in args) + ")", shape, deps, value)

    # -- values with a range
    def positive(self, shape, depth) -> Expr:
        kind = self.rng.randrange(6 if shape else 5)
        e = self.gen(shape, depth)
        if kind == 0:
            return self.call("exp", e)
        if kind == 1:
            return self.call(self.rng.choice(["sigmoid", "σ"]), e)
        if kind == 2:
            return self.binary("+", self.call("softplus", e), self.number(0.5))
        if kind == 3:
            return self.binary("+", self.binary("*", e, e), self.number(self.rng.choice([0.5, 1.0])))
        if kind == 4:
            return self.binary("+", self.call("abs", e), self.number(0.25))
        return self.call("softmax", e)

    def probability(self, shape, depth) -> Expr:
        e = self.gen(shape, depth)
        kind = self.rng.randrange(3)
        if kind == 0:
            return self.call(self.rng.choice(["sigmoid", "σ"]), e)     # bce(σ(z), t) is rewritten
        if kind == 1:
            return self.binary("+", self.number(0.5), self.binary("*", self.number(0.3), self.call("tanh", e)))
        return self.call("exp", self.call("log_sigmoid", e))

    def distribution(self, shape, depth) -> Expr:
        e = self.gen(shape, depth)
        kind = self.rng.randrange(3 if len(shape) == 1 else 2)
        if kind == 0:
            return self.call("softmax", e)                            # cross_entropy(softmax(z), t) too
        if kind == 1:
            return self.call("exp", self.call("log_softmax", e))
        top = self.call("exp", e)
        return self.binary("/", top, self.call("sum", top, shape=()))

    # -- statements
    def bind(self, name: str, e: Expr, output: bool = False) -> str:
        self.lines.append(f"{'output ' if output else ''}{name} = {e.text}")
        self.statements.append((name, e))
        self.bindings[name] = e
        if output:
            self.outputs.append(name)
        return name

    def named(self, e: Expr, prefix: str) -> Expr:
        """`e` as a binding of its own, sometimes read through an alias (`q = p`)."""
        name = self.bind(f"{prefix}{len(self.statements)}", e)
        if self.declare_outputs and self.chance(0.3):
            self.lines.append(f"output {name}")
            self.outputs.append(name)
        if self.chance(0.5):
            name = self.bind(f"{prefix}{len(self.statements)}", self.name(name, e.shape, e.deps))
        return self.name(name, e.shape, e.deps)

    def def_statement(self, name: str):
        params = [(p, self.shape()) for p in ["a", "c", "d"][: self.rng.randint(1, 3)]]
        self.locals = dict(params)
        body = self.gen(self.rng.choice(params)[1] if self.chance(0.7) else self.shape(), self.rng.randint(1, 3))
        self.locals = None
        self.defs.append((name, params, body))
        self.lines.append(f"def {name}(" + ", ".join(p for p, _ in params) + f") = {body.text}")

    def target(self, shape, domain) -> Expr:
        if self.chance(0.25):                                          # a computed target
            if domain == "unit":
                return self.probability(shape, 1)
            if domain in ("soft", "onehot"):
                return self.distribution(shape, 1)
            if domain == "sign":
                return self.call("tanh", self.gen(shape, 1))
            return self.gen(shape, 1)
        return self.new_input(shape, domain, prefix="t")

    def loss_term(self, loss: str, depth: int) -> Expr:
        shape = self.shape()
        sy, st = self.pair(shape)
        if loss in ("mse", "mae"):
            y, t = self.gen(sy, depth), self.target(st, "normal")
        elif loss in ("hinge", "squared_hinge", "perceptron"):
            y, t = self.gen(sy, depth), self.target(st, "sign")
        elif loss == "bce":
            p = self.probability(sy, depth)
            y, t = (self.named(p, "p") if self.chance(0.4) else p), self.target(st, "unit")
        elif loss == "cross_entropy":
            shape = shape or (self.size(),)
            p = self.distribution(shape, depth)
            y = self.named(p, "p") if self.chance(0.4) else p
            t = self.target(shape[-1:] if self.chance(0.3) else shape, self.rng.choice(["soft", "onehot"]))
        elif loss == "nll":                                 # log-probabilities, mostly; any scores will do
            n = self.size()
            lp = self.gen((n,), depth)
            y = self.call("log_softmax", lp, shape=(n,)) if self.chance(0.7) else lp
            t = self.new_input((), f"index{n}", prefix="k")
        else:
            n = self.size()
            p = self.distribution((n,), depth)
            y, t = (self.named(p, "p") if self.chance(0.4) else p), self.new_input((), f"index{n}", prefix="k")
        return self.call(loss, y, t, shape=())

    def build(self, seed: int) -> Program:
        rng = self.rng
        for dim in sorted(self.dims):
            self.decls.append(f"dim {dim} = {self.dims[dim]}")
        self.new_input((self.dims["n"],))
        for name in ["f", "g"][: rng.choice([1, 1, 2])]:
            self.def_statement(name)
        first = self.defs[0]                                # called twice at least
        for _ in range(2):
            self.bind(f"h{len(self.statements)}", self.g_defcall(first[2].shape, 2, which=first))
        for _ in range(rng.randint(1, 4)):
            self.bind(f"h{len(self.statements)}", self.gen(self.shape(3), rng.randint(1, 3)))
        if rng.random() < 0.3:                              # a def that reads global bindings
            self.late_def = True
            self.def_statement("u")
            self.bind(f"h{len(self.statements)}", self.g_defcall(self.defs[-1][2].shape, 1, which=self.defs[-1]))
        self.bind(f"o{len(self.statements)}", self.gen(self.shape(), rng.randint(1, 3)), output=self.declare_outputs)
        if self.declare_outputs and rng.random() < 0.15:    # an input or a parameter as an output
            name = rng.choice(sorted(self.inputs) + sorted(self.params))
            self.lines.append(f"output {name}")
            self.outputs.append(name)
        term = self.loss_term(self.loss_name, rng.randint(1, 3))
        if rng.random() < 0.35:
            extra = self.loss_term(rng.choice(LOSSES), 1)
            term = self.binary("+", term, self.binary("*", self.number(0.5), extra))
        if not self.declare_outputs:
            self.outputs = [self.statements[-1][0]]
        self.lines.append(f"loss L = {term.text}")
        self.statements.append(("L", term))
        header = [f"# generated program {seed}"] + (["model generated"] if rng.random() < 0.3 else [])
        source = "\n".join(header + self.decls + self.lines) + "\n"
        return Program(seed, source, dict(self.inputs), dict(self.params), list(self.statements),
                       self.outputs + ["L"], "L", self.used,
                       None if rng.random() < 0.1 else rng.choice([1, 2, 3, 3, 4]))


def sample_data(program: Program, rng: np.random.Generator) -> dict:
    lead = () if program.batch is None else (program.batch,)
    data = {}
    for name, (shape, domain) in program.inputs.items():
        size = lead + shape
        if domain == "normal":
            data[name] = rng.normal(size=size)
        elif domain == "unit":
            data[name] = rng.uniform(0.05, 0.95, size=size)
        elif domain == "sign":
            data[name] = rng.choice([-1.0, 1.0], size=size)
        elif domain == "soft":
            z = rng.normal(size=size)
            data[name] = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        elif domain == "onehot":
            data[name] = np.eye(shape[-1])[rng.integers(0, shape[-1], size=size[:-1])]
        else:
            data[name] = rng.integers(0, int(domain[len("index"):]), size=size).astype(float)
    return data


def evaluate(program: Program, guard: Guard | None = None, wrt_input: str | None = None):
    """The torch meaning of the program: ({output: value}, batch-mean loss, param leaves, input leaf)."""
    params = {n: torch.tensor(v, dtype=F64, requires_grad=True) for n, v in program.values.items()}
    data = {n: torch.tensor(v, dtype=F64, requires_grad=n == wrt_input) for n, v in program.data.items()}
    samples = 1 if program.batch is None else program.batch
    per_sample = {name: [] for name in program.outputs}
    for b in range(samples):
        env = dict(params)
        env.update({n: (v if program.batch is None else v[b]) for n, v in data.items()})
        for name, e in program.statements:
            env[name] = e.fn(env, guard)
        for name in program.outputs:
            per_sample[name].append(env[name])
    deps = {name: e.deps for name, e in program.statements}
    deps.update({name: frozenset([name]) for name in program.inputs})
    deps.update({name: frozenset() for name in program.params})
    outputs = {name: (vs[0] if program.batch is None or not deps[name] else torch.stack(vs))
               for name, vs in per_sample.items()}
    objective = torch.stack(per_sample[program.loss]).mean()
    return outputs, objective, params, data.get(wrt_input)


def structure_problem(g: Generator, program: Program) -> str | None:
    bindings = [n for n, _ in program.statements if n != "L"]
    if not any(g.refs[n] >= 2 for n in bindings):
        return "no binding is read twice"
    if not any(g.refs[n] >= 2 for n in program.params):
        return "no parameter is read twice"
    if not any(c >= 2 for c in g.calls.values()):
        return "no def is called twice"
    if not program.params:
        return "no parameter"
    return None


@functools.lru_cache(maxsize=None)
def generate(seed: int) -> Program:
    """The program of `seed`, with its data, parameters and direction (drawn again until the
    structure holds and the torch evaluation stays away from kinks and poles)."""
    rng = random.Random(seed)
    problems = []
    for _ in range(200):
        g = Generator(rng, LOSSES[seed % len(LOSSES)])
        program = g.build(seed)
        problem = structure_problem(g, program)
        if problem is None:
            nrng = np.random.default_rng(rng.randrange(2**32))
            program.data = sample_data(program, nrng)
            program.values = {n: nrng.normal(0, 0.6, s) for n, s in program.params.items()}
            program.direction = {n: nrng.normal(0, 1, s) for n, s in program.params.items()}
            normal = [n for n, (_, d) in program.inputs.items() if d == "normal"]
            program.wrt_input = rng.choice(normal) if normal and rng.random() < 0.3 else None
            guard = Guard()
            _, objective, _, _ = evaluate(program, guard)
            problem = guard.problem or (None if objective.requires_grad else "the loss reads no parameter")
        if problem is None:
            return program
        problems.append(problem)
    raise RuntimeError(f"seed {seed}: no program in 200 draws: {Counter(problems).most_common(5)}")


# ---- the comparison ------------------------------------------------------------------------
def assert_close(ours, theirs, what: str):
    theirs = np.asarray(theirs)
    assert np.shape(ours) == theirs.shape, f"{what}: shape {np.shape(ours)}, torch {theirs.shape}"
    scale = max(1.0, float(np.max(np.abs(theirs), initial=0.0)))
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def check(program: Program) -> None:
    model = nndsl.compile(program.source, dtype="float64", filename=f"generated{program.seed}.nn")
    assert set(model.params) == set(program.params) and set(model.inputs) == set(program.inputs)
    params, data = program.values, program.data

    outputs, objective, leaves, _ = evaluate(program)
    ran = model.run(params, **data)
    assert list(ran) == program.outputs
    for name, value in outputs.items():
        assert_close(ran[name], value.detach().numpy(force=True), f"run: {name}")

    loss, grads = model.grad(params, **data)
    names = list(leaves)
    t_grads = torch.autograd.grad(objective, [leaves[n] for n in names], create_graph=True, allow_unused=True)
    assert loss == pytest.approx(objective.item(), rel=RTOL, abs=1e-12)
    for name, g in zip(names, t_grads):
        assert_close(grads[name], np.zeros(program.params[name]) if g is None else g.detach().numpy(force=True),
                     f"grad: {name}")

    hvp = model.hvp(params, program.direction, **data)
    terms = [(g * torch.tensor(program.direction[n])).sum() for n, g in zip(names, t_grads) if g is not None]
    total = sum(terms) if terms else None
    second = ([None] * len(names) if total is None or not total.requires_grad else
              torch.autograd.grad(total, [leaves[n] for n in names], allow_unused=True))
    for name, h in zip(names, second):
        assert_close(hvp[name], np.zeros(program.params[name]) if h is None else h.numpy(force=True), f"hvp: {name}")

    if program.wrt_input:                  # an input and the first parameter
        first = names[0]
        _, objective, leaves, leaf = evaluate(program, wrt_input=program.wrt_input)
        expected = torch.autograd.grad(objective, [leaf, leaves[first]], allow_unused=True)
        _, by_input = model.grad(params, wrt=[program.wrt_input, first], **data)
        assert list(by_input) == [program.wrt_input, first]
        for name, value, shape in zip(by_input, expected, [leaf.shape, program.params[first]]):
            assert_close(by_input[name], np.zeros(shape) if value is None else value.numpy(force=True),
                         f"grad: {name} (with an input)")

    if program.seed % 4 == 0:               # float32, the default: every result in float32
        single = model.astype("float32")
        results = list(single.run(params, **data).values()) + list(single.grad(params, **data)[1].values())
        assert all(np.asarray(v).dtype == np.float32 for v in results)


@pytest.mark.parametrize("seed", range(N_PROGRAMS))
def test_generated_program_matches_torch(seed):
    program = generate(seed)
    try:
        check(program)
    except Exception as err:
        raise AssertionError(f"generated program {seed} (batch {program.batch}) fails:\n{program.source}") from err


def test_one_sample_results_are_arrays():
    """For one sample, a per-sample scalar comes back as a 0-d array, as SPEC section 8 promises
    (found by the generated programs that feed one sample)."""
    model = nndsl.compile("input x\noutput y = 2 x\nloss L = (y - 1)^2\n")
    assert isinstance(model.run(None, x=[1.0])["y"], np.ndarray)         # a batch of one
    assert isinstance(model.run(None, x=1.0)["y"], np.ndarray)           # one sample
    assert isinstance(model.run(None, x=1.0)["L"], np.ndarray)
    assert isinstance(model.grad(None, wrt=["x"], x=1.0)[1]["x"], np.ndarray)


def test_every_builtin_and_loss_is_generated():
    """A built-in added to the registry fails here until the generator writes it."""
    used = Counter()
    for seed in range(min(N_PROGRAMS, 300)):
        used.update(generate(seed).used)
    callable_ops = {name for name, op in REGISTRY.items() if op.callable}
    assert set(user_functions()) == callable_ops | {"σ"}
    # The functions gradient programs are written with (docs/language.md, "Gradient programs")
    # are tested by tests/test_source_export.py, which round-trips these programs through them.
    written = set(user_functions()) - GRADIENT_FUNCTIONS
    assert set(BUILTINS) == written
    missing = sorted(written - set(used))
    assert not missing, f"never generated: {missing}"
    assert set(LOSSES) <= set(used)


def test_programs_are_reproducible_from_their_seed():
    a = generate(7)
    generate.cache_clear()
    b = generate(7)
    assert a is not b and a.source == b.source and a.source.startswith("# generated program 7\n")
    assert all(np.array_equal(a.data[n], b.data[n]) for n in a.data) and a.data.keys() == b.data.keys()
    assert all(np.array_equal(a.values[n], b.values[n]) for n in a.values) and a.values


if __name__ == "__main__":
    print(generate(int(sys.argv[1])).source, end="")
