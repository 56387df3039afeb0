"""``RFNeuron``: a population of resonate-and-fire neurons (Higuchi et al. 2024, as the SiLIF
repository steps them: forward Euler at a fixed ``dt``, reset by one after the step).

Integer step (docs/numerics.md §5): ``lava.proc.rf``'s fixed-point rotation of the complex state
``(ur, ui)`` in units ``2^-F``, with the input and the reset added to the real part::

    (ur', ui') = rf(ur, ui; decay) + (I + bias - s 2^F, 0)        s' = 1[ur' > 2^F]

Float step: ``u = lam u + I + bias - s``, ``s = 1[Re(u) > 1]``, with ``lam = 1 + dt lambda_c`` (the
Euler step folded into one complex decay) and ``dt`` folded into the synapse and ``bias``. Forward
Euler can expand (``|lam| > 1`` where ``dt |lambda_c|^2 > -2 Re(lambda_c)``); the trained float model
does, so such decays are kept, and the state saturates at 24 bits (counted) where it would grow past.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..numerics.fixed import DECAY_BITS, rf_step, round_int
from .base import STATE, A, I, QuantContext, register
from .csilif_neuron import CSiLIFNeuron, state_format

DECAY_LIMIT = (1 << DECAY_BITS) - 1  # Lava's 12-bit decays


@register
class RFNeuron(CSiLIFNeuron):
    """C-SiLIF's population (one complex state per neuron, ``lava.proc.rf``'s rotation, the same
    format, counts and bits) with RF's reset: subtract 1 after the step instead of 0.5 before it."""

    __doc__ = __doc__
    DOC_EQUATION = ("RF (forward Euler): a ``lava.proc.rf`` rotation of the complex state ``(ur, ui)`` in units "
                    "``2^-F``: ``(ur', ui') = rf(ur, ui; decay) + (I + bias - s 2^F, 0)``; ``s' = 1[ur' > 2^F]``.")
    FIELDS = (
        I("layer", 0, 4096, "layer index"),
        I("n", 1, 2**20, "neurons"),
        I("state_frac_bits", 1, 22, "F: fraction bits of the state; the threshold and reset 1.0 are 2^F"),
        A("decay_re", "int16", ("n",), -DECAY_LIMIT, DECAY_LIMIT, "Re(1 + dt lambda_c) * 4096"),
        A("decay_im", "int16", ("n",), -DECAY_LIMIT, DECAY_LIMIT, "Im(1 + dt lambda_c) * 4096"),
        A("bias", "int32", ("n",), -STATE, STATE, "dt times the BatchNorm offset, units 2^-F"),
    )
    ADDS = 5  # the rotation's two, input, bias and the reset (docs/energy-model.md)

    def int_step(self, state, inputs, t, ctx):
        ur, ui, s = state
        drive = np.asarray(inputs["in"], np.int64) + self.bias64 - s * self.one
        ur, ui, n_sat = rf_step(ur, ui, self.dr, self.di, drive, 0)
        ctx.sat.add(f"{self.name}.state", n_sat)
        s = (ur > self.one).astype(np.int64)
        records = {"state": np.stack([ur, ui], -1)} if ctx.record_states else {}
        return {"out": s.astype(bool)}, (ur, ui, s), records

    def float_step(self, state, inputs, t, ctx):
        u, s = state
        f = self.floats
        drive = inputs["in"] + f["bias"]
        u = (f["lam_re"] + 1j * f["lam_im"]) * u + drive - s
        ctx.stat_max(self.name, "state_max", max(np.abs(drive).max(initial=0.0) + 1.0, np.abs(u.real).max(initial=0.0),
                                                 np.abs(u.imag).max(initial=0.0)))
        s = (u.real - 1 > 0).astype(np.float64)
        return {"out": s}, (u, s), {}

    @classmethod
    def quantize(cls, q: QuantContext) -> "RFNeuron":
        node, f = q.node, q.node.floats
        bits = state_format(q).frac_bits
        where = f"layer {node.layer}"
        decay = {}
        for part in ("re", "im"):
            value = np.rint(f[f"lam_{part}"] * (1 << DECAY_BITS)).astype(np.int64)
            if np.abs(value).max(initial=0) > DECAY_LIMIT:
                raise UserError(f"{where}: a decay 1 + dt lambda_c has |{part}| >= 1 ({int(np.abs(value).max())}/4096), "
                                "beyond Lava's 12-bit decays; dt or the trained eigenvalue is too large to deploy")
            decay[f"decay_{part}"] = value
        values = dict(node.attrs, state_frac_bits=bits, **decay,
                      bias=round_int(f["bias"] * 2.0 ** bits, "the BatchNorm offset", where))
        return cls(node.name, values, dict(f))
