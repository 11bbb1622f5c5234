"""The op registry: every operation nndsl knows, each defined once, in one place.

An entry (`defop`) holds the op's name, arity, shape rule, forward computation (NumPy), gradient
rule (one vector-Jacobian product per argument, written with registry ops so the backward graph
is an ordinary graph) and the slots other parts read: `symbol` (how messages name an infix op),
`onnx` (the ONNX mapping), `torch` (the PyTorch mapping), `printed` (how a .nn program, LaTeX and
a NumPy module write it), `look` (how DOT draws its nodes), `leaf` (the interpreter feeds it),
`stable` and `units` (the rewrite passes), `correct` (training accuracy), `class_index` (data
checks), `kink` (gradient checks), `overflows` and `batch_only` (compiled plans). Passes look
ops up here; nothing else lists ops by name. Each op's helpers (its kernel, gradient rule, ONNX,
PyTorch and printed forms) sit beside its entry, in the module of its family:

- `core`: the registry itself, the kernel a node runs, shared shape rules; the leaves
- `elementwise`: arithmetic and elementwise functions
- `linalg`: transpose, matrix and outer products
- `reductions`: sums and means, and softmax, log_softmax, argmax along the last axis
- `plumbing`: indexing and joining, and what the differentiator and the batch need
- `losses`: the losses, fused or not

Shapes are per sample. At run time a value computed from an input carries one extra leading
batch axis; forward functions are written for that layout (reductions use negative axes), and
`kernel()` aligns batched operands of elementwise ops (the rule of nndsl.layout, which the ONNX
exporter and the PyTorch lowering share).

Conventions of the mappings. ONNX (`onnx`: (e, *value names) -> value name, e an
nndsl.export_onnx.Emitter) and PyTorch (`torch`: (t, *tensors) -> tensor, `t` holding the node's
static facts as KernelInfo does, `t.torch` and `t.F`) both see the run-time layout; operands of
elementwise ops arrive aligned, and neither sums over the batch: the exporter and the lowering do
that after a node whose arguments carry the batch but whose value does not. Torch mappings call
torch alone, never nndsl, so a lowered graph prints as a module that needs nothing but torch.
"""
from __future__ import annotations

from .core import (ALIASES, ATOM, REGISTRY, Form, KernelInfo, Op, Printed, Shape, ShapeError, aligned, broadcast,
                   fmt_shape, kernel, lookup, paren, per_sample_axes, py_aligned, user_functions)
from . import elementwise, linalg, reductions, plumbing, losses  # noqa: E402,F401  registers them, in this order
from .plumbing import class_indices, subscripts_text

__all__ = ["ALIASES", "ATOM", "REGISTRY", "Form", "KernelInfo", "Op", "Printed", "Shape", "ShapeError", "aligned",
           "broadcast", "class_indices", "fmt_shape", "kernel", "lookup", "paren", "per_sample_axes", "py_aligned",
           "subscripts_text", "user_functions"]
