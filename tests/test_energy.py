"""Operation counts of a hand-built netlist against hand-computed values; energy = counts x constants."""

import json

import numpy as np
import pytest

from pspike_neuro.energy.costs import COST_MODELS, energy_pj, load_cost_model
from pspike_neuro.energy.ops import OpCounts, count_ops, count_ops_dense, total
from pspike_neuro.errors import UserError
from pspike_neuro.export.build import build_netlist
from pspike_neuro.graph import Netlist
from pspike_neuro.nodes.synapses import SparseSynapse
from pspike_neuro.quant.quantize import QuantConfig


@pytest.fixture(scope="module")
def netlist(small_checkpoint):
    net, _ = build_netlist(small_checkpoint, QuantConfig(calib_samples=16))
    return net


def _with_mixers(net, mixers):
    """A copy of ``net`` whose mixers hold the given integer matrices (a known fan-out per column)."""
    nodes = dict(net.nodes)
    for name, w in mixers.items():
        old = nodes[name]
        nodes[name] = SparseSynapse.from_dense(name, w, old.weight_exp, old.num_weight_bits, old.num_message_bits,
                                               old.floats)
    return Netlist(net.meta, nodes, net.edges)


def test_counts_by_hand(netlist):
    # 2 blocks of H=8, M=2 modes, 10 classes; one sample of T=3 steps; hand-placed spikes and mixers whose
    # columns have a known number of non-zero weights (column j of mixer0 holds j + 1, of mixer1 8 - j)
    h, m, t, classes = 8, 2, 3, 10
    rows_ = np.arange(h)[:, None]
    w0 = np.where(rows_ <= np.arange(h)[None, :], 2, 0)          # column j: rows 0..j -> j + 1 non-zeros
    w1 = np.where(rows_ >= np.arange(h)[None, :], -4, 0)         # column j: rows j..7 -> 8 - j non-zeros
    net = _with_mixers(netlist, {"mixer0": w0, "mixer1": w1})
    s_in = [np.zeros((1, t, h), bool) for _ in range(2)]
    s_out = [np.zeros((1, t, h), bool) for _ in range(2)]
    s_in[0][0, 0, [1, 2]] = True          # 2 input spikes in layer 0
    s_out[0][0, 1, 3] = True              # 1 output spike of neuron 3 in layer 0
    s_out[1][0, 2, [0, 5]] = True         # 2 output spikes in layer 1
    valid = np.ones((1, t), bool)
    outputs = {"neuron0": s_out[0], "neuron1": s_out[1]}
    records = {"neuron0": {"s_in": s_in[0]}, "neuron1": {"s_in": s_in[1]}}
    rows = {r["node"]: r for r in count_ops(net, outputs, records, valid)}
    # docs/energy-model.md, per block: ac = S_in (2M + 1) + fan-out of the output spikes
    assert rows["neuron0"]["ac"] == 2 * (2 * m + 1) == 10 and rows["mixer0"]["ac"] == 3 + 1 == 4
    assert rows["neuron1"]["ac"] == 0 and rows["mixer1"]["ac"] == (8 - 0) + (8 - 5) == 11
    # mac = T H (1 + 6M) in the neuron + T H in ClampFuse; none elsewhere
    assert rows["neuron0"]["mac"] == rows["neuron1"]["mac"] == t * h * (1 + 6 * m) == 312
    assert rows["fuse0"]["mac"] == rows["fuse1"]["mac"] == t * h == 24
    assert rows["readout"]["mac"] == rows["readout_synapse"]["mac"] == rows["mixer0"]["mac"] == 0
    # add = 4 T H per block (2 sampler offsets, mixer bias, residual add) + T classes (readout bias)
    assert rows["neuron0"]["add"] + rows["fuse0"]["add"] == 4 * t * h == 96 and rows["readout"]["add"] == t * classes
    assert rows["neuron0"]["rng"] == rows["neuron1"]["rng"] == 2 * h * t == 48
    # compartments: T H (M + 1) + T H per block, + T classes
    assert rows["neuron0"]["neuron_updates"] == t * h * (m + 1) == 72 and rows["fuse0"]["neuron_updates"] == t * h
    assert rows["readout"]["neuron_updates"] == t * classes
    assert rows["neuron0"]["active_neuron_updates"] == rows["neuron0"]["binary_messages"] == 1
    assert rows["neuron1"]["binary_messages"] == 2 and rows["neuron1"]["active_neuron_updates"] == 2
    assert rows["fuse0"]["graded_messages"] == t * h and rows["input"]["graded_messages"] == t * h
    assert rows["neuron0"]["graded_messages"] == rows["mixer0"]["binary_messages"] == 0
    assert rows["readout_synapse"]["graded_synops"] == t * h * classes == 240
    grand = total(list(rows.values()))
    assert (grand.mac, grand.ac, grand.add, grand.rng) == (2 * 312 + 2 * 24, 10 + 4 + 11, 2 * 96 + 30, 96)
    assert (grand.neuron_updates, grand.binary_messages, grand.graded_messages) == (2 * (72 + 24) + 30, 3, 3 * 24)
    # the non-spiking counterpart: Bbar x, D x and the mixer as graded MACs, T H (2M + 1) + T H^2 per block
    dense = {r["node"]: r for r in count_ops_dense(net, valid)}
    assert dense["neuron0"]["mac"] == 312 and dense["neuron0"]["ac"] == 0 and dense["neuron0"]["rng"] == 0
    assert dense["neuron0"]["graded_synops"] == t * h * (2 * m + 1) == 120 and dense["mixer0"]["graded_synops"] == t * 64
    assert total(count_ops_dense(net, valid)).graded_synops == 2 * (120 + t * h * h) + t * h * classes


def test_energy_is_counts_times_constants():
    ops = OpCounts(mac=10, ac=100, graded_synops=6, add=5, neuron_updates=7, active_neuron_updates=2,
                   binary_messages=3, graded_messages=4)
    e45 = energy_pj(ops, COST_MODELS["45nm"])
    assert e45["total_pj"] == pytest.approx(10 * 4.6 + 6 * 4.6 + 100 * 0.9 + 5 * 0.9)
    el1 = energy_pj(ops, COST_MODELS["loihi1"])
    assert el1["total_pj"] == pytest.approx(100 * 23.6 + 6 * 23.6 + 7 * 52 + 2 * 29 + 3 * 1.7 + 4 * 1.7)
    assert total([{**ops.as_dict(), "layer": 0}, {**ops.as_dict(), "layer": 1}]) == OpCounts(
        mac=20, ac=200, graded_synops=12, add=10, neuron_updates=14, active_neuron_updates=4, binary_messages=6,
        graded_messages=8)


def test_user_cost_model(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"source": "my chip datasheet", "pj": {"mac": 1.0, "ac": 0.1}}))
    assert energy_pj(OpCounts(mac=3, ac=10), load_cost_model(str(path)))["total_pj"] == pytest.approx(4.0)
    path.write_text(json.dumps({"source": "x", "pj": {"flops": 1.0}}))
    with pytest.raises(UserError, match="unknown operation 'flops'"):
        load_cost_model(str(path))
    with pytest.raises(UserError, match="not a built-in"):
        load_cost_model("nope")
