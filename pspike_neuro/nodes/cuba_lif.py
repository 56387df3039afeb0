"""``CubaLIFNeuron``: current-based LIF (NIR's ``CubaLIF``; ``CubaLINeuron`` without the spike).

NIR's ``tau_syn dI/dt = -I + w_in S``, ``tau_mem dv/dt = (v_leak - v) + R I`` become, at import,
``I' = alpha_syn I + (1 - alpha_syn) w_in S`` then ``v' = alpha_mem v + (1 - alpha_mem)(v_leak + R I')``
(the current first, the membrane from the new current: the order of snnTorch's ``Synaptic`` and of
Norse's NIR reader), with ``alpha = 1 - dt/tau`` (Euler) or ``exp(-dt/tau)`` (exact per equation).
``(1 - alpha_syn) w_in`` is folded into the incoming synapses, so in units ``2^-F`` (both states)::

    i' = sat24(shr_trunc(alpha_syn i, 12) + a + bias_syn)
    v' = sat24(shr_trunc(alpha_mem v, 12) + shr_trunc(gain_m i', gain_shift) + bias_mem)
    s  = 1[v' > v_th]        v' = v_reset where s

with ``gain = (1 - alpha_mem) R`` as a mantissa and shift. Float step: the same in float64.
"""

from __future__ import annotations

import numpy as np

from ..numerics.fixed import (
    DECAY_BITS,
    quantize_mantissa,
    round_fraction,
    round_int,
    saturate,
    shr_trunc,
    to_shift,
)
from .base import STATE, A, Activity, Format, I, NodeType, OpCounts, QuantContext, register
from .lif import state_format

SPIKE_FIELDS = (A("v_th", "int32", ("n",), -STATE, STATE, "threshold, units 2^-F"),
                A("v_reset", "int32", ("n",), -STATE, STATE, "reset potential, units 2^-F"))


@register
class CubaLIFNeuron(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = ("Current-based LIF, units ``2^-F``: ``i' = sat(shr_trunc(alpha_syn i, 12) + a + bias_syn)``; "
                    "``v' = sat(shr_trunc(alpha_mem v, 12) + shr_trunc(gain_m i', gain_shift) + bias_mem)``; "
                    "``s = 1[v' > v_th]``, ``v' = v_reset`` where ``s`` (NIR CubaLIF, discretized at import).")
    BINARY_OUT = True
    SUMMING = True
    FLOATS = ("alpha_syn", "alpha_mem", "gain", "bias_syn", "bias_mem", "v_th", "v_reset")
    BASE_FIELDS = (
        I("n", 1, 2**20, "neurons"),
        I("state_frac_bits", 0, 22, "F: fraction bits of i and v"),
        A("alpha_syn", "int16", ("n",), 0, 4096, "synaptic current decay * 4096"),
        A("alpha_mem", "int16", ("n",), 0, 4096, "membrane decay * 4096"),
        A("gain_m", "int32", ("n",), -STATE, STATE, "mantissa of (1 - alpha_mem) R"),
        I("gain_shift", 0, 40, "right shift of gain_m i"),
        A("bias_syn", "int32", ("n",), -STATE, STATE, "folded input bias of the current, units 2^-F"),
        A("bias_mem", "int32", ("n",), -STATE, STATE, "(1 - alpha_mem) v_leak, units 2^-F"),
    )
    FIELDS = BASE_FIELDS + SPIKE_FIELDS

    def setup(self) -> None:
        self.i64 = {f.name: self.values[f.name].astype(np.int64) for f in self.FIELDS if f.kind == "array"}

    def _membrane(self, state, inputs, ctx):
        i, v = state
        p = self.i64
        i, n_i = saturate(shr_trunc(p["alpha_syn"] * i, DECAY_BITS) + np.asarray(inputs["in"], np.int64) + p["bias_syn"])
        v, n_v = saturate(shr_trunc(p["alpha_mem"] * v, DECAY_BITS) + shr_trunc(p["gain_m"] * i, self.gain_shift)
                          + p["bias_mem"])
        ctx.sat.add(f"{self.name}.state", n_i + n_v)
        return i, v

    def int_init(self, batch):
        return np.zeros((batch, self.n), np.int64), np.zeros((batch, self.n), np.int64)

    def int_step(self, state, inputs, t, ctx):
        i, v = self._membrane(state, inputs, ctx)
        s = v > self.i64["v_th"]
        v = np.where(s, self.i64["v_reset"], v)
        return {"out": s}, (i, v), ({"state": np.stack([i, v], -1)} if ctx.record_states else {})

    def float_init(self, batch):
        return np.zeros((batch, self.n)), np.zeros((batch, self.n))

    def float_step(self, state, inputs, t, ctx):
        i, v = _float_membrane(self, state, inputs, ctx)
        s = v > self.floats["v_th"]
        return {"out": s.astype(np.float64)}, (i, np.where(s, self.floats["v_reset"], v)), {}

    @classmethod
    def needs_formats(cls, q: QuantContext) -> dict:
        return {"in": state_format(q)}

    @classmethod
    def quantize(cls, q: QuantContext) -> "CubaLIFNeuron":
        f, name = q.node.floats, q.node.name
        bits = state_format(q).frac_bits
        scale = 2.0 ** bits
        gain_m, gain_exp = quantize_mantissa(f["gain"], q.qc.affine_bits)
        gain_m, gain_shift = to_shift(gain_m, gain_exp)
        values = dict(n=q.node.n, state_frac_bits=bits, alpha_syn=round_fraction(f["alpha_syn"], "alpha_syn", name),
                      alpha_mem=round_fraction(f["alpha_mem"], "alpha_mem", name), gain_m=gain_m,
                      gain_shift=gain_shift, bias_syn=round_int(f["bias_syn"] * scale, "bias_syn", name),
                      bias_mem=round_int(f["bias_mem"] * scale, "bias_mem", name))
        values.update({k: round_int(f[k] * scale, k, name) for k in ("v_th", "v_reset") if k in {x.name for x in cls.FIELDS}})
        return cls(name, values, dict(f))

    def ops(self, act: Activity) -> OpCounts:
        """Per step and neuron: two decays and the gain (multiplies), four adds, two state words."""
        n_out = float(np.count_nonzero(act.output)) if self.BINARY_OUT and act.output is not None else 0.0
        return OpCounts(mac=act.steps * self.n * 3, add=act.steps * self.n * 4, neuron_updates=act.steps * self.n * 2,
                        active_neuron_updates=n_out) + self.messages(act)

    def dense_ops(self, steps: float) -> OpCounts:
        return OpCounts(mac=steps * self.n * 3, add=steps * self.n * 4, neuron_updates=steps * self.n * 2,
                        graded_messages=steps * self.n)

    def compartments(self) -> int:
        return self.n

    def bits(self) -> dict:
        return {"decay": 12, "state": 24, "message": 1 if self.BINARY_OUT else 24}


def _float_membrane(node, state, inputs, ctx):
    """The float current and membrane update (shared with ``CubaLINeuron``; a module function so that
    it also runs on float nodes before quantization)."""
    i, v = state
    f = node.floats
    i = f["alpha_syn"] * i + inputs["in"] + f["bias_syn"]
    v = f["alpha_mem"] * v + f["gain"] * i + f["bias_mem"]
    ctx.stat_max(node.name, "state_max", max(np.abs(i).max(initial=0.0), np.abs(v).max(initial=0.0)))
    return i, v


@register
class CubaLINeuron(CubaLIFNeuron):
    """``CubaLINeuron``: NIR's ``CubaLI``, the current-based membrane without threshold; its output is
    the membrane ``v'`` (graded, units ``2^-F``)."""

    DOC_EQUATION = ("Current-based leaky integrator, units ``2^-F``: as ``CubaLIFNeuron`` without threshold and "
                    "reset; the output is ``v'`` (NIR CubaLI, discretized at import).")
    BINARY_OUT = False
    FLOATS = ("alpha_syn", "alpha_mem", "gain", "bias_syn", "bias_mem")
    FIELDS = CubaLIFNeuron.BASE_FIELDS

    def int_step(self, state, inputs, t, ctx):
        i, v = self._membrane(state, inputs, ctx)
        return {"out": v}, (i, v), ({"state": np.stack([i, v], -1)} if ctx.record_states else {})

    def float_step(self, state, inputs, t, ctx):
        i, v = _float_membrane(self, state, inputs, ctx)
        return {"out": v}, (i, v), {}

    @classmethod
    def out_format(cls, q: QuantContext) -> Format:
        return state_format(q)
