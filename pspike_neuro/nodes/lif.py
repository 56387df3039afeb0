"""``LIFNeuron``: leaky integrate-and-fire (NIR's ``LIF``, and ``IF`` as the leak-free case).

NIR's continuous equation ``tau dv/dt = (v_leak - v) + R I`` becomes, at import, ``v' = alpha v +
g I + (1 - alpha) v_leak`` with ``alpha = 1 - dt/tau`` (forward Euler) or ``exp(-dt/tau)`` (exact),
``g = (1 - alpha) R`` (``dt R`` for IF, whose ``alpha`` is 1); the gain ``g`` is folded into the
incoming synapses and ``(1 - alpha) v_leak`` (with ``g`` times an Affine's bias) into ``bias``
(``docs/nir.md``). What remains, in units ``2^-F``:

    v' = sat24(shr_trunc(alpha v, 12) + a + bias)        s = 1[v' > v_th]        v' = v_reset where s

Float step: ``v = alpha v + a + bias``, ``s = 1[v > v_th]``, ``v = v_reset`` where ``s``. Several
incoming edges are summed (NIR semantics).
"""

from __future__ import annotations

import numpy as np

from ..numerics.fixed import DECAY_BITS, frac_bits_for, round_fraction, round_int, saturate, shr_trunc
from .base import STATE, A, Activity, Format, I, NodeType, OpCounts, QuantContext, register


def state_format(q: QuantContext, keys=("v_th", "v_reset")) -> Format:
    """One state exponent per population: the largest |state|, |input + bias| seen in calibration
    and the thresholds, with the headroom bits."""
    extremes = [float(q.stats.get("state_max", 0.0))]
    extremes += [float(np.abs(q.node.floats[k]).max(initial=0.0)) for k in keys if k in q.node.floats]
    return Format(False, frac_bits_for(max(extremes), q.qc.headroom_bits, lo=0, hi=22))


@register
class LIFNeuron(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = ("Leaky integrate-and-fire, units ``2^-F``: ``v' = sat(shr_trunc(alpha v, 12) + a + bias)``; "
                    "``s = 1[v' > v_th]``; ``v' = v_reset`` where ``s`` (NIR LIF and IF, discretized at import).")
    BINARY_OUT = True
    SUMMING = True
    FLOATS = ("alpha", "bias", "v_th", "v_reset")
    FIELDS = (
        I("n", 1, 2**20, "neurons"),
        I("state_frac_bits", 0, 22, "F: fraction bits of v"),
        A("alpha", "int16", ("n",), 0, 4096, "membrane decay * 4096 (1.0 for IF)"),
        A("bias", "int32", ("n",), -STATE, STATE, "(1 - alpha) v_leak plus the folded input bias, units 2^-F"),
        A("v_th", "int32", ("n",), -STATE, STATE, "threshold, units 2^-F"),
        A("v_reset", "int32", ("n",), -STATE, STATE, "reset potential, units 2^-F"),
    )

    def setup(self) -> None:
        self.i64 = {k: self.values[k].astype(np.int64) for k in ("alpha", "bias", "v_th", "v_reset")}

    def int_init(self, batch):
        return np.zeros((batch, self.n), np.int64)

    def int_step(self, v, inputs, t, ctx):
        p = self.i64
        v, n_sat = saturate(shr_trunc(p["alpha"] * v, DECAY_BITS) + np.asarray(inputs["in"], np.int64) + p["bias"])
        ctx.sat.add(f"{self.name}.state", n_sat)
        s = v > p["v_th"]
        v = np.where(s, p["v_reset"], v)
        return {"out": s}, v, ({"state": v} if ctx.record_states else {})

    def float_init(self, batch):
        return np.zeros((batch, self.n))

    def float_step(self, v, inputs, t, ctx):
        f = self.floats
        drive = inputs["in"] + f["bias"]
        v = f["alpha"] * v + drive
        ctx.stat_max(self.name, "state_max", max(np.abs(v).max(initial=0.0), np.abs(drive).max(initial=0.0)))
        s = v > f["v_th"]
        return {"out": s.astype(np.float64)}, np.where(s, f["v_reset"], v), {}

    @classmethod
    def needs_formats(cls, q: QuantContext) -> dict:
        return {"in": state_format(q)}

    @classmethod
    def quantize(cls, q: QuantContext) -> "LIFNeuron":
        f, name = q.node.floats, q.node.name
        scale = 2.0 ** state_format(q).frac_bits
        values = dict(n=q.node.n, state_frac_bits=state_format(q).frac_bits,
                      alpha=round_fraction(f["alpha"], "alpha", name),
                      bias=round_int(f["bias"] * scale, "bias", name), v_th=round_int(f["v_th"] * scale, "v_th", name),
                      v_reset=round_int(f["v_reset"] * scale, "v_reset", name))
        return cls(name, values, dict(f))

    def ops(self, act: Activity) -> OpCounts:
        """Per step and neuron: the decay (a multiply), input and bias adds, one compartment."""
        fired = self.BINARY_OUT and act.output is not None      # a leaky integrator never fires
        n_out = float(np.count_nonzero(act.output)) if fired else 0.0
        return OpCounts(mac=act.steps * self.n, add=act.steps * self.n * 2, neuron_updates=act.steps * self.n,
                        active_neuron_updates=n_out) + self.messages(act)

    def dense_ops(self, steps: float) -> OpCounts:
        return OpCounts(mac=steps * self.n, add=steps * self.n * 2, neuron_updates=steps * self.n,
                        graded_messages=steps * self.n)

    def compartments(self) -> int:
        return self.n

    def bits(self) -> dict:
        return {"decay": 12, "state": 24, "message": 1}
