"""``CSiLIFNeuron``: a population of C-SiLIF neurons (one complex state; Fabre et al. 2025).

Integer step (docs/numerics.md §5): a ``lava.proc.rf`` rotation of the complex state ``(ur, ui)`` in
units ``2^-F``, after the reset by one half::

    (ur', ui') = rf(ur - s 2^(F-1), ui; decay) + (I + bias, 0)        s' = 1[2 ur' > 2^F]

Float step: ``u = lam (u - s/2) + I + bias``, ``s = 1[2 Re(u) > 1]`` (the input gain ``b`` and the
BatchNorm are folded into the synapse and ``bias``).
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..numerics.fixed import frac_bits_for, quantize_decay, rf_step, round_int
from .base import STATE, A, Activity, Format, I, NodeType, OpCounts, QuantContext, register


def state_format(q: QuantContext) -> Format:
    """One state exponent per population from the largest |state| seen in calibration (headroom bits)."""
    return Format(False, frac_bits_for(float(q.stats.get("state_max", 0.0)), q.qc.headroom_bits, lo=1, hi=22))


@register
class CSiLIFNeuron(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = ("C-SiLIF: a ``lava.proc.rf`` rotation of the complex state ``(ur, ui)`` in units ``2^-F``: "
                    "``(ur', ui') = rf(ur - s 2^(F-1), ui; decay) + (I + bias, 0)``; ``s' = 1[2 ur' > 2^F]``.")
    BINARY_OUT = True
    ATTRS = ("layer", "n")
    FLOATS = ("lam_re", "lam_im", "bias")
    FIELDS = (
        I("layer", 0, 4096, "layer index"),
        I("n", 1, 2**20, "neurons"),
        I("state_frac_bits", 1, 22, "F: fraction bits of the state; the reset 0.5 is 2^(F-1)"),
        A("decay_re", "int16", ("n",), -4095, 4095, "Re(lambda) * 4096 (dt folded in)"),
        A("decay_im", "int16", ("n",), -4095, 4095, "Im(lambda) * 4096"),
        A("bias", "int32", ("n",), -STATE, STATE, "b times the BatchNorm offset, units 2^-F"),
    )

    def setup(self) -> None:
        v = self.values
        self.one, self.half = 1 << v["state_frac_bits"], 1 << (v["state_frac_bits"] - 1)
        self.dr, self.di = v["decay_re"].astype(np.int64), v["decay_im"].astype(np.int64)
        self.bias64 = v["bias"].astype(np.int64)

    def int_init(self, batch):
        return tuple(np.zeros((batch, self.n), np.int64) for _ in range(3))  # ur, ui, s

    def int_step(self, state, inputs, t, ctx):
        ur, ui, s = state
        ur, ui, n_sat = rf_step(ur - s * self.half, ui, self.dr, self.di,
                                np.asarray(inputs["in"], np.int64) + self.bias64, 0)
        ctx.sat.add(f"{self.name}.state", n_sat)
        s = (2 * ur > self.one).astype(np.int64)
        records = {"state": np.stack([ur, ui], -1)} if ctx.record_states else {}
        return {"out": s.astype(bool)}, (ur, ui, s), records

    def float_init(self, batch):
        return np.zeros((batch, self.n), complex), np.zeros((batch, self.n))

    def float_step(self, state, inputs, t, ctx):
        u, s = state
        f = self.floats
        drive = inputs["in"] + f["bias"]
        u = (f["lam_re"] + 1j * f["lam_im"]) * (u - 0.5 * s) + drive
        ctx.stat_max(self.name, "state_max", max(np.abs(drive).max(initial=0.0), np.abs(u.real).max(initial=0.0),
                                                 np.abs(u.imag).max(initial=0.0)))
        s = (2 * u.real - 1 > 0).astype(np.float64)
        return {"out": s}, (u, s), {}

    @classmethod
    def needs_formats(cls, q: QuantContext) -> dict:
        return {"in": state_format(q)}

    @classmethod
    def quantize(cls, q: QuantContext) -> "CSiLIFNeuron":
        node, f = q.node, q.node.floats
        bits = state_format(q).frac_bits
        where = f"layer {node.layer}"
        try:
            decay_re, decay_im = quantize_decay((f["lam_re"] + 1j * f["lam_im"])[:, None],
                                                stable=getattr(q.qc, "stable_decays", False))
        except ValueError as exc:
            raise UserError(f"{where}: {exc} (export with --stable-decays to round such decays to the nearest "
                            "12-bit value inside the unit circle)") from None
        values = dict(node.attrs, state_frac_bits=bits, decay_re=decay_re[:, 0], decay_im=decay_im[:, 0],
                      bias=round_int(f["bias"] * 2.0 ** bits, "the BatchNorm offset", where))
        return cls(node.name, values, dict(f))

    ADDS = 4  # adds per neuron and step (docs/energy-model.md)

    def ops(self, act: Activity) -> OpCounts:
        """Per step and neuron: 4 multiplies (the complex rotation) and ``ADDS`` adds, two state words."""
        n_out = float(np.count_nonzero(act.output))
        return (OpCounts(mac=act.steps * self.n * 4, add=act.steps * self.n * self.ADDS,
                         neuron_updates=act.steps * self.n * 2, active_neuron_updates=n_out) + self.messages(act))

    def dense_ops(self, steps: float) -> OpCounts:
        return OpCounts(mac=steps * self.n * 4, add=steps * self.n * self.ADDS, neuron_updates=steps * self.n * 2,
                        graded_messages=steps * self.n)

    def compartments(self) -> int:
        return self.n

    def bits(self) -> dict:
        return {"decay": 12, "state": 24, "message": 1}
