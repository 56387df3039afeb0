"""``OutputSink``: the readout of an imported graph (NIR's ``Output``): what reaches it each step,
``y = a + bias`` (units ``2^-F``; spikes count as 1), is recorded, and the class scores are its sum
over the valid steps (``2^-F`` times that in integers): spike counts for a spiking output layer, the
summed membrane for a leaky-integrator readout. The prediction is their argmax.
"""

from __future__ import annotations

import numpy as np

from ..numerics.fixed import frac_bits_for, round_int
from .base import STATE, A, Activity, Format, I, NodeType, OpCounts, QuantContext, register


def _format(q: QuantContext) -> Format:
    if q.in_formats.get("in") is not None and q.in_formats["in"].binary:
        return Format(True)
    if q.in_formats.get("in") is not None:
        return q.in_formats["in"]
    return Format(False, frac_bits_for(float(q.stats.get("in_max", 0.0)), q.qc.headroom_bits, lo=-8, hi=22))


@register
class OutputSink(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = ("Readout of an imported graph: ``y = a + bias`` each step (units ``2^-F``); the class scores are "
                    "``2^-F sum_t y`` over the valid steps.")
    ROLE = "sink"
    SUMMING = True
    OUT_PORTS = ()
    FLOATS = ("bias",)
    FIELDS = (I("n", 1, 2**16, "outputs (classes)"),
              I("frac_bits", -8, 22, "F: fraction bits of y (0 for spikes)"),
              A("bias", "int32", ("n",), -STATE, STATE, "folded bias of an Affine feeding it, units 2^-F"))

    def int_init(self, batch):
        return None

    def int_step(self, state, inputs, t, ctx):
        y = np.asarray(inputs["in"], np.int64) + self.bias.astype(np.int64)
        return {}, None, {"y": y}

    def float_step(self, state, inputs, t, ctx):
        y = inputs["in"] + self.floats["bias"]
        ctx.stat_max(self.name, "in_max", float(np.abs(y).max(initial=0.0)))
        return {}, None, {"y": y}

    def scores(self, records, ctx, integer: bool) -> np.ndarray:
        y = records["y"].astype(np.float64) * ctx.valid[..., None]
        return y.sum(1) * (2.0 ** -self.frac_bits if integer else 1.0)

    @classmethod
    def needs_formats(cls, q: QuantContext) -> dict:
        return {"in": _format(q)}

    @classmethod
    def quantize(cls, q: QuantContext) -> "OutputSink":
        fmt = _format(q)
        bits = 0 if fmt.binary else fmt.frac_bits
        return cls(q.node.name, dict(n=q.node.n, frac_bits=bits,
                                     bias=round_int(q.node.floats["bias"] * 2.0 ** bits, "bias", q.node.name)),
                   dict(q.node.floats))

    def ops(self, act: Activity) -> OpCounts:
        return self.dense_ops(act.steps)

    def dense_ops(self, steps: float) -> OpCounts:
        return OpCounts(add=steps * self.n, neuron_updates=steps * self.n)

    def compartments(self) -> int:
        return self.n

    def bits(self) -> dict:
        return {"state": 24}
