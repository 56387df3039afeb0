"""``GradedInput``: the host source of graded values (a P-SpikeSSM's encoder output, currents).

The host runs the encoder stored in the node's floats (``encoder_weight``/``encoder_bias`` for real
inputs, ``embedding`` for token ids, nothing: the inputs themselves) and streams the result as 24-bit
graded messages: ``x_int = sat24(round(x0 2^frac_bits))``; saturations are counted, never silent.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..numerics.fixed import frac_bits_for, saturate
from .base import Format, I, NodeType, OpCounts, QuantContext, register


def encode(node, x) -> np.ndarray:
    """The host encoder of ``node`` (a GradedInput, float or integer) on raw inputs: (B, T[, d]) ->
    (B, T, n) float64. Refuses, in one line, inputs it cannot take."""
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[1] == 0:
        raise UserError(f"inputs must hold at least one time step, got shape {tuple(x.shape)}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise UserError(f"inputs: {int(np.count_nonzero(~np.isfinite(x)))} value(s) are NaN or infinite")
    f = node.floats
    if "embedding" in f:
        table = f["embedding"]
        if x.dtype.kind not in "iu" or x.ndim != 2:
            raise UserError(f"inputs must be token ids (samples, steps), got {x.dtype} {tuple(x.shape)}")
        if x.min() < 0 or x.max() >= table.shape[0]:
            raise UserError(f"input tokens must lie in [0, {table.shape[0]}), got [{x.min()}, {x.max()}]")
        return table[x]
    if x.ndim != 3:
        raise UserError(f"inputs must be (samples, steps, channels), got shape {tuple(x.shape)}")
    if "encoder_weight" in f:
        w, b = f["encoder_weight"], f["encoder_bias"]
        if x.shape[-1] != w.shape[1]:
            raise UserError(f"inputs have {x.shape[-1]} features per step, the netlist's encoder takes {w.shape[1]}")
        return x.astype(np.float64) @ w.T + b
    if x.shape[-1] != node.n:
        raise UserError(f"inputs have {x.shape[-1]} channels per step, the network takes {node.n}")
    return x.astype(np.float64)


def to_messages(x0: np.ndarray, frac_bits: int, sat, name: str) -> np.ndarray:
    """Host encoder output (float) -> 24-bit graded messages (values too large saturate, counted)."""
    x0 = np.asarray(x0, np.float64)
    if not np.all(np.isfinite(x0)):
        raise UserError(f"inputs: {int(np.count_nonzero(~np.isfinite(x0)))} value(s) are NaN or infinite")
    # clipped as floats first: a cast of 2^63 or more wraps (to a saturated value of the wrong sign)
    x, n_sat = saturate(np.rint(np.clip(x0 * 2.0 ** frac_bits, -2.0 ** 62, 2.0 ** 62)).astype(np.int64))
    sat.add(f"{name}.out", n_sat)
    return x


@register
class GradedInput(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = "``x_int = sat(round(x0 * 2^frac_bits))``, ``x0`` the host encoder's output."
    ROLE = "source"
    STATELESS = True
    IN_PORTS = ()
    FLOATS = ("encoder_weight", "encoder_bias", "embedding")
    FIELDS = (I("n", 1, 2**20, "width of the graded stream"),
              I("frac_bits", 0, 23, "fraction bits of the graded input"))

    def input_width(self) -> int | None:
        """Channels of the raw inputs (None: token ids)."""
        if "embedding" in self.floats:
            return None
        return int(self.floats["encoder_weight"].shape[1]) if "encoder_weight" in self.floats else int(self.n)

    def int_step(self, state, inputs, t, ctx):
        return {"out": to_messages(encode(self, inputs["external"]), self.frac_bits, ctx.sat, self.name)}, None, {}

    def float_step(self, state, inputs, t, ctx):
        x0 = encode(self, inputs["external"])
        ctx.stat_max(self.name, "out_max", float(np.abs(x0).max(initial=0.0)))
        return {"out": x0}, None, {}

    @classmethod
    def out_format(cls, q: QuantContext) -> Format:
        return Format(False, frac_bits_for(float(q.stats.get("out_max", 0.0)), q.qc.headroom_bits, lo=0))

    @classmethod
    def quantize(cls, q: QuantContext) -> "GradedInput":
        return cls(q.node.name, dict(n=q.node.n, frac_bits=cls.out_format(q).frac_bits), dict(q.node.floats))

    def ops(self, act) -> OpCounts:
        return self.messages(act)  # the host encoder runs off chip; its messages are counted

    def dense_ops(self, steps: float) -> OpCounts:
        return OpCounts(graded_messages=steps * self.n)

    def bits(self) -> dict:
        return {"message": 24}
