"""What training shows and writes: the progress display, the per-epoch log and the plot."""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

from .errors import NndslError
from .files import write_atomic
from .training import COLUMNS

LOG_SUFFIXES = (".csv", ".jsonl")


def metric_text(row: dict) -> str:
    """`loss 0.0123  accuracy 0.975  val_loss ...  lr 0.1`: the metrics of one epoch."""
    parts = []
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        if key in row:
            parts.append(f"{key} {row[key]:.4g}" if "accuracy" not in key else f"{key} {row[key]:.3f}")
    return "  ".join(parts)


class Progress:
    """A tqdm bar while `stream` is a terminal; otherwise one plain line every `every` epochs
    (and for the first and last). `quiet` shows nothing."""

    def __init__(self, epochs: int, done: int = 0, quiet: bool = False, stream=None, every: int | None = None):
        self.stream = stream or sys.stderr
        self.epochs = epochs
        self.quiet = quiet
        self.every = every or max(1, round(epochs / 10))
        self.bar = None
        if not quiet and self.stream.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=epochs, initial=done, unit="epoch", file=self.stream, dynamic_ncols=True,
                            leave=True)

    def __call__(self, row: dict) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            postfix = {k: (f"{row[k]:.3f}" if "accuracy" in k else f"{row[k]:.4g}")
                       for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr") if k in row}
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)
            return
        epoch = row["epoch"]
        if epoch == 1 or epoch % self.every == 0 or epoch == self.epochs:
            width = len(str(self.epochs))
            print(f"epoch {epoch:>{width}}/{self.epochs}  {metric_text(row)}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_log_path(path) -> None:
    if not str(path).lower().endswith(LOG_SUFFIXES):
        raise NndslError(f"--log {path}: the log is a .csv or a .jsonl file")


def write_log(path, rows: list) -> None:
    """One row per epoch: CSV with a header (as Keras's CSVLogger: `epoch` first, then the
    metrics; a column is there when some epoch has it) or JSON Lines."""
    columns = [c for c in COLUMNS if any(c in row for row in rows)]
    if str(path).lower().endswith(".jsonl"):
        text = "".join(json.dumps({c: finite_or_text(row.get(c)) for c in columns if c in row}) + "\n" for row in rows)
    else:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else repr(row[c]) if isinstance(row[c], float) else row[c]
                             for c in columns])
        text = out.getvalue()
    write_atomic(Path(path), lambda fh: fh.write(text.encode("utf-8")))


def finite_or_text(value):
    """JSON has no NaN or infinity: those are written as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def require_matplotlib(path) -> None:
    if not str(path).lower().endswith(".png"):
        raise NndslError(f"--plot {path}: the plot is written as a .png file")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NndslError("--plot needs matplotlib: pip install 'nndsl[plot]'") from None


def plot(path, rows: list, title: str) -> None:
    """Learning curves: loss (and validation loss) against the epoch; accuracy beside it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [r["epoch"] for r in rows]
    accuracy = any("accuracy" in r for r in rows)
    fig, axes = plt.subplots(1, 2 if accuracy else 1, figsize=(10 if accuracy else 6, 4), squeeze=False)
    for ax, keys, label in ((axes[0][0], ("loss", "val_loss"), "loss"),
                            *(((axes[0][1], ("accuracy", "val_accuracy"), "accuracy"),) if accuracy else ())):
        for key in keys:
            if any(key in r for r in rows):
                ax.plot(epochs, [r.get(key, math.nan) for r in rows], label=key.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if label == "loss" and all(r.get("loss", 1) > 0 for r in rows):
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomic(Path(path), lambda fh: fh.write(buffer.getvalue()))
