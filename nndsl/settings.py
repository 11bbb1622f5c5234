"""Training settings: the `train` statement, the command line's flags and the API's keywords.

Every setting is one row of `KEYS`: its name in the `train` statement (and as an API keyword),
its flag, how its value is read and checked, and its default. Values from all three sources are
syntax nodes (a flag's text is parsed by the grammar's `flag_value` rule), so one reader per key
checks them all and every error points at where the value was written. Priority, lowest first:
defaults, the model's `train` statement, flags or keywords.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable

from . import syntax as S
from .errors import NndslError, closest
from .optim import OPTIMIZERS, SCHEDULES, bind, validate_optimizer


@dataclass(frozen=True)
class Choice:
    """An optimizer or schedule as written: its name and arguments, before binding."""

    name: str
    args: tuple
    kwargs: dict
    node: object                # where it was written, for errors


@dataclass
class Settings:
    """The settings of one training run, checked."""

    optimizer: str = "sgd"
    hypers: dict = field(default_factory=dict)      # every hyperparameter of the optimizer
    schedule: str = "constant"
    schedule_args: dict = field(default_factory=dict)
    epochs: int = 100
    batch: int = 32
    val: float | None = None
    until_correct: bool = False
    tol: float | None = None
    patience: int | None = None
    seed: int = 0
    shuffle: bool = True

    @property
    def lr(self) -> float:
        return self.hypers["lr"]

    def describe(self) -> str:
        """One line, in the `train` statement's own notation."""
        entry = OPTIMIZERS[self.optimizer]
        changed = [f"{h.name} = {self.hypers[h.name]:g}" for h in entry.hypers
                   if h.name == "lr" or self.hypers[h.name] != h.default]
        parts = [f"optimizer = {self.optimizer}({', '.join(changed)})"]
        if self.schedule != "constant":
            args = ", ".join(f"{k} = {v:g}" for k, v in self.schedule_args.items())
            parts.append(f"schedule = {self.schedule}({args})")
        parts += [f"epochs = {self.epochs}", f"batch = {self.batch}"]
        if self.val is not None:
            parts.append(f"val = {self.val:g}")
        if self.until_correct:
            parts.append("until = correct")
        if self.tol is not None:
            parts.append(f"until = {self.tol:g}")
        if self.patience is not None:
            parts.append(f"patience = {self.patience}")
        if not self.shuffle:
            parts.append("shuffle = false")
        parts.append(f"seed = {self.seed}")
        return ", ".join(parts)


# ---- readers: a syntax node -> a value, or NndslError at the node ----------------------------
def number(node, key: str) -> float:
    if not isinstance(node, S.Number):
        raise NndslError(f"{key} takes a number, not {written(node)}", node.span)
    return node.value


def positive(node, key):
    value = number(node, key)
    if not (value > 0 and math.isfinite(value)):
        raise NndslError(f"{key} must be a positive number, not {node.text}", node.span)
    return value


def count(node, key):
    value = number(node, key)
    if not (value >= 1 and value == int(value) and math.isfinite(value)):
        raise NndslError(f"{key} must be a positive whole number, not {node.text}", node.span)
    return int(value)


def natural(node, key):
    value = number(node, key)
    if not (value >= 0 and value == int(value) and math.isfinite(value)):
        raise NndslError(f"{key} must be a whole number >= 0, not {node.text}", node.span)
    return int(value)


def fraction(node, key, low_open=False):
    value = number(node, key)
    if not (0 < value < 1 if low_open else 0 <= value < 1):
        raise NndslError(f"{key} must be a number {'between 0 and 1' if low_open else 'in [0, 1)'}, "
                         f"not {node.text}", node.span)
    return value


def boolean(node, key):
    if isinstance(node, S.Name) and node.id in ("true", "false"):
        return node.id == "true"
    raise NndslError(f"{key} is true or false, not {written(node)}", node.span)


def until(node, key):
    if isinstance(node, S.Name):
        if node.id != "correct":
            raise NndslError(f"until is 'correct' or a tolerance on the update's size, not '{node.id}'", node.span)
        return "correct"
    return positive(node, key)


def choice(table: dict, what: str):
    def read(node, key):
        if isinstance(node, S.Name):
            name, args, kwargs, name_span = node.id, (), {}, node.span
        elif isinstance(node, S.SettingCall):
            name, name_span = node.func, node.func_span
            args = tuple(a.value.value for a in node.args if a.key is None)
            kwargs = {}
            for a in node.args:
                if a.key is None:
                    if kwargs:
                        raise NndslError("a positional argument cannot follow a keyword argument", a.span)
                    continue
                if a.key in kwargs:
                    raise NndslError(f"'{a.key}' is given twice", a.span)
                kwargs[a.key] = a.value.value
        else:
            raise NndslError(f"{key} takes the name of {'an' if what[0] in 'aeiou' else 'a'} {what}, not a number "
                             f"({', '.join(table)})", node.span)
        if name not in table:
            raise NndslError(f"unknown {what} '{name}'{suggest(name, table)}", name_span)
        return Choice(name, args, kwargs, node)
    return read


def written(node) -> str:
    if isinstance(node, S.Number):
        return node.text
    if isinstance(node, S.Name):
        return f"'{node.id}'"
    return f"'{node.func}(...)'"


def suggest(word: str, table) -> str:
    close = closest(word, table)
    hint = f"; did you mean '{close}'?" if close else ""
    return f"{hint} (choices: {', '.join(table)})"


@dataclass(frozen=True)
class Key:
    name: str                   # in the `train` statement and as an API keyword
    flag: str                   # on the command line
    read: Callable              # (syntax node, key) -> value
    doc: str


KEYS = {k.name: k for k in (
    Key("optimizer", "--optimizer", choice(OPTIMIZERS, "optimizer"),
        "sgd, adam or adamw, optionally with hyperparameters: sgd(lr = 0.5, momentum = 0.9)"),
    Key("lr", "--lr", positive, "the learning rate α (each optimizer has a default)"),
    Key("momentum", "--momentum", lambda n, k: fraction(n, k), "sgd's momentum μ"),
    Key("epochs", "--epochs", count, "how many passes over the training data, in all (default 100)"),
    Key("batch", "--batch-size", count, "samples per step (default 32; 1 is online SGD)"),
    Key("schedule", "--schedule", choice(SCHEDULES, "schedule"), "how the learning rate changes (default constant)"),
    Key("val", "--val-split", lambda n, k: fraction(n, k, low_open=True),
        "the fraction of the data, taken from its end, held out for validation"),
    Key("until", "--until-correct / --tol", until,
        "'correct': stop when an epoch classifies every training sample correctly; "
        "a number ε: stop when an epoch changes the parameters by less than ε"),
    Key("patience", "--patience", count, "stop after this many epochs without a better validation loss"),
    Key("seed", "--seed", natural, "seeds the initial parameters and the order of samples (default 0)"),
    Key("shuffle", "--no-shuffle", boolean, "false: visit the samples in the order given (default true)"),
)}


def statement_layer(stmt: S.TrainStmt | None) -> dict:
    """{key: syntax node} from a `train` statement, each key known and given once."""
    layer = {}
    for setting in stmt.settings if stmt is not None else ():
        if setting.key not in KEYS:
            raise NndslError(f"unknown training setting '{setting.key}'{suggest(setting.key, KEYS)}",
                             setting.key_span)
        if setting.key in layer:
            raise NndslError(f"'{setting.key}' is set twice", setting.key_span)
        layer[setting.key] = setting.value
    return layer


def value_node(key: str, value, origin: str):
    """An API keyword's or a flag's value as a syntax node: numbers as they are, text parsed by
    the grammar (errors located in `origin`, e.g. `--optimizer`)."""
    if isinstance(value, (S.Number, S.Name, S.SettingCall, LocatedNode)):
        return value
    if isinstance(value, (list, tuple)):        # `until`: both criteria
        return [value_node(key, v, origin) for v in value]
    if isinstance(value, bool):
        return S.Name("true" if value else "false", None)
    if isinstance(value, (int, float)):
        return S.Number(float(value), f"{value:g}", None)
    text = str(value)
    return LocatedNode(parsed_value(text, origin), origin, text)


@functools.lru_cache(maxsize=256)
def parsed_value(text: str, origin: str):
    """A flag's or keyword's text parsed (syntax nodes are immutable, so a training loop that
    passes `optimizer="adam"` on every call parses it once)."""
    from .parser import parse
    return parse(text, filename=origin, start="flag_value")


@dataclass(frozen=True)
class LocatedNode:
    """A node parsed from a flag's text, which errors must name."""

    node: object
    origin: str
    text: str


def read_key(key: str, node):
    if isinstance(node, list):                   # `until`: both criteria, from two flags
        return [read_key(key, n) for n in node]
    where = None
    if isinstance(node, LocatedNode):
        where, node = node, node.node
    try:
        return KEYS[key].read(node, key)
    except NndslError as err:
        if where is not None:
            err.located(where.origin, where.text)
        raise


def merge(layers: list) -> Settings:
    """Settings from layers of {key: node}, lowest priority first. Raises NndslError, located
    where the offending value was written (the caller locates file errors)."""
    values, rank = {}, {}
    for i, layer in enumerate(layers):
        for key, node in layer.items():
            values[key] = read_key(key, node)
            rank[key] = i
    s = Settings()
    optimizer = values.get("optimizer", Choice("sgd", (), {}, None))
    entry = OPTIMIZERS[optimizer.name]
    names = [h.name for h in entry.hypers]
    where = layers[rank["optimizer"]]["optimizer"] if "optimizer" in rank else None
    kwargs = dict(zip(names, optimizer.args))
    if len(optimizer.args) > len(names):
        raise located(NndslError(f"optimizer {entry.name} takes at most {len(names)} arguments ({', '.join(names)})"), where)
    for key, value in optimizer.kwargs.items():
        if key in kwargs:
            raise located(NndslError(f"optimizer {entry.name}: '{key}' is given twice"), where)
        kwargs[key] = value
    for key in ("lr", "momentum"):          # settings of their own that are hyperparameters
        if key not in values:
            continue
        if key not in names:
            raise located(NndslError(f"optimizer {entry.name} has no hyperparameter '{key}' "
                                     f"(it has: {', '.join(names)})"), layers[rank[key]][key])
        if key in kwargs and rank.get("optimizer") == rank[key]:
            raise located(NndslError(f"{key} is given twice: as a setting and in {entry.name}(...)"),
                          layers[rank[key]][key])
        if key not in kwargs or rank[key] > rank.get("optimizer", -1):
            kwargs[key] = values[key]
    s.optimizer = entry.name
    s.hypers, problem = bind(entry, (), kwargs)
    problem = problem or validate_optimizer(entry, s.hypers)
    if problem:
        raise located(NndslError(problem), where)
    if "schedule" in values:
        schedule = values["schedule"]
        s.schedule = schedule.name
        s.schedule_args, problem = bind(SCHEDULES[schedule.name], schedule.args, schedule.kwargs)
        if problem:
            raise located(NndslError(problem), layers[rank["schedule"]]["schedule"])
    for key in ("epochs", "batch", "val", "patience", "seed", "shuffle"):
        if key in values:
            setattr(s, key, values[key])
    if "until" in values:                        # one criterion, or a list of both
        for criterion in values["until"] if isinstance(values["until"], list) else [values["until"]]:
            if criterion == "correct":
                s.until_correct = True
            else:
                s.tol = criterion
    return s


def located(err: NndslError, node) -> NndslError:
    """Point `err` at the node (a syntax node with a span, or a flag's text)."""
    if isinstance(node, LocatedNode):
        err.span = node.node.span
        return err.located(node.origin, node.text)
    if node is not None:
        err.span = getattr(node, "span", None)
    return err
