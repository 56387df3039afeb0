"""``ThresholdNode``: NIR's ``Threshold``, a spike wherever the input exceeds ``theta``.

    s = 1[a + bias > theta]          (units 2^-F; stateless)

Float step: ``s = 1[a + bias > theta]`` (``bias`` is an Affine's bias folded in at import).
"""

from __future__ import annotations

import numpy as np

from ..numerics.fixed import frac_bits_for, round_int
from .base import STATE, A, Activity, Format, I, NodeType, OpCounts, QuantContext, register


def _format(q: QuantContext) -> Format:
    extremes = [float(q.stats.get("in_max", 0.0)), float(np.abs(q.node.floats["theta"]).max(initial=0.0))]
    return Format(False, frac_bits_for(max(extremes), q.qc.headroom_bits, lo=0, hi=22))


@register
class ThresholdNode(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = "Threshold, units ``2^-F``: ``s = 1[a + bias > theta]`` (NIR Threshold)."
    BINARY_OUT = True
    SUMMING = True
    STATELESS = True
    FLOATS = ("bias", "theta")
    FIELDS = (
        I("n", 1, 2**20, "neurons"),
        I("frac_bits", 0, 22, "F: fraction bits of the input"),
        A("bias", "int32", ("n",), -STATE, STATE, "folded input bias, units 2^-F"),
        A("theta", "int32", ("n",), -STATE, STATE, "threshold, units 2^-F"),
    )

    def int_step(self, state, inputs, t, ctx):
        a = np.asarray(inputs["in"], np.int64) + self.bias.astype(np.int64)
        return {"out": a > self.theta.astype(np.int64)}, None, {}

    def float_step(self, state, inputs, t, ctx):
        a = inputs["in"] + self.floats["bias"]
        ctx.stat_max(self.name, "in_max", float(np.abs(a).max(initial=0.0)))
        return {"out": (a > self.floats["theta"]).astype(np.float64)}, None, {}

    @classmethod
    def needs_formats(cls, q: QuantContext) -> dict:
        return {"in": _format(q)}

    @classmethod
    def quantize(cls, q: QuantContext) -> "ThresholdNode":
        f, name = q.node.floats, q.node.name
        bits = _format(q).frac_bits
        values = dict(n=q.node.n, frac_bits=bits, bias=round_int(f["bias"] * 2.0 ** bits, "bias", name),
                      theta=round_int(f["theta"] * 2.0 ** bits, "theta", name))
        return cls(name, values, dict(f))

    def ops(self, act: Activity) -> OpCounts:
        return OpCounts(add=act.steps * self.n * 2, neuron_updates=act.steps * self.n) + self.messages(act)

    def dense_ops(self, steps: float) -> OpCounts:
        return OpCounts(add=steps * self.n * 2, neuron_updates=steps * self.n, graded_messages=steps * self.n)

    def compartments(self) -> int:
        return self.n

    def bits(self) -> dict:
        return {"state": 24, "message": 1}
