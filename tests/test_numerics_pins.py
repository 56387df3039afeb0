"""Values that mutation testing found unpinned (docs/testing.md): each test states the value the
behaviour implies, computed here by hand or by an independent loop, never by the code under test."""

import json

import numpy as np
import pytest
import torch

from pspike_neuro.energy.costs import energy_pj, load_cost_model
from pspike_neuro.energy.ops import OpCounts
from pspike_neuro.errors import UserError
from pspike_neuro.graph import Netlist, run
from pspike_neuro.graph.netlist import Edge
from pspike_neuro.models import SNN, ModelConfig, PSpikeSSM, SNNConfig
from pspike_neuro.models.silif import SNN_KINDS
from pspike_neuro.nodes.base import FloatNode
from pspike_neuro.nodes.cuba_lif import CubaLIFNeuron
from pspike_neuro.nodes.delay import DelayNode
from pspike_neuro.nodes.lif import LIFNeuron
from pspike_neuro.nodes.output import OutputSink
from pspike_neuro.nodes.spike_input import SpikeInput
from pspike_neuro.nodes.synapses import DenseSynapse
from pspike_neuro.numerics.fixed import frac_bits_for
from pspike_neuro.numerics.rng import CounterNoise, uniform_float, uniform_float_torch, uniform_int_block
from pspike_neuro.quant.fold import fold
from pspike_neuro.quant.qat import add_fake_quant, lava_grid, remove_fake_quant
from pspike_neuro.quant.quantize import QuantConfig, calibrate, quantize_graph
from pspike_neuro.sim.reference import simulate

# -- weights and fake quantization --------------------------------------------------------------------


def test_lava_grid_of_small_one_signed_weights():
    """``w = (0.01, 0.005)``: one-signed, 8 bits, so integers 0..255. The smallest exponent whose grid
    holds 0.01 is -14 (0.01 * 2^14 = 163.84 <= 255.5; 2^15 would give 327.68): ``w_int = (164, 82)``,
    values 164 / 16384 and 82 / 16384."""
    got = lava_grid(torch.tensor([0.01, 0.005], dtype=torch.float64), 8)
    assert got.dtype == torch.float64
    assert got.tolist() == [164 / 16384, 82 / 16384]


def test_removing_fake_quantization_restores_the_float_weights():
    model = PSpikeSSM(ModelConfig(d_input=2, n_classes=3, d_model=8, d_state=4, n_layers=1))
    before = model.blocks[0].mixer.weight.detach().clone()
    add_fake_quant(model, 4)
    quantized = model.blocks[0].mixer.weight.detach().clone()
    assert not torch.equal(quantized, before)  # 4-bit weights: the grid moves them
    remove_fake_quant(model)
    assert torch.equal(model.blocks[0].mixer.weight.detach(), before)


# -- the SNN family folded into node types equals the torch model ---------------------------------


@pytest.mark.parametrize("kind", SNN_KINDS)
def test_folded_snn_equals_the_torch_model(kind):
    """BatchNorm folded into the synapse (``g = gamma / sqrt(var + eps)``, with running variances
    near eps so that ``var - eps`` would be far off), the neuron's coefficients, and the readout's
    ``(1 - alpha)`` gain: the float graph's scores equal the torch model's in float64."""
    torch.manual_seed(5)
    model = SNN(SNNConfig(kind=kind, d_input=6, n_classes=4, d_hidden=5, n_layers=2, dropout=0.0)).double().eval()
    with torch.no_grad():
        for norm in [layer.norm for layer in model.layers] + [model.readout.norm]:
            norm.running_mean.uniform_(-0.3, 0.3)
            norm.running_var.uniform_(2e-5, 1e-4)  # eps = 1e-5
            norm.weight.uniform_(0.01, 0.03)  # keeps the currents of order 1 despite the tiny variances
            norm.bias.uniform_(-0.2, 0.2)
    x = (torch.rand(3, 25, 6, dtype=torch.float64) < 0.4).double()
    with torch.no_grad():
        want = model(x).numpy()
    got = run(fold(model), x.numpy(), integer=False, seed=0).scores
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert np.ptp(want) > 0.1  # the scores differ between classes: a wrong gain would show


# -- calibration statistics reach the quantizer ---------------------------------------------------


def _lif_float_graph() -> Netlist:
    nodes = [FloatNode(SpikeInput, "input", {"n": 2}, {}),
             FloatNode(DenseSynapse, "syn", {"n_in": 2, "n_out": 2}, {"weight": np.array([[300.0, 0.0], [0.0, 2.0]])}),
             FloatNode(LIFNeuron, "lif", {"n": 2}, {"alpha": np.array([0.5, 0.5]), "bias": np.zeros(2),
                                                   "v_th": np.array([1000.0, 1.0]), "v_reset": np.zeros(2)}),
             FloatNode(OutputSink, "out", {"n": 2}, {"bias": np.zeros(2)})]
    edges = [Edge("input", "syn"), Edge("syn", "lif"), Edge("lif", "out")]
    return Netlist(meta={}, nodes={n.name: n for n in nodes}, edges=edges)


def test_the_calibrated_state_maximum_sets_the_lif_format():
    """Input spikes on channel 0 at every step: neuron 0's membrane climbs 300, 450, 525, ... towards
    600 and stays below its threshold 1000, so the largest state after 8 steps is
    600 - 300 / 2^7 = 597.65625. Its format: ``floor(log2((2^23 - 1) / 1000)) - 1 = 12`` fraction bits
    (1000, the threshold, is the larger extreme; one headroom bit)."""
    graph = _lif_float_graph()
    x = np.zeros((1, 8, 2), np.float32)
    x[:, :, 0] = 1
    qc = QuantConfig(calib_samples=1)
    stats = calibrate(graph, x, qc)
    assert stats["lif"]["state_max"] == pytest.approx(600 - 300 / 2**7)
    nodes = quantize_graph(graph, stats, qc)
    assert nodes["lif"].state_frac_bits == 12 == frac_bits_for(1000.0, 1, lo=0, hi=22)
    assert nodes["lif"].v_th.tolist() == [1000 * 2**12, 2**12]


def test_the_calibrated_state_maximum_sets_the_csilif_format():
    torch.manual_seed(2)
    model = SNN(SNNConfig(kind="csilif", d_input=4, n_classes=3, d_hidden=3, n_layers=1, dropout=0.0)).eval()
    with torch.no_grad():
        model.layers[0].linear.weight.mul_(400.0)  # states of several hundred
    graph = fold(model)
    x = (np.random.default_rng(0).random((4, 30, 4)) < 0.5).astype(np.float32)
    qc = QuantConfig(calib_samples=4)
    stats = calibrate(graph, x, qc)
    peak = stats["neuron0"]["state_max"]
    assert peak > 50
    bits = quantize_graph(graph, stats, qc)["neuron0"].state_frac_bits
    assert bits == int(np.floor(np.log2((2**23 - 1) / peak))) - 1 < 22


# -- the executor's cycles ------------------------------------------------------------------------


def _looped_if_netlist() -> Netlist:
    """An integrate-and-fire neuron (alpha 1, threshold 2, reset 0) fed by the input spikes and by
    its own spikes over a loop (no synapse: both arrive as spikes on its summing port)."""
    i32 = lambda *v: np.array(v, np.int32)  # noqa: E731
    nodes = {"input": SpikeInput("input", {"n": 1}),
             "lif": LIFNeuron("lif", {"n": 1, "state_frac_bits": 0, "alpha": np.array([4096], np.int16),
                                      "bias": i32(0), "v_th": i32(2), "v_reset": i32(0)}),
             "out": OutputSink("out", {"n": 1, "frac_bits": 0, "bias": i32(0)})}
    edges = [Edge("input", "lif"), Edge("lif", "lif"), Edge("lif", "out")]
    return Netlist(meta={}, nodes=nodes, edges=edges)


def test_spikes_meeting_on_a_port_in_a_loop_are_summed():
    """``v_t = v_{t-1} + x_t + s_{t-1}`` (the loop delivers the previous step's spike), spike where
    ``v > 2``, then 0. Input 1, 1, 1, 0, 1, 1, 1, 1:
    v = 1, 2, 3*, 1, 2, 3*, 2, 3*   (* spike; at t6 the input spike and the looped spike add to 2;
    were they OR-ed, v would be 1 there and the last spike would come a step later)."""
    net = _looped_if_netlist()
    assert net.schedule().back  # the self-loop is a recurrent edge
    x = np.array([1, 1, 1, 0, 1, 1, 1, 1], np.float32).reshape(1, 8, 1)
    res = simulate(net, x, seed=0, record_states=True)
    assert res.outputs["lif"][0, :, 0].astype(int).tolist() == [0, 0, 1, 0, 0, 1, 0, 1]
    assert res.states("lif")[0, :, 0].tolist() == [1, 2, 0, 1, 2, 0, 2, 0]  # after the reset
    assert res.states("lif") is res.records["lif"]["state"]


def test_float_run_of_a_loop_through_a_delay():
    """Float graph: input -> 0.5 -> LIF (alpha 0.5, threshold 0.6, reset 0) -> 0.25 -> Delay(1) ->
    back to the LIF. The edge that closes the loop (Delay -> LIF) carries the previous step's value,
    so the LIF gets ``0.5 x_t + 0.25 s_{t-2}``; the loop's values are fractions, which an integer
    state would drop. Expected from that recurrence, computed here step by step."""
    nodes = [FloatNode(SpikeInput, "input", {"n": 1}, {}),
             FloatNode(DenseSynapse, "syn_in", {"n_in": 1, "n_out": 1}, {"weight": np.array([[0.5]])}),
             FloatNode(LIFNeuron, "lif", {"n": 1}, {"alpha": np.array([0.5]), "bias": np.zeros(1),
                                                   "v_th": np.array([0.6]), "v_reset": np.zeros(1)}),
             FloatNode(DenseSynapse, "syn_rec", {"n_in": 1, "n_out": 1}, {"weight": np.array([[0.25]])}),
             FloatNode(DelayNode, "delay", {"n": 1}, {"delay": np.array([1.0])}),
             FloatNode(OutputSink, "out", {"n": 1}, {"bias": np.zeros(1)})]
    edges = [Edge("input", "syn_in"), Edge("syn_in", "lif"), Edge("lif", "syn_rec"), Edge("syn_rec", "delay"),
             Edge("delay", "lif"), Edge("lif", "out")]
    graph = Netlist(meta={}, nodes={n.name: n for n in nodes}, edges=edges)
    x = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1], np.float64)
    v, spikes, want = 0.0, [], []
    for t in range(len(x)):
        looped = 0.25 * spikes[t - 2] if t >= 2 else 0.0
        v = 0.5 * v + 0.5 * x[t] + looped
        s = v > 0.6
        spikes.append(float(s))
        want.append(v)
        v = 0.0 if s else v
    res = run(graph, x.reshape(1, -1, 1), integer=False, seed=0)
    assert res.outputs["lif"][0, :, 0].tolist() == spikes
    assert sum(spikes) >= 3 and any(0.6 < w < 0.7 for w in want)  # the looped quarter decides some spikes


# -- random numbers ------------------------------------------------------------------------------


def test_torch_uniforms_in_float64_are_numpys():
    got = uniform_float_torch(7, 3, torch.arange(5), 11, 16, sample=2, dtype=torch.float64)
    assert got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), uniform_float(7, 3, np.arange(5), 11, 16, sample=2))


# -- cost models ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body,problem", [
    ({"pj": {"mac": 1.0}}, "needs a 'source' string"),
    ({"source": "s", "pj": {"mac": "abc"}}, "mac must be a non-negative number of pJ"),
    ({"source": "s", "pj": {"mac": -1.0}}, "mac must be a non-negative number of pJ"),
    ({"source": "s", "pj": {"macs": 1.0}}, "unknown operation 'macs'"),
])
def test_bad_user_cost_models_are_refused(tmp_path, body, problem):
    path = tmp_path / "model.json"
    path.write_text(json.dumps(body))
    with pytest.raises(UserError, match=problem):
        load_cost_model(str(path))


def test_a_user_cost_model_may_price_active_neurons(tmp_path):
    """``active_extra`` is the extra cost of an update that fires: 3 active updates at 2 pJ, 10 updates
    at 1 pJ: 3 x 2 + 10 x 1 = 16 pJ."""
    path = tmp_path / "chip.json"
    path.write_text(json.dumps({"source": "my chip", "pj": {"neuron_updates": 1.0, "active_extra": 2.0}}))
    model = load_cost_model(str(path))
    e = energy_pj(OpCounts(neuron_updates=10, active_neuron_updates=3), model)
    assert e["parts_pj"] == {"neuron_updates": 10.0, "active_extra": 6.0} and e["total_pj"] == 16.0


def test_cost_model_refusals_say_what_is_known(tmp_path):
    """The messages list what would have been accepted, in full."""
    with pytest.raises(UserError, match=r"^cost model 'tpu': not a built-in \(45nm, loihi1, loihi2\) and no such file$"):
        load_cost_model("tpu")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(UserError, match=r"^cost model .*broken\.json: not valid JSON \(Expecting property name"):
        load_cost_model(str(broken))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"source": "s", "pj": {"flop": 1.0}}))
    with pytest.raises(UserError) as err:
        load_cost_model(str(unknown))
    assert str(err.value).endswith("unknown operation 'flop'; known: ac, active_extra, active_neuron_updates, add, "
                                   "binary_messages, graded_messages, graded_synops, mac, neuron_updates, rng")


# -- messages that name the value at fault ----------------------------------------------------------


def test_random_number_refusals_name_the_argument():
    with pytest.raises(ValueError, match=r"^n_neurons must be >= 0, got -1$"):
        uniform_int_block(1, 2, -1, 0, 16, [0])
    with pytest.raises(ValueError, match=r"^t0 must be in \[0, 2\*\*32\), got -1$"):
        CounterNoise(seed=1, prob_bits=16)(0, (1, 2, 3), t0=-1)


def test_a_cuba_lif_bias_beyond_24_bits_is_named():
    """v_leak 1e9 with alpha_mem 0.5: bias_mem = 5e8 state units even at 0 fraction bits, beyond 2^23 - 1."""
    nodes = [FloatNode(SpikeInput, "input", {"n": 1}, {}),
             FloatNode(DenseSynapse, "syn", {"n_in": 1, "n_out": 1}, {"weight": np.array([[1.0]])}),
             FloatNode(CubaLIFNeuron, "cuba", {"n": 1},
                       {"alpha_syn": np.array([0.5]), "alpha_mem": np.array([0.5]), "gain": np.array([1.0]),
                        "bias_syn": np.zeros(1), "bias_mem": np.array([5e8]), "v_th": np.array([1.0]),
                        "v_reset": np.zeros(1)}),
             FloatNode(OutputSink, "out", {"n": 1}, {"bias": np.zeros(1)})]
    graph = Netlist(meta={}, nodes={n.name: n for n in nodes},
                    edges=[Edge("input", "syn"), Edge("syn", "cuba"), Edge("cuba", "out")])
    qc = QuantConfig(calib_samples=1)
    stats = calibrate(graph, np.ones((1, 4, 1), np.float32), qc)
    with pytest.raises(UserError, match=r"^cuba: bias_mem overflows 24 bits after scaling"):
        quantize_graph(graph, stats, qc)


def test_recorded_states_are_read_back_by_name():
    """``RunResult.states(name)`` is the state the run recorded: the looped neuron's membrane, by hand
    (input 1, 0, 1, 1; own spikes fed back; threshold 2, reset 0): 1, 1, 0 after firing at 3 (1 + 1 + 1), 1."""
    result = run(_looped_if_netlist(), np.array([[[1], [0], [1], [1]]], np.int64), integer=True, seed=0,
                 record_states=True)
    states = result.states("lif")
    assert states is not None and states.shape[:2] == (1, 4)
    np.testing.assert_array_equal(states, result.records["lif"]["state"])
    assert result.states("nowhere") is None


def test_inspect_shows_the_message_widths_of_docs_numerics(small_checkpoint):
    """docs/numerics.md §2: the encoder output is streamed as 24-bit signed graded messages; binary
    spikes are 1 bit."""
    from pspike_neuro.export.build import build_netlist
    from pspike_neuro.export.inspect import describe

    net, _ = build_netlist(small_checkpoint, QuantConfig(calib_samples=4))
    bits = {entry["name"]: entry["bits"] for entry in describe(net)["nodes"]}
    assert net.nodes["input"].type_name() == "GradedInput" and bits["input"] == {"message": 24}
    assert SpikeInput("s", {"n": 1}).bits() == {"message": 1}


def test_a_membrane_above_its_threshold_sets_the_lif_format():
    """A weight of 5000 on channel 0: the membrane jumps to 5000 at step 0 (above the threshold 1000; it
    fires and resets), so the largest state is 5000, not the threshold: ``floor(log2((2^23 - 1) / 5000))
    - 1 = 9`` fraction bits (12 if the threshold were the largest extreme)."""
    graph = _lif_float_graph()
    graph.nodes["syn"].floats["weight"] = np.array([[5000.0, 0.0], [0.0, 2.0]])
    x = np.zeros((1, 8, 2), np.float32)
    x[:, :, 0] = 1
    qc = QuantConfig(calib_samples=1)
    stats = calibrate(graph, x, qc)
    assert stats["lif"]["state_max"] == 5000.0
    assert quantize_graph(graph, stats, qc)["lif"].state_frac_bits == 9
