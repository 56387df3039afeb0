"""Calibration and quantization: exponents, fake quantization, QAT, and the integer network's accuracy."""

import copy
import json

import numpy as np
import pytest
import torch

from pspike_neuro.cli import main
from pspike_neuro.errors import UserError
from pspike_neuro.export.build import build_netlist
from pspike_neuro.export.checkpoint import load_checkpoint
from pspike_neuro.numerics.fixed import frac_bits_for, lava_effective_weights, prune_to_density
from pspike_neuro.quant.qat import fake_quantized, lava_grid, synaptic_layers
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
    model = copy.deepcopy(small_checkpoint.model)
    w = model.blocks[0].mixer.weight
    q = lava_grid(w, 4).double().numpy()
    # 4-bit mixed-sign grid (docs/numerics.md, Lava drops 9 - 4 = 5 bits): mantissas k * 32, k in [-8, 7],
    # times 2^e with the smallest e whose rounding fits, written out independently of quantize_weights
    w64 = w.detach().double().numpy()
    e = next(e for e in range(-40, 40) if -8 <= np.rint(w64 / 2.0**e / 32).min() and np.rint(w64 / 2.0**e / 32).max() <= 7)
    np.testing.assert_array_equal(q, np.rint(w64 / 2.0**e / 32) * 32 * 2.0**e)
    assert len(np.unique(q)) >= 8     # the grid is used, not collapsed onto a few values
    x = torch.rand(2, 8, 1, generator=torch.Generator().manual_seed(0))

    def noise(site, shape, device, dtype):
        return torch.rand(shape, generator=torch.Generator().manual_seed(site), dtype=dtype)

    with fake_quantized(model, 4):
        torch.testing.assert_close(model.blocks[0].mixer.weight, torch.from_numpy(q).float(), rtol=0, atol=0)
        model(x, noise=noise).sum().backward()
    assert model.blocks[0].mixer.weight is w  # parametrization removed: the float weight is back
    straight_through = w.grad.clone()
    # the same forward with the grid values put in as plain weights: its gradient is what w received
    model.zero_grad()
    with torch.no_grad():
        for layer in synaptic_layers(model):
            layer.weight.copy_(lava_grid(layer.weight, 4))
    model(x, noise=noise).sum().backward()
    assert straight_through.abs().sum() > 0
    torch.testing.assert_close(straight_through, w.grad, rtol=0, atol=0)


@pytest.mark.parametrize("bits", [8, 4])
def test_exported_synapse_weights_survive_lavas_truncation(small_checkpoint, bits):
    net, _ = build_netlist(small_checkpoint, QuantConfig(weight_bits=bits, calib_samples=16))
    for l in range(2):
        w = net.nodes[f"mixer{l}"].to_dense()
        np.testing.assert_array_equal(lava_effective_weights(w, bits), w)


def test_density_prunes_the_mixer(small_checkpoint):
    """--density 0.25 keeps exactly the 16 largest-magnitude of each 8 x 8 mixer's float weights, with
    their signs and values (to half a grid step, in the residual stream's units); every other is dropped."""
    net, _ = build_netlist(small_checkpoint, QuantConfig(density=0.25, calib_samples=16))
    for l in range(2):
        name, node = f"mixer{l}", net.nodes[f"mixer{l}"]
        w = node.floats["weight"] * 2.0 ** net.nodes[f"fuse{l}"].in_frac_bits  # spikes in, the residual's units out
        assert node.nnz == 16  # 25 % of 8 x 8
        largest = np.argsort(-np.abs(w), axis=None)[:16]
        kept = np.zeros(w.size, bool)
        kept[largest] = True
        dense = node.to_dense()
        np.testing.assert_array_equal(dense.ravel() != 0, kept, err_msg=name)
        np.testing.assert_array_equal(np.sign(dense.ravel()[kept]), np.sign(w.ravel()[kept]))
        step = 2.0 ** node.weight_exp * 2  # mixed signs: even mantissas
        assert np.abs(dense * 2.0 ** node.weight_exp - np.where(kept.reshape(w.shape), w, 0)).max() <= step / 2


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
    # spikes can differ where |p - u| is below the quantization error; measured: 1 of 8192 differs and the
    # largest logit error is 0.003 (logits spread 0.19): a wrong scale or offset would be far outside 0.01
    np.testing.assert_allclose(int_logits, fl, rtol=0, atol=0.01)
    np.testing.assert_array_equal(ref.predictions, fl.argmax(-1))


def test_qat_fine_tunes_from_a_checkpoint(small_checkpoint, tmp_path, capsys):
    out = tmp_path / "qat"
    code = main(["train", "--init", str(small_checkpoint.path), "--qat", "--weight-bits", "2", "--epochs", "1",
                 "--out", str(out), "--eval-seeds", "1", "--json"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["qat_weight_bits"] == 2 and metrics["epochs"] == 1
    tuned = load_checkpoint(out / "model.pt")
    assert tuned.config == small_checkpoint.config
    # fine-tuned from the checkpoint, not from a fresh initialization (affines 1 and 0, where the checkpoint's
    # are spread over [-1.5, 1.5]): 23 AdamW steps of lr 4e-3 move each parameter by about 0.1 at most
    start, end = dict(small_checkpoint.model.named_parameters()), dict(tuned.model.named_parameters())
    moved = max(float((end[k] - start[k]).abs().max()) for k in start if k.split(".")[-1] in ("a_in", "a_out", "b_in", "b_out"))
    assert 0 < moved < 0.1
    # the accuracy training reports is the 2-bit fake-quantized model's (inference seed 0), as eval computes
    # it, and not the float model's (which differs here)
    accuracy = {}
    for bits in ([], ["--fake-quant", "2"]):
        assert main(["eval", str(out / "model.pt"), "--seeds", "1", "--json", *bits]) == 0
        accuracy[bool(bits)] = json.loads(capsys.readouterr().out)["test_accuracy"]
    assert metrics["test_accuracy"] == accuracy[True] != accuracy[False]


def test_init_refuses_size_flags(small_checkpoint, tmp_path, capsys):
    assert main(["train", "--init", str(small_checkpoint.path), "--d-model", "16", "--out", str(tmp_path)]) == 2
    assert "model size comes from the checkpoint; drop --d-model" in capsys.readouterr().err


def test_quant_config_is_checked():
    with pytest.raises(UserError, match="--weight-bits must be in 1..8"):
        QuantConfig(weight_bits=0)
    with pytest.raises(UserError, match="ssm_bits"):
        QuantConfig(ssm_bits=1)


def _state_saturations(node, s_in):
    """docs/numerics.md §3 step 2 written out in numpy: run the SSM states on the recorded input
    spikes and count the state words (real and imaginary parts) that ``sat(., 24)`` clips."""
    v, limit = node.values, 2**23 - 1
    lr, li = v["decay_re"].astype(np.int64), v["decay_im"].astype(np.int64)
    br, bi = v["b_re"].astype(np.int64) * 2 ** v["b_exp"], v["b_im"].astype(np.int64) * 2 ** v["b_exp"]
    trunc12 = lambda a: np.sign(a) * (np.abs(a) // 4096)  # noqa: E731 - shr_trunc(a, 12), rounding toward 0
    zr = zi = np.zeros(s_in.shape[:1] + lr.shape, np.int64)
    clipped = 0
    for t in range(s_in.shape[1]):
        s = s_in[:, t, :, None].astype(np.int64)
        new_r = trunc12(lr * zr) - trunc12(li * zi) + s * br
        new_i = trunc12(li * zr) + trunc12(lr * zi) + s * bi
        clipped += int(np.count_nonzero(np.abs(new_r) > limit) + np.count_nonzero(np.abs(new_i) > limit))
        zr, zi = np.clip(new_r, -limit, limit), np.clip(new_i, -limit, limit)
    return clipped


def test_saturation_is_counted_not_silent(small_checkpoint):
    from pspike_neuro.data import load_task

    net, report = build_netlist(small_checkpoint, QuantConfig(calib_samples=16))
    assert report["calibration_saturation_events"] == 0
    x = np.asarray(load_task("sdigits").test.x[:4])
    normal = simulate(net, x, seed=0)
    assert normal.saturation["neuron0.state"] == _state_saturations(net.nodes["neuron0"],
                                                                    normal.records["neuron0"]["s_in"]) == 0
    old = net.nodes["neuron0"]
    net.nodes["neuron0"] = type(old)("neuron0", {**old.values, "b_exp": 23}, old.floats)  # far too large inputs
    result = simulate(net, x, seed=0)
    expected = _state_saturations(net.nodes["neuron0"], result.records["neuron0"]["s_in"])
    assert expected > 1000   # most input spikes push a state word past 2^23 - 1
    assert result.saturation["neuron0.state"] == expected
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
