"""``SpikeInput``: the host source of binary spikes (row ``t`` of the input spike train at step ``t``;
nothing on padded steps, as the float model masks them)."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .base import I, NodeType, OpCounts, register


def spikes_of(node, x, valid) -> np.ndarray:
    """Raw inputs as spikes (B, T, n) bool: any non-zero value is a spike; none on padded steps."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1] == 0 or x.shape[-1] != node.n:
        raise UserError(f"inputs must be spike trains (samples, steps, {node.n}), got shape {tuple(x.shape)}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise UserError(f"inputs: {int(np.count_nonzero(~np.isfinite(x)))} value(s) are NaN or infinite")
    return (x != 0) & valid[..., None]


@register
class SpikeInput(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = "``s_t = 1[x_t != 0]``: row ``t`` of the input spike train."
    ROLE = "source"
    STATELESS = True
    BINARY_OUT = True
    IN_PORTS = ()
    FIELDS = (I("n", 1, 2**20, "input channels"),)

    def input_width(self) -> int:
        return int(self.n)

    def int_step(self, state, inputs, t, ctx):
        return {"out": spikes_of(self, inputs["external"], ctx.valid)}, None, {}

    def float_step(self, state, inputs, t, ctx):
        return {"out": spikes_of(self, inputs["external"], ctx.valid).astype(np.float64)}, None, {}

    @classmethod
    def quantize(cls, q):
        return cls(q.node.name, dict(n=q.node.n), {})

    def ops(self, act) -> OpCounts:
        return self.messages(act)

    def dense_ops(self, steps: float) -> OpCounts:
        return OpCounts(graded_messages=steps * self.n)

    def bits(self) -> dict:
        return {"message": 1}
