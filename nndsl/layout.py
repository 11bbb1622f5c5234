"""The run-time batch layout, one rule for every backend.

A value computed from an input carries one leading batch axis before its per-sample shape; a
parameter or a constant does not. Operands of an elementwise op broadcast per sample, so a
batched operand of lower per-sample rank needs size-1 axes after its batch axis: `[B]` with
`[n]` is `[B, 1]` with `[n]`, never `[B]` against `[n]` (which NumPy would align at the end).
The NumPy kernels (`nndsl.ops.aligned`), the ONNX exporter, the PyTorch lowering and the Python
export (`nndsl.ops.py_aligned`) all read that rule from `alignment` below.
"""
from __future__ import annotations


def alignment(arg_shapes, arg_batched) -> tuple:
    """For each operand of an elementwise op, how many size-1 axes go after its batch axis
    (0 for an unbatched operand, which broadcasts from the end as it is)."""
    rank = max((len(s) for s in arg_shapes), default=0)
    return tuple(rank - len(s) if b and len(s) < rank else 0 for s, b in zip(arg_shapes, arg_batched))


def pad_key(pad: int):
    """The subscript that inserts `pad` size-1 axes after the batch axis (`x[:, None]`), or None."""
    return (slice(None),) + (None,) * pad if pad else None


class NodeFacts:
    """What an op's mapping (ONNX, PyTorch) may know of its node before any data, as the
    interpreter's KernelInfo: the node and its graph attributes, its per-sample `shape` and
    whether it is `batched`, and its arguments' `arg_shapes` and `arg_batched`."""

    def __init__(self, node, attrs: dict, arg_shapes: tuple, arg_batched: tuple):
        self.node = node
        self.attrs = attrs
        self.shape = attrs["shape"]
        self.batched = attrs["batched"]
        self.arg_shapes = arg_shapes
        self.arg_batched = arg_batched

    def pads(self) -> tuple:
        """`alignment` of its arguments."""
        return alignment(self.arg_shapes, self.arg_batched)
