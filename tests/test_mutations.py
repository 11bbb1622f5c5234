"""Random mutations of every model in models/, through the command line: whatever the text, each
command ends with 0 (success), 1 (a failed check) or 2 (bad input, with a message), never with an
internal error (3) or a traceback."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from nndsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted((ROOT / "models").glob("*.nn"))
PER_MODEL = int(os.environ.get("NNDSL_MUTATIONS", "12"))     # a longer campaign: NNDSL_MUTATIONS=500
PIECES = ["(", ")", "[", "]", ",", "=", "+", "-", "*", "/", "^", "·", "ᵀ", "²", "⊙", ":", "0", "1", "-1",
          "x", "W1", "h", "t", "relu", "σ", "sum", "concat", "argmax", "\n", " ", "#", "data", "loss L =",
          "train epochs = 2", "[0]", "[:, 1]", "e9", "1e400"]


def mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(text) + 1)
        kind = rng.random()
        if kind < 0.35:                                   # delete a few characters
            text = text[:at] + text[at + rng.randint(1, 4):]
        elif kind < 0.7:                                  # insert a piece
            text = text[:at] + rng.choice(PIECES) + text[at:]
        else:                                             # copy a piece of the file elsewhere
            start = rng.randrange(len(text))
            text = text[:at] + text[start:start + rng.randint(1, 12)] + text[at:]
    return text


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_mutated_models_never_end_in_an_internal_error(path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for data in (path.parent / "data").iterdir():          # `data "data/..."` statements still resolve
        (tmp_path / "data").mkdir(exist_ok=True)
        (tmp_path / "data" / data.name).write_bytes(data.read_bytes())
    rng = random.Random(path.stem)
    source = path.read_text(encoding="utf-8")
    outcomes = set()
    for i in range(PER_MODEL):
        text = mutate(source, rng)
        (tmp_path / "m.nn").write_text(text, encoding="utf-8")
        for command in (["check"], ["run"], ["grad"], ["train", "-q", "--epochs", "2", "-o", "p.npz"],
                        ["fmt", "--check"], ["export", "--format", "json"]):
            status = main([command[0], "m.nn", *command[1:]])
            captured = capsys.readouterr()
            assert status in (0, 1, 2), f"{command[0]} exited {status} on mutation {i}:\n{text}\n{captured.err}"
            assert "Traceback" not in captured.err and "internal error" not in captured.err, text
            if status == 2:
                assert captured.err.strip(), f"{command[0]} failed silently on mutation {i}:\n{text}"
            outcomes.add(status)
    assert 2 in outcomes                                   # the mutations do reach the error paths
