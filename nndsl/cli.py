"""The `nndsl` command line. Exit status: 0 success, 1 a failed check, 2 bad input."""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np

from . import __version__
from .errors import NndslError
from .files import save_npz, write_atomic
from .model import Model, load
from .ops import fmt_shape


# ---- helpers -----------------------------------------------------------------------------
def parse_dims(pairs: list[str]) -> dict:
    dims = {}
    for pair in pairs or ():
        name, _, value = pair.partition("=")
        if not name.strip() or not value.strip().isdigit() or int(value) < 1:
            raise NndslError(f"--set {pair}: expected NAME=INT with a positive integer")
        dims[name.strip()] = int(value)
    return dims


def load_model(args) -> Model:
    return load(args.file, parse_dims(args.set), dtype=args.dtype, backend=getattr(args, "backend", None) or "numpy",
                device=getattr(args, "device", None))


def load_params(model: Model, args) -> dict:
    if getattr(args, "params", None):
        from .data import load_arrays
        arrays = load_arrays(Path(args.params))
        return model.check_params(arrays, source=args.params)
    return model.init(args.seed)


def gather_data(model: Model, args) -> dict:
    """Inputs from --data, then -i (later ones win); the model's own `data` statements when neither
    is given (they are one data set: mixing their samples with other inputs would be a guess)."""
    given = getattr(args, "data", None) or getattr(args, "input", None)
    data = {} if given else model.default_data()
    if getattr(args, "data", None):
        for name, array in model.read_data(args.data).items():
            data[name] = checked_input(model, name, array, args.data)
    for item in getattr(args, "input", None) or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise NndslError(f"-i {item}: expected NAME=VALUE")
        name = name.strip()
        data[name] = checked_input(model, name, model.parse_value(name, value), f"-i {name}")
    return data


def checked_input(model: Model, name: str, array, origin: str):
    """A value for input `name` from `origin` (a flag or a file), its shape checked there."""
    from .resolve import shape_problem
    shape = model.input_shapes().get(name)
    problem = shape_problem(name, np.shape(array), shape) if shape is not None else None
    if problem:
        raise NndslError(problem, filename=origin)
    return array


def name_list(flag: str, text: str | None) -> list | None:
    """`--wrt W1,b1`: the names, or None when the flag is absent; naming nothing is an error."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise NndslError(f"{flag} {text!r}: name values of the model, separated by commas")
    return names


def jsonable(value):
    """Numbers and nested lists for JSON, which has no NaN or infinity: those are written as the
    strings "nan", "inf" and "-inf"."""
    array = np.asarray(value, dtype=np.float64)
    if np.all(np.isfinite(array)):
        return array.tolist()
    return np.where(np.isfinite(array), array, np.array(["nan", "inf", "-inf"], dtype=object)[
        np.where(np.isnan(array), 0, np.where(array > 0, 1, 2))]).tolist()


def table(rows: list, header: tuple, right: tuple = ()) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = []
    for r in [header] + rows:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def print_array(name: str, value) -> None:
    value = np.asarray(value)
    if value.ndim == 0:
        print(f"{name} = {float(value):.6g}")
        return
    print(f"{name}  {fmt_shape(value.shape)}")
    print(np.array2string(value, precision=6, suppress_small=False, max_line_width=100, threshold=200))


# ---- commands ----------------------------------------------------------------------------
def cmd_check(args) -> int:
    model = load_model(args)
    rows = []
    total = 0
    values = []
    for name, node in model.lowered.named.items():
        attrs = model.graph.nodes[node]
        count = int(np.prod(attrs["shape"])) if attrs["op"] == "param" else 0
        total += count
        role = "loss" if name == model.loss_name else "output" if name in model.outputs else ""
        rows.append((name, attrs["op"], fmt_shape(attrs["shape"]), f"{count:,}" if count else "-", role))
        values.append({"name": name, "op": attrs["op"], "shape": list(attrs["shape"]), "params": count,
                       "role": role or None, "span": list(attrs["span"]) if attrs["span"] else None})
    if args.format == "json":
        doc = {"ok": True, "file": args.file, "model": model.name, "values": values, "parameters": total,
               "train": model.train_settings().describe() if model.resolved.train is not None else None}
        print(json.dumps(doc, ensure_ascii=False))
        return 0
    print(f"model {model.name} ({args.file}): ok" if model.name else f"{args.file}: ok")
    print(table(rows, ("name", "op", "shape", "params", ""), right=(3,)))
    print(f"total parameters: {total:,}")
    if model.resolved.train is not None:
        print(f"train: {model.train_settings().describe()}")
    return 0


def cmd_run(args) -> int:
    model = load_model(args)
    params = load_params(model, args)
    data = gather_data(model, args)
    show = name_list("--show", args.show)
    results = model.run(params, show=show, inputs=data)
    nodes = {name: model.lowered.named.get(name, model.outputs.get(name)) for name in results}
    warn_nonfinite(model, results, model.graph, list(nodes.values()), params, data)
    loss_name = model.loss_name if model.loss_name in results and model.loss_name not in model.outputs else None
    outputs = {k: v for k, v in results.items() if k != loss_name}
    loss = float(np.mean(results[loss_name])) if loss_name else None
    if args.output:
        save_npz(args.output, outputs)
    if args.format == "json":
        doc = {"outputs": {k: jsonable(v) for k, v in outputs.items()}}
        if loss_name:
            doc["loss"] = {"name": loss_name, "mean": jsonable(loss), "per_sample": jsonable(results[loss_name])}
        print(json.dumps(doc))
        return 0
    for name, value in outputs.items():
        print_array(name, value)
    if loss_name:
        count = np.size(results[loss_name])
        print(f"loss {loss_name} = {loss:.6g}" + (f" (mean over {count} samples)" if count > 1 else ""))
    if args.output:
        print(f"wrote {args.output}")
    return 0


def cmd_init(args) -> int:
    model = load_model(args)
    params = model.init(args.seed)
    out = args.output or f"{Path(args.file).stem}.params.npz"
    save_npz(out, params)
    total = sum(int(np.prod(v.shape)) for v in params.values())
    print(f"wrote {out}: {len(params)} parameters, {total:,} values (seed {args.seed})")
    return 0


def cmd_grad(args) -> int:
    if args.tol is not None and not args.check:
        raise NndslError(f"--tol {args.tol:g} sets the tolerance of --check; add --check")
    tol = 1e-5 if args.tol is None else args.tol
    if not tol >= 0:
        raise NndslError(f"--tol {tol:g}: the tolerance is a number >= 0")
    if args.samples < 1:
        raise NndslError(f"--samples {args.samples}: check at least one element per gradient")
    model = load_model(args)
    if args.check:
        model = model.astype("float64")
    params = load_params(model, args)
    data = gather_data(model, args)
    wrt = name_list("--wrt", args.wrt)
    if args.check:
        inner = [n for n in wrt or () if n not in model.params and n not in model.inputs]
        if inner:
            raise NndslError(f"--check perturbs parameters and inputs; '{inner[0]}' is a value computed from them, "
                             "whose gradient is shown without a check")
    loss, grads = model.grad(params, wrt=wrt, inputs=data)
    if args.output:
        save_npz(args.output, grads)
    graph, objective, nodes = model.gradient_graph(tuple(grads))
    warn_nonfinite(model, {model.loss_name: loss, **{f"the gradient of {k}": v for k, v in grads.items()}},
                   graph, [objective, *nodes.values()], params, data)
    checks = {}
    if args.check:
        from .gradcheck import check_gradients
        checks = check_gradients(model, params, data, loss, grads, tol, samples=args.samples, seed=args.seed)
    failed = any(c.failed(tol) for c in checks.values())
    if args.format == "json":
        doc = {"loss": jsonable(loss), "gradients": {k: jsonable(v) for k, v in grads.items()}}
        if args.check:
            doc["check"] = {"tolerance": tol, "max_relative_error": {k: jsonable(c.error) for k, c in checks.items()},
                            "problems": {k: c.problem for k, c in checks.items() if c.problem},
                            "kinks": sorted({n.render("note") for c in checks.values() for n in c.notes}),
                            "ok": not failed}
        print(json.dumps(doc))
        return 1 if failed else 0
    print(f"loss {model.loss_name} = {loss:.6g}")
    rows = []
    for name, g in grads.items():
        g = np.asarray(g)
        row = [name, fmt_shape(g.shape), f"{np.linalg.norm(g):.6g}", f"{g.min():.6g}", f"{g.max():.6g}",
               values_text(g)]
        if args.check:
            c = checks[name]
            row.append((c.problem if c.problem else f"{c.error:.2e}") + ("  FAIL" if c.failed(tol) else ""))
        rows.append(tuple(row))
    header = ("gradient", "shape", "norm", "min", "max", "values") + (("max rel. error",) if args.check else ())
    print(table(rows, header, right=(2, 3, 4)))
    if args.check:
        print(f"gradient check {'FAILED' if failed else 'passed'}: tolerance {tol:g} "
              f"(central differences in float64)")
        for note in dict.fromkeys(n.render("note") for c in checks.values() for n in c.notes):
            print(note)
    if args.output:
        print(f"wrote {args.output}")
    return 1 if failed else 0


def values_text(value, most: int = 16) -> str:
    """The values of a small array on one line (`[0.25, -0.5]`), for comparing with a hand
    computation; "" for arrays of more than `most` elements."""
    value = np.asarray(value)
    if value.size > most:
        return ""
    if value.ndim == 0:
        return f"{float(value):.6g}"
    return np.array2string(value, separator=", ", max_line_width=10**6,
                           formatter={"float_kind": lambda v: f"{v:.6g}"}).replace("\n", "")


def warn_nonfinite(model: Model, results: dict, graph, targets: list, params: dict, data: dict) -> None:
    """On stderr: which results hold NaN or infinities, and where the first one arose."""
    bad = [name for name, value in results.items() if not np.all(np.isfinite(value))]
    if not bad:
        return
    print(f"nndsl: warning: not finite: {', '.join(bad)}", file=sys.stderr)
    note = model.nonfinite_origin(graph, targets, params, data)
    if note is not None:
        print(note.render("note"), file=sys.stderr)


def cmd_ops(args) -> int:
    from .help import op_help, ops_listing
    print(op_help(args.name) if args.name else ops_listing())
    return 0


def cmd_fmt(args) -> int:
    from .fmt import format_source, unified_diff
    from .parser import read_source
    path = Path(args.file)
    source = read_source(path)
    formatted = format_source(source, str(path))
    if formatted == source:
        print(f"{path} already formatted")
        return 0
    if args.check:
        print(f"would reformat {path}")
        sys.stdout.write(unified_diff(source, formatted, path))
        return 1
    target = path.resolve()                    # through a symlink, keeping the file's mode
    write_atomic(target, lambda fh: fh.write(formatted.encode("utf-8")), mode=target.stat().st_mode & 0o7777)
    print(f"reformatted {path}")
    return 0


def cmd_export(args) -> int:
    from .export import BINARY_FORMATS, EXTENSIONS, FORMATS, export, format_of
    suffix = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
    named = format_of(args.output) if suffix in FORMATS or suffix in EXTENSIONS else None
    if args.format and named and named != args.format and not (args.format == "torch" and named == "python"):
        raise NndslError(f"-o {args.output} names the format {named}, but --format says {args.format}")
    fmt = args.format or format_of(args.output)
    if fmt in BINARY_FORMATS and not args.output:
        raise NndslError(f"--format {fmt} is binary: give an output file with -o FILE.{fmt}")
    model = load_model(args)
    params = load_params(model, args) if fmt in ("onnx", "torch") else None
    result = export(model, fmt, grad=args.grad, params=params, clusters=not args.no_clusters)
    if not args.output:
        sys.stdout.write(result)
        return 0
    data = result.encode("utf-8") if isinstance(result, str) else result
    write_atomic(Path(args.output), lambda fh: fh.write(data))
    print(f"wrote {args.output}")
    return 0


def train_layers(args) -> list:
    """The training flags as layers of settings over the model's `train` statement."""
    from .settings import value_node
    flags = {"optimizer": args.optimizer, "lr": args.lr, "momentum": args.momentum, "epochs": args.epochs,
             "batch": args.batch_size, "schedule": args.schedule, "val": args.val_split,
             "patience": args.patience, "seed": args.seed}
    flag_names = {"batch": "--batch-size", "val": "--val-split"}
    layer = {key: value_node(key, text, flag_names.get(key, f"--{key}")) for key, text in flags.items()
             if text is not None}
    if args.no_shuffle:
        layer["shuffle"] = value_node("shuffle", False, "--no-shuffle")
    until = ([value_node("until", "correct", "--until-correct")] if args.until_correct else []) + \
            ([value_node("until", args.tol, "--tol")] if args.tol is not None else [])
    if until:                                   # the flags replace the model's `until`
        layer["until"] = until
    return [layer]


def cmd_train(args) -> int:
    from .report import Progress, check_log_path, metric_text, plot, require_matplotlib, write_log
    from .training import samples
    from .torch_training import launched_by_torchrun, rank
    if args.nproc is not None:
        return launch(args)
    if args.backend is None and launched_by_torchrun():
        args.backend = "torch"                  # each process of a torchrun launch trains on PyTorch
    if launched_by_torchrun() and args.backend != "torch":
        raise NndslError(f"--backend {args.backend}: data-parallel training under torchrun needs --backend torch")
    primary = rank() == 0                       # rank 0 alone prints and writes files
    args.quiet = args.quiet or not primary
    model = load_model(args)
    settings = model.train_settings(train_layers(args))
    if args.log:
        check_log_path(args.log)
    if args.plot:
        require_matplotlib(args.plot)
    output = args.output or f"{Path(args.file).stem}.params.npz"
    if not output.endswith(".npz"):
        raise NndslError(f"-o {output}: parameters are written to an .npz file")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise NndslError(f"--checkpoint-every {args.checkpoint_every}: give a positive number of epochs")
    if args.checkpoint_every is not None and not args.checkpoint:
        raise NndslError("--checkpoint-every needs --checkpoint FILE")
    if args.params:
        from .data import load_arrays
        params = model.check_params(load_arrays(Path(args.params)), source=args.params)
    else:
        params = model.init(settings.seed)
    val_data = model.read_data(args.val_data) if args.val_data else None
    if model.backend == "torch":
        from .torch_training import TorchTrainer as Trainer
    else:
        from .training import Trainer
    trainer = Trainer(model, settings, params, gather_data(model, args), val_data)
    if args.resume:
        trainer.restore(args.resume)
    checkpoint = args.checkpoint or f"{Path(args.file).stem}.ckpt.npz"
    if not args.quiet:
        resumed = f", resumed after epoch {trainer.position.epoch}" if args.resume else ""
        print(f"training {model.name or args.file}: {settings.describe()}; {trainer.n} training samples"
              + (f", {samples(trainer.val)} for validation" if trainer.val else "") + resumed,
              file=sys.stderr)
    progress = Progress(settings.epochs, trainer.position.epoch, quiet=args.quiet)
    try:
        history = trainer.run(on_epoch=progress, checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every or 1)
    finally:
        progress.close()
    if not primary:
        return 130 if history.stopped == "interrupted" else 1 if history.stopped == "nonfinite" else 0
    if args.log:
        write_log(args.log, history.rows)
    if args.plot and history.rows:
        plot(args.plot, history.rows, f"{model.name or Path(args.file).stem}: {settings.optimizer}, lr {settings.lr:g}")
    if history.stopped == "interrupted":
        if not args.checkpoint:                 # run() saved to --checkpoint; else to the default
            trainer.save(checkpoint)
        pos = trainer.position
        print(f"nndsl: interrupted in epoch {pos.epoch + 1} after {pos.step} steps; wrote {checkpoint}; continue "
              f"with: nndsl train {args.file} --resume {checkpoint}", file=sys.stderr)
        return 130
    save_npz(output, trainer.result())
    last = history.last
    if history.stopped == "nonfinite":
        print(f"nndsl: {history.message}", file=sys.stderr)
        if history.origin is not None:
            print(history.origin.render("note"), file=sys.stderr)
        print(f"wrote {output} (the last parameters whose loss was finite)")
        return 1
    print(f"stopped: {history.message}")
    if last:
        print(f"epoch {last['epoch']}: {metric_text(last)}")
    if history.best_epoch is not None and history.best_epoch != last.get("epoch"):
        best = history.rows[[r["epoch"] for r in history.rows].index(history.best_epoch)]
        print(f"best epoch {history.best_epoch}: {metric_text(best)} (these parameters are written)")
    print(f"wrote {output}")
    return 0


def launch(args) -> int:
    """`nndsl train --nproc N ...`: the same command in N processes under torchrun (one machine)."""
    import subprocess
    from .torch_backend import require_torch
    from .torch_training import launched_by_torchrun
    if args.nproc < 1:
        raise NndslError(f"--nproc {args.nproc}: give a positive number of processes")
    if launched_by_torchrun():
        raise NndslError("--nproc starts torchrun itself: under torchrun, leave it out")
    if args.backend not in (None, "torch"):
        raise NndslError(f"--nproc {args.nproc} trains data-parallel on PyTorch: use --backend torch, not {args.backend}")
    torch = require_torch(f"--nproc {args.nproc}")
    args.backend = "torch"
    model = load_model(args)                         # bad input is reported once, before any process starts
    model.train_settings(train_layers(args))
    gather_data(model, args)
    if model.device and model.device.startswith("mps"):
        raise NndslError(f"--device {model.device}: distributed training runs on cpu (gloo) or cuda (NCCL)")
    if model.device and model.device.startswith("cuda") and torch.cuda.device_count() < args.nproc:
        raise NndslError(f"--nproc {args.nproc} --device cuda: one GPU per process, and this machine has "
                         f"{torch.cuda.device_count()}")
    argv, rest = list(args.argv), []
    while argv:
        item = argv.pop(0)
        if item == "--nproc":
            argv.pop(0)
        elif not item.startswith("--nproc="):
            rest.append(item)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
               "-m", "nndsl"] + rest
    # Each process gets its share of the cores (torchrun would set 1 and print a banner saying so).
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc)))
    return subprocess.call(command, env=env)


# ---- the parser --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("file", metavar="FILE", help="the .nn model file")
    common.add_argument("--set", action="append", metavar="NAME=INT", help="override a dim (repeatable)")
    common.add_argument("--seed", type=int, help="seed for parameter initialisation (default 0; train: "
                        "also the order of samples, default the train statement's)")
    common.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    common.add_argument("--debug", action="store_true", help="show a Python traceback on errors")

    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("-i", "--input", action="append", metavar="NAME=VALUE",
                      help="an input: a number, an array like [[0,1],[1,0]], or a .npy/.npz/.csv file")
    data.add_argument("--data", metavar="D", help="a data file: .npz keyed by input name, or .csv with a header")
    data.add_argument("--params", metavar="P.npz", help="parameters (default: the declared initialisers)")

    backend = argparse.ArgumentParser(add_help=False)
    backend.add_argument("--backend", choices=("numpy", "torch"), help="numpy (default) or torch "
                         "(pip install 'nndsl[torch]')")
    backend.add_argument("--device", metavar="cpu|cuda|mps", help="torch: where to compute (default cpu; cuda:1 "
                         "names a GPU)")

    parser = argparse.ArgumentParser(prog="nndsl", description="Neural networks written as on a whiteboard.")
    parser.add_argument("--version", action="version", version=f"nndsl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", parents=[common], help="parse and shape-check; list named values")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="json: one document for editors and tools, errors included")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("run", parents=[common, data, backend], help="evaluate the outputs (and the loss)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--show", metavar="NAME,...", help="also print these named values (hidden layers, say)")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="write the outputs, one array per name")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("grad", parents=[common, data, backend], help="the batch-mean loss and its gradients")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--wrt", metavar="NAME,...", help="parameters, inputs or any named value, such as a hidden "
                   "layer's δ (default: every parameter)")
    p.add_argument("--check", action="store_true", help="compare with central finite differences (float64)")
    p.add_argument("--tol", type=float, help="--check tolerance on max relative error (1e-5)")
    p.add_argument("--samples", type=int, default=200, help="--check: elements checked per tensor at most (200)")
    p.add_argument("-o", "--output", metavar="G.npz", help="write the gradients, one array per name")
    p.set_defaults(func=cmd_grad)
    p = sub.add_parser("init", parents=[common], help="write initial parameters")
    p.add_argument("-o", "--output", metavar="P.npz", help="where (default: FILE's stem + .params.npz)")
    p.set_defaults(func=cmd_init)
    from .export import FORMATS
    p = sub.add_parser("export", parents=[common], help="the graph as " + ", ".join(FORMATS))
    p.add_argument("--format", choices=FORMATS, help="default: from the -o extension, else dot")
    p.add_argument("--grad", action="store_true", help="add the backward graph (not for onnx); nn, latex, python: "
                   "the gradient program")
    p.add_argument("--params", metavar="P.npz", help="onnx, torch: parameters (default: the declared initialisers)")
    p.add_argument("--no-clusters", action="store_true", help="dot, svg, png: don't box the calls of functions")
    p.add_argument("-o", "--output", metavar="OUT", help="write to OUT (atomically); text formats default to stdout")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("train", parents=[common, data, backend], help="train the parameters (settings: the model's train statement)")
    p.add_argument("--optimizer", metavar="NAME", help="sgd, adam or adamw, with hyperparameters: 'sgd(momentum = 0.9)'")
    p.add_argument("--lr", metavar="A", help="learning rate")
    p.add_argument("--momentum", metavar="M", help="sgd's momentum")
    p.add_argument("--epochs", metavar="N", help="epochs in all (default 100)")
    p.add_argument("--batch-size", metavar="B", help="samples per step (default 32; 1: online SGD)")
    p.add_argument("--schedule", metavar="NAME", help="constant, inverse(γ), inv(γ, p), step(every, γ), exp(γ), cosine")
    p.add_argument("--val-split", metavar="F", help="hold out the last fraction F of the data for validation")
    p.add_argument("--val-data", metavar="D", help="validation data: .npz keyed by input name, or .csv")
    p.add_argument("--until-correct", action="store_true", help="stop once an epoch classifies every sample correctly")
    p.add_argument("--tol", metavar="E", help="stop once an epoch changes the parameters by less than E")
    p.add_argument("--patience", metavar="K", help="stop after K epochs without a better validation loss")
    p.add_argument("--no-shuffle", action="store_true", help="visit the samples in the order given")
    p.add_argument("--log", metavar="F.csv|F.jsonl", help="write one row per epoch")
    p.add_argument("--plot", metavar="F.png", help="draw the learning curves (needs matplotlib)")
    p.add_argument("--checkpoint", metavar="FILE", help="save parameters and optimizer state (.npz) as training goes")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help="every N epochs (default 1)")
    p.add_argument("--resume", metavar="FILE", help="continue from a checkpoint")
    p.add_argument("--nproc", type=int, metavar="N", help="data-parallel training in N processes on this machine "
                   "(starts torchrun; implies --backend torch)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument("-o", "--output", metavar="P.npz", help="the trained parameters (default: FILE's stem + .params.npz)")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("fmt", parents=[common], help="rewrite FILE in the canonical style")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 (with a diff) if FILE would change")
    p.set_defaults(func=cmd_fmt)
    p = sub.add_parser("ops", help="the built-in functions; `ops NAME`: one in full")
    p.add_argument("name", nargs="?", metavar="NAME", help="a function, such as relu or σ")
    p.add_argument("--debug", action="store_true", help="show a Python traceback on errors")
    p.set_defaults(func=cmd_ops, seed=0, file=None, format=None)
    parser.commands = sub.choices           # name -> its parser, for errors in its own words
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if unknown:                            # the command's own usage, not the top level's
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    # Overflow to inf and nan are results the command prints, not warnings to interleave.
    previous = np.seterr(all="ignore")
    try:
        if args.seed is not None and args.seed < 0:
            raise NndslError(f"--seed {args.seed}: give a whole number >= 0")
        if args.seed is None and args.command != "train":    # train reads its seed from the model too
            args.seed = 0
        return args.func(args)
    except NndslError as err:
        if args.debug:
            traceback.print_exc()
        if args.command == "check" and args.format == "json":
            span = err.span.as_tuple() if err.span else None
            print(json.dumps({"ok": False, "file": args.file, "error": {
                "file": err.filename, "span": list(span) if span else None, "message": err.message,
                "text": err.render(hint=True)}}, ensure_ascii=False))
        else:
            print(err.render(hint=True), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nndsl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:          # a bug in nndsl, not in the user's input
        if args.debug:
            raise
        print(f"nndsl: internal error: {type(err).__name__}: {err} (run with --debug for a traceback, "
              "and please report it)", file=sys.stderr)
        return 3
    finally:
        np.seterr(**previous)


if __name__ == "__main__":
    sys.exit(main())
