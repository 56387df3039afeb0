"""``SSMNeuron``: one P-SpikeSSM block's neuron population (input sampler, SSM modes, output sampler).

Integer step (docs/numerics.md §3), per neuron ``h`` with ``M`` complex modes ``k``::

    q_in = clamp(shr_trunc(alpha_m x, alpha_shift) + beta, 0, 2^P)       s = 1[r1 < q_in] (valid steps)
    z_k' = sat24(rf(z_k; decay_k) + s (b_k << b_exp))                    (lava.proc.rf's rounding)
    v    = sat24(shr_trunc(sum_k Re(c_k z_k'), c_shift) + s shift(d, d_exp) [+ b_out unless relu])
    o    = 1[r2 < clamp(g, 0, 2^P)]     g = v, or out_sign max(v, 0) + b_out for relu

Float step (the folded network, quant/fold.py): ``p_in = alpha x + beta``, ``s = 1[u1 < p_in]``,
``z = lam z + b_unit s``, ``v = Re(sum_k c z) + d s``, ``q = out_sign phi(v) + b_out``, ``o = 1[u2 < q]``
with ``u = r 2^-P`` the same random numbers (common random numbers).
"""

from __future__ import annotations

import numpy as np

from ..numerics import kernels
from ..numerics.fixed import (
    DECAY_BITS,
    frac_bits_for,
    per_row_shift,
    quantize_decay,
    quantize_mantissa,
    rf_step,
    round_int,
    saturate,
    shift,
    shr_trunc,
    to_shift,
)
from .base import STATE, A, Activity, Format, I, NodeType, OpCounts, QuantContext, S, register

STATE_LIMIT = STATE
#: run whole sequences with the compiled kernel (numba) when available; False keeps the step loop
USE_KERNELS = kernels.AVAILABLE


class NeuronParams:
    """Integer parameters of one SSM population, unpacked once (int64) for the step function."""

    def __init__(self, v: dict):
        self.prob_bits = v["prob_bits"]
        self.one = 1 << self.prob_bits
        self.alpha_m = v["alpha_m"].astype(np.int64)
        self.alpha_shift, self.beta = v["alpha_shift"], v["beta"].astype(np.int64)
        self.dr, self.di = v["decay_re"].astype(np.int64), v["decay_im"].astype(np.int64)
        self.b_re = v["b_re"].astype(np.int64) << v["b_exp"]
        self.b_im = v["b_im"].astype(np.int64) << v["b_exp"]
        self.c_re, self.c_im = v["c_re"].astype(np.int64), v["c_im"].astype(np.int64)
        self.c_shift = np.asarray(v["c_shift"], np.int64)
        self.d_term = shift(v["d"].astype(np.int64), v["d_exp"])
        self.b_out = v["b_out"].astype(np.int64)
        self.sign = v["out_sign"].astype(np.int64) if "out_sign" in v else None  # None: a type without phi = relu
        self.relu = v["phi"] == "relu"
        # float64 copies for the fast path; exact while every readout partial sum stays below 2^53
        c_max = float(max(np.abs(self.c_re).max(initial=0), np.abs(self.c_im).max(initial=0)))
        self.float_exact = c_max * 2.0**24 * self.dr.shape[1] < 2.0**53
        self.f_dr, self.f_di = self.dr / 4096.0, self.di / 4096.0
        self.f_b_re, self.f_b_im = self.b_re.astype(np.float64), self.b_im.astype(np.float64)
        self.f_c_re, self.f_c_im = self.c_re.astype(np.float64), self.c_im.astype(np.float64)
        self.f_c_scale = 2.0 ** -self.c_shift


def sample_and_read(p: NeuronParams, x, r_in, valid, zr, zi):
    """Input sampler, mode update and readout: ``s`` (int64), ``shr_trunc(sum_k Re(c z'), c_shift) +
    s shift(d, d_exp)`` (before the output stage, unsaturated), ``zr, zi`` and the state saturations."""
    q_in = np.clip(shr_trunc(p.alpha_m * x, p.alpha_shift) + p.beta, 0, p.one)
    s = ((r_in < q_in) & valid).astype(np.int64)
    zr, zi, n_state = rf_step(zr, zi, p.dr, p.di, s[..., None] * p.b_re, s[..., None] * p.b_im)
    return s, shr_trunc((p.c_re * zr - p.c_im * zi).sum(-1), p.c_shift) + s * p.d_term, zr, zi, n_state


def step_int(p: NeuronParams, x, r_in, r_out, valid, zr, zi):
    """One integer step, vectorized over leading dimensions: ``x`` (..., n), ``valid`` (..., 1),
    ``zr, zi`` (..., n, M). Returns ``s, o, zr, zi, state_saturations, output_saturations``."""
    s, v, zr, zi, n_state = sample_and_read(p, x, r_in, valid, zr, zi)
    v, n_out = saturate(v + (0 if p.relu else p.b_out))
    g = p.sign * np.maximum(v, 0) + p.b_out if p.relu else v  # relu: the bias comes after the activation
    o = r_out < np.clip(g, 0, p.one)
    return s.astype(bool), o, zr, zi, n_state, n_out


def _saturate_float(a: np.ndarray) -> tuple[np.ndarray, int]:
    limit = float(STATE_LIMIT)
    if np.abs(a).max(initial=0) <= limit:
        return a, 0
    return np.clip(a, -limit, limit), int(np.count_nonzero(np.abs(a) > limit))


def step_int_as_float(p: NeuronParams, x, r_in, r_out, valid, zr, zi):
    """:func:`step_int` computed in float64 on exactly representable integers (the same results).

    ``trunc((d / 4096) * z)`` equals ``shr_trunc(d * z, 12)`` because ``d / 4096`` is exact and the
    product (< 2^35) is representable; the readout sum is exact while it stays below 2^53, which
    ``NeuronParams.float_exact`` checks. About twice as fast as int64 shifts in numpy.
    """
    q_in = np.clip(shr_trunc(p.alpha_m * x, p.alpha_shift) + p.beta, 0, p.one)
    s = (r_in < q_in) & valid
    sf = s.astype(np.float64)[..., None]
    new_r = np.trunc(p.f_dr * zr) - np.trunc(p.f_di * zi) + sf * p.f_b_re
    new_i = np.trunc(p.f_di * zr) + np.trunc(p.f_dr * zi) + sf * p.f_b_im
    zr, n_r = _saturate_float(new_r)
    zi, n_i = _saturate_float(new_i)
    acc = (p.f_c_re * zr - p.f_c_im * zi).sum(-1)
    v = np.trunc(acc * p.f_c_scale).astype(np.int64) + s * p.d_term + (0 if p.relu else p.b_out)
    v, n_out = saturate(v)
    g = p.sign * np.maximum(v, 0) + p.b_out if p.relu else v
    o = r_out < np.clip(g, 0, p.one)
    return s, o, zr, zi, n_r + n_i, n_out


def _offset_hint(largest: float, prob_bits: int) -> str:
    """What to do when a sampler offset of ``largest`` (probability units) does not fit 24 bits at
    ``prob_bits``: the largest ``--prob-bits`` at which it fits (``largest 2^P <= 2^23 - 1``)."""
    fits = int(np.floor(np.log2(STATE / largest))) if largest > 0 else prob_bits
    if 1 <= fits < prob_bits:
        return (f"the largest sampler offset is {largest:.4g} in probability units: export with --prob-bits {fits} "
                "or lower, or retrain with smaller values")
    return "lower --prob-bits or retrain with smaller values"


@register
class SSMNeuron(NodeType):
    __doc__ = __doc__
    DOC_EQUATION = ("``q_in = clamp(shr_trunc(alpha_m x, alpha_shift) + beta, 0, 2^P)``, ``s = 1[r1 < q_in]``; "
                    "``z' = sat(lam z + s (b << b_exp))`` per mode with ``lava.proc.rf``'s rounding; "
                    "``v = sat(shr_trunc(sum_k Re(c z), c_shift) + s shift(d, d_exp) + b_out)``; "
                    "``o = 1[r2 < clamp(v, 0, 2^P)]``; with relu ``b_out`` is added after the activation: "
                    "``o = 1[r2 < clamp(out_sign max(v, 0) + b_out, 0, 2^P)]``.")
    BINARY_OUT = True
    ATTRS = ("layer", "n", "n_modes", "prob_bits", "site_in", "site_out", "phi", "n_in", "neuron_ids")
    FLOATS = ("alpha", "beta", "lam_re", "lam_im", "b_unit_re", "b_unit_im", "c_re", "c_im", "d", "b_out",
              "out_sign")
    LAVA_RECORDS = ("s_in",)
    FIELDS = (
        I("layer", 0, 4096, "block index"),
        I("n", 1, 2**20, "neurons (H)"),
        I("n_in", 1, 2**20, "width of the input stream (optional, default n; more after export --prune-silent)",
          default=lambda v: v["n"]),
        A("neuron_ids", "int32", ("n",), 0, 2**20 - 1, "increasing: each neuron's index in the unpruned population, "
          "the input channel it reads and the random numbers it draws (optional, default 0..n-1)",
          default=lambda v: np.arange(v["n"])),
        I("n_modes", 1, 1024, "complex modes per neuron (N/2)"),
        I("prob_bits", 1, 24, "P: probability 1.0 is 2^P"),
        I("site_in", 0, 2**32 - 1, "RNG site of the input sampler"),
        I("site_out", 0, 2**32 - 1, "RNG site of the output sampler"),
        S("phi", ("identity", "relu"), "activation after the SSM"),
        I("in_frac_bits", 0, 23, "fraction bits of the incoming residual stream"),
        I("state_frac_bits", -8, 23, "fraction bits Z of the SSM state"),
        A("alpha_m", "int32", ("n",), -STATE, STATE, "input-sampler scale mantissa"),
        I("alpha_shift", 0, 40, "input-sampler scale shift"),
        A("beta", "int32", ("n",), -STATE, STATE, "input-sampler offset, units 2^-P"),
        A("decay_re", "int16", ("n", "n_modes"), -4095, 4095, "Re(lambda) * 4096"),
        A("decay_im", "int16", ("n", "n_modes"), -4095, 4095, "Im(lambda) * 4096"),
        A("b_re", "int32", ("n", "n_modes"), -STATE, STATE, "Re(Bbar) mantissa"),
        A("b_im", "int32", ("n", "n_modes"), -STATE, STATE, "Im(Bbar) mantissa"),
        I("b_exp", 0, 23, "left shift of Bbar into state units"),
        A("c_re", "int32", ("n", "n_modes"), -STATE, STATE, "Re(C) mantissa"),
        A("c_im", "int32", ("n", "n_modes"), -STATE, STATE, "Im(C) mantissa"),
        A("c_shift", "int8", ("n",), 0, 48, "per-neuron right shift of the mode sum into units 2^-P"),
        A("d", "int32", ("n",), -STATE, STATE, "feed-through mantissa"),
        I("d_exp", -24, 23, "feed-through exponent"),
        A("b_out", "int32", ("n",), -STATE, STATE, "output-sampler bias, units 2^-P"),
        A("out_sign", "int8", ("n",), -1, 1, "sign of a_out (phi = relu)"),
    )

    def extra_checks(self) -> None:
        if np.any(self.values["out_sign"] == 0):
            self.fail("out_sign", "values must be -1 or 1")
        ids = self.values["neuron_ids"]
        if np.any(np.diff(ids) <= 0) or (ids.size and int(ids[-1]) >= self.values["n_in"]):
            self.fail("neuron_ids", f"must increase and stay below n_in={self.values['n_in']}")

    def setup(self) -> None:
        self.p = NeuronParams(self.values)

    @classmethod
    def width(cls, values, port, side):
        return int(values.get("n_in", values["n"]) if side == "in" else values["n"])

    def kept_ids(self):
        """The neurons' indices in the unpruned population, or None when it is whole."""
        a = self.attrs_view()
        return None if a.get("n_in", a["n"]) == a["n"] else np.asarray(a["neuron_ids"])

    def own_inputs(self, x):
        """Each neuron's channel of the input stream ``x`` (..., n_in) -> (..., n)."""
        ids = self.kept_ids()
        return x if ids is None else x[..., ids]

    def draw(self, ctx, site: int, t: int | None = None):
        """The random numbers of ``site`` for these neurons (a pruned neuron keeps its own)."""
        return ctx.randoms(site, self.n, self.prob_bits, t, ids=self.kept_ids())

    # -- integer --

    def int_init(self, batch):
        dtype = np.float64 if self.p.float_exact else np.int64
        shape = (batch, self.n, self.n_modes)
        return np.zeros(shape, dtype), np.zeros(shape, dtype)

    def int_step(self, state, inputs, t, ctx):
        r_in, r_out = self.draw(ctx, self.site_in, t), self.draw(ctx, self.site_out, t)
        step = step_int_as_float if self.p.float_exact else step_int
        s, o, zr, zi, n_state, n_out = step(self.p, self.own_inputs(np.asarray(inputs["in"], np.int64)), r_in, r_out,
                                            ctx.valid[:, t, None], *state)
        ctx.sat.add(f"{self.name}.state", n_state)
        ctx.sat.add(f"{self.name}.output", n_out)
        records = {"s_in": s}
        if ctx.record_states:
            records["state"] = np.stack([zr, zi], -1).astype(np.int64)
        return {"out": o}, (zr, zi), records

    def int_sequence(self, inputs, ctx):
        if not USE_KERNELS:
            return super().int_sequence(inputs, ctx)
        x = self.own_inputs(inputs["in"])
        length = x.shape[1]
        r_in, r_out = self.draw(ctx, self.site_in), self.draw(ctx, self.site_out)
        s, o, states, n_state, n_out = kernels.neuron_sequence(self.p, x, r_in=r_in[:, :length], r_out=r_out[:, :length],
                                                               valid=ctx.valid, record_states=ctx.record_states)
        ctx.sat.add(f"{self.name}.state", n_state)
        ctx.sat.add(f"{self.name}.output", n_out)
        records = {"s_in": s}
        if ctx.record_states:
            records["state"] = states
        return {"out": o}, records

    # -- float --

    def float_init(self, batch):
        shape = (batch, self.n, self.n_modes)
        if kernels.calib_step_matches_numpy():
            return np.zeros(shape), np.zeros(shape)
        return (np.zeros(shape, complex),)

    def float_step(self, state, inputs, t, ctx):
        f = self.floats
        scale = 2.0 ** -self.prob_bits
        u_in = self.draw(ctx, self.site_in, t) * scale
        u_out = self.draw(ctx, self.site_out, t) * scale
        s = (u_in < f["alpha"] * self.own_inputs(inputs["in"]) + f["beta"]) & ctx.valid[:, t, None]
        lam, b_unit, c = (f[k + "_re"] + 1j * f[k + "_im"] for k in ("lam", "b_unit", "c"))
        if len(state) == 2:  # the compiled step: numpy's arithmetic bit for bit (numerics/kernels.py)
            zr, zi = state
            v = np.empty(s.shape)
            zmax = kernels.calib_step(zr, zi, kernels.calib_params(lam, b_unit, c), s, v)
        else:
            (z,) = state
            np.multiply(lam, z, out=z)
            np.add(z, b_unit, out=z, where=s[..., None])
            zmax = float(max(np.abs(z.real).max(initial=0), np.abs(z.imag).max(initial=0)))
            v = (c * z).sum(-1).real
        ctx.stat_max(self.name, "z_max", zmax)
        q = self.float_probability(v + f["d"] * s, ctx)
        ctx.stat_probability(self.name, np.clip(q, 0.0, 1.0), t)
        return {"out": u_out < q}, state, {"s_in": s}

    def float_probability(self, v, ctx):
        """The output sampler's probability (before its clamp) from the readout ``v = Re(sum c z) + d s``."""
        g = np.maximum(v, 0.0) if self.phi == "relu" else v
        return self.floats["out_sign"] * g + self.floats["b_out"]

    # -- quantization --

    @classmethod
    def quantize(cls, q: QuantContext) -> "SSMNeuron":
        return cls(q.node.name, cls.quantized_values(q, q.node.attrs["prob_bits"]), dict(q.node.floats))

    @classmethod
    def quantized_values(cls, q: QuantContext, readout_bits: int) -> dict:
        """The integer fields, with the readout ``Re(sum c z) + d s`` in units ``2^-readout_bits``."""
        node, qc = q.node, q.qc
        f, a = node.floats, node.attrs
        p, hb, layer = a["prob_bits"], qc.headroom_bits, f"layer {a['layer']}"
        xb = q.in_formats["in"].frac_bits
        alpha_m, alpha_exp = quantize_mantissa(f["alpha"] * 2.0 ** (p - xb), qc.affine_bits)
        alpha_m, alpha_shift = to_shift(alpha_m, alpha_exp)
        z_bits = frac_bits_for(float(q.stats.get("z_max", 0.0)), hb)
        lam = f["lam_re"] + 1j * f["lam_im"]
        try:
            decay_re, decay_im = quantize_decay(lam)
        except ValueError as exc:
            from ..errors import UserError

            raise UserError(f"{layer}: {exc}") from None
        # keep each mode's DC gain Bbar / (1 - lambda) through the 12-bit rounding of lambda: slow modes
        # (1 - |lambda| ~ 2^-10) would otherwise change their gain by up to ~20 %
        lam_q = (decay_re + 1j * decay_im) / float(1 << DECAY_BITS)
        b_unit = f["b_unit_re"] + 1j * f["b_unit_im"]
        b_scaled = b_unit * (1 - lam_q) / (1 - lam) * 2.0 ** z_bits
        b_m, b_exp = quantize_mantissa(np.concatenate([b_scaled.real, b_scaled.imag], -1), qc.ssm_bits)
        if b_exp < 0:  # fewer state bits than mantissa bits: hold Bbar directly in state units
            b_m, b_exp = np.rint(np.concatenate([b_scaled.real, b_scaled.imag], -1)).astype(np.int64), 0
        m = lam.shape[1]
        c_scaled = (f["c_re"] + 1j * f["c_im"]) * 2.0 ** (readout_bits - z_bits)
        c_m, c_shift = per_row_shift(np.concatenate([c_scaled.real, c_scaled.imag], -1), qc.ssm_bits)
        d_m, d_exp = quantize_mantissa(f["d"] * 2.0 ** readout_bits, qc.ssm_bits)
        hint = _offset_hint(max(np.abs(f["beta"]).max(initial=0.0), np.abs(f["b_out"]).max(initial=0.0)), p)
        values = dict(
            a, in_frac_bits=xb, state_frac_bits=z_bits, alpha_m=alpha_m, alpha_shift=alpha_shift,
            beta=round_int(f["beta"] * 2.0 ** p, "input-sampler offset beta", layer, hint=hint),
            decay_re=decay_re, decay_im=decay_im, b_re=b_m[:, :m], b_im=b_m[:, m:], b_exp=b_exp,
            c_re=c_m[:, :m], c_im=c_m[:, m:], c_shift=c_shift, d=d_m, d_exp=d_exp,
            b_out=round_int(f["b_out"] * 2.0 ** p, "output-sampler bias b_out", layer, hint=hint),
        )
        if "out_sign" in f:
            values["out_sign"] = f["out_sign"].astype(np.int64)
        return values

    # -- energy and resources --

    def ops(self, act: Activity) -> OpCounts:
        """Per step and neuron: 1 sampler scale, 4 multiplies per mode (complex decay) and 2 (readout)
        as MACs; 2 offsets; 2 random numbers; M + 1 compartments. Per input spike: Bbar (2 per mode)
        and D as accumulates."""
        h, m, steps = self.n, self.n_modes, act.steps
        n_in = float(np.count_nonzero(act.records["s_in"]))
        n_out = float(np.count_nonzero(act.output))
        return OpCounts(mac=steps * h * (1 + 6 * m), ac=n_in * (2 * m + 1), add=steps * h * 2, rng=steps * h * 2,
                        neuron_updates=steps * h * (m + 1), active_neuron_updates=n_out) + self.messages(act)

    def dense_ops(self, steps: float) -> OpCounts:
        """Real-valued activations: Bbar x and D x become graded MACs, nothing is sampled."""
        h, m = self.n, self.n_modes
        return OpCounts(mac=steps * h * (1 + 6 * m), graded_synops=steps * h * (2 * m + 1), add=steps * h * 2,
                        neuron_updates=steps * h * (m + 1), graded_messages=steps * h)

    def compartments(self) -> int:
        return self.n * (self.n_modes + 1)  # one per mode (two state words, as lava.proc.rf) + samplers

    def bits(self) -> dict:
        return {"decay": 12, "state": 24, "prob": self.prob_bits}

    def describe(self) -> dict:
        return {"neurons": self.n, "modes": self.n_modes, "state_words": 2 * self.n * self.n_modes}

    @classmethod
    def out_format(cls, q: QuantContext) -> Format:
        return Format(True)
