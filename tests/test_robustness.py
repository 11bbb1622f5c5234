"""Bad input is normal input: whatever the text, compiling gives a model or an NndslError
with a location, never another exception."""
from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nndsl

PIECES = ["input", "param", "dim", "def", "loss", "output", "data", "model", "x", "W", "b", "t", "h",
          "f", "σ", "relu", "max", "sum", "softmax", "bce", "mse", "sparse_cross_entropy", "transpose",
          "(", ")", "[", "]", ",", "=", "+", "-", "−", "*", "/", "^", "**", "@", "·", "0", "1", "2",
          "0.5", "1e-3", "\n", ";", " ", "#c", '"d.csv"', "normal(1)", "xavier", "$", "\t", "\\\n"]

LINES = ["dim n = 2", "input x[n]", "input t", "param W[n, n]", "param b[n] = normal(0.1)",
         "h = tanh(W x + b)", "y = sum(h)", "loss L = mse(y, t)", "def f(a) = relu(a)",
         "z = f(h)", "output y", "data x = [[1, 2]]", "param w[n] = xavier", "k = W(x, x)",
         "loss M = bce(σ(y), t)", "q = h h", "r = softmax(x) · W", "input x[3]", "h = 1"]

VALID = 12                 # LINES[:VALID] is a model; each later line is a mistake in it
ROOT = Path(__file__).resolve().parent.parent


HEAD = re.compile(r"fuzz\.nn(?::(\d+):(\d+))?: error: \S")
# What a model that compiled may still refuse: class indices that are not (checked on the data),
# and running a model that has no value to output (no binding, no output, no loss).
RUNTIME = re.compile(r"class index \S+ is not an integer in \[0, \d+\)"
                     r"|the model has nothing to output: declare one with `output NAME = \.\.\.`, or bind a value")


def assert_located(err: nndsl.NndslError, source: str) -> None:
    """`fuzz.nn:LINE:COL: error: ...`, then that source line and a caret under the span (or
    `fuzz.nn: error: ...` alone for an error of the whole file), and never a traceback."""
    text = err.render()
    lines = text.split("\n")
    head = HEAD.match(lines[0])
    assert head, text
    assert "Traceback" not in text and err.message and "\n" not in err.message, text
    if head.group(1) is None:
        assert len(lines) == 1 and err.span is None, text
        return
    line, column = int(head.group(1)), int(head.group(2))
    assert (line, column) == (err.span.line, err.span.column), text
    source_lines = source.splitlines()
    if line > len(source_lines):             # at the very end of the file: nothing to show
        assert len(lines) == 1, text
        return
    shown = source_lines[line - 1].expandtabs(1)
    assert lines[1:2] == ["    " + shown], text
    # carets under the span, to the end of the line where the span goes on to another line
    end = err.span.end_column if err.span.end_line == line else len(shown) + 1
    width = max(1, min(end, len(shown) + 1) - column)
    assert lines[2:] == [" " * (4 + column - 1) + "^" * width], text


def compiles_or_reports(source: str) -> str:
    """Which way `source` went: "compile error", "ran" or "run-time error" (each checked)."""
    try:
        model = nndsl.compile(source, filename="fuzz.nn")
    except nndsl.NndslError as err:
        assert_located(err, source)
        return "compile error"
    # What compiles must also run on data of its declared shapes, or report why not.
    rng = np.random.default_rng(0)
    data = {name: rng.normal(size=(2,) + shape) for name, shape in model.input_shapes().items()}
    try:
        out = model.run(None, **data)
        assert list(out)[:len(model.outputs)] == list(model.outputs)
        if model.loss_name:
            wrt = list(model.params) or list(model.inputs)     # a loss of constants alone has no gradient
            loss = model.loss(None, **data)
            if wrt:
                again, grads = model.grad(None, wrt=wrt, **data)
                assert grads.keys() == set(wrt) and (again == loss or np.isnan(loss))
    except nndsl.NndslError as err:
        assert_located(err, source)
        assert RUNTIME.fullmatch(err.message), err.render()
        return "run-time error"
    return "ran"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=40).map(" ".join))
def test_token_soup(source):
    compiles_or_reports(source)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(LINES), max_size=12).map("\n".join))
def test_statement_shuffles(source):
    compiles_or_reports(source)


def prefix_and_one(length: int, extra: int, position: int) -> str:
    """The first `length` lines of LINES (a model that builds up in a sensible order), with
    LINES[extra] inserted at `position` (a line that may fit, clash or come too early)."""
    lines = LINES[:length]
    lines.insert(position % (length + 1), LINES[extra % len(LINES)])
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.builds(prefix_and_one, st.integers(0, VALID), st.integers(0, len(LINES) - 1), st.integers(0, 20)))
def test_growing_models(source):
    """Mostly valid models, so that the checks after compiling (run, loss, grad) are reached."""
    compiles_or_reports(source)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_any_text(source):
    compiles_or_reports(source)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 3), st.text(max_size=3))
def test_mutated_examples(position, cut, insert):
    source = (ROOT / "models" / "xor.nn").read_text()
    position %= len(source)
    compiles_or_reports(source[:position] + insert + source[position + cut:])


@pytest.mark.parametrize("source, outcome, message", [
    ("y = (x +\n", "compile error", "fuzz.nn:1:5: error: '(' is never closed\n    y = (x +\n        ^"),
    ("input x[2]\ny = W x\n", "compile error", "fuzz.nn:2:5: error: undefined name 'W'\n    y = W x\n        ^"),
    ("input x[2]\nparam W[2, 2]\nloss L = mse(W x, x)\n", "ran", None),
    ("input p[3]\ninput k\nloss L = sparse_cross_entropy(p, k)\n", "run-time error",
     "fuzz.nn:3:10: error: class index 0.12573 is not an integer in [0, 3)\n"
     "    loss L = sparse_cross_entropy(p, k)\n             " + "^" * 26),
])
def test_each_outcome_is_reached_and_checked(source, outcome, message):
    assert compiles_or_reports(source) == outcome
    if message is not None:
        with pytest.raises(nndsl.NndslError) as info:
            model = nndsl.compile(source, filename="fuzz.nn")
            model.loss(None, **{n: np.random.default_rng(0).normal(size=(2,) + s)
                                for n, s in model.input_shapes().items()})
        assert info.value.render() == message


def test_generated_sources_reach_every_outcome():
    """The property tests above are not vacuous: shuffles of LINES mostly fail to compile, but
    growing models often compile, run and differentiate."""
    rng = random.Random(0)
    shuffles = Counter(compiles_or_reports("\n".join(rng.choices(LINES, k=rng.randint(0, 12)))) for _ in range(200))
    growing = Counter(compiles_or_reports(prefix_and_one(rng.randint(0, VALID), rng.randrange(len(LINES)),
                                                         rng.randint(0, 20))) for _ in range(200))
    assert nndsl.compile("\n".join(LINES[:VALID])).loss_name == "L"
    assert shuffles["compile error"] >= 100, shuffles
    assert growing["ran"] >= 20 and growing["compile error"] >= 20, growing
