"""Calibration and quantization: exponents, fake quantization, QAT, and the integer network's accuracy."""

import json

import numpy as np
import pytest
import torch

from pspike_neuro.cli import main
from pspike_neuro.errors import UserError
from pspike_neuro.export.build import build_netlist
from pspike_neuro.export.checkpoint import load_checkpoint
from pspike_neuro.numerics.fixed import frac_bits_for, lava_effective_weights, prune_to_density
from pspike_neuro.quant.qat import fake_quantized, lava_grid
from pspike_neuro.quant.quantize import QuantConfig
from pspike_neuro.sim.reference import simulate


def test_frac_bits_leave_the_requested_headroom():
    # max 1.0 with one spare bit: 2^21 * 1.0 * 2 <= 2^23 - 1 < 2^22 * 2
    assert frac_bits_for(1.0, 1) == 21
    assert frac_bits_for(3.0, 0) == 21   # 3 * 2^21 < 2^23
    assert frac_bits_for(5.0, 0) == 20
    assert frac_bits_for(0.0, 1) == 23 and frac_bits_for(2.0**30, 0, lo=-8) == -8


def test_prune_to_density_keeps_the_largest_magnitudes():
    w = np.array([[0.1, -3.0, 0.5], [2.0, -0.2, 0.05]])
    np.testing.assert_array_equal(prune_to_density(w, 0.5), [[0, -3.0, 0.5], [2.0, 0, 0]])
    np.testing.assert_array_equal(prune_to_density(w, 1.0), w)


def test_fake_quant_uses_lavas_grid_and_passes_gradients_straight_through(small_checkpoint):
    model = small_checkpoint.model
    w = model.blocks[0].mixer.weight
    q = lava_grid(w, 4).double().numpy()
    # 4-bit mixed-sign grid: multiples of one step, at most 2^4 + 1 distinct values
    step = np.min(np.abs(q[q != 0]))
    np.testing.assert_allclose(q / step, np.round(q / step))
    assert len(np.unique(q)) <= 2**4 + 1
    q = torch.from_numpy(q).float()
    with fake_quantized(model, 4):
        torch.testing.assert_close(model.blocks[0].mixer.weight, q)
        out = model(torch.rand(2, 8, 1)).sum()
        out.backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
    assert model.blocks[0].mixer.weight is w  # parametrization removed: the float weight is back


@pytest.mark.parametrize("bits", [8, 4])
def test_exported_synapse_weights_survive_lavas_truncation(small_checkpoint, bits):
    net, _ = build_netlist(small_checkpoint, QuantConfig(weight_bits=bits, calib_samples=16))
    for l in range(2):
        w = net.nodes[f"mixer{l}"].to_dense()
        np.testing.assert_array_equal(lava_effective_weights(w, bits), w)


def test_density_prunes_the_mixer(small_checkpoint):
    net, _ = build_netlist(small_checkpoint, QuantConfig(density=0.25, calib_samples=16))
    assert net.nodes["mixer0"].nnz <= 16  # 25 % of 8 x 8


def test_integer_network_tracks_the_folded_float_network(small_checkpoint):
    """Same random numbers: the integer network's logits follow the float ones closely."""
    from pspike_neuro.data import load_task

    qc = QuantConfig(calib_samples=32, ssm_bits=12, affine_bits=16)
    net, _ = build_netlist(small_checkpoint, qc)
    x0 = load_task("sdigits").test.x[:16].numpy()
    ref = simulate(net, x0, seed=0)
    fl = simulate(net, x0, seed=0, integer=False).scores  # the netlist's own float parameters
    acc_bits = net.nodes["readout"].acc_frac_bits
    int_logits = ref.logits / 2.0**acc_bits / 64  # accumulator over 64 steps -> mean
    # spikes can differ where |p - u| is below the quantization error, so compare in aggregate
    assert np.corrcoef(int_logits.ravel(), fl.ravel())[0, 1] > 0.95


def test_qat_fine_tunes_from_a_checkpoint(small_checkpoint, tmp_path, capsys):
    out = tmp_path / "qat"
    code = main(["train", "--init", str(small_checkpoint.path), "--qat", "--weight-bits", "4", "--epochs", "1",
                 "--out", str(out), "--eval-seeds", "1", "--json"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["qat_weight_bits"] == 4 and metrics["epochs"] == 1
    tuned = load_checkpoint(out / "model.pt")
    assert tuned.config == small_checkpoint.config
    assert not torch.equal(tuned.model.blocks[0].mixer.weight, small_checkpoint.model.blocks[0].mixer.weight)
    assert main(["eval", str(out / "model.pt"), "--seeds", "1", "--fake-quant", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fake_quant_bits"] == 4


def test_init_refuses_size_flags(small_checkpoint, tmp_path, capsys):
    assert main(["train", "--init", str(small_checkpoint.path), "--d-model", "16", "--out", str(tmp_path)]) == 2
    assert "model size comes from the checkpoint; drop --d-model" in capsys.readouterr().err


def test_quant_config_is_checked():
    with pytest.raises(UserError, match="--weight-bits must be in 1..8"):
        QuantConfig(weight_bits=0)
    with pytest.raises(UserError, match="ssm_bits"):
        QuantConfig(ssm_bits=1)


def test_saturation_is_counted_not_silent(small_checkpoint):
    from pspike_neuro.data import load_task

    net, report = build_netlist(small_checkpoint, QuantConfig(calib_samples=16))
    assert report["calibration_saturation_events"] == 0
    old = net.nodes["neuron0"]
    net.nodes["neuron0"] = type(old)("neuron0", {**old.values, "b_exp": 23}, old.floats)  # far too large inputs
    result = simulate(net, np.asarray(load_task("sdigits").test.x[:4]), seed=0)
    assert result.saturation["neuron0.state"] > 0
    assert result.saturation["neuron1.state"] == 0


def test_readout_c_has_one_shift_per_neuron():
    from pspike_neuro.numerics.fixed import per_row_shift

    c = np.array([[0.5, -0.25, 0.125], [0.001, 0.0005, -0.00025]])
    m, shifts = per_row_shift(c, 8)
    # each row uses its own 8-bit range: the small neuron is not rounded to zero
    np.testing.assert_array_equal(shifts, [7, 16])   # 0.5 / 2^-7 = 64; 0.001 * 2^16 = 65.5
    np.testing.assert_array_equal(m, [[64, -32, 16], [66, 33, -16]])
    np.testing.assert_allclose(m * 2.0 ** -shifts[:, None], c, rtol=0.025)  # half an LSB of 16-32


def test_exported_ssm_keeps_each_modes_dc_gain_and_c(small_checkpoint):
    """Dequantized netlist parameters against the folded float ones carried in the same file."""
    netlist, _ = build_netlist(small_checkpoint, QuantConfig(calib_samples=16))
    for l in range(small_checkpoint.config.n_layers):
        node = netlist.nodes[f"neuron{l}"]
        v, f = node.values, node.floats
        z, p = v["state_frac_bits"], v["prob_bits"]
        lam = f["lam_re"] + 1j * f["lam_im"]
        lam_q = (v["decay_re"] + 1j * v["decay_im"]) / 4096
        b = f["b_unit_re"] + 1j * f["b_unit_im"]
        b_q = (v["b_re"] + 1j * v["b_im"]) * 2.0 ** (v["b_exp"] - z)
        gain_err = np.abs(b_q / (1 - lam_q) / (b / (1 - lam)) - 1)
        assert gain_err.max() < 0.02  # 8-bit mantissa rounding only; the decay rounding is compensated
        c = f["c_re"] + 1j * f["c_im"]
        c_q = (v["c_re"] + 1j * v["c_im"]) * 2.0 ** (z - p - v["c_shift"][:, None].astype(float))
        assert v["c_shift"].shape == (node.n,)
        assert np.median(np.abs(c_q / c - 1)) < 0.02
