"""Energy per inference: the operations of a run divided by the number of samples (inferences),
never by steps or neurons. Pinned on a netlist counted by hand, where samples (2), steps (4, one
sample padded to 2) and neurons (3) all differ, and for every model family by counting spikes
independently and by the per-sample mean."""

import numpy as np
import pytest
import torch

from pspike_neuro.energy.costs import COST_MODELS
from pspike_neuro.export.build import build_netlist
from pspike_neuro.export.checkpoint import load_checkpoint, save_checkpoint
from pspike_neuro.graph import Netlist
from pspike_neuro.graph.execute import valid_mask
from pspike_neuro.graph.netlist import Edge
from pspike_neuro.models import SNN, SNNConfig
from pspike_neuro.nodes.lif import LIFNeuron
from pspike_neuro.nodes.output import OutputSink
from pspike_neuro.nodes.spike_input import SpikeInput
from pspike_neuro.nodes.synapses import DenseSynapse
from pspike_neuro.quant.quantize import QuantConfig
from pspike_neuro.sim.reference import simulate
from pspike_neuro.verify import energy_estimates


def hand_netlist() -> Netlist:
    """2 input channels -> 3 x 2 weights [[3, 0], [2, 5], [0, 4]] -> 3 LIF neurons (alpha 1, 1,
    1/2; threshold 4, reset 0; F = 0) -> an output sink that counts their spikes."""
    i32 = lambda *v: np.array(v, np.int32)  # noqa: E731
    nodes = {
        "input": SpikeInput("input", {"n": 2}),
        "syn": DenseSynapse.from_dense("syn", [[3, 0], [2, 5], [0, 4]], 0, 8, 0),
        "lif": LIFNeuron("lif", {"n": 3, "state_frac_bits": 0, "alpha": np.array([4096, 4096, 2048], np.int16),
                                 "bias": i32(0, 0, 0), "v_th": i32(4, 4, 4), "v_reset": i32(0, 0, 0)}),
        "out": OutputSink("out", {"n": 3, "frac_bits": 0, "bias": i32(0, 0, 0)}),
    }
    edges = [Edge("input", "syn"), Edge("syn", "lif"), Edge("lif", "out")]
    meta = {"model_type": "graph", "seq_len": 4, "latency_steps": 0, "seed": 0, "task": ""}
    net = Netlist(meta=meta, nodes=nodes, edges=edges)
    net.validate(require_meta=False)
    return net


# sample 0: 4 valid steps; sample 1: 2 valid steps (its steps 2 and 3 are padding and carry spikes
# that must count for nothing)
X = np.array([[[1, 1], [1, 0], [0, 1], [1, 1]],
              [[1, 0], [0, 1], [1, 1], [1, 1]]], np.float32)
LENGTHS = np.array([4, 2])


def test_hand_counted_run_and_energy_per_inference():
    """Inputs W s and membranes v (v' = shr_trunc(alpha v, 12) + W s; spike where v' > 4, then 0):

    sample 0  t0: Ws = [3,7,4]  v = [3,7,4]   spikes [0,1,0] -> v = [3,0,4]
              t1: Ws = [3,2,0]  v = [6,2,2]   spikes [1,0,0] -> v = [0,2,2]   (2048*4 >> 12 = 2)
              t2: Ws = [0,5,4]  v = [0,7,5]   spikes [0,1,1] -> v = [0,0,0]   (2048*2 >> 12 = 1)
              t3: Ws = [3,7,4]  v = [3,7,4]   spikes [0,1,0]                  (4 > 4 is false)
    sample 1  t0: Ws = [3,2,0]  v = [3,2,0]   no spike
              t1: Ws = [0,5,4]  v = [3,7,4]   spikes [0,1,0]

    Operations, valid steps only (4 + 2 = 6 neuron-steps per neuron): input spikes 6 + 2 = 8 (binary
    messages); synaptic accumulates 8 spikes x 2 non-zero weights per column = 16; LIF: 6 x 3 = 18
    decays (MAC), 36 adds, 18 updates, 6 spikes (active updates, binary messages); sink: 18 adds,
    18 updates. Per inference (2 samples): mac 9, ac 8, add 27, updates 18, active 3, messages 7.
      45 nm:  9 x 4.6 + 8 x 0.9 + 27 x 0.9                 = 72.9 pJ
      Loihi:  8 x 23.6 + 18 x 52 + 3 x 29 + 7 x 1.7       = 1223.7 pJ
    Non-spiking counterpart per inference (3 steps on average): input 6 graded messages, synapse
    3 x 6 = 18 graded MACs, LIF 9 MAC / 27 adds (with the sink) / 9 updates / 9 graded messages,
    sink 9 updates: 45 nm 18 x 4.6 + 9 x 4.6 + 27 x 0.9 = 148.5 pJ; Loihi 18 x 23.6 + 18 x 52 +
    15 x 1.7 = 1386.3 pJ."""
    net = hand_netlist()
    res = simulate(net, X, seed=0, lengths=LENGTHS)
    want_spikes = np.zeros((2, 4, 3), bool)
    want_spikes[0, 0, 1] = want_spikes[0, 1, 0] = want_spikes[0, 2, 1] = want_spikes[0, 2, 2] = want_spikes[0, 3, 1] = True
    want_spikes[1, 1, 1] = True
    np.testing.assert_array_equal(np.asarray(res.outputs["lif"], bool) & valid_mask(2, 4, LENGTHS)[..., None], want_spikes)
    np.testing.assert_array_equal(res.scores, [[1, 3, 1], [0, 1, 0]])

    e = energy_estimates(net, [(res.outputs, res.records, valid_mask(2, 4, LENGTHS))])
    ops = e["ops_per_inference"]
    assert {k: ops[k] for k in ("mac", "ac", "add", "neuron_updates", "active_neuron_updates", "binary_messages",
                                "graded_messages", "graded_synops")} == \
        {"mac": 9, "ac": 8, "add": 27, "neuron_updates": 18, "active_neuron_updates": 3, "binary_messages": 7,
         "graded_messages": 0, "graded_synops": 0}
    assert e["models"]["45nm"]["total_pj"] == pytest.approx(72.9)
    assert e["models"]["loihi1"]["total_pj"] == pytest.approx(1223.7)
    assert e["models"]["45nm"]["non_spiking_total_pj"] == pytest.approx(148.5)
    assert e["models"]["loihi1"]["non_spiking_total_pj"] == pytest.approx(1386.3)
    assert e["models"]["loihi1"]["per_node_pj"]["syn"] == pytest.approx(8 * 23.6)
    assert e["models"]["loihi1"]["per_node_pj"]["lif"] == pytest.approx(9 * 52 + 3 * 29 + 3 * 1.7)
    # two runs pooled (verify's seeds) are four inferences: the same figures per inference
    pooled = energy_estimates(net, [(res.outputs, res.records, valid_mask(2, 4, LENGTHS))] * 2)
    assert pooled["models"]["loihi1"]["total_pj"] == pytest.approx(1223.7)


# -- every model family: spikes counted independently, and the mean of per-sample energies --------

def _snn_netlist(kind: str, tmp_path) -> Netlist:
    torch.manual_seed(3)
    model = SNN(SNNConfig(kind=kind, d_input=12, n_classes=4, d_hidden=6, n_layers=2, dropout=0.0)).eval()
    path = tmp_path / f"{kind}.pt"
    save_checkpoint(path, model, task="sdigits-spikes")
    calib = ((np.random.default_rng(0).random((16, 20, 12)) < 0.3).astype(np.float32), None)
    return build_netlist(load_checkpoint(path), QuantConfig(calib_samples=16), calib=calib)[0]


@pytest.fixture(scope="module")
def family_netlists(small_checkpoint, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("families")
    return {"pspike": build_netlist(small_checkpoint, QuantConfig(calib_samples=16))[0],
            "silif": _snn_netlist("silif", tmp), "csilif": _snn_netlist("csilif", tmp), "graph": hand_netlist()}


def _inputs(net: Netlist, rng) -> np.ndarray:
    source = next(n for n in net.nodes.values() if n.TYPE.ROLE == "source")
    x = rng.random((3, 9, source.input_width()))
    return (x < 0.4).astype(np.float32) if source.TYPE.BINARY_OUT else (2 * x - 1).astype(np.float32)


@pytest.mark.parametrize("family", ["pspike", "silif", "csilif", "graph"])
def test_energy_is_per_sample_for_every_family(family, family_netlists):
    """3 samples of 9 steps, lengths 9, 5 and 7: the binary messages per inference are the valid
    spikes of every spiking node counted here, divided by 3; the energy of the three together is
    the mean of each sample's own energy."""
    net = family_netlists[family]
    x = _inputs(net, np.random.default_rng(1))
    lengths = np.array([9, 5, 7])
    valid = valid_mask(3, 9, lengths)
    res = simulate(net, x, seed=4, lengths=lengths)
    together = energy_estimates(net, [(res.outputs, res.records, valid)])
    spikes = sum(int((np.asarray(res.outputs[name], bool) & valid[..., None]).sum())
                 for name, node in net.nodes.items() if node.TYPE.BINARY_OUT)
    assert spikes > 0
    assert together["ops_per_inference"]["binary_messages"] == pytest.approx(spikes / 3)
    alone = []
    for b in range(3):
        one = simulate(net, x[b:b + 1, :lengths[b]], seed=4, samples=[b])
        alone.append(energy_estimates(net, [(one.outputs, one.records, valid_mask(1, int(lengths[b])))]))
    for model in COST_MODELS:
        mean = np.mean([a["models"][model]["total_pj"] for a in alone])
        assert together["models"][model]["total_pj"] == pytest.approx(mean, rel=1e-12)
        dense = np.mean([a["models"][model]["non_spiking_total_pj"] for a in alone])
        assert together["models"][model]["non_spiking_total_pj"] == pytest.approx(dense, rel=1e-12)
