"""``ReadoutIntegrator``: the class scores of a P-SpikeSSM, ``acc <- sat24(acc + a + bias)`` over
the valid steps (padded steps leave it unchanged); the prediction is the argmax of the last ``acc``.
Float step: the same sum without saturation; its mean over the valid steps are the float logits.
"""

from __future__ import annotations

import numpy as np

from ..numerics.fixed import frac_bits_for, round_int, saturate
from .base import STATE, A, Activity, Format, I, NodeType, OpCounts, QuantContext, register


@register
class ReadoutIntegrator(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = "Class scores: ``acc = sat(acc + a + bias)`` over the valid steps; the prediction is argmax."
    ROLE = "sink"
    OUT_PORTS = ()
    FLOATS = ("bias",)
    FIELDS = (
        I("n", 1, 2**16, "classes"),
        I("acc_frac_bits", -8, 23, "fraction bits of the accumulator"),
        A("bias", "int32", ("n",), -STATE, STATE, "per-step bias"),
    )

    def int_init(self, batch):
        return np.zeros((batch, self.n), np.int64)

    def int_step(self, acc, inputs, t, ctx):
        total = acc + np.asarray(inputs["in"], np.int64) + self.bias.astype(np.int64)
        nxt, _ = saturate(total)
        valid = ctx.valid[:, t, None]
        ctx.sat.add(f"{self.name}.acc", int(np.count_nonzero(valid & (nxt != total))))
        acc = np.where(valid, nxt, acc)
        return {}, acc, {"acc": acc}

    def float_init(self, batch):
        return np.zeros((batch, self.n))

    def float_step(self, acc, inputs, t, ctx):
        acc = np.where(ctx.valid[:, t, None], acc + (inputs["in"] + self.floats["bias"]), acc)
        ctx.stat_max(self.name, "acc_max", float(np.abs(acc).max(initial=0.0)))
        return {}, acc, {"acc": acc}

    def scores(self, records, ctx, integer: bool) -> np.ndarray:
        last = records["acc"][:, -1]
        if integer:
            return last
        return last / np.maximum(ctx.valid.sum(1, keepdims=True), 1)

    @classmethod
    def _acc_bits(cls, q: QuantContext) -> int:
        return frac_bits_for(float(q.stats.get("acc_max", 0.0)), q.qc.headroom_bits)

    @classmethod
    def needs_formats(cls, q: QuantContext) -> dict:
        return {"in": Format(False, cls._acc_bits(q))}

    @classmethod
    def quantize(cls, q: QuantContext) -> "ReadoutIntegrator":
        bits = cls._acc_bits(q)
        bias = round_int(q.node.floats["bias"] * 2.0 ** bits, "readout bias", "readout")
        return cls(q.node.name, dict(n=q.node.n, acc_frac_bits=bits, bias=bias), dict(q.node.floats))

    def ops(self, act: Activity) -> OpCounts:
        return self.dense_ops(act.steps)

    def dense_ops(self, steps: float) -> OpCounts:
        return OpCounts(add=steps * self.n, neuron_updates=steps * self.n)

    def compartments(self) -> int:
        return self.n

    def bits(self) -> dict:
        return {"state": 24, "message": 24}
