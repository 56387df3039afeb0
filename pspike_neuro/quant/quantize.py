"""Calibrate exponents and quantize a folded network to the integer contract of docs/numerics.md.

Every exponent comes from activation statistics of the folded float network on calibration data:
the largest magnitude of each quantity, times ``2^headroom_bits``, must fit its bit width. The
result is a list of plain integer records, one per netlist node, with the field names of
``pspike_neuro.export.nodes``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .fixed import DECAY_BITS, quantize_decay, quantize_mantissa, quantize_weights
from .fold import FoldedNetwork, float_forward

STATE_BITS = 24
STATE_MAX = 2 ** (STATE_BITS - 1) - 1


@dataclass
class QuantConfig:
    """Bit widths and calibration settings (defaults: docs/numerics.md)."""

    weight_bits: int = 8        # Lava num_weight_bits of the mixer and readout synapses
    ssm_bits: int = 8           # mantissa of Bbar, C, D
    affine_bits: int = 12       # mantissa of the input-sampler and post-norm scales
    prob_bits: int = 16         # P: probability 1.0 == 2^P
    headroom_bits: int = 1      # calibrated maxima get this many spare bits
    calib_samples: int = 256
    density: float | None = None  # magnitude-prune each mixer to this fraction of non-zeros
    seed: int = 0

    def __post_init__(self):
        if not 1 <= self.weight_bits <= 8:
            raise UserError(f"--weight-bits must be in 1..8 (Lava synapses hold 8-bit weights), got {self.weight_bits}")
        if not 1 <= self.prob_bits <= 24:
            raise UserError(f"--prob-bits must be in 1..24, got {self.prob_bits}")
        for name in ("ssm_bits", "affine_bits"):
            if not 2 <= getattr(self, name) <= 16:
                raise UserError(f"{name} must be in 2..16, got {getattr(self, name)}")
        if self.density is not None and not 0 < self.density <= 1:
            raise UserError(f"--density must be in (0, 1], got {self.density}")
        if self.calib_samples < 1:
            raise UserError(f"--calib-samples must be at least 1, got {self.calib_samples}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def frac_bits_for(max_abs: float, headroom_bits: int, lo: int = -8, hi: int = 23) -> int:
    """The most fraction bits such that ``max_abs * 2^(bits + headroom)`` stays below 2^23."""
    if max_abs <= 0 or not math.isfinite(max_abs):
        return hi
    bits = math.floor(math.log2(STATE_MAX / max_abs)) - headroom_bits
    return int(min(hi, max(lo, bits)))


def _to_shift(mantissa: np.ndarray, exp: int) -> tuple[np.ndarray, int]:
    """Express ``mantissa * 2^exp`` as ``shr_trunc(m * x, shift)`` with ``shift >= 0``."""
    if exp >= 0:
        # beyond 2^40 no mantissa fits 24 bits anyway; capping keeps int64 from wrapping (a shift by
        # 64 or more gives 0 in numpy), so the node's range check sees the overflow and names it
        return mantissa.astype(np.int64) << min(exp, 40), 0
    return mantissa.astype(np.int64), -exp


def _per_neuron_shift(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``values`` as ``shr_trunc(m * x, shift)`` with one ``bits``-bit exponent per row.

    A neuron's readout has its own shift, so a neuron whose ``C`` is small keeps its mantissa bits
    (one exponent per layer left a median relative error of 10-50 % in ``C`` and zeroed entries).
    """
    mantissas, shifts = np.zeros(values.shape, np.int64), np.zeros(values.shape[0], np.int64)
    for h, row in enumerate(values):
        m, exp = quantize_mantissa(row, bits)
        mantissas[h], shifts[h] = _to_shift(m, exp)
    return mantissas, shifts


def _round_int(values: np.ndarray, what: str, layer: int, bits: int = STATE_BITS) -> np.ndarray:
    rounded = np.rint(np.asarray(values, np.float64))
    limit = 2 ** (bits - 1) - 1
    if np.any(np.abs(rounded) > limit):  # compared as floats: a cast of 2^63 or more would wrap
        raise UserError(f"layer {layer}: {what} overflows {bits} bits after scaling "
                        f"(max {float(np.abs(rounded).max()):.6g}); lower --prob-bits or retrain with smaller values")
    return rounded.astype(np.int64)


def prune_to_density(w: np.ndarray, density: float) -> np.ndarray:
    """Keep the ``density`` fraction of entries with the largest magnitude, zero the rest."""
    keep = int(round(density * w.size))
    if keep >= w.size:
        return w.copy()
    out = np.zeros_like(w)
    if keep:
        idx = np.argpartition(np.abs(w).ravel(), w.size - keep)[w.size - keep:]
        out.ravel()[idx] = w.ravel()[idx]
    return out


def quantize_network(folded: FoldedNetwork, stats: dict, qc: QuantConfig) -> dict:
    """Integer parameters of every node, from the folded network and calibration ``stats``.

    ``stats`` is the ``record`` of :func:`pspike_neuro.quant.fold.float_forward` on calibration data.
    Returns ``{"input": {...}, "blocks": [{"neuron": {...}, "mixer": {...}, "fuse": {...}}],
    "readout": {...}}``.
    """
    p = qc.prob_bits
    hb = qc.headroom_bits
    n_layers = len(folded.blocks)
    x_bits = [frac_bits_for(float(np.abs(stats[f"x{l}"]).max()), hb, lo=0) for l in range(n_layers)]
    x_bits.append(frac_bits_for(float(np.abs(stats["x_out"]).max()), hb, lo=0))
    blocks = []
    for l, blk in enumerate(folded.blocks):
        xb = x_bits[l]
        alpha_m, alpha_exp = quantize_mantissa(blk.alpha * 2.0 ** (p - xb), qc.affine_bits)
        alpha_m, alpha_shift = _to_shift(alpha_m, alpha_exp)
        z_bits = frac_bits_for(float(stats[f"z{l}_max"]), hb)
        decay_re, decay_im = quantize_decay(blk.lam)
        # keep each mode's DC gain Bbar / (1 - lambda) through the 12-bit rounding of lambda: slow modes
        # (1 - |lambda| ~ 2^-10) would otherwise change their gain by up to ~20 %
        lam_q = (decay_re + 1j * decay_im) / float(1 << DECAY_BITS)
        b_scaled = blk.b_unit * (1 - lam_q) / (1 - blk.lam) * 2.0 ** z_bits
        b_m, b_exp = quantize_mantissa(np.concatenate([b_scaled.real, b_scaled.imag], -1), qc.ssm_bits)
        if b_exp < 0:  # fewer state bits than mantissa bits: hold Bbar directly in state units
            b_m, b_exp = np.rint(np.concatenate([b_scaled.real, b_scaled.imag], -1)).astype(np.int64), 0
        m = blk.lam.shape[1]
        c_scaled = blk.c * 2.0 ** (p - z_bits)
        c_m, c_shift = _per_neuron_shift(np.concatenate([c_scaled.real, c_scaled.imag], -1), qc.ssm_bits)
        d_m, d_exp = quantize_mantissa(blk.d * 2.0 ** p, qc.ssm_bits)
        neuron = dict(
            layer=l, n=blk.alpha.size, n_modes=m, prob_bits=p, site_in=4 * l, site_out=4 * l + 1,
            phi=blk.phi, in_frac_bits=xb, state_frac_bits=z_bits,
            alpha_m=alpha_m, alpha_shift=alpha_shift,
            beta=_round_int(blk.beta * 2.0 ** p, "input-sampler offset beta", l),
            decay_re=decay_re, decay_im=decay_im,
            b_re=b_m[:, :m], b_im=b_m[:, m:], b_exp=b_exp,
            c_re=c_m[:, :m], c_im=c_m[:, m:], c_shift=c_shift, d=d_m, d_exp=d_exp,
            b_out=_round_int(blk.b_out * 2.0 ** p, "output-sampler bias b_out", l),
            out_sign=blk.out_sign.astype(np.int64),
        )
        w_mix = blk.w_mix if qc.density is None else prune_to_density(blk.w_mix, qc.density)
        w_int, w_exp = quantize_weights(w_mix * 2.0 ** xb, qc.weight_bits)
        mixer = dict(n_in=w_int.shape[1], n_out=w_int.shape[0], weights=w_int, weight_exp=w_exp,
                     num_weight_bits=qc.weight_bits, num_message_bits=0)
        xb_next = x_bits[l + 1]
        post_m, post_exp = quantize_mantissa(blk.post_scale * 2.0 ** (xb_next - xb), qc.affine_bits)
        post_m, post_shift = _to_shift(post_m, post_exp)
        fuse = dict(
            layer=l, n=blk.alpha.size, psi=blk.psi, residual=blk.residual,
            bias=_round_int(blk.c_mix * 2.0 ** xb, "mixer bias", l),
            in_frac_bits=xb, out_frac_bits=xb_next,
            post_scale_m=post_m, post_shift=post_shift,
            post_offset=_round_int(blk.post_offset * 2.0 ** xb_next, "post-norm offset", l),
            residual_delay=1,
        )
        blocks.append(dict(neuron=neuron, mixer=mixer, fuse=fuse))
    acc_bits = frac_bits_for(float(np.abs(stats["acc"]).max()), hb)
    xb_out = x_bits[-1]
    w_r, w_r_exp = quantize_weights(folded.w_readout * 2.0 ** (acc_bits - xb_out), qc.weight_bits)
    readout = dict(
        synapse=dict(n_in=w_r.shape[1], n_out=w_r.shape[0], weights=w_r, weight_exp=w_r_exp,
                     num_weight_bits=qc.weight_bits, num_message_bits=STATE_BITS),
        integrator=dict(n=w_r.shape[0], bias=_round_int(folded.b_readout * 2.0 ** acc_bits, "readout bias",
                                                        n_layers)),
        acc_frac_bits=acc_bits,
    )
    return {"input": dict(n=folded.config.d_model, frac_bits=x_bits[0]), "blocks": blocks, "readout": readout}


UNIFORM_CHUNK = 32


def calibrate(folded: FoldedNetwork, x0: np.ndarray, qc: QuantConfig, lengths=None) -> dict:
    """Activation statistics of the folded float network on host-encoded calibration inputs."""
    from ..sim import kernels
    from ..sim.rng import uniform_float_block

    samples = np.arange(x0.shape[0])
    width = folded.config.d_model
    blocks: dict = {}  # site -> (t0, uniforms of steps t0 .. t0 + UNIFORM_CHUNK - 1)

    def uniforms(site, t):
        if not kernels.AVAILABLE:
            return uniform_float_block(qc.seed, site, width, t, qc.prob_bits, samples)
        # the same numbers as uniform_float_block, drawn UNIFORM_CHUNK steps at a time by the compiled kernel
        t0, block = blocks.get(site, (None, None))
        if t0 is None or not t0 <= t < t0 + block.shape[1]:
            for old in [k for k in blocks if k < site - 1]:
                del blocks[old]
            t0 = t
            steps = min(UNIFORM_CHUNK, x0.shape[1] - t)
            ints = kernels.random_block(qc.seed, site, width, steps, qc.prob_bits, samples, t0=t0)
            block = ints.astype(np.float64) * np.float64(2.0 ** -qc.prob_bits)
            blocks[site] = (t0, block)
        return block[:, t - t0]

    stats: dict = {}
    float_forward(folded, x0, uniforms, lengths=lengths, record=stats)
    return stats
