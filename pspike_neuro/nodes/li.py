"""``LINeuron``: leaky integrator (NIR's ``LI``, and ``I`` as the leak-free case): the LIF
membrane without threshold, whose output is the membrane itself, a graded value.

    v' = sat24(shr_trunc(alpha v, 12) + a + bias)        output v' (units 2^-F)

Float step: ``v = alpha v + a + bias``. Discretization, folding and operation counts as for
``LIFNeuron`` (a graded message per neuron and step instead of spikes).
"""

from __future__ import annotations

import numpy as np

from ..numerics.fixed import DECAY_BITS, round_fraction, round_int, saturate, shr_trunc
from .base import STATE, A, Format, I, QuantContext, register
from .lif import LIFNeuron, state_format


@register
class LINeuron(LIFNeuron):
    __doc__ = __doc__
    DOC_EQUATION = ("Leaky integrator, units ``2^-F``: ``v' = sat(shr_trunc(alpha v, 12) + a + bias)``, the output "
                    "(NIR LI and I, discretized at import).")
    BINARY_OUT = False
    FLOATS = ("alpha", "bias")
    FIELDS = (
        I("n", 1, 2**20, "neurons"),
        I("state_frac_bits", 0, 22, "F: fraction bits of v (and of the output)"),
        A("alpha", "int16", ("n",), 0, 4096, "membrane decay * 4096 (1.0 for I)"),
        A("bias", "int32", ("n",), -STATE, STATE, "(1 - alpha) v_leak plus the folded input bias, units 2^-F"),
    )

    def setup(self) -> None:
        self.alpha64, self.bias64 = self.values["alpha"].astype(np.int64), self.values["bias"].astype(np.int64)

    def int_init(self, batch):
        return np.zeros((batch, self.n), np.int64)

    def int_step(self, v, inputs, t, ctx):
        v, n_sat = saturate(shr_trunc(self.alpha64 * v, DECAY_BITS) + np.asarray(inputs["in"], np.int64) + self.bias64)
        ctx.sat.add(f"{self.name}.state", n_sat)
        return {"out": v}, v, {}

    def float_init(self, batch):
        return np.zeros((batch, self.n))

    def float_step(self, v, inputs, t, ctx):
        drive = inputs["in"] + self.floats["bias"]
        v = self.floats["alpha"] * v + drive
        ctx.stat_max(self.name, "state_max", max(np.abs(v).max(initial=0.0), np.abs(drive).max(initial=0.0)))
        return {"out": v}, v, {}

    @classmethod
    def needs_formats(cls, q: QuantContext) -> dict:
        return {"in": state_format(q)}

    @classmethod
    def out_format(cls, q: QuantContext) -> Format:
        return state_format(q)

    @classmethod
    def quantize(cls, q: QuantContext) -> "LINeuron":
        f, name = q.node.floats, q.node.name
        bits = state_format(q).frac_bits
        values = dict(n=q.node.n, state_frac_bits=bits, alpha=round_fraction(f["alpha"], "alpha", name),
                      bias=round_int(f["bias"] * 2.0 ** bits, "bias", name))
        return cls(name, values, dict(f))

    def bits(self) -> dict:
        return {"decay": 12, "state": 24, "message": 24}
