"""``SSMGeluNeuron``: an SSM neuron population whose output sampler sees ``a_out GELU(v) + b_out`` (the
P-SpikeSSM authors' phi = GELU), deployed with the GELU table of docs/numerics.md §7.

Integer step: input sampler and modes as ``SSMNeuron``; then, ``V`` = ``v_frac_bits``::

    v = sat24(shr_trunc(sum_k Re(c_k z_k'), c_shift) + s shift(d, d_exp))          (units 2^-V)
    q = shr_trunc(out_scale_m gelu_fixed(v, V), out_shift) + b_out                   (units 2^-P)
    o = 1[r2 < clamp(q, 0, 2^P)]

Float step: ``v = Re(sum_k c z) + d s``, ``q = out_scale gelu(v) + b_out`` (``a_out`` is not folded into
``c``: it acts after the GELU). ``V`` comes from calibration (largest ``|v|``, one bit of headroom).
"""

from __future__ import annotations

import numpy as np

from ..numerics.fixed import frac_bits_for, gelu_fixed, gelu_float, quantize_mantissa, saturate, shr_trunc, to_shift
from .base import STATE, A, Activity, I, NodeType, OpCounts, QuantContext, S, register
from .ssm_neuron import SSMNeuron, sample_and_read


@register
class SSMGeluNeuron(SSMNeuron):
    __doc__ = __doc__
    DOC_EQUATION = ("As ``SSMNeuron`` up to the readout ``v = sat(shr_trunc(sum_k Re(c z), c_shift) + s shift(d, "
                    "d_exp))`` in units ``2^-v_frac_bits``; then ``q = shr_trunc(out_scale_m gelu_fixed(v), out_shift) + "
                    "b_out`` (the GELU table of docs/numerics.md), ``o = 1[r2 < clamp(q, 0, 2^P)]``.")
    FLOATS = tuple(k for k in SSMNeuron.FLOATS if k != "out_sign") + ("out_scale",)
    FIELDS = tuple(S("phi", ("gelu",), "activation after the SSM") if f.name == "phi" else f for f in SSMNeuron.FIELDS
                   if f.name not in ("out_sign",)) + (
        I("v_frac_bits", 0, 23, "fraction bits V of the readout v (the GELU's input and output)"),
        A("out_scale_m", "int32", ("n",), -STATE, STATE, "a_out mantissa (after the GELU)"),
        I("out_shift", 0, 40, "shift of out_scale_m gelu(v) into units 2^-P"),
    )

    def extra_checks(self) -> None:
        pass  # no out_sign: a_out is out_scale_m, applied after the GELU

    def setup(self) -> None:
        super().setup()
        self.out_m = self.values["out_scale_m"].astype(np.int64)

    def int_init(self, batch):
        shape = (batch, self.n, self.n_modes)
        return np.zeros(shape, np.int64), np.zeros(shape, np.int64)

    def int_step(self, state, inputs, t, ctx):
        r_in = ctx.randoms(self.site_in, self.n, self.prob_bits, t)
        r_out = ctx.randoms(self.site_out, self.n, self.prob_bits, t)
        s, v, zr, zi, n_state = sample_and_read(self.p, np.asarray(inputs["in"], np.int64), r_in, ctx.valid[:, t, None],
                                                *state)
        v, n_out = saturate(v)
        q = shr_trunc(self.out_m * gelu_fixed(v, self.v_frac_bits), self.out_shift) + self.p.b_out
        o = r_out < np.clip(q, 0, self.p.one)
        ctx.sat.add(f"{self.name}.state", n_state)
        ctx.sat.add(f"{self.name}.output", n_out)
        records = {"s_in": s.astype(bool)}
        if ctx.record_states:
            records["state"] = np.stack([zr, zi], -1).astype(np.int64)
        return {"out": o}, (zr, zi), records

    def int_sequence(self, inputs, ctx):
        return NodeType.int_sequence(self, inputs, ctx)  # the step loop (no compiled kernel for this type)

    def float_probability(self, v, ctx):
        ctx.stat_max(self.name, "v_max", float(np.abs(v).max(initial=0.0)))
        return self.floats["out_scale"] * gelu_float(v) + self.floats["b_out"]

    @classmethod
    def quantize(cls, q: QuantContext) -> "SSMGeluNeuron":
        f, p = q.node.floats, q.node.attrs["prob_bits"]
        v_bits = frac_bits_for(float(q.stats.get("v_max", 0.0)), q.qc.headroom_bits, lo=0)
        values = cls.quantized_values(q, v_bits)
        out_m, out_exp = quantize_mantissa(f["out_scale"] * 2.0 ** (p - v_bits), q.qc.affine_bits)
        out_m, out_shift = to_shift(out_m, out_exp)
        values.update(v_frac_bits=v_bits, out_scale_m=out_m, out_shift=out_shift)
        return cls(q.node.name, values, dict(f))

    def ops(self, act: Activity) -> OpCounts:
        """``SSMNeuron``'s, and per step and neuron the GELU (a table read and an interpolation
        multiply) and the output scale: 2 MACs."""
        return super().ops(act) + OpCounts(mac=2.0 * act.steps * self.n)

    def dense_ops(self, steps: float) -> OpCounts:
        return super().dense_ops(steps) + OpCounts(mac=2.0 * steps * self.n)
