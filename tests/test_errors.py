"""Bad input is normal input: every mistake gets FILE:LINE:COL, the line, a caret; exit 2."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nndsl
from nndsl.cli import main

CASES = {
    "syntax error": (
        "input x[2]\ny = x +\n",
        "m.nn:2:8: error: expected an expression after '+', found end of line\n    y = x +\n           ^"),
    "operator where an expression belongs": (
        "input x[2]\ny = x + * 2\n",
        "m.nn:2:9: error: expected an expression after '+', found '*'\n    y = x + * 2\n            ^"),
    "bracket never closed": (
        "input x[2]\ny = (x + 1\nz = 2\n",
        "m.nn:2:5: error: '(' is never closed\n    y = (x + 1\n        ^"),
    "closing bracket without opener": (
        "y = 1)\n",
        "m.nn:1:6: error: ')' has no matching opening bracket\n    y = 1)\n         ^"),
    "undefined name": (
        "input x[2]\ny = W x\n",
        "m.nn:2:5: error: undefined name 'W'\n    y = W x\n        ^"),
    "shape mismatch": (
        "input x[3]\nparam W[4, 2]\ny = W x\n",
        "m.nn:3:5: error: shape mismatch in matrix product: [4, 2] · [3]: inner sizes 2 and 3 differ\n"
        "    y = W x\n        ^^^"),
    "broadcast mismatch": (
        "input x[3]\nparam b[4]\ny = x + b\n",
        "m.nn:3:5: error: shape mismatch in '+': [3] and [4] do not broadcast\n    y = x + b\n        ^^^^^"),
    "rebinding": (
        "input x[2]\ny = x\ny = 2 x\n",
        "m.nn:3:1: error: 'y' is already bound (line 2); each name is bound once\n    y = 2 x\n    ^"),
    "use before binding": (
        "input x[2]\ny = 2 h\nh = x\n",
        "m.nn:2:7: error: 'h' is used before it is bound (line 3)\n    y = 2 h\n          ^"),
    "unknown function": (
        "input x[2]\ny = relu2(x)\n",
        "m.nn:2:5: error: unknown function 'relu2'; did you mean 'relu'?\n    y = relu2(x)\n        ^^^^^"),
    "wrong arity": (
        "input x[2]\ny = relu(x, x)\n",
        "m.nn:2:5: error: relu() takes 1 argument, got 2\n    y = relu(x, x)\n        ^^^^^^^^^^"),
    "wrong arity of a def": (
        "def f(a, b) = a + b\ninput x[2]\ny = f(x)\n",
        "m.nn:3:5: error: f() takes 2 arguments, got 1\n    y = f(x)\n        ^^^^"),
    "recursion in def": (
        "def f(a) = g(a)\ndef g(a) = f(a) + 1\ninput x[2]\ny = f(x)\n",
        "m.nn:2:12: error: recursive function: f -> g -> f; functions are inlined and cannot call themselves\n"
        "    def g(a) = f(a) + 1\n               ^"),
    "non-scalar loss": (
        "input x[2]\ninput t[2]\nloss L = x - t\n",
        "m.nn:3:10: error: a loss must be a per-sample scalar, but 'L' has shape [2]\n    loss L = x - t\n             ^^^^^"),
    "bad character": (
        "input x[2]\ny = x $ 2\n",
        "m.nn:2:7: error: unexpected character '$' (U+0024)\n    y = x $ 2\n          ^"),
    "several arguments on a tensor": (
        "input x[2]\nparam W[2,2]\ny = W(x, x)\n",
        "m.nn:3:5: error: 'W' is a tensor, not a function: W(z) means W z, and takes one argument, not 2\n"
        "    y = W(x, x)\n        ^^^^^^^"),
    "unknown dim": (
        "input x[h]\n",
        "m.nn:1:9: error: unknown dim 'h' (declare it with: dim h = N)\n    input x[h]\n            ^"),
    "initialiser of the wrong shape": (
        "param W[2,2] = [1, 2, 3]\n",
        "m.nn:1:16: error: initial value has shape [3], but 'W' is declared [2, 2]\n"
        "    param W[2,2] = [1, 2, 3]\n                   ^^^^^^^^^"),
    "function used as a value": (
        "input x\ny = relu\n",
        "m.nn:2:5: error: 'relu' is a function; call it as relu(...)\n    y = relu\n        ^^^^"),
    "unterminated string": (
        'data "foo.csv\n',
        'm.nn:1:6: error: unterminated string\n    data "foo.csv\n         ^'),
}


@pytest.mark.parametrize("name", list(CASES))
def test_error_text(name):
    source, expected = CASES[name]
    with pytest.raises(nndsl.NndslError) as info:
        nndsl.compile(source, filename="m.nn")
    assert info.value.render() == expected


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


MODEL = """\
input x[2]
input t
param w[2] = [1, 2]
y = w · x
loss L = mse(y, t)
"""


def test_cli_error_exit_status_and_no_traceback(tmp_path):
    bad = write(tmp_path, "bad.nn", "input x[2]\ny = x +\n")
    proc = subprocess.run([sys.executable, "-m", "nndsl.cli", "check", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (f"{bad}:2:8: error: expected an expression after '+', found end of line\n"
                           "    y = x +\n           ^\n")
    assert "Traceback" not in proc.stderr


def test_bad_csv_data_file_points_at_the_cell(tmp_path, capsys):
    model = write(tmp_path, "m.nn", MODEL)
    data = write(tmp_path, "d.csv", "x[0],x[1],t\n1,2,3\n4,oops,6\n")
    assert main(["run", str(model), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err == f"{data}:3:3: error: not a number: 'oops'\n    4,oops,6\n      ^^^^\n"


def test_data_of_the_wrong_shape_names_where_it_came_from(tmp_path, capsys):
    model = write(tmp_path, "m.nn", MODEL)
    assert main(["run", str(model), "-i", "x=[1,2,3]"]) == 2
    err = capsys.readouterr().err
    assert err == ("-i x: error: data for input 'x' has shape [3]; expected [2] for one sample "
                   "or [B, 2] for a batch\n")
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 3)), t=np.zeros(4))
    assert main(["run", str(model), "--data", str(tmp_path / "d.npz")]) == 2
    assert capsys.readouterr().err == (f"{tmp_path / 'd.npz'}: error: data for input 'x' has shape [4, 3]; "
                                       "expected [2] for one sample or [B, 2] for a batch\n")
    data_file = write(tmp_path, "m2.nn", MODEL + 'data "d.npz"\n')
    assert main(["run", str(data_file)]) == 2
    assert capsys.readouterr().err == (f"{data_file}:6:1: error: data file {tmp_path / 'd.npz'}: data for input 'x' "
                                       "has shape [4, 3]; expected [2] for one sample or [B, 2] for a batch\n"
                                       '    data "d.npz"\n    ^^^^^^^^^^^^\n')
    # the model's API, given no origin, points at the declaration
    with pytest.raises(nndsl.NndslError) as info:
        nndsl.load(model).run(x=[1, 2, 3])
    assert info.value.render().splitlines()[1:] == ["    input x[2]", "    ^^^^^^^^^^"]


def test_pickled_npy_is_refused(tmp_path, capsys):
    model = write(tmp_path, "m.nn", MODEL)
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["run", str(model), "-i", f"x={tmp_path / 'x.npy'}"]) == 2
    assert "not loaded" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["-i", "x=[1,2"], "-i x:1:1: error: '[' is never closed"),
    (["-i", "q=1"], "error: -i q=...: the model has no input 'q' (inputs: x, t)"),
    (["-i", "x=nofile.npz"], "nofile.npz: error: no such file"),
    (["--set", "h=0"], "error: --set h=0: expected NAME=INT with a positive integer"),
    (["--set", "h=3"], "error: the model has no dim 'h' to set (dims: none)"),
    (["--params", "nofile.npz"], "nofile.npz: error: no such file"),
    (["--params", "m.nn"], "m.nn: error: not a NumPy .npy or .npz file"),
    (["-i", "x=[1,2]", "-i", "t=[1,2]"], "error: inputs disagree on the batch"),
])
def test_flag_errors(tmp_path, capsys, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.nn", MODEL)
    assert main(["run", "m.nn"] + args) == 2
    err = capsys.readouterr().err
    assert message in err.splitlines()[0]


def test_missing_input_points_at_its_declaration(tmp_path, capsys):
    model = write(tmp_path, "m.nn", MODEL)
    assert main(["run", str(model)]) == 2
    assert capsys.readouterr().err.startswith(f"{model}:1:1: error: no data for input 'x'")


def test_missing_model_file(capsys):
    assert main(["check", "no/such/model.nn"]) == 2
    assert capsys.readouterr().err == "no/such/model.nn: error: no such file\n"


def test_output_file_is_not_half_written(tmp_path, capsys):
    model = write(tmp_path, "m.nn", MODEL)
    out = tmp_path / "out.npz"
    out.write_bytes(b"previous")
    assert main(["run", str(model), "-i", "x=[1,2,3]", "-o", str(out)]) == 2
    assert out.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
