"""No silent wrong answers: the gradient check fails on anything non-finite and explains kinks,
NaN and infinities are traced to the source line that made them, JSON keeps them apart, and sizes
are checked against a memory limit before anything is allocated."""
from __future__ import annotations

import json
import textwrap

import pytest

import nndsl
from nndsl.cli import main


def write(tmp_path, text, name="m.nn"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# ---- grad --check ------------------------------------------------------------------------------
def test_check_fails_on_an_infinite_gradient(tmp_path, capsys):
    path = write(tmp_path, "input x\nparam a = 0\nloss L = sqrt(a) + x\ndata x = [1, 2]\n")
    assert main(["grad", str(path), "--check"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[2] == "a         []      inf  inf  inf  inf     the gradient is inf at element 0  FAIL"
    assert "gradient check FAILED" in out
    assert err == (f"nndsl: warning: not finite: the gradient of a\n"
                   f"{path}:3:10: note: the first non-finite value (div) appeared here\n"
                   "    loss L = sqrt(a) + x\n             ^^^^^^^\n")


def test_check_fails_on_a_nan_loss_and_gradient(tmp_path, capsys):
    path = write(tmp_path, "input x\nparam e = 0.5\nloss L = x ^ e\ndata x = [-1, 2]\n")
    assert main(["grad", str(path), "--check"]) == 1
    out, err = capsys.readouterr()
    assert "the loss is nan  FAIL" in out
    assert err.splitlines()[:2] == ["nndsl: warning: not finite: L, the gradient of e",
                                    f"{path}:3:10: note: the first non-finite value (pow) appeared here"]


def test_check_fails_on_a_nan_gradient_with_a_finite_loss(tmp_path, capsys):
    path = write(tmp_path, "input x\nparam e = 2\nloss L = 0 * (x ^ e) + e\ndata x = [-1, 2]\n")
    assert main(["grad", str(path), "--check", "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["loss"] == 2.0
    assert doc["gradients"]["e"] == "nan"
    assert doc["check"]["problems"] == {"e": "the gradient is nan at element 0"}
    assert doc["check"]["ok"] is False


def test_check_explains_kinks(capsys):
    """models/perceptron.nn at w = 0, b = 0: every sample sits on the perceptron loss's kink."""
    assert main(["grad", "models/perceptron.nn", "--check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-4] == "gradient check FAILED: tolerance 1e-05 (central differences in float64)"
    assert out[-3].endswith("models/perceptron.nn:41:10: note: perceptron is at its kink for 8 values here, where it "
                            "has no derivative: finite differences straddle the kink, and nndsl's gradient follows "
                            "its rule for the kink")
    assert out[-2:] == ["    loss L = perceptron(z, t)", "             ^^^^^^^^^^^^^^^^"]


def test_check_away_from_kinks_passes_and_says_nothing_of_them(tmp_path, capsys):
    path = write(tmp_path, "input x\nparam w = 0.5\nloss L = relu(w x - 1) + abs(w - 2)\ndata x = [3, 4]\n")
    assert main(["grad", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert "passed" in out and "kink" not in out


def test_check_names_each_kink(tmp_path, capsys):
    path = write(tmp_path, "input x\nparam w = 1\nloss L = max(w x, 2) + relu(w - 1)\ndata x = [2, 3]\n")
    assert main(["grad", str(path), "--check"]) == 1
    notes = [line for line in capsys.readouterr().out.splitlines() if ": note: " in line]
    assert [n.split(": note: ")[1].split(" is at")[0] for n in notes] == ["max", "relu"]
    assert "max is at its kink for 1 value here" in notes[0]


# ---- where NaN comes from ----------------------------------------------------------------------
def test_run_warns_where_the_first_nan_arose(tmp_path, capsys):
    path = write(tmp_path, """\
        input x
        h = log(x)
        output y = 2 h + 1
        data x = [1, -1, 0]
        """)
    assert main(["run", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == (f"nndsl: warning: not finite: y\n{path}:2:5: note: the first non-finite value (log) appeared here\n"
                   "    h = log(x)\n        ^^^^^^\n")
    assert "nan" in out and "-inf" in out


def test_json_keeps_nan_and_infinities_apart(tmp_path, capsys):
    path = write(tmp_path, "input x\noutput y = log(x)\noutput z = exp(x)\ndata x = [-1, 0, 1000]\n")
    assert main(["run", str(path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outputs"]["y"][:2] == ["nan", "-inf"]
    assert doc["outputs"]["z"][2] == "inf"


def test_finite_results_warn_nothing(capsys):
    assert main(["run", "models/xor.nn"]) == 0
    assert capsys.readouterr().err == ""


# ---- sizes ----------------------------------------------------------------------------------------
def test_a_huge_dim_is_refused_at_check(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NNDSL_MEMORY_LIMIT", "1G")
    path = write(tmp_path, "dim h = 99999999999999999999\ninput x[h]\nparam W[2, h]\ny = W x\n")
    assert main(["check", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"{path}:2:1: error: 'x' would take 3.64e+08 TiB as float32 (shape [100000000000000000000]); the limit is "
        "1 GiB (NNDSL_MEMORY_LIMIT=1G)\n    input x[h]\n    ^^^^^^^^^^\n")


def test_a_large_parameter_is_refused_in_the_models_dtype(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NNDSL_MEMORY_LIMIT", "1G")
    path = write(tmp_path, "dim h = 20000\ninput x[h]\nparam W[h, h]\ny = W x\n")
    assert main(["run", str(path), "-i", "x=1"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"{path}:3:1: error: 'W' would take 1.49 GiB as float32 (shape [20000, 20000]); the limit is 1 GiB "
        "(NNDSL_MEMORY_LIMIT=1G)")
    monkeypatch.setenv("NNDSL_MEMORY_LIMIT", "2G")
    assert main(["check", str(path)]) == 0
    assert main(["check", str(path), "--dtype", "float64"]) == 2
    assert "'W' would take 2.98 GiB as float64" in capsys.readouterr().err


def test_a_large_batch_is_refused_before_it_is_computed(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NNDSL_MEMORY_LIMIT", "1K")
    assert main(["run", "models/iris.nn"]) == 2
    assert capsys.readouterr().err.splitlines()[0].endswith(
        "error: 'x' would take 2.34 KiB as float32 (a batch of 150 of shape [4]); the limit is 1 KiB "
        "(NNDSL_MEMORY_LIMIT=1K)")
    assert main(["train", "models/iris.nn", "-q", "-o", str(tmp_path / "p.npz")]) == 2
    assert not (tmp_path / "p.npz").exists()


def test_the_default_limit_is_half_the_memory(monkeypatch):
    from nndsl.model import memory_limit
    monkeypatch.delenv("NNDSL_MEMORY_LIMIT", raising=False)
    limit, why = memory_limit()
    assert why == "half of this machine's memory; NNDSL_MEMORY_LIMIT sets it"
    import os
    assert limit == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    monkeypatch.setenv("NNDSL_MEMORY_LIMIT", "lots")
    with pytest.raises(nndsl.NndslError, match="NNDSL_MEMORY_LIMIT=lots: give a number of bytes"):
        memory_limit()


# ---- what check says -----------------------------------------------------------------------------
def test_check_without_a_model_name(tmp_path, capsys):
    path = write(tmp_path, "input x\ny = 2 x\n")
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{path}: ok"
    assert main(["check", "models/xor.nn"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "model xor (models/xor.nn): ok"
