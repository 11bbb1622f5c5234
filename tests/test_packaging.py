"""`pip install .` (not only -e) works: the grammar travels inside the wheel, and the wheel's
declared dependencies are all it needs.

The wheel goes into a fresh virtual environment that sees nothing of the Python running the
tests except the wheel's own dependencies (and theirs), taken from wherever that Python has them
installed: the system's site-packages, a virtualenv's, or the user's. So the test needs no
network, and it means the same thing with the system Python and inside a virtualenv (where a
`system_site_packages=True` environment would see the system's packages, not the virtualenv's).
"""
from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import subprocess
import sys
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def requirement_names(requires: list) -> list:
    """Distribution names of the requirements that hold without extras (`foo>=1; extra == "x"`
    is left out; other markers are kept: a requirement that is not installed is skipped later)."""
    names = []
    for line in requires or ():
        requirement, _, marker = line.partition(";")
        if "extra" in marker:
            continue
        names.append(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))
    return names


def wheel_requirements(wheel: Path) -> list:
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return requirement_names(Parser().parsestr(z.read(name).decode()).get_all("Requires-Dist"))


def top_level_entries(dist) -> set:
    """The files and folders a distribution puts at the top of its site-packages folder."""
    if dist.files is not None:
        return {f.parts[0] for f in dist.files if f.parts and f.parts[0] not in ("..", "__pycache__")}
    names = (dist.read_text("top_level.txt") or "").split()
    return {n for n in names} | {n + ".py" for n in names} | {Path(dist._path).name}


def link_dependencies(names: list, into: Path) -> list:
    """Symbolic links in `into` to the installed distributions `names` and their own
    requirements, as the Python running the tests has them. Returns the names linked."""
    into.mkdir()
    linked, todo = [], list(names)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in linked:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:        # e.g. colorama, for tqdm on Windows only
            continue
        linked.append(key)
        base = Path(dist.locate_file(""))
        for entry in top_level_entries(dist):
            if (base / entry).exists() and not (into / entry).exists():
                os.symlink(base / entry, into / entry)
        todo.extend(requirement_names(dist.requires))
    return linked


@pytest.mark.slow
def test_wheel_carries_the_grammar_and_runs_outside_the_checkout(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True)
    (wheel,) = tmp_path.glob("nndsl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "nndsl/grammar/nndsl.lark" in names
    requirements = wheel_requirements(wheel)
    pyproject = (ROOT / "pyproject.toml").read_text()       # (tomllib is Python 3.11+)
    declared = re.findall(r'"([^"]+)"', re.search(r"^dependencies = \[(.*?)\]", pyproject, re.M | re.S).group(1))
    assert sorted(requirements) == sorted(requirement_names(declared)) and "lark" in requirements

    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=False, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert link_dependencies(requirements, tmp_path / "deps")
    Path(site, "dependencies.pth").write_text(str(tmp_path / "deps") + "\n")
    # --no-index: pip must find every dependency already installed (in the linked folder)
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", str(wheel)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    model = tmp_path / "m.nn"
    model.write_text("input x[2]\nparam w[2] = [1, 2]\ny = w · x\n")
    code = ("import nndsl, sys; m = nndsl.load(sys.argv[1]); "
            "assert nndsl.__file__.startswith(sys.argv[2]), nndsl.__file__; print(m.run(None, x=[3, 4])['y'])")
    out = subprocess.run([str(python), "-c", code, str(model), site], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "11.0"
    cli = subprocess.run([str(env_dir / "bin" / "nndsl"), "run", str(model), "-i", "x=[1,1]"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert (cli.returncode, cli.stdout, cli.stderr) == (0, "y = 3\n", "")
