"""`nndsl export --format torch`: the forward graph as a standalone PyTorch module.

The file defines `Model(torch.nn.Module)` and needs torch alone, never nndsl: its `forward` is
the code torch.fx writes for the lowered graph (nndsl.torch_backend), its parameters are the
model's (the values exported, in a ParameterDict `params` under their own names), constants
are buffers. For users who move on to PyTorch entirely: train it with torch.optim, wrap it in
DistributedDataParallel, script or compile it.
"""
from __future__ import annotations

import base64
import re

import numpy as np

from .errors import NndslError
from .torch_backend import lower, require_torch

SMALL = 64              # arrays up to this many elements are written as literals, larger ones as bytes


def array_text(value: np.ndarray, dtype: str) -> str:
    value = np.ascontiguousarray(value, dtype=dtype)
    if value.size <= SMALL:
        return f"torch.tensor({literal(value)}, dtype=torch.{dtype})"
    data = base64.b64encode(value.astype(value.dtype.newbyteorder("<")).tobytes()).decode("ascii")
    lines = "\n".join(f'            "{data[i:i + 96]}"' for i in range(0, len(data), 96))
    return (f"array(\n{lines},\n            torch.{dtype}, {tuple(value.shape)!r})")


def literal(value: np.ndarray) -> str:
    """Nested lists of the shortest decimals that read back as the same values in their dtype."""
    if value.ndim == 0:
        return np.format_float_positional(value, unique=True, trim="0") if np.isfinite(value) else f"float('{value}')"
    return "[" + ", ".join(literal(v) for v in value) + "]"


ARRAY_HELPER = '''

def array(text: str, dtype, shape: tuple) -> torch.Tensor:
    """A tensor from its little-endian bytes in base64."""
    data = bytearray(base64.b64decode(text))
    return torch.frombuffer(data, dtype=dtype).reshape(shape).clone()
'''


def to_torch_source(model, params: dict | None = None) -> str:
    """The Python source of a module `Model` computing the model's outputs and, when it declares
    one, its per-sample loss, from its inputs (each with a leading batch axis)."""
    require_torch("--format torch")
    params = model.check_params(params)
    targets = dict(model.outputs)
    if model.loss_name is not None:
        targets.setdefault(model.loss_name, model.lowered.loss[1])
    try:
        module = lower(model.graph, targets, model.inputs, params, model.dtype)
    except NndslError as err:
        raise err.located(model.filename, model.program.source) from None
    code = module.graph.python_code(root_module="self")
    forward = code.src.strip("\n")
    imports = ["import torch"]
    handled = {"torch", "getattr", "inf", "nan", "device"}
    for name in code.globals:
        if name not in handled and not name.startswith("__") and re.search(rf"\b{re.escape(name)}\b", forward):
            raise NndslError(f"export --format torch: the lowered code needs {name!r}, which the module cannot import")
    if re.search(r"\b(inf|nan)\b", forward):
        imports.append("from math import inf, nan")
    if re.search(r"\bdevice\(", forward):
        imports.append("from torch import device")
    dtype = model.dtype.name
    big = any(np.size(v) > SMALL for v in params.values()) or any(
        b.numel() > SMALL for _, b in module.named_buffers())
    if big:
        imports.insert(0, "import base64")
    lines = [f'"""{model.name or "model"}: the forward graph of {model.filename}, written by '
             f'`nndsl export --format torch`.',
             "",
             "Needs torch alone. Inputs are positional, in the order of INPUTS, each with a leading batch",
             "axis (one sample is a batch of one); forward returns one tensor per name of OUTPUTS",
             f"(the outputs, then the per-sample loss). Parameters: the ParameterDict `params`, {dtype}.",
             '"""',
             *imports,
             "",
             f"INPUTS = {tuple(module.input_names)!r}",
             f"OUTPUTS = {tuple(module.output_names)!r}",
             *([ARRAY_HELPER.rstrip()] if big else []),
             "",
             "",
             "class Model(torch.nn.Module):",
             "    def __init__(self):",
             "        super().__init__()",
             "        self.params = torch.nn.ParameterDict({"]
    for name, p in module.params.items():
        lines.append(f"            {name!r}: torch.nn.Parameter({array_text(p.detach().numpy(), dtype)}),")
    lines.append("        })")
    for name, b in module.named_buffers():
        lines.append(f"        self.register_buffer({name!r}, {array_text(b.numpy(), dtype)})")
    lines.append("")
    lines += ["    " + line if line.strip() else "" for line in forward.splitlines()]
    return "\n".join(line.rstrip() for line in lines) + "\n"
