"""`nndsl fmt`: exact canonical text for tricky inputs, idempotence, meaning preserved, the CLI."""
from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nndsl
from nndsl import fmt
from nndsl.cli import main
from nndsl.fmt import format_source, tree_difference
from nndsl.parser import parse

MODELS = Path(__file__).resolve().parent.parent / "models"

DECLS = "param W[2, 2]\nparam W1[2, 2]\nparam W2[2, 2]\nparam W3[2, 2]\ninput x[2]\n"

# (input, expected canonical text), each after DECLS: W, W1, W2, W3 are tensors, so calling
# them is a product and is written `W (z)`; other names are not declared (fmt does not care).
CASES = {
    # sums and products: left-associative, minimal parentheses
    "sum_left": ("y = (a + b) + c", "y = a + b + c"),
    "sum_right": ("y = a + (b + c)", "y = a + (b + c)"),
    "sub_right": ("y = a - (b - c)", "y = a - (b - c)"),
    "sub_left": ("y = (a - b) - c", "y = a - b - c"),
    "mul_over_sum": ("y = (a * b) + (c / d)", "y = a * b + c / d"),
    "sum_in_product": ("y = (a + b) * c", "y = (a + b) * c"),
    "div_right": ("y = a / (b * c)", "y = a / (b * c)"),
    "div_left": ("y = (a / b) * c", "y = a / b * c"),
    "spaces": ("y=a+b*c-d/e", "y = a + b * c - d / e"),
    # juxtaposition and explicit products: right-associative
    "juxt_chain": ("y = W2 W1 x", "y = W2 W1 x"),
    "juxt_explicit_right": ("y = (W2) ((W1) (x))", "y = W2 W1 x"),
    "juxt_left_group": ("y = (W2 W1) x", "y = (W2 W1) x"),
    "dot_chain": ("y = W3 · (W2 · (W1 · x))", "y = W3 · W2 · W1 · x"),
    "dot_left_group": ("y = (W3 · W2) · x", "y = (W3 · W2) · x"),
    "matop_symbols": ("y = w·x + w∙x + w⋅x + w@x", "y = w · x + w ∙ x + w ⋅ x + w @ x"),
    "matop_mixed": ("y = W2 @ (W1 x)", "y = W2 @ W1 x"),
    "juxt_of_sum": ("y = W (x + b)", "y = W (x + b)"),
    "juxt_over_sum": ("y = (W x) + b", "y = W x + b"),
    "juxt_in_product": ("y = (a b) * c", "y = a b * c"),
    "scaling": ("y = 0.5 (y1 - t)^2", "y = 0.5 (y1 - t)^2"),
    "slide": ("f = W5 σ(W4 tanh(W3 max(0, W2 max(0, W1 x))))",
              "f = W5 σ(W4 tanh(W3 max(0, W2 max(0, W1 x))))"),
    # a name before a parenthesised group would read as a call: those parentheses stay
    "name_then_group": ("y = (v) (a + b)", "y = (v) (a + b)"),
    "power_then_group": ("y = (a ^ b) (c + d)", "y = (a^b) (c + d)"),
    "number_then_group": ("y = (2) (a + b)", "y = 2 (a + b)"),
    "call_then_group": ("y = (f(x)) (a + b)", "y = f(x) (a + b)"),
    "name_then_negation": ("y = (v) (-b)", "y = (v) (-b)"),
    "number_then_negation": ("y = 2 (-b)", "y = 2 (-b)"),
    # calls of tensors (W(z) is W z) are written with a space; functions without
    "tensor_call": ("y = W2(W1 x)", "y = W2 (W1 x)"),
    "tensor_call_spaced": ("y = W2 (W1 (x))", "y = W2 (W1 (x))"),
    "function_call_spaced": ("y = tanh (x)", "y = tanh(x)"),
    # power: right-associative, tightest, `**` spelled `^`
    "pow_chain": ("y = a ** b ** c", "y = a^b^c"),
    "pow_left_group": ("y = (a ^ b) ^ c", "y = (a^b)^c"),
    "pow_negative_exponent": ("y = a ^ (-b)", "y = a^-b"),
    "pow_negative_base": ("y = (-a) ^ 2", "y = (-a)^2"),
    "neg_of_power": ("y = -a ^ 2", "y = -a^2"),
    "pow_exponent_product": ("y = a ^ (b c)", "y = a^(b c)"),
    "pow_base_product": ("y = (a b) ^ 2", "y = (a b)^2"),
    "pow_signed_power_exponent": ("y = 2 ^ -x ^ 2", "y = 2^-x^2"),
    "pow_negated_product_exponent": ("y = a ^ -(b c)", "y = a^(-b c)"),
    "pow_exponent_atom": ("y = x ^ (2)", "y = x^2"),
    "pow_juxt": ("y = (a ^ b) c", "y = a^b c"),
    # ᵀ: postfix, as an index; a transposed literal may be transposed or indexed again
    "transpose_twice": ("y = (Wᵀ)ᵀ", "y = Wᵀᵀ"),
    "transpose_literal_twice": ("y = ([1, 2]ᵀ)ᵀ", "y = [1, 2]ᵀᵀ"),
    "index_of_transposed_literal": ("y = ([[1, 2]]ᵀ)[:, 0]", "y = [[1, 2]]ᵀ[:, 0]"),
    "index_of_literal": ("y = ([[1, 2]])[0]", "y = ([[1, 2]])[0]"),
    # unary minus: looser than products and powers
    "neg_of_juxt": ("y = -(a b)", "y = -a b"),
    "juxt_of_neg": ("y = (-a) b", "y = (-a) b"),
    "neg_times": ("y = (- a) * b", "y = -a * b"),
    "neg_of_times": ("y = -(a * b)", "y = -(a * b)"),
    "times_neg": ("y = a * (-b)", "y = a * -b"),
    "minus_neg": ("y = a - (-b)", "y = a - -b"),
    "double_neg": ("y = -(-x)", "y = --x"),
    "unicode_minus": ("y = −x − 1", "y = -x - 1"),
    "neg_number": ("y = -(2)", "y = -2"),
    # numbers as written, names NFKC-normalised
    "numbers": ("y = 1.e5 + .5 + 1E-3 + 10 + 2.", "y = 1.e5 + .5 + 1E-3 + 10 + 2."),
    "nfkc_names": ("y = 𝒘 ∙ 𝒙", "y = w ∙ x"),
    "unicode_names": ("ŷ = θ1 α", "ŷ = θ1 α"),
    # statements
    "semicolons": ("a = 1; b = 2 ;c = 3  # c", "a = 1\nb = 2\nc = 3  # c"),
    "semicolon_trailing": ("a = 1;", "a = 1"),
    "def": ("def f(a,b)=a*-b", "def f(a, b) = a * -b"),
    "def_no_params": ("def g( ) = 1", "def g() = 1"),
    "data_file": ('data   "data/x.csv"', 'data "data/x.csv"'),
    "data_inline": ("data x = [[0,1],[1,0]]", "data x = [[0, 1], [1, 0]]"),
    "data_scalar": ("data s = -1", "data s = -1"),
    "output_expr": ("output y=W x", "output y = W x"),
    "output_name": ("output   y", "output y"),
    "loss": ("loss L=0.5*(y-t)**2", "loss L = 0.5 * (y - t)^2"),
    "param_init": ("param W[2,3]=normal(0.1)", "param W[2, 3] = normal(0.1)"),
    "param_plain": ("param b", "param b"),
    "param_scalar_brackets": ("param b[ ] = 0", "param b = 0"),
    "param_array": ("param w[2] = [-1,1]", "param w[2] = [-1, 1]"),
    "input_shape": ("input x[2,h]", "input x[2, h]"),
    "input_trailing_comma": ("input x[2,h,]", "input x[2, h]"),
    "input_scalar": ("input s[]", "input s"),
    "dim": ("dim  h=16", "dim h = 16"),
    "model": ("model   m", "model m"),
    "empty_call_and_array": ("y=f()+[]", "y = f() + []"),
    "trailing_comma_call": ("y = max(a, b,)", "y = max(a, b)"),
    # line continuation
    "break_in_call_kept": ("y = f(a,\n  b)", "y = f(a,\n      b)"),
    "break_in_array_kept": ("data x = [[0, 1],\n[1, 0],\n\n [1, 1]]",
                            "data x = [[0, 1],\n          [1, 0],\n          [1, 1]]"),
    "break_nested": ("y = f(g(a,\n b), [1,\n2])", "y = f(g(a,\n        b), [1,\n             2])"),
    "break_after_open_joined": ("y = f(\n  a, b\n)", "y = f(a, b)"),
    "break_in_group_joined": ("y = (a +\n     b) * c", "y = (a + b) * c"),
    "backslash_joined": ("y = a \\\n    + b", "y = a + b"),
    "tensor_call_break": ("y = W(\nx)", "y = W (x)"),
}


@pytest.mark.parametrize("source, expected", CASES.values(), ids=list(CASES))
def test_canonical_text(source, expected):
    assert format_source(DECLS + source) == DECLS + expected + "\n"


def test_undeclared_callee_prints_as_function_call():
    assert format_source("y = V (x)\n") == "y = V(x)\n"
    assert format_source("input V[2, 2]\ny = V(x)\n") == "input V[2, 2]\ny = V (x)\n"


def test_def_parameters_are_tensors_in_the_body():
    source = "def layer(W, b, z) = tanh(W(z) + b)\nh = W(x)\n"
    assert format_source(source) == "def layer(W, b, z) = tanh(W (z) + b)\nh = W(x)\n"


def test_comments_blank_lines_and_layout():
    source = (
        "\n\n# header\n#\n\n\n"
        "model m   # the model\n\n\n\n"
        "dim n = 3 ; input x[n] # x\n"
        "input t  \t # tab and spaces\n"
        "y = f(x, [1,\n"
        "   2, # two\n"
        "\n"
        "   # lonely\n"
        "   3])\n"
        "v = f(a +   # inside, no kept break\n"
        "  b, c)\n"
        "data x = [[0, 1],   # first\n"
        "          [1, 0]]   # last\n"
        "   # indented comment\n"
        "z = 1# tight\n"
        "# tail\n\n\n"
    )
    expected = (
        "# header\n#\n\n"
        "model m  # the model\n\n"
        "dim n = 3\n"
        "input x[n]  # x\n"
        "input t     # tab and spaces\n"
        "y = f(x, [1,\n"
        "          2,  # two\n"
        "          # lonely\n"
        "          3])\n"
        "# inside, no kept break\n"
        "v = f(a + b, c)\n"
        "data x = [[0, 1],  # first\n"
        "          [1, 0]]  # last\n"
        "# indented comment\n"
        "z = 1  # tight\n"
        "# tail\n"
    )
    assert format_source(source) == expected
    assert format_source(expected) == expected


def test_empty_and_comment_only_files():
    assert format_source("") == ""
    assert format_source("\n\n  \n") == ""
    assert format_source("# only\n\n\n# two") == "# only\n\n# two\n"


def test_line_ends_and_missing_final_newline():
    assert format_source("input x\r\ny = x  # c\r\n") == "input x\ny = x  # c\n"
    assert format_source("y = 1") == "y = 1\n"


def test_syntax_error_is_an_nndsl_error():
    with pytest.raises(nndsl.NndslError) as info:
        format_source("y = (a +\n", "bad.nn")
    assert info.value.render().startswith("bad.nn:1:5: error:")


def test_a_printer_bug_is_caught_not_written(monkeypatch):
    monkeypatch.setitem(fmt.SPELLING, "sub", " + ")
    with pytest.raises(AssertionError, match="would change the meaning"):
        format_source("y = a - b\n")


# ---- deep expressions: every walk is iterative ----------------------------------------------
DEEP = 5000


@pytest.mark.parametrize("source, expected", [
    ("y = " + " + ".join(["x"] * DEEP), "y = " + " + ".join(["x"] * DEEP)),
    ("y = " + "x - (" * DEEP + "x" + ")" * DEEP, "y = " + "x - (" * (DEEP - 1) + "x - x" + ")" * (DEEP - 1)),
    ("y = " + "-" * DEEP + "x", "y = " + "-" * DEEP + "x"),
    ("y = " + "(" * DEEP + "x" + ")" * DEEP, "y = x"),
    ("y = " + "W " * DEEP + "x", "y = " + "W " * DEEP + "x"),
    ("y = " + "(W · " * DEEP + "x" + ")" * DEEP, "y = " + "W · " * DEEP + "x"),
    ("y = " + "x ** " * DEEP + "x", "y = " + "x^" * DEEP + "x"),
    ("y = " + "tanh(" * DEEP + "x" + ")" * DEEP, "y = " + "tanh(" * DEEP + "x" + ")" * DEEP),
    ("y = " + "[" * DEEP + "1" + "]" * DEEP, "y = " + "[" * DEEP + "1" + "]" * DEEP),
], ids=["sum", "sub-right", "neg", "parens", "juxt", "dot", "pow", "calls", "arrays"])
def test_deep_expressions(source, expected):
    assert format_source(source) == expected + "\n"


# ---- meaning: the same graph ----------------------------------------------------------------
def assert_same_graph(g1: nx.DiGraph, g2: nx.DiGraph) -> None:
    """Same nodes (op, shape, name, constant values) and the same edges and argument positions."""
    assert sorted(g1.nodes) == sorted(g2.nodes)
    for n in g1.nodes:
        a, b = g1.nodes[n], g2.nodes[n]
        assert (a["op"], a["shape"], a["name"]) == (b["op"], b["shape"], b["name"]), n
        assert ("value" in a) == ("value" in b)
        if "value" in a:
            np.testing.assert_array_equal(a["value"], b["value"])
    assert set(g1.edges) == set(g2.edges)
    for e in g1.edges:
        assert g1.edges[e]["positions"] == g2.edges[e]["positions"], e


def assert_well_formed(text: str) -> None:
    assert text == "" or (text.endswith("\n") and not text.endswith("\n\n"))
    assert not text.startswith("\n")
    assert "\n\n\n" not in text
    assert all(line == line.rstrip() for line in text.split("\n"))
    assert "\r" not in text
    assert all("\t" not in line.split("#")[0] for line in text.split("\n"))


def model_files():
    return sorted(MODELS.glob("*.nn"))


@pytest.mark.parametrize("path", model_files(), ids=lambda p: p.name)
def test_models_idempotent_and_same_graph(path):
    source = path.read_text(encoding="utf-8")
    once = format_source(source, str(path))
    assert format_source(once, str(path)) == once
    assert_well_formed(once)
    assert tree_difference(parse(source).statements, parse(once).statements) is None
    assert [c.text.rstrip() for c in parse(source).comments] == [c.text for c in parse(once).comments]
    original = nndsl.compile(source, filename=str(path))        # every bundled model compiles
    assert_same_graph(original.graph, nndsl.compile(once, filename=str(path)).graph)


def test_models_folder_is_not_empty():
    assert model_files(), f"no .nn files in {MODELS}"


# ---- generated programs ---------------------------------------------------------------------
# Every generated value is a scalar or a vector of length 3, so every expression is
# shape-correct: elementwise ops broadcast, a product of two vectors is a dot product, a
# product with a scalar is scaling. Expressions are written fully parenthesised, with random
# spacing, spellings, line breaks and comments inside brackets; fmt must take the
# parentheses it does not need away and keep the tree.
SPELLINGS = {"x": ["x", "𝒙", "𝐱"], "w": ["w", "𝒘"], "θ1": ["θ1"], "ŷ": ["ŷ"], "s": ["s"],
             "p": ["p"], "q_2": ["q_2", "𝐪_2"], "b0": ["b0"], "b1": ["b1"], "b2": ["b2"],
             "b3": ["b3"], "a": ["a"], "c": ["c"]}
INPUTS = ["x", "s", "θ1"]
PARAMS = ["w", "p", "q_2"]
BINDINGS = ["b0", "b1", "ŷ", "b2", "b3"]
NUMBERS = ["0", "1", "2", "0.5", ".5", "3.", "1e-2", "2E1", "10"]
UNARY_FUNCTIONS = ["tanh", "sigmoid", "σ", "relu", "abs", "softplus", "identity", "sum", "mean", "step"]
BINARY_FUNCTIONS = ["max", "min"]
OPS = ["+", "-", "−", "*", "/", "^", "**", "@", "·", "∙", "⋅", ""]
GAP = st.sampled_from(["", " ", "  ", "\t"])
BRACKET_GAP = st.sampled_from(["", " ", " ", "\n", "\n    ", "  # note\n  ", " \\\n"])
STATEMENT_END = st.sampled_from(["\n", "\n", "\n", "\n\n", "\n\n\n", "; ", ";", "  # end\n", "\n# own line\n",
                                 "\n\n# own line\n\n"])


def spelled(name: str):
    return st.sampled_from(SPELLINGS[name])


def expressions(names: list, tensors: list, functions: list):
    """Fully parenthesised expression text over `names`."""
    leaf = st.one_of(st.sampled_from(names).flatmap(spelled), st.sampled_from(NUMBERS))

    def group(inner):
        return st.tuples(BRACKET_GAP, inner, BRACKET_GAP).map(lambda t: f"({t[0]}{t[1]}{t[2]})")

    def extend(sub):
        wrapped = group(sub)
        operand = st.one_of(wrapped, leaf)
        calls = [st.tuples(st.sampled_from(UNARY_FUNCTIONS), BRACKET_GAP, sub).map(lambda t: f"{t[0]}({t[1]}{t[2]})"),
                 st.tuples(st.sampled_from(BINARY_FUNCTIONS), sub, BRACKET_GAP, sub)
                 .map(lambda t: f"{t[0]}({t[1]},{t[2]}{t[3]})")]
        if tensors:
            calls.append(st.tuples(st.sampled_from(tensors).flatmap(spelled), GAP, sub)
                         .map(lambda t: f"{t[0]}{t[1]}({t[2]})"))
        for name, arity in functions:
            calls.append(st.tuples(*[st.tuples(BRACKET_GAP, sub)] * arity)
                         .map(lambda t, name=name: f"{name}(" + ",".join(g + e for g, e in t) + ")"))
        return st.one_of(
            st.tuples(operand, GAP, st.sampled_from(OPS), GAP, operand).map(binary),
            st.tuples(st.sampled_from(["-", "−"]), operand).map(lambda t: t[0] + t[1]),
            *calls,
            wrapped,
        )

    return st.recursive(leaf, extend, max_leaves=14)


def binary(parts) -> str:
    left, g1, op, g2, right = parts
    if op == "":                       # juxtaposition: `(a) (b)`; a bare name before `(` would be a call
        return f"({left}) ({right})"
    return f"{left}{g1 or ' '}{op}{g2 or ' '}{right}" if op in "-−" else f"{left}{g1}{op}{g2}{right}"


def vector_literal():
    signed = st.tuples(st.sampled_from(["", "-"]), st.sampled_from(NUMBERS)).map("".join)
    return st.tuples(signed, BRACKET_GAP, signed, BRACKET_GAP, signed).map(
        lambda t: f"[{t[0]},{t[1]}{t[2]},{t[3]}{t[4]}]")


@st.composite
def programs(draw):
    """(source text, {input: per-sample shape}) of a random valid program."""
    parts = []
    if draw(st.booleans()):
        parts.append("model generated")
    parts.append("dim n = 3")
    shapes = {}
    for name in INPUTS[:draw(st.integers(1, len(INPUTS)))]:
        size = draw(st.sampled_from(["", "[]", "[3]", "[n]", "[ n ]"]))
        shapes[name] = (3,) if "3" in size or "n" in size else ()
        parts.append(f"input {draw(spelled(name))}{size}")
    params = PARAMS[:draw(st.integers(0, len(PARAMS)))]
    for name in params:
        size = draw(st.sampled_from(["", "[]", "[3]", "[n]"]))
        vector = "3" in size or "n" in size
        inits = ["", " = 0.5", " = -1", " = normal(0.1)", " = uniform(-1, 1)", " = zeros", " = ones"]
        if vector:
            inits.append(" = [1, -2, .5]")
        parts.append(f"param {draw(spelled(name))}{size}{draw(st.sampled_from(inits))}")
    values = list(shapes) + params
    functions = []
    if draw(st.booleans()):
        body = draw(expressions(["a", "c"], ["a", "c"], []))
        parts.append(f"def f(a,{draw(GAP)}c) = {body}")
        functions.append(("f", 2))
    bindings = BINDINGS[:draw(st.integers(1, len(BINDINGS)))]
    outputs = []
    for name in bindings:
        expr = draw(expressions(values, values, functions))
        if draw(st.booleans()):
            parts.append(f"output {draw(spelled(name))} ={draw(GAP)}{expr}")
        else:
            parts.append(f"{draw(spelled(name))}{draw(GAP)}={draw(GAP)}{expr}")
            outputs.append(name)
        values.append(name)
    if draw(st.booleans()):
        parts.append(f"loss L = sum({draw(st.sampled_from(bindings))})")
    parts.extend(f"output {name}" for name in outputs)
    for name, shape in shapes.items():
        if draw(st.integers(0, 3)) == 0:
            parts.append(f"data {name} = " + (draw(vector_literal()) if shape else draw(st.sampled_from(NUMBERS))))
    text = draw(st.sampled_from(["", "# generated\n", "\n\n"]))
    for part in parts:
        text += part + draw(STATEMENT_END)
    return text, shapes


def run_values(model, params, feeds):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.run(params, **feeds)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs())
def test_generated_programs(program):
    source, shapes = program
    once = format_source(source)
    assert_well_formed(once)
    assert format_source(once) == once
    before, after = parse(source), parse(once)
    assert tree_difference(before.statements, after.statements) is None
    assert [c.text.rstrip() for c in before.comments] == [c.text for c in after.comments]

    original, formatted = nndsl.compile(source, dtype="float64"), nndsl.compile(once, dtype="float64")
    assert_same_graph(original.graph, formatted.graph)
    params = original.init(seed=0)
    rng = np.random.default_rng(0)
    feeds = {name: rng.normal(size=(4,) + shape) for name, shape in shapes.items()}
    a, b = run_values(original, params, feeds), run_values(formatted, params, feeds)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def assert_parentheses_minimal(once: str) -> int:
    """Taking away any one pair of parentheses in `once` (fmt's output) changes the tree or
    breaks the parse. Returns the number of pairs tried."""
    tree = parse(once).statements
    code = [line.split("#")[0] for line in once.split("\n")]
    text = "\n".join(code)
    pairs, opened = [], []
    for i, ch in enumerate(text):
        if ch == "(":
            opened.append(i)
        elif ch == ")":
            pairs.append((opened.pop(), i))
    for start, end in pairs:
        stripped = text[:start] + " " + text[start + 1:end] + " " + text[end + 1:]
        try:
            other = parse(stripped).statements
        except nndsl.NndslError:
            continue
        assert tree_difference(tree, other) is not None, stripped
    return len(pairs)


@settings(max_examples=60, deadline=None)
@given(programs())
def test_parentheses_are_minimal(program):
    assert_parentheses_minimal(format_source(program[0]))


KEPT_PARENTHESES = {key: expected for key, (_, expected) in CASES.items() if "(" in expected}


@pytest.mark.parametrize("expected", KEPT_PARENTHESES.values(), ids=list(KEPT_PARENTHESES))
def test_kept_parentheses_are_needed(expected):
    """The canonical texts above that keep parentheses: each pair is needed (and is tried)."""
    text = DECLS + expected + "\n"
    assert format_source(text) == text
    assert assert_parentheses_minimal(text) == expected.count("(")


def test_parentheses_check_catches_a_redundant_pair():
    with pytest.raises(AssertionError):
        assert_parentheses_minimal("y = (a * b) + c\n")


# ---- the command line -----------------------------------------------------------------------
UGLY = "input x[2]\nparam W[2,2]\ny=W(x)+ -x   # out\n"
PRETTY = "input x[2]\nparam W[2, 2]\ny = W (x) + -x  # out\n"


def test_cli_rewrites_in_place(tmp_path, capsys):
    path = tmp_path / "m.nn"
    path.write_text(UGLY, encoding="utf-8")
    path.chmod(0o640)
    assert main(["fmt", str(path)]) == 0
    assert capsys.readouterr().out == f"reformatted {path}\n"
    assert path.read_text(encoding="utf-8") == PRETTY
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["m.nn"]          # no temporary file left
    assert main(["fmt", str(path)]) == 0
    assert capsys.readouterr().out == f"{path} already formatted\n"


def test_cli_check(tmp_path, capsys):
    path = tmp_path / "m.nn"
    path.write_text(UGLY, encoding="utf-8")
    assert main(["fmt", str(path), "--check"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"would reformat {path}\n--- {path}\n+++ {path} (formatted)\n")
    assert "-y=W(x)+ -x   # out\n" in out and "+y = W (x) + -x  # out\n" in out
    assert path.read_text(encoding="utf-8") == UGLY                   # untouched
    path.write_text(PRETTY, encoding="utf-8")
    assert main(["fmt", str(path), "--check"]) == 0
    assert capsys.readouterr().out == f"{path} already formatted\n"


def test_cli_check_without_final_newline(tmp_path, capsys):
    path = tmp_path / "m.nn"
    path.write_text("y = 1", encoding="utf-8")
    assert main(["fmt", "--check", str(path)]) == 1
    assert "\\ No newline at end of file\n" in capsys.readouterr().out


def test_cli_crlf_file_is_rewritten_with_newlines(tmp_path, capsys):
    path = tmp_path / "m.nn"
    path.write_bytes(b"input x\r\ny = x\r\n")
    assert main(["fmt", str(path), "--check"]) == 1
    assert main(["fmt", str(path)]) == 0
    assert path.read_bytes() == b"input x\ny = x\n"


def test_cli_accepts_common_options(tmp_path, capsys):
    path = tmp_path / "m.nn"
    path.write_text(PRETTY, encoding="utf-8")
    assert main(["fmt", str(path), "--seed", "3", "--set", "n=2", "--dtype", "float64"]) == 0
    assert capsys.readouterr().out == f"{path} already formatted\n"
    assert path.read_text(encoding="utf-8") == PRETTY


def test_cli_syntax_error(tmp_path, capsys):
    path = tmp_path / "bad.nn"
    path.write_text("input x\ny = (x +\n", encoding="utf-8")
    assert main(["fmt", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0].startswith(f"{path}:2:5: error:")
    assert lines[1] == "    y = (x +" and lines[2] == "        ^"
    assert "Traceback" not in captured.err
    assert path.read_text(encoding="utf-8") == "input x\ny = (x +\n"
    assert main(["fmt", str(path), "--check"]) == 2


def test_cli_missing_file(tmp_path, capsys):
    assert main(["fmt", str(tmp_path / "nope.nn")]) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'nope.nn'}: error: no such file\n"


def test_cli_never_writes_a_meaning_change(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(fmt.SPELLING, "sub", " + ")
    path = tmp_path / "m.nn"
    path.write_text("y=a-b\n", encoding="utf-8")
    assert main(["fmt", str(path)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("nndsl: internal error: AssertionError: ") and "would change the meaning" in err
    assert err.endswith("(run with --debug for a traceback, and please report it)\n")
    assert path.read_text(encoding="utf-8") == "y=a-b\n"


def test_cli_through_a_symlink_keeps_the_link(tmp_path, capsys):
    target = tmp_path / "real.nn"
    target.write_text(UGLY, encoding="utf-8")
    link = tmp_path / "link.nn"
    os.symlink(target, link)
    assert main(["fmt", str(link)]) == 0
    assert link.is_symlink() and target.read_text(encoding="utf-8") == PRETTY


def test_the_bundled_models_are_in_canonical_form():
    for path in sorted((Path(__file__).resolve().parent.parent / "models").glob("*.nn")):
        assert main(["fmt", str(path), "--check"]) == 0, path
