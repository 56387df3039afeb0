"""The Lava process graph: bit-identical to the reference simulator in fixed point, equal to the
float model in floating point, equal to lava.proc.rf for one mode, and clean when it fails."""

import multiprocessing

import numpy as np
import pytest
import torch

from pspike_neuro.data import load_task
from pspike_neuro.errors import UserError
from pspike_neuro.export.build import as_layers, encode_inputs
from pspike_neuro.export.hdf5 import read_netlist
from pspike_neuro.sim.lava_backend import run_lava
from pspike_neuro.sim.reference import neuron_forward, simulate
from pspike_neuro.quant.fixed import SaturationCounter
from pspike_neuro.sim.rng import CounterNoise


@pytest.fixture(scope="module")
def deployed(trained_sdigits):
    ckpt, path = trained_sdigits
    net = read_netlist(path)
    x = load_task("sdigits").test.x[:8]
    return ckpt, net, x, encode_inputs(net, x)


def test_fixed_point_lava_equals_reference_in_every_population_and_step(deployed):
    _, net, _, x0 = deployed
    ids = np.arange(8)
    ref = simulate(as_layers(net), x0, seed=5, samples=ids, record_states=True)
    lava = run_lava(net, x0, ids, seed=5, record_states=True)
    for l in range(2):
        np.testing.assert_array_equal(lava.spikes_in[l], ref.spikes_in[l])
        np.testing.assert_array_equal(lava.spikes_out[l], ref.spikes_out[l])
        np.testing.assert_array_equal(lava.residual[l], ref.residual[l])
        np.testing.assert_array_equal(lava.states[l], ref.states[l])
    np.testing.assert_array_equal(lava.logits, ref.logits)
    assert lava.saturation == ref.saturation
    assert ref.spikes_out[0].mean() > 0.01  # the comparison covers real activity


def test_floating_point_lava_equals_float_model_under_common_random_numbers(deployed):
    ckpt, net, x, x0 = deployed
    model = ckpt.model.double()
    noise = CounterNoise(seed=5, prob_bits=16)
    probe = {}
    with torch.no_grad():
        model(x.double(), noise=lambda site, shape, dev, dt: noise(site, shape, dev, torch.float64), probe=probe)
    lava = run_lava(net, x0, np.arange(8), seed=5, tag="floating_pt")
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
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.rf.process import RF

    steps, b_re, b_im = 25, 3000, -1200
    rf = RF(shape=(1,), period=7.3, alpha=0.06, state_exp=0, decay_bits=12, vth=2**22)
    sin_d, cos_d = int(rf.sin_decay.init), int(rf.cos_decay.init)
    src_re = RingBuffer(data=np.full((1, steps), b_re, np.int32))
    src_im = RingBuffer(data=np.full((1, steps), b_im, np.int32))
    src_re.s_out.connect(rf.a_real_in)
    src_im.s_out.connect(rf.a_imag_in)
    lava_states = []
    try:
        for _ in range(steps):
            rf.run(condition=RunSteps(num_steps=1), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            lava_states.append((int(rf.real.get()[0]), int(rf.imag.get()[0])))
    finally:
        rf.stop()

    node = dict(layer=0, prob_bits=16, site_in=0, site_out=1, phi="identity", alpha_m=np.zeros(1, np.int64),
                alpha_shift=0, beta=np.array([1 << 16]), decay_re=np.array([[cos_d]]), decay_im=np.array([[sin_d]]),
                b_re=np.array([[b_re]]), b_im=np.array([[b_im]]), b_exp=0, c_re=np.zeros((1, 1), np.int64),
                c_im=np.zeros((1, 1), np.int64), c_shift=0, d=np.zeros(1, np.int64), d_exp=0,
                b_out=np.zeros(1, np.int64), out_sign=np.ones(1, np.int64))
    s, _, states = neuron_forward(node, np.zeros((1, steps, 1), np.int64), np.ones((1, steps), bool), 0,
                                  np.zeros(1, np.int64), SaturationCounter(), record_states=True)
    assert s.all()
    ours = [(int(states[0, t, 0, 0, 0]), int(states[0, t, 0, 0, 1])) for t in range(steps)]
    assert ours == lava_states
    assert len(set(ours)) > 20  # a real rotating, decaying trajectory


def test_a_failing_run_ends_with_a_clear_error_and_no_processes_left(deployed, tmp_path):
    _, net, _, x0 = deployed
    # a neuron whose random site makes the counter-based generator raise inside the Lava process
    net.nodes["neuron1"].values["site_out"] = -1
    try:
        with pytest.raises(UserError, match="sample 0 failed in neuron1: ValueError"):
            run_lava(net, x0[:1], np.arange(1), seed=0)
    finally:
        net.nodes["neuron1"].values["site_out"] = 5
    assert multiprocessing.active_children() == []


# ------------------------------------------------------------------------------------------------
# pspike_neuro.sim.lava.builder.build_and_run on the in-memory ``net`` of quantize_network
# ------------------------------------------------------------------------------------------------

import copy  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

from scipy import sparse  # noqa: E402

from pspike_neuro.models import ModelConfig  # noqa: E402
from pspike_neuro.quant.fixed import synaptic_input  # noqa: E402
from pspike_neuro.quant.fold import encode, float_forward, fold_model  # noqa: E402
from pspike_neuro.quant.quantize import QuantConfig, calibrate, quantize_network  # noqa: E402
from pspike_neuro.sim.lava.builder import build_and_run, check_network, int32_bounds  # noqa: E402
from pspike_neuro.sim.rng import uniform_float_block  # noqa: E402

from .conftest import trained_like  # noqa: E402

SEQ = 64
IDS = np.array([0, 5, 17])  # sample ids the RNG uses (not 0..B-1 on purpose)


def _children() -> list:
    """Live child processes of this test process (multiprocessing's view and /proc's)."""
    kids = [p for p in multiprocessing.active_children() if p.is_alive()]
    me, procs = str(__import__("os").getpid()), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] not in "ZX":  # ppid, state: zombies are not running
            procs.append(stat.parent.name)
    return kids + procs


@pytest.fixture(scope="module")
def small_net():
    """A 2 x H=16, N=4 model with trained-like BatchNorm statistics, folded, calibrated on 16
    training sequences and quantized; plus three test sequences, host-encoded."""
    cfg = ModelConfig(d_input=1, n_classes=10, d_model=16, d_state=4, n_layers=2)
    folded = fold_model(trained_like(cfg, seed=3).double())
    task = load_task("sdigits")
    qc = QuantConfig(calib_samples=16)
    stats = calibrate(folded, encode(folded, task.train.x[:16, :SEQ].double()), qc)
    net = quantize_network(folded, stats, qc)
    x0 = encode(folded, task.test.x[:3, :SEQ].double())
    return folded, net, x0


def _assert_same(lava, ref):
    for l in range(len(ref.spikes_in)):
        np.testing.assert_array_equal(lava.spikes_in[l], ref.spikes_in[l], err_msg=f"layer {l} input spikes")
        np.testing.assert_array_equal(lava.spikes_out[l], ref.spikes_out[l], err_msg=f"layer {l} output spikes")
        np.testing.assert_array_equal(lava.residual[l], ref.residual[l], err_msg=f"layer {l} residual")
        np.testing.assert_array_equal(lava.states[l], ref.states[l], err_msg=f"layer {l} SSM states")
    np.testing.assert_array_equal(lava.logits, ref.logits)
    assert lava.saturation == ref.saturation


def test_build_and_run_fixed_point_is_bit_identical_to_the_reference(small_net, tmp_path):
    _, net, x0 = small_net
    lengths = np.array([SEQ, 41, SEQ])  # one padded sequence
    ref = simulate(net, x0, seed=7, samples=IDS, lengths=lengths, record_states=True)
    lava = build_and_run(net, x0, IDS, seed=7, lengths=lengths, record_dir=tmp_path)
    _assert_same(lava, ref)
    assert lava.states[0].shape == (3, SEQ, 16, 4, 2)
    assert all(s.mean() > 0.05 for s in ref.spikes_out)  # real activity in every layer
    assert len({tuple(o.ravel()) for o in ref.spikes_out[1]}) == 3  # the sample ids matter
    assert sorted(p.name for p in (tmp_path / "sample17").iterdir()) == [
        "fuse0.npz", "fuse1.npz", "neuron0.npz", "neuron1.npz", "readout.npz"]


def test_build_and_run_counts_the_same_saturation_events_as_the_reference(small_net):
    """A stressed network (inputs 8x the calibrated range, a huge mixer bias, a too-large Bbar)
    saturates the input, the residual stream, the SSM state and the readout."""
    _, net, x0 = small_net
    hot = copy.deepcopy(net)
    hot["blocks"][0]["fuse"]["bias"] = hot["blocks"][0]["fuse"]["bias"] + (1 << 22)
    hot["blocks"][1]["neuron"]["b_exp"] += 8
    x = x0[:1, :32] * 8
    ref = simulate(hot, x, seed=1, samples=IDS[:1], record_states=True)
    lava = build_and_run(hot, x, IDS[:1], seed=1)
    _assert_same(lava, ref)
    for key in ("input", "layer0.residual", "layer1.state", "readout"):
        assert ref.saturation[key] > 0, key


def test_build_and_run_floating_point_follows_float_forward_under_common_random_numbers(small_net):
    folded, net, x0 = small_net
    seed, eps, width = 7, 1e-9, x0.shape[-1]
    lava = build_and_run(net, x0, IDS, seed=seed, backend_tag="floating_pt", folded=folded)
    rec: dict = {}
    logits = float_forward(folded, x0, lambda site, t: uniform_float_block(seed, site, width, t, 16, IDS), record=rec)
    differ_total = near_total = 0
    for l, blk in enumerate(folded.blocks):
        u_in = np.stack([uniform_float_block(seed, 4 * l, width, t, 16, IDS) for t in range(SEQ)], 1)
        u_out = np.stack([uniform_float_block(seed, 4 * l + 1, width, t, 16, IDS) for t in range(SEQ)], 1)
        p_in = blk.alpha * rec[f"x{l}"] + blk.beta
        v = rec[f"v{l}"]
        q = blk.out_sign * (np.maximum(v, 0) if blk.phi == "relu" else v) + blk.b_out
        for got, p, u in ((lava.spikes_in[l], p_in, u_in), (lava.spikes_out[l], q, u_out)):
            differ = got != (u < p)
            near = np.abs(p - u) < eps
            assert not np.any(differ & ~near), f"layer {l}: spikes differ away from the threshold"
            differ_total += int(differ.sum())
            near_total += int(near.sum())
        np.testing.assert_allclose(lava.residual[l], rec[f"x{l}"], rtol=0, atol=1e-9)
        assert lava.states[l].shape == (3, SEQ, width, 4, 2)
    assert differ_total == 0 and near_total == 0  # no draw came within 1e-9 of its probability
    np.testing.assert_allclose(lava.logits, logits, rtol=0, atol=1e-9)
    np.testing.assert_allclose(lava.residual_out, rec["x_out"], rtol=0, atol=1e-9)


def _probe_synapse(data, synapse, n_out, source="graded"):
    """``source -> synapse -> ReadoutIntegrator(bias 0)``; returns what the synapse delivered per
    step (differences of the recorded accumulator) and the accumulator's saturation count."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer

    from pspike_neuro.sim.lava.builder import _stop
    from pspike_neuro.sim.lava.processes import GradedSource, ReadoutIntegrator

    steps = data.shape[0]
    with tempfile.TemporaryDirectory() as tmp:
        src = (RingBuffer(data=data.T.astype(np.int32)) if source == "ring"
               else GradedSource(data=data, length=steps, num_steps=steps + 1))
        sink = ReadoutIntegrator(n=n_out, layer=0, params={"bias": np.zeros(n_out, np.int64)}, floats={},
                                 length=steps, valid_length=steps, num_steps=steps + 1,
                                 record_path=str(Path(tmp) / "sink.npz"))
        src.s_out.connect(synapse.s_in)
        synapse.a_out.connect(sink.a_in)
        try:
            src.run(condition=RunSteps(num_steps=steps + 1), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        finally:
            _stop(src)
        rec = np.load(Path(tmp) / "sink.npz")
        acc, n_sat = rec["acc"], int(rec["sat:readout"])
    return np.diff(acc, axis=0, prepend=np.zeros((1, n_out), np.int64)), n_sat


def test_lava_dense_carries_graded_24_bit_values_exactly_from_int64_ports():
    """The readout synapse: Lava's bit-accurate Dense (num_message_bits=24, s_in declared bool)
    receives our int64 messages unchanged and accumulates ``int32 W . x`` in int64; its sums here
    reach 16 * 256 * (2^23 - 1) ~ 2^35 before the shift, so int32 accumulation would wrap. Lava's own
    int32 RingBuffer as the source does wrap: graded values must come from int64 ports."""
    from lava.proc.dense.process import Dense

    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (3, 16)) * 2
    w[0], w[1] = 254, -256
    big = 2**23 - 1
    x = np.stack([np.full(16, big), np.full(16, -big), rng.integers(-big, big + 1, 16), np.zeros(16)]).astype(np.int64)
    want = synaptic_input(w, x, -13, 24)

    def dense():
        return Dense(weights=w.astype(np.int32), weight_exp=-13, num_weight_bits=8, num_message_bits=24)

    got, n_sat = _probe_synapse(x, dense(), 3)
    assert n_sat == 0
    np.testing.assert_array_equal(got, want)
    assert np.abs(w.astype(np.int64) @ x[0]).max() > 2**31  # the int64 accumulation mattered
    wrapped, _ = _probe_synapse(x, dense(), 3, source="ring")
    assert not np.array_equal(wrapped, want)


def test_lava_sparse_a_out_wraps_at_int32_so_such_networks_are_refused(small_net):
    """Lava's Sparse/Dense a_out port is int32: a sum of 2^32 + 2^22 arrives as 2^22. The contract
    (fixed.synaptic_input, int64) says otherwise, so check_network refuses what could wrap."""
    from lava.proc.sparse.process import Sparse

    w = np.array([[255, 255, 255, 255, 5]])
    spikes = np.ones((1, 5), np.int64)
    got, _ = _probe_synapse(spikes, Sparse(weights=sparse.csr_matrix(w), weight_exp=22, num_message_bits=0), 1)
    assert synaptic_input(w, spikes, 22, 0)[0, 0] == 2**32 + 2**22
    assert got[0, 0] == 2**22

    _, net, _ = small_net
    assert max(int32_bounds(net).values()) < 2**31 - 1  # the calibrated network is far from it
    check_network(net)
    bad = copy.deepcopy(net)
    bad["blocks"][1]["mixer"]["weight_exp"] = 22
    with pytest.raises(UserError, match="mixer1: the synaptic sum can reach .* int32 a_out would wrap"):
        build_and_run(bad, np.zeros((1, 4, 16)), [0], seed=0)


@pytest.mark.parametrize("where, corrupt, message", [
    ("neuron1", lambda net: net["blocks"][1]["neuron"].update(site_out=-1),  # raises in run_spk
     "sample 5 failed in neuron1: ValueError: site must be in"),
    ("fuse0", lambda net: net["blocks"][0]["fuse"].pop("residual_delay"),  # raises in the model's setup
     "sample 5 failed in fuse0: KeyError"),
])
def test_build_and_run_turns_an_exception_inside_a_process_into_a_usererror(small_net, where, corrupt, message):
    _, net, x0 = small_net
    bad = copy.deepcopy(net)
    corrupt(bad)
    with pytest.raises(UserError, match=message) as info:
        build_and_run(bad, x0[:1, :16], [5], seed=0)
    assert "\n" not in str(info.value)
    assert _children() == []


def test_build_and_run_refuses_bad_arguments_before_starting_lava(small_net):
    _, net, x0 = small_net
    with pytest.raises(UserError, match="tag must be one of fixed_pt, floating_pt"):
        build_and_run(net, x0, IDS, seed=0, backend_tag="bit_accurate")
    with pytest.raises(UserError, match="inputs have width 3, the network takes 16"):
        build_and_run(net, x0[..., :3], IDS, seed=0)
    with pytest.raises(UserError, match="floating_pt needs the folded float parameters"):
        build_and_run(net, x0, IDS, seed=0, backend_tag="floating_pt")
    bad = copy.deepcopy(net)
    bad["blocks"][0]["neuron"]["alpha_m"] = None
    with pytest.raises(UserError, match="layer 0: the SSM neuron record is malformed"):
        build_and_run(bad, x0, IDS, seed=0)


def test_a_run_that_stops_answering_is_terminated_with_a_usererror(small_net):
    """The watchdog: a run past its time limit has its own Lava processes terminated (last test of
    the file: the abandoned runner thread stays blocked, as a daemon, until the interpreter exits)."""
    _, net, x0 = small_net
    with pytest.raises(UserError, match="sample 0 did not finish within 0.01 s; its processes were terminated"):
        build_and_run(net, x0[:1], [0], seed=0, timeout_s=0.01)
    assert _children() == []
    assert any(t.name == "lava-sample0" for t in threading.enumerate())
