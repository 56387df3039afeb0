"""Bit-exact reference simulator of the integer network (docs/numerics.md), in numpy.

The graph is feed-forward, so each population is simulated over the whole sequence before the
next one: the SSM neuron steps through time (its state is sequential), vectorized over batch,
neurons and modes; synapses, ClampFuse and the readout are vectorized over time too. Time here is
model time ``t``; in Lava, block ``l`` runs model time ``t`` at step ``t + l`` (docs/numerics.md §4),
which changes nothing in the values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from ..quant.fixed import STATE_BITS, SaturationCounter, rf_step, saturate, shift, shr_trunc, synaptic_input
from . import kernels
from .rng import uniform_int


STATE_LIMIT = 2 ** (STATE_BITS - 1) - 1
#: run the SSM populations with the compiled kernels of ``sim/kernels.py`` (numba) when available;
#: False keeps the numpy step loop below (the two give the same integers)
USE_KERNELS = kernels.AVAILABLE


def _get(rec, name):
    return rec[name] if isinstance(rec, dict) else getattr(rec, name)


@dataclass
class ReferenceResult:
    logits: np.ndarray                 # (B, classes) integer readout accumulators
    predictions: np.ndarray            # (B,)
    spikes_in: list = field(default_factory=list)   # per layer (B, L, H) bool: input-sampler spikes
    spikes_out: list = field(default_factory=list)  # per layer (B, L, H) bool: output-sampler spikes
    residual: list = field(default_factory=list)    # per layer (B, L, H) int64: stream entering the layer
    states: list = field(default_factory=list)      # per layer (B, L, H, M) complex int pairs if recorded
    saturation: dict = field(default_factory=dict)


def random_block(seed: int, site: int, n: int, length: int, prob_bits: int, samples: np.ndarray) -> np.ndarray:
    """P-bit uniform integers for every (sample, t, neuron) of one site, shape (B, L, n)."""
    return uniform_int(seed, site, np.arange(n)[None, None, :], np.arange(length)[None, :, None],
                       prob_bits, sample=np.asarray(samples)[:, None, None]).astype(np.int64)


class NeuronParams:
    """Integer parameters of one SSM population, unpacked once (int64) for the step function."""

    def __init__(self, nrn):
        self.layer, self.prob_bits = _get(nrn, "layer"), _get(nrn, "prob_bits")
        self.one = 1 << self.prob_bits
        self.site_in, self.site_out = _get(nrn, "site_in"), _get(nrn, "site_out")
        self.alpha_m = _get(nrn, "alpha_m").astype(np.int64)
        self.alpha_shift, self.beta = _get(nrn, "alpha_shift"), _get(nrn, "beta").astype(np.int64)
        self.dr, self.di = _get(nrn, "decay_re").astype(np.int64), _get(nrn, "decay_im").astype(np.int64)
        b_exp = _get(nrn, "b_exp")
        self.b_re = _get(nrn, "b_re").astype(np.int64) << b_exp
        self.b_im = _get(nrn, "b_im").astype(np.int64) << b_exp
        self.c_re, self.c_im = _get(nrn, "c_re").astype(np.int64), _get(nrn, "c_im").astype(np.int64)
        self.c_shift = np.asarray(_get(nrn, "c_shift"), np.int64)
        self.d_term = shift(_get(nrn, "d").astype(np.int64), _get(nrn, "d_exp"))
        self.b_out, self.sign = _get(nrn, "b_out").astype(np.int64), _get(nrn, "out_sign").astype(np.int64)
        self.relu = _get(nrn, "phi") == "relu"
        # float64 copies for the fast path; exact while every readout partial sum stays below 2^53
        c_max = float(max(np.abs(self.c_re).max(initial=0), np.abs(self.c_im).max(initial=0)))
        self.float_exact = c_max * 2.0**24 * self.dr.shape[1] < 2.0**53
        self.f_dr, self.f_di = self.dr / 4096.0, self.di / 4096.0
        self.f_b_re, self.f_b_im = self.b_re.astype(np.float64), self.b_im.astype(np.float64)
        self.f_c_re, self.f_c_im = self.c_re.astype(np.float64), self.c_im.astype(np.float64)
        self.f_c_scale = 2.0 ** -self.c_shift


def neuron_step(p: NeuronParams, x, r_in, r_out, valid, zr, zi):
    """One step of an SSM population (docs/numerics.md §3), vectorized over leading dimensions.

    ``x`` graded input (..., n); ``r_in``, ``r_out`` the P-bit random numbers of both samplers;
    ``valid`` (..., 1) masks input spikes past a sequence's length; ``zr, zi`` (..., n, M).
    Returns ``s, o, zr, zi, state_saturations, output_saturations``.
    """
    q_in = np.clip(shr_trunc(p.alpha_m * x, p.alpha_shift) + p.beta, 0, p.one)
    s = ((r_in < q_in) & valid).astype(np.int64)
    zr, zi, n_state = rf_step(zr, zi, p.dr, p.di, s[..., None] * p.b_re, s[..., None] * p.b_im)
    v = shr_trunc((p.c_re * zr - p.c_im * zi).sum(-1), p.c_shift) + s * p.d_term + p.b_out
    v, n_out = saturate(v)
    g = p.sign * np.maximum(v, 0) if p.relu else v
    o = r_out < np.clip(g, 0, p.one)
    return s.astype(bool), o, zr, zi, n_state, n_out


def _saturate_float(a: np.ndarray) -> tuple[np.ndarray, int]:
    limit = float(STATE_LIMIT)
    if np.abs(a).max(initial=0) <= limit:
        return a, 0
    return np.clip(a, -limit, limit), int(np.count_nonzero(np.abs(a) > limit))


def neuron_step_float(p: NeuronParams, x, r_in, r_out, valid, zr, zi):
    """:func:`neuron_step` computed in float64 on exactly representable integers (same results).

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
    v = np.trunc(acc * p.f_c_scale).astype(np.int64) + s * p.d_term + p.b_out
    v, n_out = saturate(v)
    g = p.sign * np.maximum(v, 0) if p.relu else v
    o = r_out < np.clip(g, 0, p.one)
    return s, o, zr, zi, n_r + n_i, n_out


def neuron_forward(nrn, x: np.ndarray, valid: np.ndarray, seed: int, samples: np.ndarray,
                   sat: SaturationCounter, record_states: bool = False, chunk: int = 32):
    """SSM neuron population over a sequence: graded ``x`` (B, L, H) -> spikes ``s``, ``o`` (B, L, H).

    Samples are processed ``chunk`` at a time so that the state arrays stay in cache.
    """
    p = NeuronParams(nrn)
    batch, length, n = x.shape
    m = p.dr.shape[1]
    if USE_KERNELS:  # compiled loops (sim/kernels.py), the same integers
        r_in = kernels.random_block(seed, p.site_in, n, length, p.prob_bits, samples)
        r_out = kernels.random_block(seed, p.site_out, n, length, p.prob_bits, samples)
        s_all, o_all, states, n_state_sat, n_v_sat = kernels.neuron_sequence(p, x, r_in=r_in, r_out=r_out,
                                                                             valid=valid,
                                                                             record_states=record_states)
        sat.add(f"layer{p.layer}.state", n_state_sat)
        sat.add(f"layer{p.layer}.output", n_v_sat)
        return s_all, o_all, states
    r_in = random_block(seed, p.site_in, n, length, p.prob_bits, samples)
    r_out = random_block(seed, p.site_out, n, length, p.prob_bits, samples)
    s_all = np.zeros((batch, length, n), bool)
    o_all = np.zeros((batch, length, n), bool)
    states = np.zeros((batch, length, n, m, 2), np.int64) if record_states else None
    n_state_sat = n_v_sat = 0
    step = neuron_step_float if p.float_exact else neuron_step
    for lo in range(0, batch, chunk):
        hi = min(batch, lo + chunk)
        zr = np.zeros((hi - lo, n, m), np.float64 if p.float_exact else np.int64)
        zi = np.zeros_like(zr)
        for t in range(length):
            s_all[lo:hi, t], o_all[lo:hi, t], zr, zi, n1, n2 = step(
                p, x[lo:hi, t], r_in[lo:hi, t], r_out[lo:hi, t], valid[lo:hi, t, None], zr, zi)
            n_state_sat += n1
            n_v_sat += n2
            if record_states:
                states[lo:hi, t, :, :, 0], states[lo:hi, t, :, :, 1] = zr, zi
    sat.add(f"layer{p.layer}.state", n_state_sat)
    sat.add(f"layer{p.layer}.output", n_v_sat)
    return s_all, o_all, states


def fuse_forward(fuse, x: np.ndarray, a: np.ndarray, sat: SaturationCounter) -> np.ndarray:
    """ClampFuse: ``sat(shr_trunc(post_m * (x + psi(a + bias)), post_shift) + post_offset)``."""
    m = a + _get(fuse, "bias")
    if _get(fuse, "psi") == "relu":
        m = np.maximum(m, 0)
    y = x + m if _get(fuse, "residual") else m
    y = shr_trunc(_get(fuse, "post_scale_m").astype(np.int64) * y, _get(fuse, "post_shift")) + _get(fuse, "post_offset")
    y, n_sat = saturate(y)
    sat.add(f"layer{_get(fuse, 'layer')}.residual", n_sat)
    return y


def readout_step(acc, a, bias, valid):
    """``acc <- sat(acc + a + bias)`` on valid steps; returns the new acc and its saturations."""
    nxt, _ = saturate(acc + a + bias)
    n_sat = int(np.count_nonzero(valid & (nxt != acc + a + bias)))
    return np.where(valid, nxt, acc), n_sat


def quantize_input(x0: np.ndarray, frac_bits: int, sat: SaturationCounter) -> np.ndarray:
    """Host encoder output (float) -> 24-bit graded input messages (values too large saturate, counted)."""
    x0 = np.asarray(x0, np.float64)
    if not np.all(np.isfinite(x0)):
        raise UserError(f"inputs: {int(np.count_nonzero(~np.isfinite(x0)))} value(s) are NaN or infinite")
    # clipped as floats first: a cast of 2^63 or more wraps (to a saturated value of the wrong sign)
    x, n_sat = saturate(np.rint(np.clip(x0 * 2.0 ** frac_bits, -2.0 ** 62, 2.0 ** 62)).astype(np.int64))
    sat.add("input", n_sat)
    return x


def simulate(net: dict, x0: np.ndarray, seed: int, samples=None, lengths=None,
             record_states: bool = False) -> ReferenceResult:
    """Run the integer network on host-encoded inputs ``x0`` (B, L, H) float."""
    batch, length, _ = x0.shape
    samples = np.arange(batch) if samples is None else np.asarray(samples)
    valid = np.ones((batch, length), bool) if lengths is None else np.arange(length)[None] < np.asarray(lengths)[:, None]
    sat = SaturationCounter()
    x = quantize_input(x0, _get(net["input"], "frac_bits"), sat)
    result = ReferenceResult(logits=None, predictions=None)
    for blk in net["blocks"]:
        s, o, states = neuron_forward(blk["neuron"], x, valid, seed, samples, sat, record_states)
        mixer = blk["mixer"]
        a = synaptic_input(_dense(mixer), o.reshape(batch * length, -1), _get(mixer, "weight_exp"), 0)
        result.spikes_in.append(s)
        result.spikes_out.append(o)
        result.residual.append(x)
        if record_states:
            result.states.append(states)
        if USE_KERNELS:
            x, n_sat = kernels.fuse(blk["fuse"], x, a.reshape(batch, length, -1))
            sat.add(f"layer{_get(blk['fuse'], 'layer')}.residual", n_sat)
        else:
            x = fuse_forward(blk["fuse"], x, a.reshape(batch, length, -1), sat)
    syn, integ = net["readout"]["synapse"], net["readout"]["integrator"]
    per_step = synaptic_input(_dense(syn), x.reshape(batch * length, -1), _get(syn, "weight_exp"),
                              _get(syn, "num_message_bits")).reshape(batch, length, -1)
    acc = np.zeros((batch, per_step.shape[-1]), np.int64)
    n_acc_sat = 0
    for t in range(length):
        acc, n_sat = readout_step(acc, per_step[:, t], _get(integ, "bias"), valid[:, t, None])
        n_acc_sat += n_sat
    sat.add("readout", n_acc_sat)
    result.logits, result.predictions = acc, acc.argmax(-1)
    result.saturation = sat.as_dict()
    return result


def _dense(syn) -> np.ndarray:
    if isinstance(syn, dict):
        return syn["weights"]
    return syn.to_dense()
