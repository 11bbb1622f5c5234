"""Parameter initialisers: `zeros`, `ones`, `normal(std)`, `uniform(lo, hi)`, `xavier`, `he`,
a number or an array literal. Checked at compile time, drawn reproducibly from a seed.

Each parameter draws from its own stream, seeded by (seed, name), so adding or reordering
parameters does not change the values of the others.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from math import prod, sqrt

import numpy as np

from . import syntax as S
from .errors import NndslError, Span
from .resolve import literal_array

NAMED = ("zeros", "ones", "xavier", "he")
CALLED = {"normal": 1, "uniform": 2}


@dataclass(frozen=True)
class Init:
    kind: str            # zeros ones xavier he normal uniform value
    args: tuple          # numbers for normal/uniform; the array for value
    span: Span | None


def fans(shape: tuple) -> tuple[int, int]:
    """Fan-in and fan-out as PyTorch computes them for a weight used as `W x` ([out, in, ...])."""
    receptive = prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def parse_init(st: S.ParamStmt, shape: tuple) -> Init:
    e = st.init
    if e is None:
        return Init("xavier" if len(shape) >= 2 else "zeros", (), None)
    if isinstance(e, S.Name) and e.id in NAMED:
        init = Init(e.id, (), e.span)
    elif isinstance(e, S.Call) and e.func in CALLED:
        if len(e.args) != CALLED[e.func]:
            raise NndslError(f"{e.func}() takes {CALLED[e.func]} argument{'s' * (CALLED[e.func] > 1)}, got {len(e.args)}", e.span)
        args = tuple(float(literal_array(a)) if literal_array(a).shape == () else bad_number(a) for a in e.args)
        if e.func == "normal" and args[0] < 0:
            raise NndslError("normal(std) needs std >= 0", e.span)
        if e.func == "uniform" and args[0] > args[1]:
            raise NndslError("uniform(lo, hi) needs lo <= hi", e.span)
        init = Init(e.func, args, e.span)
    elif isinstance(e, (S.Number, S.Array, S.Unary)):
        value = literal_array(e)
        if value.shape not in ((), shape):
            raise NndslError(f"initial value has shape {list(value.shape)}, but '{st.name}' is declared {list(shape)}", e.span)
        init = Init("value", (value,), e.span)
    else:
        raise NndslError("an initialiser is a number, an array, zeros, ones, normal(std), uniform(lo, hi), "
                         "xavier or he", e.span)
    if init.kind in ("xavier", "he") and len(shape) < 2:
        raise NndslError(f"{init.kind} needs a parameter of rank 2 or more; '{st.name}' has shape {list(shape)}",
                         init.span)
    return init


def bad_number(e):
    raise NndslError("expected a number", e.span)


def stream(seed: int, name: str) -> np.random.Generator:
    """The parameter's own random stream, seeded by (seed, name)."""
    words = [seed, zlib.crc32(name.encode("utf-8"))]
    # NumPy turns a list into 32-bit words an int at a time (one of 2^32 or more makes several);
    # the same words as an array are the same seed, set up in half the time.
    return np.random.default_rng(np.array(words, dtype=np.uint32) if seed < 2**32 else words)


def draw(init: Init, name: str, shape: tuple, seed: int) -> np.ndarray:
    if init.kind == "zeros":
        return np.zeros(shape)
    if init.kind == "ones":
        return np.ones(shape)
    if init.kind == "value":
        return np.broadcast_to(init.args[0], shape).copy()
    rng = stream(seed, name)
    if init.kind == "normal":
        return rng.normal(0.0, init.args[0], shape)
    if init.kind == "uniform":
        return rng.uniform(init.args[0], init.args[1], shape)
    fan_in, fan_out = fans(shape)
    if init.kind == "xavier":                       # Glorot uniform
        limit = sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)
    if init.kind == "he":                           # He normal, for ReLU
        return rng.normal(0.0, sqrt(2.0 / fan_in), shape)
    raise AssertionError(init.kind)
