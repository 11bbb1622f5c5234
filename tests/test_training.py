"""`nndsl train` and `Model.train`: the models learn what their comments say, settings come from
the `train` statement and flags, bad input is refused before the first step, checkpoints resume
bit for bit (also after the process is killed), and the outputs are written whole."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import nndsl
from nndsl.cli import main
from nndsl.fmt import format_source

ROOT = Path(__file__).parent.parent
MODELS = ROOT / "models"
TRAINABLE = sorted(p for p in MODELS.glob("*.nn") if nndsl.load(p).loss_name is not None)


def model_path(name: str) -> str:
    return str(MODELS / f"{name}.nn")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def train(tmp_path, *args) -> tuple[int, dict]:
    """Runs `nndsl train ... -q -o P.npz` in-process; (exit status, the parameters written)."""
    out = tmp_path / "trained.npz"
    out.unlink(missing_ok=True)
    status = main(["train", *map(str, args), "-q", "-o", str(out)])
    params = dict(np.load(out)) if out.exists() else {}
    return status, params


def read_csv(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ---- the models learn, from the command line ---------------------------------------------------
def test_every_trainable_model_states_how_it_is_trained():
    for path in TRAINABLE:
        assert nndsl.load(path).resolved.train is not None, f"{path.name} has no train statement"


@pytest.mark.parametrize("path", TRAINABLE, ids=lambda p: p.name)
def test_every_trainable_model_trains_from_the_cli(path, tmp_path, capsys):
    status, params = train(tmp_path, path, "--epochs", "2")
    assert status == 0
    model = nndsl.load(path)
    assert set(params) == set(model.params)
    assert all(np.all(np.isfinite(v)) for v in params.values())
    assert "wrote" in capsys.readouterr().out


def test_xor_reaches_full_accuracy(tmp_path, capsys):
    status, params = train(tmp_path, model_path("xor"), "--log", tmp_path / "log.csv")
    assert status == 0
    model = nndsl.load(model_path("xor"))
    data = model.default_data()
    p = model.run(params, **data)["p"]
    np.testing.assert_array_equal(p > 0.5, data["t"] == 1)
    rows = read_csv(tmp_path / "log.csv")
    assert len(rows) == 1000 and float(rows[-1]["accuracy"]) == 1.0 and float(rows[-1]["loss"]) < 0.01


AND = ["-i", "x=[[0,0],[0,1],[1,0],[1,1]]", "-i", "t=[-1,-1,-1,1]"]
XOR = ["-i", "x=[[0,0],[0,1],[1,0],[1,1]]", "-i", "t=[-1,1,1,-1]"]


def test_perceptron_learns_and_exactly(tmp_path, capsys):
    status, params = train(tmp_path, model_path("perceptron"), *AND, "--epochs", "100")
    assert status == 0
    assert "every training sample was classified correctly" in capsys.readouterr().out
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    z = x @ params["w"] + params["b"]
    np.testing.assert_array_equal(np.sign(z), [-1, -1, -1, 1])


def test_perceptron_cannot_learn_xor(tmp_path, capsys):
    """Minsky and Papert: no line separates XOR, so every epoch makes mistakes."""
    status, _ = train(tmp_path, model_path("perceptron"), *XOR, "--epochs", "50", "--log", tmp_path / "log.csv")
    assert status == 0
    assert "ran 50 epochs" in capsys.readouterr().out
    rows = read_csv(tmp_path / "log.csv")
    assert len(rows) == 50 and max(float(r["accuracy"]) for r in rows) < 1


def test_perceptron_is_rosenblatts_rule(tmp_path, capsys):
    """The model's comment: 22 updates in 7 epochs, an 8th without a mistake; w = [3, 3], b = -8."""
    status, params = train(tmp_path, model_path("perceptron"))
    assert status == 0
    assert "classified correctly in epoch 8" in capsys.readouterr().out
    np.testing.assert_array_equal(params["w"], [3, 3])
    assert params["b"] == -8


def test_perceptron_settles_under_the_inverse_schedule(tmp_path, capsys):
    status, _ = train(tmp_path, model_path("perceptron_xor"), "--log", tmp_path / "log.csv")
    assert status == 0
    assert "epoch 26 changed the parameters by" in capsys.readouterr().out
    rows = read_csv(tmp_path / "log.csv")
    assert float(rows[-1]["lr"]) == pytest.approx(1 / (1 + 103))     # step 104 of batch 1: t = 103


def test_seeds_one_dimensional_example(tmp_path, capsys):
    status, params = train(tmp_path, model_path("backprop_1d"))
    assert status == 0
    assert float(params["w"]) == pytest.approx(0.8, abs=1e-7)


@pytest.mark.slow
def test_sin_fit_reaches_small_error(tmp_path, capsys):
    status, params = train(tmp_path, model_path("sin_fit"))
    assert status == 0
    model = nndsl.load(model_path("sin_fit"), dtype="float64")
    data = model.default_data()
    assert model.loss(params, **data) < 1e-3


@pytest.mark.slow
def test_iris_held_out_accuracy(tmp_path, capsys):
    """The README and the model's comment state at least 0.95 on the 30 flowers held out."""
    status, _ = train(tmp_path, model_path("iris"), "--log", tmp_path / "log.csv")
    assert status == 0
    last = read_csv(tmp_path / "log.csv")[-1]
    assert float(last["val_accuracy"]) >= 0.95
    assert float(last["accuracy"]) >= 0.95


# ---- the API ----------------------------------------------------------------------------------
def test_api_returns_parameters_and_history_and_leaves_its_arguments_alone():
    model = nndsl.load(model_path("xor"))
    params = model.init()
    before = {k: v.copy() for k, v in params.items()}
    trained, history = model.train(params, epochs=5)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
        assert not np.shares_memory(trained[k], params[k])
    assert history["epoch"] == [1, 2, 3, 4, 5]
    assert history.stopped == "epochs"
    assert set(history.rows[0]) == {"epoch", "loss", "accuracy", "lr", "seconds"}


def test_parameters_kept_from_before_the_first_step_are_the_callers_copies():
    """A run that stops at its first step (a non-finite loss) keeps the initial parameters: the
    result holds their values, in arrays of its own, and the caller's are unchanged."""
    model = nndsl.compile("input x\ninput t\nparam w = 1\nloss L = (w x - t)^2\n", dtype="float64")
    params = {"w": np.array(1.0)}
    with np.errstate(over="ignore"):
        trained, history = model.train(params, x=np.array([1e200, 1.0]), t=np.array([0.0, 1.0]), epochs=3, batch=2)
    assert history.stopped == "nonfinite" and trained["w"] == 1.0
    assert not np.shares_memory(trained["w"], params["w"])
    trained["w"] += 5
    assert params["w"] == 1.0


def test_api_keywords_split_settings_from_inputs():
    model = nndsl.load(model_path("perceptron"))
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    params, history = model.train(x=x, t=np.array([-1, -1, -1, 1]), epochs=100, until="correct")
    assert history.stopped == "correct"
    with pytest.raises(nndsl.NndslError, match="unknown optimizer 'adma'; did you mean 'adam'"):
        model.train(optimizer="adma")


def test_a_loss_without_inputs_is_minimised():
    model = nndsl.compile("param w[2] = [3, -2]\nloss L = sum((w - [1, 2])^2)\n", dtype="float64")
    params, history = model.train(lr=0.1, epochs=200)
    np.testing.assert_allclose(params["w"], [1, 2], atol=1e-12)
    with pytest.raises(nndsl.NndslError, match="a validation split needs data"):
        model.train(val=0.5)


def test_gradients_are_the_callers_own():
    """A gradient that is a constant of the plan (here zero) must not come back changed."""
    model = nndsl.compile("input x\nparam a\nparam b[2]\nloss L = a * x\n")
    params = model.init()
    _, grads = model.grad(params, x=np.ones(3))
    grads["b"] += 5
    _, again = model.grad(params, x=np.ones(3))
    np.testing.assert_array_equal(again["b"], [0, 0])


def test_outputs_are_the_callers_own():
    model = nndsl.compile("param W[2, 3]\noutput V = transpose(W)\noutput U = W\n")
    params = model.init()
    W = params["W"].copy()
    out = model.run(params)
    out["V"] += 1
    out["U"] += 1
    np.testing.assert_array_equal(params["W"], W)
    np.testing.assert_array_equal(model.run(params)["U"], W)


def test_until_tolerance_and_patience():
    model = nndsl.load(model_path("iris"))
    _, history = model.train(epochs=300, until=0.01)
    assert history.stopped == "tol" and len(history) == 150
    assert history.message == "epoch 150 changed the parameters by 0.00996 < 0.01"
    params, history = model.train(optimizer="adam(lr = 0.05)", epochs=300, batch=16, patience=5)
    assert history.stopped == "patience"
    best = history.best_epoch
    assert best == len(history) - 5
    assert min(history["val_loss"]) == history["val_loss"][best - 1]
    data = model.default_data()
    held_out = {k: v[120:] for k, v in data.items()}
    assert model.astype("float64").loss(params, **held_out) == pytest.approx(history["val_loss"][best - 1], rel=1e-5)


def test_epoch_order_is_a_function_of_seed_and_epoch():
    model = nndsl.load(model_path("iris"))
    a, _ = model.train(epochs=3, batch=10, seed=4)
    b, _ = model.train(epochs=3, batch=10, seed=4)
    c, _ = model.train(model.init(4), epochs=3, batch=10, seed=5)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)


# ---- settings ------------------------------------------------------------------------------------
def test_flags_override_the_train_statement(tmp_path, capsys):
    assert main(["train", model_path("xor"), "--epochs", "3", "--lr", "0.5", "-o", str(tmp_path / "p.npz")]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0] == ("training xor: optimizer = sgd(lr = 0.5), epochs = 3, batch = 4, seed = 0; "
                                   "4 training samples")


def test_check_shows_the_training_settings(capsys):
    assert main(["check", model_path("perceptron")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "train: optimizer = sgd(lr = 1), epochs = 100, batch = 1, until = correct, shuffle = false, seed = 0")


def test_train_statement_is_formatted():
    text = "input x\ntrain  optimizer=sgd( lr=0.5,momentum = 0.9 ,), epochs=30,batch = 4, until=correct  # c\n"
    assert format_source(text) == ("input x\ntrain optimizer = sgd(lr = 0.5, momentum = 0.9), epochs = 30, "
                                   "batch = 4, until = correct  # c\n")


@pytest.mark.parametrize("statement, message, caret", [
    ("train optimizer = sdg", "unknown optimizer 'sdg'; did you mean 'sgd'? (choices: sgd, adam, adamw)", "^^^"),
    ("train schedule = cosin", "unknown schedule 'cosin'; did you mean 'cosine'?", "^^^^^"),
    ("train epoch = 3", "unknown training setting 'epoch'; did you mean 'epochs'?", "^^^^^"),
    ("train epochs = 0", "epochs must be a positive whole number, not 0", "^"),
    ("train lr = -0.1", "lr must be a positive number, not -0.1", "^^^^"),
    ("train batch = 2.5", "batch must be a positive whole number, not 2.5", "^^^"),
    ("train until = 0", "until must be a positive number, not 0", "^"),
    ("train until = always", "until is 'correct' or a tolerance on the update's size, not 'always'", "^^^^^^"),
    ("train val = 1", "val must be a number between 0 and 1, not 1", "^"),
    ("train optimizer = adam(momentum = 0.9)", "adam has no argument 'momentum'", "^^^^^^^^^^^^^^^^^^^^"),
    ("train optimizer = adam, momentum = 0.9", "optimizer adam has no hyperparameter 'momentum'", "^^^"),
    ("train lr = 1, optimizer = sgd(lr = 2)", "lr is given twice: as a setting and in sgd(...)", "^"),
    ("train epochs = 3, epochs = 4", "'epochs' is set twice", "^^^^^^"),
    ("train schedule = step", "step needs a value for 'every'", "^^^^"),
])
def test_check_validates_the_train_statement(tmp_path, capsys, statement, message, caret):
    path = write(tmp_path, "m.nn", f"input x\ninput t\nparam w\nloss L = mse(w x, t)\n{statement}\n")
    assert main(["check", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"{path}:5:") and lines[0].endswith(f"error: {message}") or message in lines[0]
    assert lines[1] == f"    {statement}"
    assert lines[2].strip() == caret


def test_one_train_statement_and_train_is_reserved(tmp_path, capsys):
    path = write(tmp_path, "m.nn", "param w\ntrain epochs = 1\ntrain lr = 1\n")
    assert main(["check", str(path)]) == 2
    assert "a model has one 'train' statement; the first is at line 2" in capsys.readouterr().err
    path = write(tmp_path, "m.nn", "param w\ntrain = w\n")
    assert main(["check", str(path)]) == 2
    assert "'train' is a reserved word" in capsys.readouterr().err


# ---- bad input is refused before the first step ----------------------------------------------
MODEL = """\
model m
input x[2]
input t
param w[2] = [1, 2]
y = w · x
loss L = mse(y, t)
data x = [[0, 1], [1, 0], [1, 1]]
data t = [1, 2, 3]
"""
CLASSES = """\
input x[2]
input k
param W[3, 2]
loss L = sparse_cross_entropy(softmax(W x), k)
data x = [[0, 1], [1, 0]]
data k = [0, 3]
"""


@pytest.mark.parametrize("args, message", [
    (["--optimizer", "rmsprop"], "--optimizer:1:1: error: unknown optimizer 'rmsprop' (choices: sgd, adam, adamw)"),
    (["--schedule", "linear"], "--schedule:1:1: error: unknown schedule 'linear'"),
    (["--lr", "0"], "--lr:1:1: error: lr must be a positive number, not 0"),
    (["--lr", "-1"], "--lr:1:1: error: lr must be a positive number, not -1"),
    (["--batch-size", "0"], "--batch-size:1:1: error: batch must be a positive whole number, not 0"),
    (["--epochs", "-3"], "--epochs:1:1: error: epochs must be a positive whole number, not -3"),
    (["--tol", "-1"], "--tol:1:1: error: until must be a positive number, not -1"),
    (["--tol", "x"], "--tol:1:1: error: until is 'correct' or a tolerance on the update's size, not 'x'"),
    (["--val-split", "1.5"], "--val-split:1:1: error: val must be a number between 0 and 1, not 1.5"),
    (["--patience", "3"], "error: patience stops on the validation loss: give a validation split (val) or data"),
    (["--until-correct"], "error: until = correct needs a loss that says what a correct answer is"),
    (["--log", "log.txt"], "error: --log log.txt: the log is a .csv or a .jsonl file"),
    (["--plot", "curve.svg"], "error: --plot curve.svg: the plot is written as a .png file"),
    (["--checkpoint-every", "2"], "error: --checkpoint-every needs --checkpoint FILE"),
    (["--resume", "nofile.npz"], "nofile.npz: error: no such file"),
    (["--resume", "m.nn"], "m.nn: error: not a NumPy .npy or .npz file"),
    (["-i", "x=[1,2,3]", "-i", "t=1"], "-i x: error: data for input 'x' has shape [3]"),
    (["-i", "x=[[1, 2]]"], "m.nn:3:1: error: no data for input 't'"),
    (["--val-data", "nofile.csv"], "nofile.csv: error: no such file"),
    (["--seed", "-1"], "error: --seed -1: give a whole number >= 0"),
    (["-o", "p.txt"], "error: -o p.txt: parameters are written to an .npz file"),
])
def test_bad_flags_and_data(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.nn", MODEL)
    assert main(["train", "m.nn", "-q"] + args) == 2
    err = capsys.readouterr().err
    assert message in err.splitlines()[0]
    assert "Traceback" not in err
    assert not (tmp_path / "m.params.npz").exists()


def test_nan_in_data_is_refused(tmp_path, capsys):
    path = write(tmp_path, "m.nn", MODEL)
    assert main(["train", str(path), "-q", "-i", "x=[[0, 1], [1, 0]]", "-i", "t=[1, 1e999]"]) == 2
    assert f"{path}:3:1: error: training data for input 't' holds an infinite value (sample 1)" in capsys.readouterr().err
    np.save(tmp_path / "x.npy", np.array([[0, 1], [np.nan, 0]]))
    assert main(["train", str(path), "-q", "-i", f"x={tmp_path / 'x.npy'}", "-i", "t=[1, 1]"]) == 2
    assert "training data for input 'x' holds NaN (sample 1)" in capsys.readouterr().err


def test_class_index_out_of_range_is_refused(tmp_path, capsys):
    path = write(tmp_path, "c.nn", CLASSES)
    assert main(["train", str(path), "-q", "-o", str(tmp_path / "p.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:4:10: error: class index 3 is not an integer in [0, 3)")
    assert not (tmp_path / "p.npz").exists()
    # computed indices are checked by a forward pass; held-out samples are checked too
    path = write(tmp_path, "d.nn", CLASSES.replace(", k)", ", k + 1)").replace("[0, 3]", "[0, 2]"))
    assert main(["train", str(path), "-q", "-o", str(tmp_path / "p.npz")]) == 2
    assert capsys.readouterr().err.startswith(f"{path}:4:10: error: class index 3 is not an integer in [0, 3)")
    path = write(tmp_path, "v.nn", CLASSES.replace("[0, 3]", "[0, 1.5]"))
    assert main(["train", str(path), "-q", "--val-split", "0.5", "-o", str(tmp_path / "p.npz")]) == 2
    assert capsys.readouterr().err.startswith(f"{path}:4:10: error: class index 1.5 is not an integer in [0, 3)")
    assert not (tmp_path / "p.npz").exists()


def test_model_without_loss_or_parameters(tmp_path, capsys):
    path = write(tmp_path, "a.nn", "input x\nparam w\ny = w x\n")
    assert main(["train", str(path), "-q"]) == 2
    assert "the model declares no loss" in capsys.readouterr().err
    path = write(tmp_path, "b.nn", "input x\ninput t\nloss L = mse(x, t)\ndata x = [1]\ndata t = [1]\n")
    assert main(["train", str(path), "-q"]) == 2
    assert "the model has no parameters to train" in capsys.readouterr().err


def test_checkpoint_of_another_model_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m.nn", MODEL)
    write(tmp_path, "other.nn", MODEL.replace("param w[2] = [1, 2]\ny = w · x", "param v[2]\ny = v · x"))
    write(tmp_path, "wide.nn", MODEL.replace("input x[2]", "input x[3]").replace("param w[2] = [1, 2]", "param w[3]")
          .replace("[[0, 1], [1, 0], [1, 1]]", "[[0, 1, 0], [1, 0, 0], [1, 1, 1]]"))
    assert main(["train", "m.nn", "-q", "--epochs", "2", "--checkpoint", "c.npz"]) == 0
    assert main(["train", "other.nn", "-q", "--resume", "c.npz"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        "c.npz: error: is a checkpoint of another model: it has parameters this model lacks: w; "
        "it lacks parameters: v")
    assert main(["train", "wide.nn", "-q", "--resume", "c.npz"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        "c.npz: error: is a checkpoint of another model: parameter 'w' has shape [2] there, [3] here")
    assert main(["train", "m.nn", "-q", "--resume", "c.npz", "--optimizer", "adam"]) == 2
    assert "was written by optimizer sgd; this run uses adam" in capsys.readouterr().err
    np.savez(tmp_path / "plain.npz", w=np.zeros(2))
    assert main(["train", "m.nn", "-q", "--resume", "plain.npz"]) == 2
    assert "plain.npz: error: is not an nndsl checkpoint" in capsys.readouterr().err


# ---- divergence ---------------------------------------------------------------------------------
def test_a_diverging_run_stops_at_once_and_names_the_source_line(tmp_path, capsys):
    path = write(tmp_path, "m.nn", """\
        input x
        input t
        param w = 1
        y = w x
        loss L = mse(y, t)
        data x = [1, 2, 3]
        data t = [2, 4, 7]
        """)
    out = tmp_path / "p.npz"
    assert main(["train", str(path), "-q", "--lr", "10", "--epochs", "50", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == ("nndsl: the loss is inf at epoch 11, step 11; training stopped and kept the last "
                                   "parameters whose loss was finite")
    assert f"{path}:5:10: note: the first non-finite value (mse) appeared here\n    loss L = mse(y, t)\n" in err
    w = np.load(out)["w"]
    assert np.isfinite(w)
    model = nndsl.load(path)
    assert np.isfinite(model.loss({"w": w}, **model.default_data()))


@pytest.mark.parametrize("epochs", ["1", "5"])
def test_a_non_finite_gradient_stops_training(tmp_path, capsys, epochs):
    """sqrt'(0) is infinite while the loss is finite: the update makes w non-finite, which is
    caught at the next step or, after the last step, at the end; w stays at its last good value."""
    path = write(tmp_path, "m.nn", """\
        input x
        param w = 0
        loss L = sqrt(w) + x
        data x = [1, 2]
        """)
    out = tmp_path / "p.npz"
    assert main(["train", str(path), "-q", "--epochs", epochs, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nndsl: a gradient was not finite at step 1; training stopped")
    assert f"{path}:3:10: note: the first non-finite value (div) appeared here\n    loss L = sqrt(w) + x\n" in err
    assert np.load(out)["w"] == 0


# ---- outputs: log, plot, progress -----------------------------------------------------------------
def test_log_csv_and_jsonl(tmp_path, capsys):
    assert main(["train", model_path("iris"), "-q", "--epochs", "3", "--log", str(tmp_path / "log.csv"),
                 "-o", str(tmp_path / "p.npz")]) == 0
    text = (tmp_path / "log.csv").read_text()
    assert text.splitlines()[0] == "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds"
    rows = read_csv(tmp_path / "log.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert main(["train", model_path("sin_fit"), "-q", "--epochs", "2", "--log", str(tmp_path / "log.jsonl"),
                 "-o", str(tmp_path / "p.npz")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [sorted(r) for r in rows] == [sorted(["epoch", "loss", "lr", "seconds"])] * 2


def test_plot_is_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curve.png"
    assert main(["train", model_path("iris"), "-q", "--epochs", "5", "--plot", str(out), "-o", str(tmp_path / "p.npz")]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["train", model_path("xor"), "-q", "--plot", str(tmp_path / "c.png")]) == 2
    assert capsys.readouterr().err == "error: --plot needs matplotlib: pip install 'nndsl[plot]'\n"


def test_progress_lines_when_not_a_terminal(tmp_path, capsys):
    assert main(["train", model_path("xor"), "--epochs", "20", "-o", str(tmp_path / "p.npz")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("training xor: ")
    epochs = [line.split()[1] for line in err[1:]]
    assert epochs == ["1/20", "2/20", "4/20", "6/20", "8/20", "10/20", "12/20", "14/20", "16/20", "18/20", "20/20"]
    assert "loss" in err[1] and "accuracy" in err[1] and "lr" in err[1]
    assert main(["train", model_path("xor"), "--epochs", "20", "-q", "-o", str(tmp_path / "p.npz")]) == 0
    assert capsys.readouterr().err == ""


def test_default_output_next_to_the_working_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", model_path("backprop_1d"), "-q"]) == 0
    assert (tmp_path / "backprop_1d.params.npz").exists()
    assert capsys.readouterr().out.splitlines()[-1] == "wrote backprop_1d.params.npz"


# ---- checkpoints: resumed runs end bit-identical ---------------------------------------------------
RESUMABLE = ["--optimizer", "adam(lr = 0.01)", "--batch-size", "8", "--val-split", "0.2", "--patience", "1000",
             "--schedule", "cosine"]
# A schedule that does not depend on the number of epochs, for runs stopped by --epochs.
STEPPED = RESUMABLE[:-1] + ["step(2, 0.5)"]


def cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "nndsl.cli", "train", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_resume_in_process_is_bit_identical(tmp_path, capsys):
    iris = model_path("iris")
    assert main(["train", iris, "-q", "--epochs", "6", *STEPPED, "-o", str(tmp_path / "full.npz")]) == 0
    assert main(["train", iris, "-q", "--epochs", "3", *STEPPED, "--checkpoint", str(tmp_path / "c.npz"),
                 "-o", str(tmp_path / "half.npz")]) == 0
    assert main(["train", iris, "-q", "--epochs", "6", *STEPPED, "--resume", str(tmp_path / "c.npz"),
                 "-o", str(tmp_path / "resumed.npz"), "--log", str(tmp_path / "log.csv")]) == 0
    full, resumed = np.load(tmp_path / "full.npz"), np.load(tmp_path / "resumed.npz")
    for k in full.files:
        assert full[k].tobytes() == resumed[k].tobytes(), k
    assert [r["epoch"] for r in read_csv(tmp_path / "log.csv")] == ["1", "2", "3", "4", "5", "6"]


def wait_for(path: Path, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


@pytest.mark.slow
def test_resume_after_the_process_is_killed_is_bit_identical(tmp_path):
    iris = model_path("iris")
    args = [iris, "-q", "--epochs", "150", *RESUMABLE, "--batch-size", "1"]
    ref = cli(*args, "-o", tmp_path / "full.npz")
    assert ref.wait(timeout=300) == 0, ref.communicate()
    ckpt = tmp_path / "c.npz"
    proc = cli(*args, "--checkpoint", ckpt, "--checkpoint-every", "2", "-o", tmp_path / "never.npz")
    wait_for(ckpt, proc)
    time.sleep(0.1)
    assert proc.poll() is None, "training ended before it could be killed"
    proc.kill()                                  # SIGKILL: no chance to save anything more
    proc.communicate()
    assert not (tmp_path / "never.npz").exists()
    done = json.loads(str(np.load(ckpt)["meta"]))["position"]["epoch"]
    assert 2 <= done < 150
    resumed = cli(*args, "--resume", ckpt, "-o", tmp_path / "resumed.npz")
    assert resumed.wait(timeout=300) == 0, resumed.communicate()
    full, again = np.load(tmp_path / "full.npz"), np.load(tmp_path / "resumed.npz")
    for k in full.files:
        assert full[k].tobytes() == again[k].tobytes(), k


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_mid_epoch_and_exits_130(tmp_path):
    iris = model_path("iris")
    args = [iris, "--epochs", "150", *RESUMABLE, "--batch-size", "1"]
    ref = cli(*args, "-q", "-o", tmp_path / "full.npz")
    assert ref.wait(timeout=300) == 0, ref.communicate()
    ckpt = tmp_path / "c.npz"
    log = tmp_path / "progress.txt"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "nndsl.cli", "train", *map(str, args), "--checkpoint", str(ckpt),
                                 "-o", str(tmp_path / "never.npz")], stdout=subprocess.PIPE, stderr=fh, text=True)
        wait_for(ckpt, proc)                    # a few epochs in
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    err = log.read_text()
    assert "nndsl: interrupted in epoch" in err and f"--resume {ckpt}" in err
    steps = int(err.split(" after ")[1].split(" steps")[0])        # the checkpoint is of that very step
    assert json.loads(str(np.load(ckpt)["meta"]))["position"]["step"] == steps
    assert "Traceback" not in err
    assert not (tmp_path / "never.npz").exists()
    resumed = cli(*args, "-q", "--resume", ckpt, "-o", tmp_path / "resumed.npz")
    assert resumed.wait(timeout=300) == 0, resumed.communicate()
    full, again = np.load(tmp_path / "full.npz"), np.load(tmp_path / "resumed.npz")
    for k in full.files:
        assert full[k].tobytes() == again[k].tobytes(), k


def test_checkpoint_holds_no_pickles(tmp_path, capsys):
    assert main(["train", model_path("xor"), "-q", "--epochs", "2", "--optimizer", "adam", "--checkpoint",
                 str(tmp_path / "c.npz"), "-o", str(tmp_path / "p.npz")]) == 0
    with np.load(tmp_path / "c.npz", allow_pickle=False) as ckpt:
        names = set(ckpt.files)
        meta = json.loads(str(ckpt["meta"]))
    assert {"param/W1", "state/W1/exp_avg", "state/W1/exp_avg_sq", "meta"} <= names
    assert meta["position"]["epoch"] == 2 and meta["position"]["step"] == 2 and meta["seed"] == 0


# ---- the documentation is the registries' ------------------------------------------------------------
def signature(entry) -> str:
    args = ", ".join(h.name if h.default is None else f"{h.name} = {h.default:g}" for h in entry.hypers)
    return f"`{entry.name}({args})`" if entry.hypers else f"`{entry.name}`"


def test_docs_describe_every_optimizer_schedule_and_setting():
    """docs/training.md has a table row for each registry entry, with its formula as defined."""
    from nndsl.optim import OPTIMIZERS, SCHEDULES
    from nndsl.settings import KEYS
    text = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    rows = ([f"| {signature(e)} | {e.doc} |" for e in OPTIMIZERS.values()]
            + [f"| {signature(e)} | {e.doc} | {e.counts} |" for e in SCHEDULES.values()]
            + [f"| `{k.name}` | `{k.flag}` | {k.doc} |" for k in KEYS.values()])
    missing = [row for row in rows if row not in text.splitlines()]
    assert not missing, "docs/training.md is out of date:\n" + "\n".join(missing)


def test_training_a_saturating_sigmoid_warns_nothing_and_leaves_the_callers_arrays_and_settings_alone():
    """The trainer sets NumPy's overflow setting once for its loop (σ(−1000) is 0 without a
    warning) and gives it back; the values accuracy reads are not copied, and not written."""
    import warnings
    model = nndsl.compile("input x\ninput t\nparam w = 1\nparam b = 0\nu = σ(w x + b)\nloss L = (u - t)^2\n")
    x = np.array([-1e4, -100.0, 0.0, 100.0, 1e4], np.float32)
    t = np.array([0.0, 0.0, 1.0, 1.0, 1.0], np.float32)
    data = {"x": x.copy(), "t": t.copy()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trained, history = model.train({"w": np.float32(1.0), "b": np.float32(0.0)}, **data, epochs=5, batch=5, lr=0.1)
    assert np.geterr()["over"] == "warn"
    np.testing.assert_array_equal(data["x"], x)
    np.testing.assert_array_equal(data["t"], t)
    assert len(history["loss"]) == 5 and all(np.isfinite(history["loss"]))
