"""`pip install .` (not only -e) works: the grammar travels inside the wheel."""
from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_carries_the_grammar_and_runs_outside_the_checkout(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True)
    (wheel,) = tmp_path.glob("nndsl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "nndsl/grammar/nndsl.lark" in names
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
                   check=True)
    model = tmp_path / "m.nn"
    model.write_text("input x[2]\nparam w[2] = [1, 2]\ny = w · x\n")
    code = ("import nndsl, sys; m = nndsl.load(sys.argv[1]); "
            "assert 'site-packages' in nndsl.__file__, nndsl.__file__; print(m.run(None, x=[3, 4])['y'])")
    out = subprocess.run([str(python), "-c", code, str(model)], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "11.0"
    cli = subprocess.run([str(env_dir / "bin" / "nndsl"), "run", str(model), "-i", "x=[1,1]"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert cli.returncode == 0 and cli.stdout == "y = 3\n"
