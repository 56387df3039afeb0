"""Numerical faults: each is refused with its reason, or detected, counted and reported."""

import copy
import json
import re

import numpy as np
import pytest
import torch

from pspike_neuro.cli import main
from pspike_neuro.data import load_task
from pspike_neuro.errors import UserError
from pspike_neuro.export.checkpoint import save_checkpoint
from pspike_neuro.export.hdf5 import read_netlist
from pspike_neuro.models import SNN, ModelConfig, SNNConfig
from pspike_neuro.nodes.graded_input import encode
from pspike_neuro.nodes.ssm_neuron import NeuronParams, step_int
from pspike_neuro.sim.reference import simulate

from ..conftest import trained_like
from ..test_quant import _state_saturations


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
    # 20 * 2^22 is about 8.4e7, beyond 2^23 - 1: the input-sampler offset beta, named with its layer, and the
    # largest --prob-bits at which an offset of about 20 fits: floor(log2((2^23 - 1) / 20.3)) = 18
    assert code == 2 and len(err.splitlines()) == 1
    assert re.search(r"layer 0: input-sampler offset beta overflows 24 bits after scaling \(max 8\.\d+e\+07\); "
                     r"the largest sampler offset is 20\.\d+ in probability units: export with --prob-bits 18 or "
                     r"lower, or retrain with smaller values$", err), err
    assert not (tmp_path / "m.net").exists()


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


LIMIT = 2**23 - 1


def _shift(a, e):
    """docs/numerics.md §1: ``a << e``, or an arithmetic (floor) right shift for a negative ``e``."""
    return a * 2**e if e >= 0 else a >> -e


def _fuse_by_hand(node, x, mixer, spikes):
    """A SpikeMixer and its ClampFuse (docs/numerics.md §3 steps 4-5) in numpy: the outputs and the number
    of values ``sat(., 24)`` clipped."""
    v = node.values
    m = _shift(spikes.astype(np.int64) @ mixer.to_dense().T, mixer.weight_exp) + v["bias"]
    m = np.maximum(m, 0) if v["psi"] == "relu" else m
    scaled = v["post_scale_m"].astype(np.int64) * (x + m if v["residual"] else m)
    pre = np.sign(scaled) * (np.abs(scaled) >> v["post_shift"]) + v["post_offset"]
    return np.clip(pre, -LIMIT, LIMIT), int(np.count_nonzero(np.abs(pre) > LIMIT))


def _readout_by_hand(net, x):
    """The readout synapse and ReadoutIntegrator (``acc = sat(acc + a + bias)`` every step) in numpy: the
    final accumulators and the number of steps and classes that saturated."""
    syn, bias = net.nodes["readout_synapse"], net.nodes["readout"].bias.astype(np.int64)
    a = _shift(x.astype(np.int64) @ syn.to_dense().T, syn.weight_exp)
    acc, clipped = np.zeros(a.shape[:1] + a.shape[2:], np.int64), 0
    for t in range(a.shape[1]):
        total = acc + a[:, t] + bias
        clipped += int(np.count_nonzero(np.abs(total) > LIMIT))
        acc = np.clip(total, -LIMIT, LIMIT)
    return acc, clipped


def _check_saturation_by_hand(net, result):
    """Every saturation count of a P-SpikeSSM run (2 blocks) equals one recomputed from its recorded spikes
    and messages with the equations of docs/numerics.md; returns the counts."""
    out, sat = result.outputs, result.saturation
    for l in range(2):
        fused, clipped = _fuse_by_hand(net.nodes[f"fuse{l}"], out["input" if l == 0 else "fuse0"], net.nodes[f"mixer{l}"],
                                       out[f"neuron{l}"])
        np.testing.assert_array_equal(out[f"fuse{l}"], fused)
        assert sat[f"fuse{l}.out"] == clipped
        assert sat[f"neuron{l}.state"] == _state_saturations(net.nodes[f"neuron{l}"], result.records[f"neuron{l}"]["s_in"])
    acc, clipped = _readout_by_hand(net, out["fuse1"])
    np.testing.assert_array_equal(result.logits, acc)   # saturated, never wrapped
    assert sat["readout.acc"] == clipped
    return sat


def test_saturating_states_are_counted_and_reported(robust_net, capsys):
    """Inputs 50x larger than calibration saturate the input messages, both residual joins and the readout
    accumulator; the SSM states and outputs do not (the input samplers clamp their probabilities, so a state
    sees at most one spike per step). Every count equals one recomputed here from docs/numerics.md."""
    net = read_netlist(robust_net)
    x = np.concatenate([np.full((1, 64, 1), 50.0), np.full((1, 64, 1), -50.0)])   # both signs
    result = simulate(net, x, seed=0)
    sat = _check_saturation_by_hand(net, result)
    enc = net.nodes["input"]   # the messages beyond 24 bits, counted independently from the encoder
    x0 = np.array([[50.0], [-50.0]]) * enc.floats["encoder_weight"][:, 0] + enc.floats["encoder_bias"]
    assert sat["input.out"] == 64 * int((np.abs(np.rint(x0 * 2.0 ** enc.frac_bits)) > 2**23 - 1).sum()) > 0
    assert min(sat["fuse0.out"], sat["fuse1.out"], sat["readout.acc"]) > 0
    assert sat["neuron0.state"] == sat["neuron0.output"] == sat["neuron1.state"] == sat["neuron1.output"] == 0
    normal = simulate(net, np.asarray(torch.rand(2, 64, 1)), seed=0)   # inputs in the calibration range
    assert _check_saturation_by_hand(net, normal) == dict.fromkeys(sat, 0)


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
    """5,000 steps (calibrated on 64): the readout accumulator runs into its 24-bit limit and stays there
    (saturated, never wrapped), and every saturation is counted, as recomputed from docs/numerics.md."""
    net = read_netlist(robust_net)
    x = torch.rand(1, 5000, 1, generator=torch.Generator().manual_seed(0))
    result = simulate(net, np.asarray(x), seed=1)
    assert result.spikes_out[0].shape == (1, 5000, 8)
    sat = _check_saturation_by_hand(net, result)
    assert sat["readout.acc"] > 1000 and np.abs(result.logits).max() == LIMIT


def test_zero_samples_and_too_many_samples_are_refused(robust_net, capsys):
    for n in ("0", "100000"):
        assert main(["simulate", str(robust_net), "--samples", n]) == 2
        assert "--samples must be in 1..360" in capsys.readouterr().err


def test_sums_beyond_lavas_int32_ports_are_refused(robust_net, capsys):
    from pspike_neuro.sim.lava_backend import check_int32_sums

    net = read_netlist(robust_net)
    check_int32_sums(net)   # as exported: fits
    # the readout synapse's worst case: every graded input at 2^23 - 1 on the row with the largest sum of
    # |weights|, shifted by weight_exp; the first exponent that takes it past 2^31 - 1 is refused, naming it
    syn = net.nodes["readout_synapse"]
    worst = int(np.abs(syn.to_dense()).sum(1).max()) * (2**23 - 1)
    shifted = {e: worst * 2**e if e >= 0 else worst >> -e for e in range(-24, 25)}
    first = min(e for e, v in shifted.items() if v > 2**31 - 1)
    assert syn.weight_exp < first
    syn.values["weight_exp"] = first - 1
    check_int32_sums(net)
    syn.values["weight_exp"] = first
    with pytest.raises(UserError, match=f"^synapse readout_synapse: its sums can reach {shifted[first]}, beyond the int32 "
                                        "output of Lava's synapses"):
        check_int32_sums(net)


PLACES = ["input.out", "neuron0.state", "neuron0.output", "fuse0.out", "neuron1.state", "neuron1.output", "fuse1.out",
          "readout.acc"]


def test_export_reports_calibration_saturation(small_checkpoint, capsys, tmp_path):
    """export --json runs the integer network on its calibration samples and reports every place's count:
    none for the calibrated model; for an encoder scaled by 1e30 (no 24-bit input format holds it) each
    encoded non-zero pixel saturates all 8 channels of the graded input."""
    assert main(["export", str(small_checkpoint.path), "-o", str(tmp_path / "m.net"), "--calib-samples", "8",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["calibration_saturation"] == dict.fromkeys(PLACES, 0) and summary["calibration_saturation_events"] == 0
    model = copy.deepcopy(small_checkpoint.model)
    with torch.no_grad():
        model.encoder.weight.mul_(1e30)
    save_checkpoint(tmp_path / "huge.pt", model, task="sdigits")
    assert main(["export", str(tmp_path / "huge.pt"), "-o", str(tmp_path / "huge.net"), "--calib-samples", "8",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    pixels = int(np.count_nonzero(load_task("sdigits").train.x[:8].numpy()))
    assert list(summary["calibration_saturation"]) == PLACES
    assert summary["calibration_saturation"]["input.out"] == 8 * pixels > 0
    assert summary["calibration_saturation_events"] == sum(summary["calibration_saturation"].values())
