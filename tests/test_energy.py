"""Operation counts of a hand-built netlist against hand-computed values; energy = counts x constants."""

import json

import numpy as np
import pytest

from pspike_neuro.energy.costs import COST_MODELS, energy_pj, load_cost_model
from pspike_neuro.energy.ops import OpCounts, count_ops, count_ops_dense, total
from pspike_neuro.errors import UserError
from pspike_neuro.export.build import build_netlist
from pspike_neuro.quant.quantize import QuantConfig


@pytest.fixture(scope="module")
def netlist(small_checkpoint):
    net, _ = build_netlist(small_checkpoint, QuantConfig(calib_samples=16))
    return net


def test_counts_by_hand(netlist):
    # 2 blocks of H=8, M=2; one sample of T=3 steps; hand-placed spikes
    s_in = [np.zeros((1, 3, 8), bool) for _ in range(2)]
    s_out = [np.zeros((1, 3, 8), bool) for _ in range(2)]
    s_in[0][0, 0, [1, 2]] = True          # 2 input spikes in layer 0
    s_out[0][0, 1, 3] = True              # 1 output spike of neuron 3 in layer 0
    s_out[1][0, 2, [0, 5]] = True         # 2 output spikes in layer 1
    valid = np.ones((1, 3), bool)
    outputs = {"neuron0": s_out[0], "neuron1": s_out[1]}
    records = {"neuron0": {"s_in": s_in[0]}, "neuron1": {"s_in": s_in[1]}}
    rows = {r["node"]: r for r in count_ops(netlist, outputs, records, valid)}
    fan0 = int(np.count_nonzero(netlist.nodes["mixer0"].to_dense()[:, 3]))
    fan1 = int(np.count_nonzero(netlist.nodes["mixer1"].to_dense()[:, [0, 5]]))
    h, m, t = 8, 2, 3
    assert rows["neuron0"]["ac"] == 2 * (2 * m + 1) and rows["mixer0"]["ac"] == fan0
    assert rows["neuron1"]["ac"] == 0 and rows["mixer1"]["ac"] == fan1
    assert rows["neuron0"]["mac"] == t * h * (1 + 6 * m) == 312 and rows["fuse0"]["mac"] == t * h == 24
    assert rows["neuron0"]["rng"] == 2 * h * t and rows["neuron0"]["neuron_updates"] == t * h * (m + 1)
    assert rows["fuse0"]["neuron_updates"] == t * h and rows["fuse0"]["graded_messages"] == t * h
    assert rows["neuron1"]["binary_messages"] == 2 and rows["neuron1"]["active_neuron_updates"] == 2
    assert rows["readout_synapse"]["graded_synops"] == t * 8 * 10 and rows["readout"]["mac"] == 0
    assert rows["input"]["graded_messages"] == t * h
    dense = {r["node"]: r for r in count_ops_dense(netlist, valid)}
    assert dense["neuron0"]["mac"] == 312 and dense["neuron0"]["ac"] == 0
    assert dense["neuron0"]["graded_synops"] == t * h * (2 * m + 1) and dense["mixer0"]["graded_synops"] == t * 64


def test_energy_is_counts_times_constants():
    ops = OpCounts(mac=10, ac=100, graded_synops=6, add=5, neuron_updates=7, active_neuron_updates=2,
                   binary_messages=3, graded_messages=4)
    e45 = energy_pj(ops, COST_MODELS["45nm"])
    assert e45["total_pj"] == pytest.approx(10 * 4.6 + 6 * 4.6 + 100 * 0.9 + 5 * 0.9)
    el1 = energy_pj(ops, COST_MODELS["loihi1"])
    assert el1["total_pj"] == pytest.approx(100 * 23.6 + 6 * 23.6 + 7 * 52 + 2 * 29 + 3 * 1.7 + 4 * 1.7)
    assert total([{**ops.as_dict(), "layer": 0}, {**ops.as_dict(), "layer": 1}]).ac == 200


def test_user_cost_model(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"source": "my chip datasheet", "pj": {"mac": 1.0, "ac": 0.1}}))
    assert energy_pj(OpCounts(mac=3, ac=10), load_cost_model(str(path)))["total_pj"] == pytest.approx(4.0)
    path.write_text(json.dumps({"source": "x", "pj": {"flops": 1.0}}))
    with pytest.raises(UserError, match="unknown operation 'flops'"):
        load_cost_model(str(path))
    with pytest.raises(UserError, match="not a built-in"):
        load_cost_model("nope")
