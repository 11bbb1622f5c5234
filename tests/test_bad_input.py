"""Bad input is normal input: a corpus of mistakes a user can make, each with the exact message
nndsl prints (FILE:LINE:COL, the source line and a caret where there is a place to point at),
exit status 2, nothing on standard output, nothing written, and no traceback. Each case runs
in an empty folder holding the model as m.nn and a few data files (see `fixtures`)."""
from __future__ import annotations

import numpy as np
import pytest

from nndsl.cli import main

# A regression model and a classifier, each with its own data.
M = 'input x[2]\ninput t\nparam w[2] = [1, 2]\ny = w · x\nloss L = mse(y, t)\ndata x = [[0, 1], [1, 0]]\ndata t = [1, 2]\n'
C = 'input x[2]\ninput k\nparam W[3, 2]\noutput p = softmax(W x)\nloss L = sparse_cross_entropy(p, k)\ndata x = [[0, 1], [1, 0]]\ndata k = [0, 2]\n'

# (what, the model file's text (None: no file; "DIR": a folder; bytes: raw), command, arguments, stderr)
CASES = [
    ('syntax: missing operand at end', 'input x\ny = 2 *\n', 'check', [],
     "m.nn:2:8: error: expected an expression after '*', found end of line\n    y = 2 *\n           ^\n"),
    ('syntax: two equals', 'input x\ny = = x\n', 'check', [],
     "m.nn:2:5: error: expected an expression after '=', found '='\n    y = = x\n        ^\n"),
    ('syntax: statement keyword misused', 'input x\nloss = x\n', 'check', [],
     "m.nn:2:1: error: 'loss' is a reserved word and cannot be a name\n    loss = x\n    ^^^^\n"),
    ('syntax: reserved word as a name', 'input train\n', 'check', [],
     "m.nn:1:7: error: 'train' is a reserved word and cannot be a name\n    input train\n          ^^^^^\n"),
    ('syntax: dim not an integer', 'dim h = 2.5\n', 'check', [],
     'm.nn:1:9: error: a dim must be a positive integer, not 2.5\n    dim h = 2.5\n            ^^^\n'),
    ('syntax: dim zero', 'dim h = 0\n', 'check', [],
     'm.nn:1:9: error: a dim must be a positive integer, not 0\n    dim h = 0\n            ^\n'),
    ('syntax: size zero', 'input x[0]\n', 'check', [],
     'm.nn:1:9: error: a size must be a positive integer, not 0\n    input x[0]\n            ^\n'),
    ('syntax: unclosed bracket at end of file', 'input x[2\n', 'check', [],
     "m.nn:1:8: error: '[' is never closed\n    input x[2\n           ^\n"),
    ('syntax: stray comma', 'input x[2]\ny = relu(x,, x)\n', 'check', [],
     "m.nn:2:12: error: expected an expression after ',', found ','\n    y = relu(x,, x)\n               ^\n"),
    ('model not first', 'input x\nmodel m\n', 'check', [],
     "m.nn:2:1: error: 'model' must be the first statement\n    model m\n    ^^^^^^^\n"),
    ('two losses', 'input x\nloss A = x\nloss B = x\n', 'check', [],
     "m.nn:3:6: error: a model has one loss; 'A' is declared at line 2\n    loss B = x\n         ^\n"),
    ('output of undefined name', 'input x\noutput z\n', 'check', [],
     "m.nn:2:8: error: undefined name 'z'\n    output z\n           ^\n"),
    ('data for a non-input', 'input x\ny = x\ndata y = [1]\n', 'check', [],
     "m.nn:3:6: error: data for 'y', which is not a declared input\n    data y = [1]\n         ^\n"),
    ('data given twice', 'input x\ndata x = [1]\ndata x = [2]\n', 'check', [],
     "m.nn:3:6: error: data for 'x' is given twice\n    data x = [2]\n         ^\n"),
    ('ragged data', 'input x[2]\ndata x = [[1, 2], [3]]\n', 'check', [],
     'm.nn:2:10: error: ragged array literal: rows must all have the same length\n    data x = [[1, 2], [3]]\n             ^^^^^^^^^^^^^\n'),
    ('data of the wrong shape', 'input x[2]\ny = x\ndata x = [[1, 2, 3]]\n', 'check', [],
     "m.nn:3:10: error: data for input 'x' has shape [1, 3]; expected [2] for one sample or [B, 2] for a batch\n    data x = [[1, 2, 3]]\n             ^^^^^^^^^^^\n"),
    ('data statements disagree', 'input x[2]\ninput t\ny = x\ndata x = [[1, 2]]\ndata t = [1, 2]\n', 'check', [],
     "m.nn:5:1: error: the data statements disagree: 'x' is a batch of 1, 't' is a batch of 2\n    data t = [1, 2]\n    ^^^^^^^^^^^^^^^\n"),
    ('normal with negative std', 'param w[2] = normal(-1)\n', 'check', [],
     'm.nn:1:14: error: normal(std) needs std >= 0\n    param w[2] = normal(-1)\n                 ^^^^^^^^^^\n'),
    ('uniform with lo above hi', 'param w[2] = uniform(1, 0)\n', 'check', [],
     'm.nn:1:14: error: uniform(lo, hi) needs lo <= hi\n    param w[2] = uniform(1, 0)\n                 ^^^^^^^^^^^^^\n'),
    ('xavier on a vector', 'param w[2] = xavier\n', 'check', [],
     "m.nn:1:14: error: xavier needs a parameter of rank 2 or more; 'w' has shape [2]\n    param w[2] = xavier\n                 ^^^^^^\n"),
    ('bad initialiser', 'param w[2] = relu\n', 'check', [],
     'm.nn:1:14: error: an initialiser is a number, an array, zeros, ones, normal(std), uniform(lo, hi), xavier or he\n    param w[2] = relu\n                 ^^^^\n'),
    ('matmul of rank 3', 'param A[2, 2, 2]\ninput x[2]\ny = A x\n', 'check', [],
     'm.nn:3:5: error: shape mismatch in matrix product: [2, 2, 2] · [2]: a matrix product takes vectors and matrices\n    y = A x\n        ^^^\n'),
    ('softmax of a scalar', 'input x\ny = softmax(x)\n', 'check', [],
     'm.nn:2:5: error: shape mismatch in softmax(): needs a vector or a higher-rank tensor, not a scalar\n    y = softmax(x)\n        ^^^^^^^^^^\n'),
    ('sparse ce with a vector index', 'input x[3]\ninput k[3]\nloss L = sparse_cross_entropy(softmax(x), k)\n', 'check', [],
     'm.nn:3:10: error: shape mismatch in sparse_cross_entropy(): takes class scores of shape [n] and a scalar class index, not [3] and [3]\n    loss L = sparse_cross_entropy(softmax(x), k)\n             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n'),
    ('def with a repeated parameter', 'def f(a, a) = a\ninput x\ny = f(x, x)\n', 'check', [],
     "m.nn:1:1: error: function 'f' names a parameter twice\n    def f(a, a) = a\n    ^^^^^^^^^^^^^^^\n"),
    ('unknown function, case', 'input x\ny = ReLU(x)\n', 'check', [],
     "m.nn:2:5: error: unknown function 'ReLU'; did you mean 'relu'?\n    y = ReLU(x)\n        ^^^^\n"),
    ('empty model', '# nothing here\n', 'check', [],
     'm.nn: error: the model is empty: it declares no inputs, parameters or values (see docs/language.md for a first model)\n'),
    ('train: unknown optimizer', M + 'train optimizer = sdg\n', 'check', [],
     "m.nn:8:19: error: unknown optimizer 'sdg'; did you mean 'sgd'? (choices: sgd, adam, adamw)\n    train optimizer = sdg\n                      ^^^\n"),
    ('train: unknown setting', M + 'train epoch = 3\n', 'check', [],
     "m.nn:8:7: error: unknown training setting 'epoch'; did you mean 'epochs'? (choices: optimizer, lr, momentum, epochs, batch, schedule, val, until, patience, seed, shuffle)\n    train epoch = 3\n          ^^^^^\n"),
    ('train: twice', M + 'train epochs = 3\ntrain lr = 1\n', 'check', [],
     "m.nn:9:1: error: a model has one 'train' statement; the first is at line 8 (list several settings in it, separated by commas)\n    train lr = 1\n    ^^^^^^^^^^^^\n"),
    ('train: lr zero', M + 'train lr = 0\n', 'check', [],
     'm.nn:8:12: error: lr must be a positive number, not 0\n    train lr = 0\n               ^\n'),
    ('train: momentum one', M + 'train momentum = 1\n', 'check', [],
     'm.nn:8:18: error: momentum must be a number in [0, 1), not 1\n    train momentum = 1\n                     ^\n'),
    ('train: adam momentum', M + 'train optimizer = adam, momentum = 0.9\n', 'check', [],
     "m.nn:8:36: error: optimizer adam has no hyperparameter 'momentum' (it has: lr, beta1, beta2, eps, weight_decay)\n    train optimizer = adam, momentum = 0.9\n                                       ^^^\n"),
    ('train: schedule missing argument', M + 'train schedule = exp\n', 'check', [],
     "m.nn:8:18: error: schedule exp needs a value for 'gamma'\n    train schedule = exp\n                     ^^^\n"),
    ('train: schedule number', M + 'train schedule = 3\n', 'check', [],
     'm.nn:8:18: error: schedule takes the name of a schedule, not a number (constant, inverse, inv, step, exp, cosine)\n    train schedule = 3\n                     ^\n'),
    ('train: until other word', M + 'train until = done\n', 'check', [],
     "m.nn:8:15: error: until is 'correct' or a tolerance on the update's size, not 'done'\n    train until = done\n                  ^^^^\n"),
    ('train: shuffle number', M + 'train shuffle = 0\n', 'check', [],
     'm.nn:8:17: error: shuffle is true or false, not 0\n    train shuffle = 0\n                    ^\n'),
    ('train: positional after keyword', M + 'train optimizer = sgd(lr = 1, 0.9)\n', 'check', [],
     'm.nn:8:31: error: a positional argument cannot follow a keyword argument\n    train optimizer = sgd(lr = 1, 0.9)\n                                  ^^^\n'),
    ('train: too many arguments', M + 'train optimizer = sgd(1, 0, 0, 0, 0, 0)\n', 'check', [],
     'm.nn:8:19: error: optimizer sgd takes at most 5 arguments (lr, momentum, dampening, weight_decay, nesterov)\n    train optimizer = sgd(1, 0, 0, 0, 0, 0)\n                      ^^^^^^^^^^^^^^^^^^^^^\n'),
    ('missing model file', None, 'check', [],
     'm.nn: error: no such file\n'),
    ('model file is a folder', 'DIR', 'check', [],
     'm.nn: error: is a directory\n'),
    ('model file not UTF-8', b'input \xff\n', 'check', [],
     'm.nn: error: cannot read: not UTF-8 text\n'),
    ('--set unknown dim', M, 'check', ['--set', 'h=3'],
     "m.nn: error: the model has no dim 'h' to set (dims: none)\n"),
    ('--set not an integer', M, 'check', ['--set', 'h=x'],
     'error: --set h=x: expected NAME=INT with a positive integer\n'),
    ('--seed negative', M, 'run', ['--seed', '-1'],
     'error: --seed -1: give a whole number >= 0\n'),
    ('-i without equals', M, 'run', ['-i', 'x'],
     'error: -i x: expected NAME=VALUE\n'),
    ('-i unknown input', M, 'run', ['-i', 'q=1'],
     "error: -i q=...: the model has no input 'q' (inputs: x, t)\n"),
    ('-i bad literal', M, 'run', ['-i', 'x=[1, 2'],
     "-i x:1:1: error: '[' is never closed\n    [1, 2\n    ^\n"),
    ('-i non-numeric literal', M, 'run', ['-i', 'x=[a, b]'],
     '-i x:1:2: error: an array literal holds numbers only\n    [a, b]\n     ^\n'),
    ('-i wrong shape', M, 'run', ['-i', 'x=[1, 2, 3]', '-i', 't=1'],
     "-i x: error: data for input 'x' has shape [3]; expected [2] for one sample or [B, 2] for a batch\n"),
    ('-i missing file', M, 'run', ['-i', 'x=nope.npy', '-i', 't=1'],
     'nope.npy: error: no such file\n'),
    ('-i batches disagree', M, 'run', ['-i', 'x=[[1, 2]]', '-i', 't=[1, 2]'],
     "error: inputs disagree on the batch: 'x' is a batch of 1, 't' is a batch of 2\n"),
    ('-i single against batch of one', M, 'run', ['-i', 'x=[1, 2]', '-i', 't=[1]'],
     "error: inputs disagree on the batch: 'x' is a single sample, 't' is a batch of 1\n"),
    ('--data missing', M, 'run', ['--data', 'nope.csv'],
     'nope.csv: error: no such file\n'),
    ('--data wrong suffix', M, 'run', ['--data', 'm.nn'],
     'm.nn: error: a data file is .npz or .csv\n'),
    ('--data csv unknown column', M, 'run', ['--data', 'bad_column.csv'],
     "bad_column.csv:1:11: error: column 'q' matches no input (inputs: x, t)\n    x[0],x[1],q\n              ^\n"),
    ('--data csv missing element', M, 'run', ['--data', 'missing_element.csv'],
     "missing_element.csv: error: input 'x' needs column 'x[1]'\n"),
    ('--data csv ragged row', M, 'run', ['--data', 'ragged.csv'],
     'ragged.csv:3:1: error: row has 2 values, expected 3\n    4,5\n    ^^^\n'),
    ('--params missing', M, 'run', ['--params', 'nope.npz'],
     'nope.npz: error: no such file\n'),
    ('--params extra name', M, 'run', ['--params', 'extra.npz'],
     "error: extra.npz has a value for 'W3', which is not a parameter of the model; did you mean 'w'? (parameters: w)\n"),
    ('--params wrong shape', M, 'run', ['--params', 'wrong_shape.npz'],
     "m.nn:3:1: error: wrong_shape.npz: parameter 'w' has shape [3], declared [2]\n    param w[2] = [1, 2]\n    ^^^^^^^^^^^^^^^^^^^\n"),
    ('--params missing name', M, 'run', ['--params', 'empty.npz'],
     "error: empty.npz has a value for 'v', which is not a parameter of the model (parameters: w)\n"),
    ('run -o not npz', M, 'run', ['-o', 'out.txt'],
     'error: -o out.txt: arrays are written to an .npz file\n'),
    ('run -o into a missing folder', M, 'run', ['-o', 'no/such/out.npz'],
     'no/such/out.npz: error: folder no/such does not exist\n'),
    ('grad --wrt unknown', M, 'grad', ['--wrt', 'nope'],
     "error: cannot differentiate with respect to 'nope': the model has no value of that name (named values: x, t, w, y, L)\n"),
    ('grad --wrt empty', M, 'grad', ['--wrt', ''],
     "error: --wrt '': name values of the model, separated by commas\n"),
    ('grad --tol without --check', M, 'grad', ['--tol', '1e-3'],
     'error: --tol 0.001 sets the tolerance of --check; add --check\n'),
    ('grad --tol negative', M, 'grad', ['--check', '--tol', '-1'],
     'error: --tol -1: the tolerance is a number >= 0\n'),
    ('grad --samples zero', M, 'grad', ['--check', '--samples', '0'],
     'error: --samples 0: check at least one element per gradient\n'),
    ('grad without a loss', 'input x\ny = 2 x\ndata x = [1]\n', 'grad', [],
     'm.nn: error: the model declares no loss; add one with: loss L = ...\n'),
    ('class index out of range', C.replace("[0, 2]", '[0, 3]'), 'run', [],
     'm.nn:5:10: error: class index 3 is not an integer in [0, 3)\n    loss L = sparse_cross_entropy(p, k)\n             ^^^^^^^^^^^^^^^^^^^^^^^^^^\n'),
    ('class index not an integer', C.replace("[0, 2]", '[0, 0.5]'), 'grad', [],
     'm.nn:5:10: error: class index 0.5 is not an integer in [0, 3)\n    loss L = sparse_cross_entropy(p, k)\n             ^^^^^^^^^^^^^^^^^^^^^^^^^^\n'),
    ('nothing to output', 'input x\nparam w\n', 'run', ['-i', 'x=1'],
     'm.nn: error: the model has nothing to output: declare one with `output NAME = ...`, or bind a value\n'),
    ('export binary to stdout', M, 'export', ['--format', 'png'],
     'error: --format png is binary: give an output file with -o FILE.png\n'),
    ('export onnx with --grad', M, 'export', ['--format', 'onnx', '--grad', '-o', 'm.onnx'],
     'error: --grad cannot be exported to ONNX: the ONNX file holds the forward graph (outputs and loss) for inference; export the backward graph as dot, svg, png, json or graphml\n'),
    ('export into a missing folder', M, 'export', ['-o', 'no/g.dot'],
     'no/g.dot: error: folder no does not exist\n'),
    ('fmt of a missing file', None, 'fmt', [],
     'm.nn: error: no such file\n'),
    ('init -o not npz', M, 'init', ['-o', 'p.txt'],
     'error: -o p.txt: arrays are written to an .npz file\n'),
    ('train: --lr text', M, 'train', ['--lr', 'fast'],
     "--lr:1:1: error: lr takes a number, not 'fast'\n    fast\n    ^^^^\n"),
    ('train: --epochs zero', M, 'train', ['--epochs', '0'],
     '--epochs:1:1: error: epochs must be a positive whole number, not 0\n    0\n    ^\n'),
    ('train: --batch-size fraction', M, 'train', ['--batch-size', '0.5'],
     '--batch-size:1:1: error: batch must be a positive whole number, not 0.5\n    0.5\n    ^^^\n'),
    ('train: --val-split one', M, 'train', ['--val-split', '1'],
     '--val-split:1:1: error: val must be a number between 0 and 1, not 1\n    1\n    ^\n'),
    ('train: --optimizer unknown', M, 'train', ['--optimizer', 'rmsprop'],
     "--optimizer:1:1: error: unknown optimizer 'rmsprop' (choices: sgd, adam, adamw)\n    rmsprop\n    ^^^^^^^\n"),
    ('train: --schedule misspelt', M, 'train', ['--schedule', 'cosin'],
     "--schedule:1:1: error: unknown schedule 'cosin'; did you mean 'cosine'? (choices: constant, inverse, inv, step, exp, cosine)\n    cosin\n    ^^^^^\n"),
    ('train: --schedule bad argument', M, 'train', ['--schedule', 'step(every = 0)'],
     '--schedule:1:1: error: schedule step: every must be a positive whole number, not 0\n    step(every = 0)\n    ^^^^^^^^^^^^^^^\n'),
    ('train: --patience without validation', M, 'train', ['--patience', '3'],
     'error: patience stops on the validation loss: give a validation split (val) or data\n'),
    ('train: --until-correct with mse', M, 'train', ['--until-correct'],
     'm.nn:5:10: error: until = correct needs a loss that says what a correct answer is (bce, cross_entropy, sparse_cross_entropy, hinge, squared_hinge or perceptron)\n    loss L = mse(y, t)\n             ^^^^^^^^^\n'),
    ('train: --log suffix', M, 'train', ['--log', 'log.txt'],
     'error: --log log.txt: the log is a .csv or a .jsonl file\n'),
    ('train: --checkpoint-every alone', M, 'train', ['--checkpoint-every', '2'],
     'error: --checkpoint-every needs --checkpoint FILE\n'),
    ('train: --resume not a checkpoint', M, 'train', ['--resume', 'extra.npz'],
     'extra.npz: error: is not an nndsl checkpoint (it has no nndsl metadata)\n'),
    ('train: NaN in data', M, 'train', ['-i', 'x=nan.npy', '-i', 't=[1, 2]'],
     "m.nn:1:1: error: training data for input 'x' holds NaN (sample 1)\n    input x[2]\n    ^^^^^^^^^^\n"),
    ('train: no parameters', 'input x\ninput t\nloss L = mse(x, t)\ndata x = [1]\ndata t = [1]\n', 'train', [],
     'm.nn: error: the model has no parameters to train; declare one with: param NAME[...]\n'),
    ('train: without a loss', 'input x\nparam w\ny = w x\n', 'train', [],
     'm.nn: error: the model declares no loss; add one with: loss L = ...\n'),
    ('run: --device without the torch backend', M, 'run', ['--device', 'cuda'],
     'error: --device cuda runs on PyTorch: add --backend torch\n'),
    ('run: --device unknown', M, 'run', ['--backend', 'torch', '--device', 'tpu'],
     "error: unknown device 'tpu' (devices: cpu, cuda, mps, e.g. cuda:1)\n"),
    ('train: --nproc zero', M, 'train', ['--nproc', '0'],
     'error: --nproc 0: give a positive number of processes\n'),
    ('train: --nproc on numpy', M, 'train', ['--nproc', '2', '--backend', 'numpy'],
     'error: --nproc 2 trains data-parallel on PyTorch: use --backend torch, not numpy\n'),
    ('train: --nproc on mps', M, 'train', ['--nproc', '2', '--device', 'mps'],
     None),
    ('train: --nproc with a bad setting', M, 'train', ['--nproc', '2', '--lr', '-1'],
     '--lr:1:1: error: lr must be a positive number, not -1\n    -1\n    ^^\n'),
    ('fmt --check of a bad file', 'input x\ny = x +\n', 'fmt', ['--check'],
     "m.nn:2:8: error: expected an expression after '+', found end of line\n    y = x +\n           ^\n"),
]
FIXTURES = {"bad_column.csv", "missing_element.csv", "ragged.csv", "extra.npz", "wrong_shape.npz", "empty.npz",
            "nan.npy", "m.nn"}


def fixtures(folder):
    (folder / "bad_column.csv").write_text("x[0],x[1],q\n1,2,3\n")
    (folder / "missing_element.csv").write_text("x[0],t\n1,2\n")
    (folder / "ragged.csv").write_text("x[0],x[1],t\n1,2,3\n4,5\n")
    np.savez(folder / "extra.npz", w=np.zeros(2), W3=np.zeros(2))
    np.savez(folder / "wrong_shape.npz", w=np.zeros(3))
    np.savez(folder / "empty.npz", v=np.zeros(3))
    np.save(folder / "nan.npy", np.array([[1, 2], [np.nan, 4]]))


def test_the_corpus_is_large():
    assert len(CASES) >= 80
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("what, text, command, argv, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, monkeypatch, capsys, what, text, command, argv, expected):
    monkeypatch.chdir(tmp_path)
    fixtures(tmp_path)
    if text == "DIR":
        (tmp_path / "m.nn").mkdir()
    elif isinstance(text, bytes):
        (tmp_path / "m.nn").write_bytes(text)
    elif text is not None:
        (tmp_path / "m.nn").write_text(text, encoding="utf-8")
    assert main([command, "m.nn", *argv] + (["-q"] if command == "train" else [])) == 2
    captured = capsys.readouterr()
    if expected is None:                    # depends on the machine: one line, whatever it says
        assert captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    else:
        assert captured.err == expected
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in FIXTURES) == []
