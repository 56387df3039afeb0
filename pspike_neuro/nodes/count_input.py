"""``CountInput``: the host source of event counts (row ``t`` of the input at step ``t``).

The SiLIF repository's SSC binning sums the events of 5 cochlea channels in each 4 ms step without
clipping, so its networks take counts 0, 1, 2, ... A count travels as a graded message of integer
value (units 1) with ``count_bits + 1`` signed bits, sent only where it is non-zero (a graded spike);
a larger count saturates to ``2^count_bits - 1``, counted, never silent. ``count_bits`` is the
smallest width that holds the largest count of the calibration data, plus the headroom bits (at
most 8).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UserError
from .base import Format, I, NodeType, OpCounts, QuantContext, register

MAX_COUNT_BITS = 8


def counts_of(node, x, valid) -> np.ndarray:
    """Raw inputs as counts (B, T, n) float64; none on padded steps. Refuses negative or fractional
    values, which are not event counts."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1] == 0 or x.shape[-1] != node.n:
        raise UserError(f"inputs must be event counts (samples, steps, {node.n}), got shape {tuple(x.shape)}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise UserError(f"inputs: {int(np.count_nonzero(~np.isfinite(x)))} value(s) are NaN or infinite")
    x = x.astype(np.float64)
    bad = (x < 0) | (x != np.floor(x))
    if bad.any():
        raise UserError(f"inputs: {int(bad.sum())} value(s) are not event counts (non-negative integers), e.g. "
                        f"{float(x[bad][0])}; this network takes counts of events per step")
    return np.where(valid[..., None], x, 0.0)


@register
class CountInput(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = ("``c_t = min(x_t, 2^count_bits - 1)``: row ``t`` of the input event counts, sent as graded "
                    "messages (integers, ``count_bits + 1`` signed bits) where non-zero.")
    ROLE = "source"
    STATELESS = True
    EVENT_DRIVEN = True
    IN_PORTS = ()
    FIELDS = (I("n", 1, 2**20, "input channels"),
              I("count_bits", 1, MAX_COUNT_BITS, "bits of a count; larger counts saturate (counted)"))

    def input_width(self) -> int:
        return int(self.n)

    def int_step(self, state, inputs, t, ctx):
        counts = counts_of(self, inputs["external"], ctx.valid).astype(np.int64)
        limit = (1 << self.count_bits) - 1
        ctx.sat.add(f"{self.name}.out", int(np.count_nonzero(counts > limit)))
        return {"out": np.minimum(counts, limit)}, None, {}

    def float_step(self, state, inputs, t, ctx):
        counts = counts_of(self, inputs["external"], ctx.valid)
        ctx.stat_max(self.name, "count_max", float(counts.max(initial=0.0)))
        return {"out": counts}, None, {}

    @classmethod
    def _bits(cls, q: QuantContext) -> int:
        largest = float(q.stats.get("count_max", 1.0))
        return int(min(MAX_COUNT_BITS, max(1, math.ceil(math.log2(largest + 1))) + q.qc.headroom_bits))

    @classmethod
    def out_format(cls, q: QuantContext) -> Format:
        return Format(False, 0, message_bits=cls._bits(q) + 1)

    @classmethod
    def quantize(cls, q: QuantContext) -> "CountInput":
        return cls(q.node.name, dict(n=q.node.n, count_bits=cls._bits(q)), {})

    def ops(self, act) -> OpCounts:
        """One graded message per non-zero count."""
        return OpCounts(graded_messages=float(np.count_nonzero(act.output)) if act.output is not None else 0.0)

    def dense_ops(self, steps: float) -> OpCounts:
        return OpCounts(graded_messages=steps * self.n)

    def bits(self) -> dict:
        return {"message": self.count_bits + 1}
