"""Calibration (the float graph run by the executor, the SSM update in one compiled pass, uniforms
drawn in blocks by the compiled kernel) records exactly what an independent step-by-step forward of
the folded network records, so the exported netlists are the ones that forward implies."""

import numpy as np
import pytest
import torch

from pspike_neuro.models import ModelConfig
from pspike_neuro.nodes import ssm_neuron
from pspike_neuro.numerics import kernels
from pspike_neuro.numerics.rng import uniform_float_block
from pspike_neuro.quant.fold import fold
from pspike_neuro.quant.quantize import QuantConfig, calibrate, quantize_graph

from .conftest import trained_like


def original_float_forward(graph, x0, uniforms, lengths=None):
    """The folded P-SpikeSSM stepped through time in plain numpy (as the forward was before the
    speed-ups, commit 05ceab7): the specification of the statistics calibration records."""
    relu = lambda name, v: np.maximum(v, 0.0) if name == "relu" else v  # noqa: E731
    batch, length, _ = x0.shape
    valid = np.ones((batch, length), bool) if lengths is None else np.arange(length)[None] < lengths[:, None]
    stats = {"input": {"out_max": float(np.abs(x0).max())}}
    x = x0
    l = 0
    while f"neuron{l}" in graph.nodes:
        nrn, mix, fuse = graph.nodes[f"neuron{l}"], graph.nodes[f"mixer{l}"], graph.nodes[f"fuse{l}"]
        f, g = nrn.floats, fuse.floats
        lam, b_unit, c = (f[k + "_re"] + 1j * f[k + "_im"] for k in ("lam", "b_unit", "c"))
        z = np.zeros((batch,) + lam.shape, complex)
        zmax = 0.0
        out = np.empty_like(x)
        for t in range(length):
            s = (uniforms(4 * l, t) < f["alpha"] * x[:, t] + f["beta"]) & valid[:, t, None]
            z = lam * z + b_unit * s[..., None]
            zmax = max(zmax, float(np.abs(z.real).max(initial=0)), float(np.abs(z.imag).max(initial=0)))
            v = (c * z).sum(-1).real + f["d"] * s
            o = uniforms(4 * l + 1, t) < f["out_sign"] * relu(nrn.phi, v) + f["b_out"]
            m = relu(fuse.psi, o @ mix.floats["weight"].T + g["bias"])
            y = x[:, t] + m if fuse.residual else m
            out[:, t] = g["post_scale"] * y + g["post_offset"]
        stats[f"neuron{l}"] = {"z_max": zmax}
        stats[f"fuse{l}"] = {"out_max": float(np.abs(out).max())}
        x = out
        l += 1
    per_step = x @ graph.nodes["readout_synapse"].floats["weight"].T + graph.nodes["readout"].floats["bias"]
    stats["readout"] = {"acc_max": float(np.abs(np.cumsum(per_step * valid[..., None], axis=1)).max())}
    return stats


@pytest.mark.parametrize("kw", [dict(), dict(phi="relu", d_state=32), dict(residual=False, share_ab=True),
                                dict(d_model=40, n_layers=3, prenorm=False),
                                # 64 and 68 modes: numpy's pairwise sum in one block, and split in two
                                dict(d_state=128, n_layers=1), dict(d_state=136, n_layers=1)])
@pytest.mark.parametrize("padded", [False, True])
def test_calibration_records_exactly_what_the_original_forward_recorded(kw, padded):
    cfg = ModelConfig(**{**dict(d_model=24, d_state=8, n_layers=2), **kw})
    graph = fold(trained_like(cfg, seed=3))
    batch, length = 9, 45  # more steps than one block of uniforms
    x = torch.rand(batch, length, 1, generator=torch.Generator().manual_seed(4)).numpy()
    enc = graph.nodes["input"].floats
    x0 = x.astype(np.float64) @ enc["encoder_weight"].T + enc["encoder_bias"]
    lengths = np.array([45, 3, 44, 20, 45, 1, 33, 45, 12]) if padded else None
    qc = QuantConfig(calib_samples=batch, seed=6)
    fast = calibrate(graph, x, qc, lengths=lengths)
    uniforms = lambda site, t: uniform_float_block(6, site, cfg.d_model, t, qc.prob_bits, np.arange(batch))  # noqa: E731
    spec = original_float_forward(graph, x0, uniforms, lengths=lengths)
    assert {k: v for k, v in fast.items() if v} == spec
    assert fast["neuron0"]["z_max"] > 0
    # hence the same integer network
    a, b = quantize_graph(graph, fast, qc), quantize_graph(graph, spec, qc)
    for name in a:
        for key, value in a[name].values.items():
            np.testing.assert_array_equal(value, b[name].values[key], err_msg=f"{name}.{key}")


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")
def test_calibration_is_the_same_without_the_kernel(monkeypatch):
    graph = fold(trained_like(ModelConfig(d_model=16, d_state=4, n_layers=2), seed=1))
    x = torch.rand(5, 70, 1, generator=torch.Generator().manual_seed(2)).numpy()
    qc = QuantConfig(calib_samples=5)
    with_kernel = calibrate(graph, x, qc)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    monkeypatch.setattr(kernels, "calib_step_matches_numpy", lambda: False)
    monkeypatch.setattr(ssm_neuron, "USE_KERNELS", False)
    without = calibrate(graph, x, qc)
    assert with_kernel == without and with_kernel["neuron1"]["z_max"] > 0


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
    for _ in range(3):
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
