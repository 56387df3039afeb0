"""Numerical faults: each is refused with its reason, or detected, counted and reported."""

import json

import numpy as np
import pytest
import torch

from pspike_neuro.cli import main
from pspike_neuro.errors import UserError
from pspike_neuro.export.checkpoint import save_checkpoint
from pspike_neuro.export.hdf5 import read_netlist
from pspike_neuro.models import SNN, ModelConfig, SNNConfig
from pspike_neuro.nodes.graded_input import encode
from pspike_neuro.nodes.ssm_neuron import NeuronParams, step_int
from pspike_neuro.sim.reference import simulate

from ..conftest import trained_like


def _export_error(tmp_path, capsys, model, task="sdigits", *flags):
    save_checkpoint(tmp_path / "m.pt", model, task=task)
    code = main(["export", str(tmp_path / "m.pt"), "-o", str(tmp_path / "m.net"), "--calib-samples", "8", *flags])
    err = capsys.readouterr().err.strip()
    return code, err


def test_a_bias_that_overflows_24_bits_is_refused(tmp_path, capsys):
    model = trained_like(ModelConfig(d_model=8, d_state=4, n_layers=1))
    with torch.no_grad():
        model.blocks[0].b_out.fill_(1e4)       # 1e4 * 2^16 is far beyond 2^23
    code, err = _export_error(tmp_path, capsys, model)
    assert code == 2 and "b_out overflows 24 bits" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.net").exists()


def test_probability_bits_that_push_offsets_past_24_bits_are_refused(tmp_path, capsys):
    model = trained_like(ModelConfig(d_model=8, d_state=4, n_layers=1))
    with torch.no_grad():
        model.blocks[0].b_in.fill_(20.0)
    code, err = _export_error(tmp_path, capsys, model, "sdigits", "--prob-bits", "22")
    assert code == 2 and "overflows 24 bits" in err and "--prob-bits" in err


def test_a_silif_adaptation_that_does_not_fit_is_refused(tmp_path, capsys):
    torch.manual_seed(0)
    model = SNN(SNNConfig(d_input=32, d_hidden=4)).eval()
    with torch.no_grad():
        model.layers[0].norm.bias.fill_(1e9)    # an input offset no 24-bit state can hold
    code, err = _export_error(tmp_path, capsys, model, "sdigits-spikes")
    assert code == 2 and "layer 0: the BatchNorm offset overflows 24 bits after scaling" in err


def test_weight_bits_outside_lavas_range_are_refused(small_checkpoint, tmp_path, capsys):
    for bits in ("0", "9"):
        assert main(["export", str(small_checkpoint.path), "-o", str(tmp_path / "m.net"), "--weight-bits", bits]) == 2
        assert "--weight-bits must be in 1..8" in capsys.readouterr().err


def test_saturating_states_are_counted_and_reported(robust_net, capsys):
    """Inputs 50x larger than calibration saturate states and readout: counted per place, in the JSON."""
    net = read_netlist(robust_net)
    x = torch.full((2, 64, 1), 50.0)
    result = simulate(net, np.asarray(x), seed=0)
    assert sum(result.saturation.values()) > 0
    assert set(result.saturation) >= {"input.out", "neuron0.state", "neuron0.output", "readout.acc"}
    enc = net.nodes["input"]   # the messages beyond 24 bits, counted independently from the encoder
    x0 = 50.0 * enc.floats["encoder_weight"][:, 0] + enc.floats["encoder_bias"]
    assert result.saturation["input.out"] == 2 * 64 * int((np.abs(np.rint(x0 * 2.0 ** enc.frac_bits)) > 2**23 - 1).sum())
    assert result.saturation["input.out"] > 0
    normal = simulate(net, np.asarray(torch.rand(2, 64, 1)), seed=0)
    assert sum(normal.saturation.values()) < sum(result.saturation.values())


def test_probabilities_outside_zero_one_are_clamped_by_the_sampler():
    """By design (the model's own clamp, not an error): q >= 2^P always spikes, q <= 0 never does."""
    one = 1 << 16
    node = dict(layer=0, n=2, n_modes=1, prob_bits=16, site_in=0, site_out=1, phi="identity",
                alpha_m=np.zeros(2, np.int64),
                alpha_shift=0, beta=np.array([one + 5000, -5000]), decay_re=np.zeros((2, 1)), decay_im=np.zeros((2, 1)),
                b_re=np.zeros((2, 1)), b_im=np.zeros((2, 1)), b_exp=0, c_re=np.zeros((2, 1), np.int64),
                c_im=np.zeros((2, 1), np.int64), c_shift=np.zeros(2, np.int64), d=np.zeros(2, np.int64), d_exp=0,
                b_out=np.array([3 * one, -one]), out_sign=np.ones(2, np.int64))
    p = NeuronParams(node)
    r = np.array([[one - 1, 0]])   # neuron 0 gets the largest random number, neuron 1 the smallest
    z = np.zeros((1, 2, 1), np.int64)
    s, o, *_ = step_int(p, np.zeros((1, 2), np.int64), r, r, np.ones((1, 1), bool), z, z)
    assert s.tolist() == [[True, False]] and o.tolist() == [[True, False]]


@pytest.mark.parametrize("x, message", [
    (torch.zeros(1, 0, 1), "at least one time step"),
    (torch.full((1, 8, 1), float("nan")), "NaN or infinite"),
    (torch.full((1, 8, 1), float("inf")), "NaN or infinite"),
    (torch.zeros(1, 8, 3), "features per step"),
])
def test_bad_inputs_are_refused(robust_net, x, message):
    with pytest.raises(UserError, match=message):
        encode(read_netlist(robust_net).nodes["input"], x.numpy())


def test_very_long_inputs_run_and_report(robust_net):
    net = read_netlist(robust_net)
    x = torch.rand(1, 5000, 1)
    result = simulate(net, np.asarray(x), seed=1)
    assert result.spikes_out[0].shape == (1, 5000, 8)
    assert np.all(np.abs(result.logits) <= 2**23 - 1)   # 24-bit accumulators: saturated, not wrapped
    assert isinstance(result.saturation["readout.acc"], int)


def test_zero_samples_and_too_many_samples_are_refused(robust_net, capsys):
    for n in ("0", "100000"):
        assert main(["simulate", str(robust_net), "--samples", n]) == 2
        assert "--samples must be in 1..360" in capsys.readouterr().err


def test_sums_beyond_lavas_int32_ports_are_refused(robust_net, capsys):
    from pspike_neuro.sim.lava_backend import check_int32_sums

    net = read_netlist(robust_net)
    net.nodes["readout_synapse"].values["weight_exp"] = 24   # worst-case sum far beyond 2^31
    with pytest.raises(UserError, match="beyond the int32 output of Lava's synapses"):
        check_int32_sums(net)


def test_export_reports_calibration_saturation(small_checkpoint, capsys, tmp_path):
    assert main(["export", str(small_checkpoint.path), "-o", str(tmp_path / "m.net"), "--calib-samples", "8",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["calibration_saturation_events"] == sum(summary["calibration_saturation"].values())
