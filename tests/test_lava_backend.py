"""The Lava process graph: bit-identical to the reference simulator in fixed point, equal to the
float model in floating point, equal to lava.proc.rf for one mode, and clean when it fails."""

import multiprocessing

import numpy as np
import pytest
import torch

from pspike_neuro.data import load_task
from pspike_neuro.errors import UserError
from pspike_neuro.export.hdf5 import read_netlist
from pspike_neuro.nodes import RunContext
from pspike_neuro.nodes.ssm_neuron import SSMNeuron
from pspike_neuro.numerics.rng import CounterNoise
from pspike_neuro.sim.lava_backend import run_lava
from pspike_neuro.sim.reference import simulate

from .lava_helpers import assert_same_run, rf_trajectory


@pytest.fixture(scope="module")
def deployed(trained_sdigits):
    ckpt, path = trained_sdigits
    net = read_netlist(path)
    x = load_task("sdigits").test.x[:8]
    return ckpt, net, x, np.asarray(x)


def test_fixed_point_lava_equals_reference_in_every_population_and_step(deployed):
    _, net, _, x0 = deployed
    ids = np.arange(8)
    ref = simulate(net, x0, seed=5, samples=ids, record_states=True)
    lava = run_lava(net, x0, ids, seed=5, record_states=True)
    assert_same_run(lava, ref, n_layers=2)
    assert ref.spikes_out[0].mean() > 0.01  # the comparison covers real activity


def test_samples_run_back_to_back_in_one_network_equal_the_reference(deployed):
    """Several samples per Lava network (reset at each process's own sample boundary), uneven
    chunks, shuffled sample ids and padded lengths: nothing leaks from one sample to the next."""
    _, net, _, x0 = deployed
    ids = np.array([7, 2, 30, 11, 5, 0, 19])
    lengths = np.array([64, 23, 64, 9, 41, 64, 1])
    xs = x0[:7]
    ref = simulate(net, xs, seed=3, samples=ids, lengths=lengths, record_states=True)
    calls = []
    lava = run_lava(net, xs, ids, seed=3, lengths=lengths, record_states=True, samples_per_network=3,
                    progress=calls.append)
    assert calls == [3, 3, 1]
    assert_same_run(lava, ref, n_layers=2)
    single = run_lava(net, xs[3:4], ids[3:4], seed=3, lengths=lengths[3:4])
    np.testing.assert_array_equal(single.logits, ref.logits[3:4])


def test_floating_point_lava_equals_float_model_under_common_random_numbers(deployed):
    ckpt, net, x, x0 = deployed
    model = ckpt.model.double()
    noise = CounterNoise(seed=5, prob_bits=16)
    probe = {}
    with torch.no_grad():
        model(x.double(), noise=lambda site, shape, dev, dt: noise(site, shape, dev, torch.float64), probe=probe)
    lava = run_lava(net, x.numpy(), np.arange(8), seed=5, tag="floating_pt")
    eps = 1e-9
    for l in range(2):
        for key, got in (("s_in", lava.spikes_in[l]), ("o", lava.spikes_out[l])):
            want = probe[f"layer{l}.{key}"].numpy().astype(bool)
            p = probe[f"layer{l}.{'p_in' if key == 's_in' else 'q'}"].numpy()
            site = 4 * l + (0 if key == "s_in" else 1)
            u = noise(site, p.shape, "cpu", torch.float64).numpy()
            differ = got != want
            assert np.all(np.abs(p - u)[differ] < eps), f"layer {l} {key}: {differ.sum()} spikes differ"


def test_one_mode_neuron_without_spiking_matches_lava_rf():
    """Input sampler always on (q_in = 2^P), one mode: the state follows lava.proc.rf exactly."""
    steps, b_re, b_im = 25, 3000, -1200
    (sin_d, cos_d), lava_states = rf_trajectory(steps, b_re, b_im, period=7.3, alpha=0.06, state_exp=0,
                                                decay_bits=12, vth=2**22)

    node = dict(layer=0, n=1, n_modes=1, in_frac_bits=0, state_frac_bits=0, prob_bits=16, site_in=0, site_out=1,
                phi="identity", alpha_m=np.zeros(1, np.int64),
                alpha_shift=0, beta=np.array([1 << 16]), decay_re=np.array([[cos_d]]), decay_im=np.array([[sin_d]]),
                b_re=np.array([[b_re]]), b_im=np.array([[b_im]]), b_exp=0, c_re=np.zeros((1, 1), np.int64),
                c_im=np.zeros((1, 1), np.int64), c_shift=np.zeros(1, np.int64), d=np.zeros(1, np.int64), d_exp=0,
                b_out=np.zeros(1, np.int64), out_sign=np.ones(1, np.int64))
    ctx = RunContext(seed=0, samples=np.zeros(1, np.int64), valid=np.ones((1, steps), bool), record_states=True)
    _, rec = SSMNeuron("neuron0", node).int_sequence({"in": np.zeros((1, steps, 1), np.int64)}, ctx)
    s, states = rec["s_in"], rec["state"]
    assert s.all()
    ours = [(int(states[0, t, 0, 0, 0]), int(states[0, t, 0, 0, 1])) for t in range(steps)]
    assert ours == lava_states
    assert len(set(ours)) > 20  # a real rotating, decaying trajectory


def test_a_failing_run_ends_with_a_clear_error_and_no_processes_left(deployed, monkeypatch):
    _, net, _, x0 = deployed
    real_step = SSMNeuron.int_step

    def failing(self, state, inputs, t, ctx):  # the Lava processes are forked: they inherit this
        if self.name == "neuron1" and t == 3:
            raise ValueError("a fault inside the step")
        return real_step(self, state, inputs, t, ctx)

    monkeypatch.setattr(SSMNeuron, "int_step", failing)
    with pytest.raises(UserError, match="sample 7 failed in neuron1: ValueError: a fault inside the step"):
        run_lava(net, x0[:1], np.array([7]), seed=0)
    assert multiprocessing.active_children() == []


def test_sums_beyond_lavas_int32_ports_are_refused(deployed):
    from pspike_neuro.sim.lava_backend import check_int32_sums

    _, net, _, x0 = deployed
    check_int32_sums(net)  # the calibrated network fits
    old = net.nodes["readout_synapse"].values["weight_exp"]
    net.nodes["readout_synapse"].values["weight_exp"] = 8
    # worst case: every graded input at 2^23 - 1 on the row with the largest sum of |weights|, shifted by 8
    worst = int(np.abs(net.nodes["readout_synapse"].to_dense()).sum(1).max()) * (2**23 - 1) * 2**8
    try:
        with pytest.raises(UserError, match=f"^synapse readout_synapse: its sums can reach {worst}, beyond the int32"):
            run_lava(net, x0[:1], np.arange(1), seed=0)
    finally:
        net.nodes["readout_synapse"].values["weight_exp"] = old
