"""``ClampFuse``: the residual join of a P-SpikeSSM block.

Integer step: ``x' = sat24(shr_trunc(post_scale_m (x + psi(a + bias)), post_shift) + post_offset)``
(without residual: ``x`` is dropped), ``x`` the residual stream, ``a`` the SpikeMixer's sum, both in
units ``2^-in_frac_bits``; ``x'`` in units ``2^-out_frac_bits``. Float step: ``x' = post_scale
(x + psi(a + bias)) + post_offset`` (the post-norm folded; identity for pre-norm blocks). The clamp of
the block is the clamp into a probability at the next input sampler.
"""

from __future__ import annotations

import numpy as np

from ..numerics import kernels
from ..numerics.fixed import (
    frac_bits_for,
    gelu_fixed,
    gelu_float,
    quantize_mantissa,
    round_int,
    saturate,
    shr_trunc,
    to_shift,
)
from .base import STATE, A, Activity, B, Format, I, NodeType, OpCounts, QuantContext, S, register


@register
class ClampFuse(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = ("Residual join: ``x' = sat(shr_trunc(post_scale_m (x + psi(a + bias)), post_shift) + "
                    "post_offset)`` (without residual: ``x`` is dropped); psi = gelu is the table of docs/numerics.md "
                    "at ``in_frac_bits``. Several mixers (a block with two SSM branches) are summed into ``a``.")
    ROLE = "junction"
    STATELESS = True
    SUMMING_PORTS = ("mixer",)  # the mixers of a block's two SSM branches add up
    IN_PORTS = ("residual", "mixer")
    ATTRS = ("layer", "n", "psi", "residual")
    FLOATS = ("bias", "post_scale", "post_offset")
    FIELDS = (
        I("layer", 0, 4096, "block index"),
        I("n", 1, 2**20, "neurons (H)"),
        S("psi", ("identity", "relu", "gelu"), "activation after the mixer"),
        B("residual", "add the residual stream"),
        A("bias", "int32", ("n",), -STATE, STATE, "mixer bias c, units 2^-in_frac_bits"),
        I("in_frac_bits", 0, 23, "fraction bits of the incoming stream"),
        I("out_frac_bits", 0, 23, "fraction bits of the outgoing stream"),
        A("post_scale_m", "int32", ("n",), -STATE, STATE, "post-norm scale mantissa"),
        I("post_shift", 0, 40, "post-norm scale shift"),
        A("post_offset", "int32", ("n",), -STATE, STATE, "post-norm offset, units 2^-out_frac_bits"),
    )

    def int_step(self, state, inputs, t, ctx):
        x, a = np.asarray(inputs["residual"], np.int64), np.asarray(inputs["mixer"], np.int64)
        if kernels.AVAILABLE and self.psi != "gelu":
            y, n_sat = kernels.fuse(self.values, x, a)
        else:
            m = a + self.bias
            if self.psi == "relu":
                m = np.maximum(m, 0)
            elif self.psi == "gelu":
                m = gelu_fixed(m, self.in_frac_bits)
            y = x + m if self.residual else m
            y, n_sat = saturate(shr_trunc(self.post_scale_m.astype(np.int64) * y, self.post_shift) + self.post_offset)
        ctx.sat.add(f"{self.name}.out", n_sat)
        return {"out": y}, None, {}

    def float_step(self, state, inputs, t, ctx):
        f = self.floats
        m = inputs["mixer"] + f["bias"]
        if self.psi == "relu":
            m = np.maximum(m, 0.0)
        elif self.psi == "gelu":
            m = gelu_float(m)
        y = inputs["residual"] + m if self.residual else m
        out = f["post_scale"] * y + f["post_offset"]
        ctx.stat_max(self.name, "out_max", float(np.abs(out).max(initial=0.0)))
        return {"out": out}, None, {}

    @classmethod
    def needs_formats(cls, q: QuantContext) -> dict:
        return {"mixer": q.in_formats["residual"]}  # the mixer's sum joins the stream in its units

    @classmethod
    def out_format(cls, q: QuantContext) -> Format:
        return Format(False, frac_bits_for(float(q.stats.get("out_max", 0.0)), q.qc.headroom_bits, lo=0))

    @classmethod
    def quantize(cls, q: QuantContext) -> "ClampFuse":
        node, f = q.node, q.node.floats
        xb, xb_next = q.in_formats["residual"].frac_bits, cls.out_format(q).frac_bits
        layer = f"layer {node.layer}"
        post_m, post_exp = quantize_mantissa(f["post_scale"] * 2.0 ** (xb_next - xb), q.qc.affine_bits)
        post_m, post_shift = to_shift(post_m, post_exp)
        values = dict(node.attrs, bias=round_int(f["bias"] * 2.0 ** xb, "mixer bias", layer), in_frac_bits=xb,
                      out_frac_bits=xb_next, post_scale_m=post_m, post_shift=post_shift,
                      post_offset=round_int(f["post_offset"] * 2.0 ** xb_next, "post-norm offset", layer))
        return cls(node.name, values, dict(f))

    def ops(self, act: Activity) -> OpCounts:
        """Per step and neuron: the post scale (MAC; psi = gelu: one more, the table's interpolation), bias
        and residual adds, one compartment."""
        h, steps = self.n, act.steps
        return OpCounts(mac=steps * h * self._macs(), add=steps * h * 2, neuron_updates=steps * h) + self.messages(act)

    def dense_ops(self, steps: float) -> OpCounts:
        h = self.n
        return OpCounts(mac=steps * h * self._macs(), add=steps * h * 2, neuron_updates=steps * h,
                        graded_messages=steps * h)

    def _macs(self) -> int:
        return 2 if self.psi == "gelu" else 1

    def compartments(self) -> int:
        return self.n

    def bits(self) -> dict:
        return {"state": 24, "message": 24}
