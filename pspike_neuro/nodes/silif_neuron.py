"""``SiLIFNeuron``: a population of SiLIF neurons (two states, adaptation; Fabre et al. 2025).

Integer step (docs/numerics.md §5), states in units ``2^-F``, threshold ``2^F``, ``s`` the previous
step's spike, ``I`` the synaptic input::

    w' = sat24(shr_trunc(beta w, 12) + shr_trunc(a u, 12) + s b)
    u' = sat24(shr_trunc(alpha (u - s 2^F), 12) + shr_trunc(one_minus_alpha (I + bias - w'), 12))
    s' = 1[u' > 2^F]

Float step (dt folded into the decays, BatchNorm into the synapse and ``bias``):
``w = beta w + a u + b s``, ``u = alpha (u - s) + (1 - alpha)(I + bias - w)``, ``s = 1[u > 1]``.
"""

from __future__ import annotations

import numpy as np

from ..numerics.fixed import DECAY_BITS, frac_bits_for, round_fraction, round_int, saturate, shr_trunc
from .base import STATE, A, Activity, Format, I, NodeType, OpCounts, QuantContext, register


def _state_format(q: QuantContext) -> Format:
    """One state exponent per layer: the largest |I + bias|, |u|, |w| with the headroom bits."""
    return Format(False, frac_bits_for(float(q.stats.get("state_max", 0.0)), q.qc.headroom_bits, lo=1, hi=22))


@register
class SiLIFNeuron(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = ("SiLIF, states in units ``2^-F``, threshold ``2^F``: ``w' = sat(shr_trunc(beta w, 12) + "
                    "shr_trunc(a u, 12) + s b)``; ``u' = sat(shr_trunc(alpha (u - s 2^F), 12) + "
                    "shr_trunc(one_minus_alpha (I + bias - w'), 12))``; ``s' = 1[u' > 2^F]``.")
    BINARY_OUT = True
    ATTRS = ("layer", "n")
    FLOATS = ("alpha", "beta", "a", "b", "bias")
    FIELDS = (
        I("layer", 0, 4096, "layer index"),
        I("n", 1, 2**20, "neurons"),
        I("state_frac_bits", 0, 22, "F: fraction bits of u and w; the threshold 1.0 is 2^F"),
        A("alpha", "int16", ("n",), 0, 4096, "membrane decay * 4096 (dt folded in)"),
        A("beta", "int16", ("n",), 0, 4096, "adaptation decay * 4096 (dt folded in)"),
        A("one_minus_alpha", "int16", ("n",), 0, 4096, "(1 - alpha) * 4096"),
        A("a", "int16", ("n",), 0, 4096, "sub-threshold coupling u -> w, * 4096"),
        A("b", "int32", ("n",), 0, STATE, "spike-triggered adaptation, units 2^-F"),
        A("bias", "int32", ("n",), -STATE, STATE, "BatchNorm offset of the input current, units 2^-F"),
    )

    def setup(self) -> None:
        v = self.values
        self.one = 1 << v["state_frac_bits"]
        self.i64 = {k: v[k].astype(np.int64) for k in ("alpha", "beta", "one_minus_alpha", "a", "b", "bias")}

    def int_init(self, batch):
        return tuple(np.zeros((batch, self.n), np.int64) for _ in range(3))  # u, w, s

    def int_step(self, state, inputs, t, ctx):
        u, w, s = state
        p = self.i64
        w, n_w = saturate(shr_trunc(p["beta"] * w, DECAY_BITS) + shr_trunc(p["a"] * u, DECAY_BITS) + s * p["b"])
        u, n_u = saturate(shr_trunc(p["alpha"] * (u - s * self.one), DECAY_BITS)
                          + shr_trunc(p["one_minus_alpha"] * (np.asarray(inputs["in"], np.int64) + p["bias"] - w),
                                      DECAY_BITS))
        ctx.sat.add(f"{self.name}.state", n_w + n_u)
        s = (u > self.one).astype(np.int64)
        records = {"state": np.stack([u, w], -1)} if ctx.record_states else {}
        return {"out": s.astype(bool)}, (u, w, s), records

    def float_init(self, batch):
        return tuple(np.zeros((batch, self.n)) for _ in range(3))

    def float_step(self, state, inputs, t, ctx):
        u, w, s = state
        f = self.floats
        current = inputs["in"] + f["bias"]
        w = f["beta"] * w + f["a"] * u + f["b"] * s
        u = f["alpha"] * (u - s) + (1 - f["alpha"]) * (current - w)
        ctx.stat_max(self.name, "state_max", max(np.abs(current).max(initial=0.0), np.abs(u).max(initial=0.0),
                                                 np.abs(w).max(initial=0.0)))
        s = (u - 1 > 0).astype(np.float64)
        return {"out": s}, (u, w, s), {}

    @classmethod
    def needs_formats(cls, q: QuantContext) -> dict:
        return {"in": _state_format(q)}

    @classmethod
    def quantize(cls, q: QuantContext) -> "SiLIFNeuron":
        node, f = q.node, q.node.floats
        bits = _state_format(q).frac_bits
        where = f"layer {node.layer}"
        scale = 2.0 ** bits
        values = dict(node.attrs, state_frac_bits=bits, alpha=round_fraction(f["alpha"], "alpha", where),
                      beta=round_fraction(f["beta"], "beta", where),
                      one_minus_alpha=round_fraction(1 - f["alpha"], "1 - alpha", where),
                      a=round_fraction(f["a"], "a", where), b=round_int(f["b"] * scale, "b", where),
                      bias=round_int(f["bias"] * scale, "the BatchNorm offset", where))
        return cls(node.name, values, dict(f))

    def ops(self, act: Activity) -> OpCounts:
        """Per step and neuron: 4 multiplies (the decays and couplings) and 5 adds, two state words."""
        n_out = float(np.count_nonzero(act.output))
        return (OpCounts(mac=act.steps * self.n * 4, add=act.steps * self.n * 5, neuron_updates=act.steps * self.n * 2,
                         active_neuron_updates=n_out) + self.messages(act))

    def dense_ops(self, steps: float) -> OpCounts:
        return OpCounts(mac=steps * self.n * 4, add=steps * self.n * 5, neuron_updates=steps * self.n * 2,
                        graded_messages=steps * self.n)

    def compartments(self) -> int:
        return self.n

    def bits(self) -> dict:
        return {"decay": 12, "state": 24, "message": 1}
