"""bench/all.py runs end to end: a smoke run, one round, never judging a time or a ratio."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS = {    # workload: the start of its row
    "tiny": "XOR 2-4-1, batch 4 (step)",
    "small": "64-64-10 relu, batch 32 (step)",
    "medium": "784-256-256-10 relu, batch 128 (step)",
    "large": "784-1024-1024-10 relu, batch 512 (step)",
    "train_xor": "train XOR 2-4-1, batch 4 (epoch)",
    "train_mlp": "train 784-256-10, batch 128 (epoch)",
}


def anchors() -> Path:
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "bench" / "_common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    return Path(common.default_anchors())


@pytest.mark.slow
def test_all_quick_prints_every_workload(tmp_path):
    if not (anchors() / "mlp_step.py").is_file():
        pytest.skip(f"no reference anchors in {anchors()}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "all.py"), "--quick", "--rounds", "1",
                           "--json", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for key, label in ROWS.items():
        row = [line for line in lines if line.startswith(label)]
        assert len(row) == 1, (key, proc.stdout)
        if key == "large":
            assert "skipped (--quick)" in row[0]
        else:
            assert row[0].split()[-1] in ("ok", "MISSED"), row[0]     # a verdict, whichever it is
    results = json.loads(out.read_text())["workloads"]
    assert set(results) == set(ROWS) - {"large"}
    for key, r in results.items():
        assert r["sides"]["nndsl"]["all_s"] and r["sides"]["numpy plain"]["all_s"], key
