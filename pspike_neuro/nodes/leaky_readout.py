"""``LeakyReadout``: the leaky-integrator readout of a SiLIF network.

Integer step: ``r' = sat24(shr_trunc(alpha r, 12) + a + bias)`` (units ``2^-F``); the host decodes
``scores = sum_t softmax(r_t 2^-F)`` over the valid steps, the float model's output. Float step:
``r = alpha r + a + bias`` with ``(1 - alpha)`` and the BatchNorm folded into the synapse and bias.
"""

from __future__ import annotations

import numpy as np

from ..numerics.fixed import DECAY_BITS, frac_bits_for, round_fraction, round_int, saturate, shr_trunc
from .base import STATE, A, Activity, Format, I, NodeType, OpCounts, QuantContext, register


def softmax_sum(potentials: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``sum_t softmax(r_t)`` over the valid steps: (B, T, C) -> (B, C)."""
    z = potentials - potentials.max(-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(-1, keepdims=True) * valid[..., None]).sum(1)


def _format(q: QuantContext) -> Format:
    return Format(False, frac_bits_for(float(q.stats.get("r_max", 0.0)), q.qc.headroom_bits, lo=-8, hi=23))


@register
class LeakyReadout(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = ("Leaky-integrator readout: ``r' = sat(shr_trunc(alpha r, 12) + a + bias)``; the host decodes "
                    "``argmax_c sum_t softmax(r_t 2^-F)``.")
    ROLE = "sink"
    OUT_PORTS = ()
    FLOATS = ("alpha", "bias")
    FIELDS = (
        I("n", 1, 2**16, "classes"),
        I("state_frac_bits", -8, 23, "F: fraction bits of r"),
        A("alpha", "int16", ("n",), 0, 4096, "readout decay * 4096"),
        A("bias", "int32", ("n",), -STATE, STATE, "(1 - alpha) times the BatchNorm offset, units 2^-F"),
    )

    def int_init(self, batch):
        return np.zeros((batch, self.n), np.int64)

    def int_step(self, r, inputs, t, ctx):
        r, n_sat = saturate(shr_trunc(self.alpha.astype(np.int64) * r, DECAY_BITS)
                            + np.asarray(inputs["in"], np.int64) + self.bias.astype(np.int64))
        ctx.sat.add(f"{self.name}.r", n_sat)
        return {}, r, {"r": r}

    def float_init(self, batch):
        return np.zeros((batch, self.n))

    def float_step(self, r, inputs, t, ctx):
        r = self.floats["alpha"] * r + inputs["in"] + self.floats["bias"]
        ctx.stat_max(self.name, "r_max", float(np.abs(r).max(initial=0.0)))
        return {}, r, {"r": r}

    def scores(self, records, ctx, integer: bool) -> np.ndarray:
        r = records["r"].astype(np.float64)
        return softmax_sum(r * 2.0 ** -self.state_frac_bits if integer else r, ctx.valid)

    @classmethod
    def needs_formats(cls, q: QuantContext) -> dict:
        return {"in": _format(q)}

    @classmethod
    def quantize(cls, q: QuantContext) -> "LeakyReadout":
        node, f = q.node, q.node.floats
        bits = _format(q).frac_bits
        values = dict(n=node.n, state_frac_bits=bits, alpha=round_fraction(f["alpha"], "readout alpha", "readout"),
                      bias=round_int(f["bias"] * 2.0 ** bits, "the readout offset", "readout"))
        return cls(node.name, values, dict(f))

    def ops(self, act: Activity) -> OpCounts:
        return self.dense_ops(act.steps)

    def dense_ops(self, steps: float) -> OpCounts:
        return OpCounts(mac=steps * self.n, add=steps * self.n * 2, neuron_updates=steps * self.n)

    def compartments(self) -> int:
        return self.n

    def bits(self) -> dict:
        return {"decay": 12, "state": 24}
