"""Files out: every file nndsl writes goes through a temporary file renamed into place."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import NndslError, file_error


def write_atomic(path: Path, write, mode: int | None = None) -> None:
    """Write through a temporary file in the same folder, then rename it into place. The file
    gets `mode`, or the permissions an ordinary open() would give it."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise file_error(path, f"folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npz(path, arrays: dict) -> None:
    if not str(path).endswith(".npz"):
        raise NndslError(f"-o {path}: arrays are written to an .npz file")
    write_atomic(Path(path), lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()}))
