"""Data in: values given on the command line, data files, and `data` statements.

A VALUE is a number, an inline array (`[[0,1],[1,0]]`, parsed by the language's own grammar)
or a file: `.npy`, `.npz` (the array under the input's name) or `.csv`.

CSV files have a header row. A data file (`--data`, `data "..."`) maps columns to inputs by
name: a column `y` is the scalar input `y`; columns `x[0]`, `x[1]`, ... are the elements of the
input `x` (`x[i,j]` for a matrix, row-major). Each row is one sample. A CSV given for one input
(`-i x=file.csv`) holds just its values: each row one sample, its columns the elements.
Arrays are never loaded with pickles.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from math import prod
from pathlib import Path

import numpy as np

from .errors import NndslError, Span, file_error
from .parser import parse
from .resolve import literal_array

FILE_SUFFIXES = (".npy", ".npz", ".csv")
ELEMENT = re.compile(r"^\s*([^\[\]\s]+)\s*\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]\s*$")


def parse_value(text: str, name: str, shapes: dict) -> np.ndarray:
    """The value of `-i NAME=VALUE`."""
    stripped = text.strip()
    if stripped.lower().endswith(FILE_SUFFIXES):
        return read_value_file(Path(stripped), name, shapes.get(name, ()))
    expr = parse(text, filename=f"-i {name}", start="value")
    try:
        return literal_array(expr)
    except NndslError as err:
        raise err.located(f"-i {name}", text) from None


def read_value_file(path: Path, name: str, shape: tuple) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows, _ = read_csv(path, header=None)
        values = np.asarray(rows, dtype=np.float64)
        size = prod(shape)
        if values.ndim == 2 and values.shape[1] == size:
            return values.reshape((len(values),) + tuple(shape))
        raise file_error(path, f"has {values.shape[1] if values.ndim == 2 else 0} columns, but input "
                         f"'{name}' has {size} element{'s' * (size != 1)} per sample")
    arrays = load_arrays(path)
    if suffix == ".npy":
        return arrays[""]
    if name not in arrays:
        raise file_error(path, f"no array named '{name}' (it has: {', '.join(sorted(arrays)) or 'none'})")
    return arrays[name]


def load_arrays(path: Path) -> dict:
    """Arrays in a .npy (under the key "") or .npz file, as float64; no pickles."""
    return {key: as_numbers(array, path, key) for key, array in read_arrays(path).items()}


def read_arrays(path: Path) -> dict:
    """Arrays in a .npy (under the key "") or .npz file, as stored; no pickles."""
    try:
        with open(path, "rb") as fh:
            if fh.read(6) not in (b"\x93NUMPY", b"PK\x03\x04\x14\x00") and not zipfile.is_zipfile(fh):
                raise file_error(path, "not a NumPy .npy or .npz file")
            fh.seek(0)
            loaded = np.load(fh, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                return {"": loaded}
            with loaded:
                return {key: loaded[key] for key in loaded.files}
    except FileNotFoundError:
        raise file_error(path, "no such file") from None
    except IsADirectoryError:
        raise file_error(path, "is a directory") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        reason = "it holds Python objects, which are not loaded" if "pickle" in str(err) else "not a valid NumPy file"
        raise file_error(path, f"cannot read: {reason}") from None


def as_numbers(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise file_error(path, f"array '{key}' holds {array.dtype} values, not numbers")
    return array.astype(np.float64)


def read_csv(path: Path, header: bool | None):
    """Rows of numbers and the header (None if there is none). header=None: detect it."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise file_error(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise file_error(path, f"cannot read: {getattr(err, 'strerror', None) or 'not UTF-8 text'}") from None
    lines = list(csv.reader(io.StringIO(text)))
    names = None
    start = 0
    if lines and (header or (header is None and not all(is_number(c) for c in lines[0]))):
        names = [c.strip() for c in lines[0]]
        start = 1
    rows = []
    width = None
    source_lines = text.splitlines()
    for lineno, cells in enumerate(lines[start:], start=start + 1):
        if not cells or all(not c.strip() for c in cells):
            continue
        if width is None:
            width = len(cells)
        if len(cells) != width:
            raise NndslError(f"row has {len(cells)} values, expected {width}", Span(lineno, 1, lineno, 1 + len(source_lines[lineno - 1])),
                             filename=str(path), source=text)
        row = []
        col = 1
        for cell in cells:
            if not is_number(cell):
                raise NndslError(f"not a number: {cell.strip()!r}", Span(lineno, col, lineno, col + max(1, len(cell))),
                                 filename=str(path), source=text)
            row.append(float(cell))
            col += len(cell) + 1
        rows.append(row)
    if not rows:
        raise file_error(path, "no data rows")
    return rows, names


def is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def read_data_file(path: Path, shapes: dict) -> dict:
    """A --data file or a `data "..."` statement: {input name: array}."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return {k: v for k, v in load_arrays(path).items()}
    if suffix != ".csv":
        raise file_error(path, "a data file is .npz or .csv")
    rows, names = read_csv(path, header=True)
    table = np.asarray(rows, dtype=np.float64)
    columns: dict = {}
    header = path.read_text(encoding="utf-8-sig").splitlines()[0]
    for col, column in enumerate(names):
        match = ELEMENT.match(column)
        name, index = (match.group(1), tuple(int(i) for i in match.group(2).split(","))) if match else (column, ())
        if name not in shapes:
            start = header.find(column) + 1 or 1
            raise NndslError(f"column '{column}' matches no input (inputs: {', '.join(shapes)})",
                             Span(1, start, 1, start + len(column)), filename=str(path), source=header)
        columns.setdefault(name, {})[index] = col
    out = {}
    for name, cells in columns.items():
        shape = shapes[name]
        want = list(np.ndindex(*shape)) if shape else [()]
        missing = [i for i in want if i not in cells]
        if missing:
            label = name + ("[" + ",".join(map(str, missing[0])) + "]" if missing[0] else "")
            raise file_error(path, f"input '{name}' needs column '{label}'")
        out[name] = table[:, [cells[i] for i in want]].reshape((len(table),) + shape)
    return out
