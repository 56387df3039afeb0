"""Fold a trained float P-SpikeSSM into the per-layer affine form the integer network uses.

Folding is exact in float arithmetic (docs/numerics.md §3):

* input sampler: ``p_in = alpha * x + beta`` (pre-BatchNorm and ``a_in, b_in`` merged);
* SSM neuron: modes rescaled so that ``|Bbar| = 1``; the readout ``C' = 2 |a_out| C |Bbar|``,
  ``D' = |a_out| D`` gives ``q = sign * phi(Re(sum C' z') + D' s) + b_out`` directly in
  probability units (``sign = sign(a_out)``, which only matters for phi = relu; for identity the
  sign is folded into C' and D' and ``sign = 1``);
* ClampFuse: ``x_next = post_scale * (x + psi(W o + c)) + post_offset`` (post-BatchNorm folded; the
  identity for pre-norm models);
* final norm and mean-pool readout: ``logits = W_r' mean_t(x_M) + b_r'``.

What the integer path cannot represent is refused here with a message naming the layer and fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError
from ..models import ModelConfig, PSpikeSSM
from ..models.pspike import SequenceNorm
from ..sim import kernels


@dataclass
class FoldedBlock:
    alpha: np.ndarray        # (H,)
    beta: np.ndarray         # (H,)
    lam: np.ndarray          # (H, M) complex, discrete decays
    b_unit: np.ndarray       # (H, M) complex, Bbar / |Bbar|
    c: np.ndarray            # (H, M) complex, readout into probability units
    d: np.ndarray            # (H,)
    b_out: np.ndarray        # (H,)
    out_sign: np.ndarray     # (H,) +-1
    phi: str
    w_mix: np.ndarray        # (H, H)
    c_mix: np.ndarray        # (H,)
    psi: str
    residual: bool
    post_scale: np.ndarray   # (H,)
    post_offset: np.ndarray  # (H,)


@dataclass
class FoldedNetwork:
    config: ModelConfig
    encoder: torch.nn.Module  # stays on the host
    blocks: list[FoldedBlock]
    w_readout: np.ndarray     # (classes, H)
    b_readout: np.ndarray     # (classes,)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _batchnorm_affine(norm: SequenceNorm, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``BN(x) = scale * x + offset`` at inference; the identity when there is no norm."""
    if norm.kind == "none":
        return np.ones(width), np.zeros(width)
    bn = norm.norm
    inv_std = 1.0 / np.sqrt(_np(bn.running_var) + bn.eps)
    gamma = _np(bn.weight) if bn.affine else np.ones(width)
    shift = _np(bn.bias) if bn.affine else np.zeros(width)
    scale = gamma * inv_std
    return scale, shift - scale * _np(bn.running_mean)


def check_deployable(cfg: ModelConfig) -> None:
    """Refuse, with one line naming the layer and the fix, what the integer path cannot carry."""
    if cfg.bidirectional:
        raise UserError("layer 0: bidirectional blocks are not causal and cannot stream on chip; "
                        "retrain without --bidirectional")
    if cfg.norm == "layer":
        raise UserError("layer 0: LayerNorm needs a mean and variance across neurons every step, which "
                        "the integer path cannot represent; retrain with --norm batch")
    if cfg.phi == "gelu":
        raise UserError("layer 0: phi=gelu (after the SSM) has no integer form; retrain with --phi identity "
                        "or --phi relu")
    if cfg.psi == "gelu":
        raise UserError("layer 0: psi=gelu (after the SpikeMixer) has no integer form; retrain with "
                        "--psi identity or --psi relu")
    if cfg.sampler != "stochastic":
        raise UserError(f"layer 0: sampler={cfg.sampler} is the float LIF baseline, not a P-SpikeSSM; "
                        "export a model trained with --sampler stochastic")


def fold_model(model: PSpikeSSM) -> FoldedNetwork:
    cfg = model.cfg
    check_deployable(cfg)
    h = cfg.d_model
    blocks = []
    with torch.no_grad():
        for block in model.blocks:
            pre_scale, pre_offset = _batchnorm_affine(block.norm_pre, h)
            a_in, b_in = _np(block.a_in), _np(block.b_in)
            lam, bbar, c = (t.detach().cpu().to(torch.complex128).numpy() for t in block.ssm.discrete())
            mag = np.abs(bbar)
            if np.any(mag == 0):
                raise UserError(f"layer {block.layer}: an SSM mode has Bbar = 0 and receives no input; "
                                "retrain or prune the mode")
            a_out = _np(block.a_out)
            if cfg.phi == "relu":
                sign, gain = np.where(a_out < 0, -1.0, 1.0), np.abs(a_out)
            else:
                sign, gain = np.ones(h), a_out
            post_scale, post_offset = _batchnorm_affine(block.norm_post, h)
            blocks.append(FoldedBlock(
                alpha=a_in * pre_scale, beta=a_in * pre_offset + b_in,
                lam=lam, b_unit=bbar / mag, c=2 * gain[:, None] * c * mag, d=gain * _np(block.ssm.D),
                b_out=_np(block.b_out), out_sign=sign, phi=cfg.phi,
                w_mix=_np(block.mixer.weight), c_mix=_np(block.mixer.bias), psi=cfg.psi,
                residual=cfg.residual, post_scale=post_scale, post_offset=post_offset,
            ))
        fin_scale, fin_offset = _batchnorm_affine(model.final_norm, h)
        w_r, b_r = _np(model.readout.weight), _np(model.readout.bias)
    return FoldedNetwork(config=cfg, encoder=model.encoder, blocks=blocks,
                         w_readout=w_r * fin_scale[None, :], b_readout=w_r @ fin_offset + b_r)


def encode(folded: FoldedNetwork, x: torch.Tensor) -> np.ndarray:
    """Host-side encoder output (B, L, H) in float64."""
    with torch.no_grad():
        return _np(folded.encoder(x))


def activation_np(name: str, v: np.ndarray) -> np.ndarray:
    return np.maximum(v, 0.0) if name == "relu" else v


def float_forward(folded: FoldedNetwork, x0: np.ndarray, uniforms, lengths=None, record=None) -> np.ndarray:
    """Step-by-step float forward of the folded network; returns logits (B, classes).

    ``uniforms(site, t) -> (B, H)`` supplies the uniform numbers (common random numbers).
    ``record``, if a dict, receives per-layer arrays of the quantities calibration needs:
    ``x{l}`` (B, L, H) block inputs, ``z{l}_max`` max |Re|, |Im| of the state, ``v{l}``
    pre-clamp output-sampler values, ``acc`` the readout sums.
    """
    batch, length, _ = x0.shape
    valid = np.ones((batch, length), bool) if lengths is None else np.arange(length)[None] < lengths[:, None]
    x = x0
    # one compiled pass per step where it reproduces numpy's arithmetic on this machine (checked once)
    fused = kernels.calib_step_matches_numpy()
    for l, blk in enumerate(folded.blocks):
        state_shape = (batch,) + blk.lam.shape
        zmax = 0.0
        out = np.empty_like(x)
        vs = np.empty_like(x)
        if fused:
            zr, zi = np.zeros(state_shape), np.zeros(state_shape)
            params = kernels.calib_params(blk.lam, blk.b_unit, blk.c)
            v_ssm = np.empty((batch, state_shape[1]))
        else:
            z = np.zeros(state_shape, complex)
            z_parts = z.view(np.float64)  # real and imaginary parts side by side, for the maximum
            cz = np.empty_like(z)  # c * z, written in place each step (no 16 MB allocation per step)
            fast = kernels.AVAILABLE and z.size > 0
            b_parts = np.ascontiguousarray(blk.b_unit, complex).view(np.float64)
        for t in range(length):
            p_in = blk.alpha * x[:, t] + blk.beta
            s = (uniforms(4 * l, t) < p_in) & valid[:, t, None]
            if fused:  # the numpy lines below, fused into one pass over the state
                zmax = max(zmax, kernels.calib_step(zr, zi, params, s, v_ssm))
                v = v_ssm + blk.d * s
            else:
                # z = lam z + b_unit s, computed in place: the same products and sums, with b_unit added
                # only where s is 1 (adding b_unit * 0 could only change the sign of a zero) -- 4x faster
                np.multiply(blk.lam, z, out=z)
                if fast:  # the same element-wise IEEE additions, compiled
                    kernels.add_rows_where(z_parts, b_parts, s)
                else:
                    np.add(z, blk.b_unit, out=z, where=s[..., None])
                if z_parts.size:  # max |Re z|, |Im z| (exact, whatever the order)
                    zmax = max(zmax, kernels.max_abs(z_parts) if fast
                               else max(float(z_parts.max()), -float(z_parts.min())))
                v = np.multiply(blk.c, z, out=cz).sum(-1).real + blk.d * s
            vs[:, t] = v
            q = blk.out_sign * activation_np(blk.phi, v) + blk.b_out
            o = uniforms(4 * l + 1, t) < q
            m = activation_np(blk.psi, o @ blk.w_mix.T + blk.c_mix)
            y = x[:, t] + m if blk.residual else m
            out[:, t] = blk.post_scale * y + blk.post_offset
        if record is not None:
            record[f"x{l}"] = x
            record[f"z{l}_max"] = zmax
            record[f"v{l}"] = vs
        x = out
    per_step = x @ folded.w_readout.T  # (B, L, classes)
    steps = valid.sum(1, keepdims=True)
    sums = (per_step * valid[..., None]).sum(1) + steps * folded.b_readout
    if record is not None:
        record["x_out"] = x
        record["acc"] = np.cumsum(per_step * valid[..., None] + folded.b_readout * valid[..., None], axis=1)
    return sums / steps
