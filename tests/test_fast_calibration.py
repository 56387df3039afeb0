"""The faster calibration (in-place SSM update, maximum over a float view, uniforms drawn in blocks
by the compiled kernel) records exactly what the original step-by-step forward recorded, so the
exported netlists are identical."""

import numpy as np
import pytest
import torch

from pspike_neuro.models import ModelConfig
from pspike_neuro.quant import quantize
from pspike_neuro.quant.fold import activation_np, encode, fold_model
from pspike_neuro.quant.quantize import QuantConfig, calibrate, quantize_network
from pspike_neuro.sim import kernels
from pspike_neuro.sim.rng import uniform_float_block

from .conftest import trained_like


def original_float_forward(folded, x0, uniforms, lengths=None, record=None):
    """``quant.fold.float_forward`` as it was before the speed-up (commit 05ceab7), kept verbatim
    as the specification."""
    batch, length, _ = x0.shape
    valid = np.ones((batch, length), bool) if lengths is None else np.arange(length)[None] < lengths[:, None]
    x = x0
    for l, blk in enumerate(folded.blocks):
        z = np.zeros((batch,) + blk.lam.shape, complex)
        zmax = 0.0
        out = np.empty_like(x)
        vs = np.empty_like(x)
        for t in range(length):
            p_in = blk.alpha * x[:, t] + blk.beta
            s = (uniforms(4 * l, t) < p_in) & valid[:, t, None]
            z = blk.lam * z + blk.b_unit * s[..., None]
            zmax = max(zmax, float(np.abs(z.real).max(initial=0)), float(np.abs(z.imag).max(initial=0)))
            v = (blk.c * z).sum(-1).real + blk.d * s
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
    per_step = x @ folded.w_readout.T
    steps = valid.sum(1, keepdims=True)
    sums = (per_step * valid[..., None]).sum(1) + steps * folded.b_readout
    if record is not None:
        record["x_out"] = x
        record["acc"] = np.cumsum(per_step * valid[..., None] + folded.b_readout * valid[..., None], axis=1)
    return sums / steps


@pytest.mark.parametrize("kw", [dict(), dict(phi="relu", d_state=32), dict(residual=False, share_ab=True),
                                dict(d_model=40, n_layers=3, prenorm=False),
                                # 64 and 68 modes: numpy's pairwise sum in one block, and split in two
                                dict(d_state=128, n_layers=1), dict(d_state=136, n_layers=1)])
@pytest.mark.parametrize("padded", [False, True])
def test_calibration_records_exactly_what_the_original_forward_recorded(kw, padded):
    cfg = ModelConfig(**{**dict(d_model=24, d_state=8, n_layers=2), **kw})
    model = trained_like(cfg, seed=3)
    folded = fold_model(model)
    batch, length = 9, 45  # more steps than one block of uniforms
    x0 = encode(folded, torch.rand(batch, length, 1, generator=torch.Generator().manual_seed(4)))
    lengths = np.array([45, 3, 44, 20, 45, 1, 33, 45, 12]) if padded else None
    qc = QuantConfig(calib_samples=batch, seed=6)
    fast = calibrate(folded, x0, qc, lengths=lengths)
    spec: dict = {}
    uniforms = lambda site, t: uniform_float_block(6, site, cfg.d_model, t, qc.prob_bits, np.arange(batch))  # noqa: E731
    original_float_forward(folded, x0, uniforms, lengths=lengths, record=spec)
    assert fast.keys() == spec.keys()
    for key in spec:
        np.testing.assert_array_equal(np.asarray(fast[key]), np.asarray(spec[key]), err_msg=key)
    assert fast["z0_max"] > 0
    # hence the same integer network
    a, b = quantize_network(folded, fast, qc), quantize_network(folded, spec, qc)
    for blk_a, blk_b in zip(a["blocks"], b["blocks"]):
        for part in ("neuron", "mixer", "fuse"):
            for name, value in blk_a[part].items():
                np.testing.assert_array_equal(value, blk_b[part][name], err_msg=f"{part}.{name}")


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")
def test_calibration_is_the_same_without_the_kernel(monkeypatch):
    model = trained_like(ModelConfig(d_model=16, d_state=4, n_layers=2), seed=1)
    folded = fold_model(model)
    x0 = encode(folded, torch.rand(5, 70, 1, generator=torch.Generator().manual_seed(2)))
    qc = QuantConfig(calib_samples=5)
    with_kernel = calibrate(folded, x0, qc)
    monkeypatch.setattr(quantize, "UNIFORM_CHUNK", 7)
    chunked = calibrate(folded, x0, qc)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    without = calibrate(folded, x0, qc)
    for key in without:
        np.testing.assert_array_equal(np.asarray(with_kernel[key]), np.asarray(without[key]), err_msg=key)
        np.testing.assert_array_equal(np.asarray(chunked[key]), np.asarray(without[key]), err_msg=key)


def _numpy_uses_fma() -> bool:
    from numpy.core._multiarray_umath import __cpu_features__ as features

    return bool(features.get("FMA3") and features.get("AVX2"))


@pytest.mark.skipif(not (kernels.AVAILABLE and _numpy_uses_fma()),
                    reason="numpy multiplies complex numbers without FMA here; the fused step is not used")
@pytest.mark.parametrize("modes", [1, 2, 3, 4, 5, 8, 9, 31, 64, 65, 72, 129, 200, 300])
def test_fused_step_is_numpys_arithmetic_bit_for_bit(modes):
    """z = lam z (+ b where s), max |Re z|, |Im z|, (c z).sum(-1).real: numpy's fused multiply-adds
    and pairwise sum (every branch: < 4, one block of <= 64, halves above), and a NaN kept as NaN."""
    rng = np.random.default_rng(modes)
    cx = lambda *shape: rng.standard_normal(shape) + 1j * rng.standard_normal(shape)  # noqa: E731
    lam, b_unit, c = 0.9 * cx(6, modes), cx(6, modes), cx(6, modes)
    z = cx(4, 6, modes) * 10.0 ** rng.integers(-3, 6, (4, 6, modes))
    zr, zi = np.ascontiguousarray(z.real), np.ascontiguousarray(z.imag)
    params = kernels.calib_params(lam, b_unit, c)
    for step in range(3):
        s = rng.random((4, 6)) < 0.5
        z = lam * z
        np.add(z, b_unit, out=z, where=s[..., None])
        v = np.empty((4, 6))
        top = kernels.calib_step(zr, zi, params, s, v)
        assert np.array_equal(zr, z.real) and np.array_equal(zi, z.imag)
        assert np.array_equal(v, (c * z).sum(-1).real)
        assert top == max(np.abs(z.real).max(), np.abs(z.imag).max())
    zr[2, 3, modes - 1] = np.nan
    assert np.isnan(kernels.calib_step(zr, zi, params, s, v))
