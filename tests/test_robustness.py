"""Bad input is normal input: whatever the text, compiling gives a model or an NndslError
with a location, never another exception."""
from __future__ import annotations

from pathlib import Path

import numpy as np
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

ROOT = Path(__file__).resolve().parent.parent


def compiles_or_reports(source: str) -> None:
    try:
        model = nndsl.compile(source, filename="fuzz.nn")
    except nndsl.NndslError as err:
        text = err.render()
        assert text.startswith("fuzz.nn"), text
        assert "Traceback" not in text
        return
    # What compiles must also run on data of its declared shapes, or report why not.
    rng = np.random.default_rng(0)
    data = {name: rng.normal(size=(2,) + shape) for name, shape in model.input_shapes().items()}
    try:
        model.run(None, **data)
        if model.loss_name:
            model.grad(None, **data)
    except nndsl.NndslError as err:
        assert err.render()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=40).map(" ".join))
def test_token_soup(source):
    compiles_or_reports(source)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(LINES), max_size=12).map("\n".join))
def test_statement_shuffles(source):
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
