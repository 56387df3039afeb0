"""Energy in two accountings (full, synaptic), the loihi2 chip model's static energy by hand, both in
verify's JSON, and NeuroBench's metrics against hand counts of the same float spikes."""

import numpy as np
import pytest
import torch

from pspike_neuro.energy.costs import COST_MODELS, LOIHI2_STATIC_W, LOIHI2_TIME_PER_STEP_S, static_pj
from pspike_neuro.energy.ops import count_ops, count_ops_dense, synaptic, total
from pspike_neuro.export.build import build_netlist
from pspike_neuro.graph import Netlist
from pspike_neuro.models import ModelConfig
from pspike_neuro.nodes.synapses import SparseSynapse
from pspike_neuro.quant.quantize import QuantConfig
from pspike_neuro.verify import compare, energy_estimates

from .conftest import trained_like


@pytest.fixture(scope="module")
def netlist(small_checkpoint):
    net, _ = build_netlist(small_checkpoint, QuantConfig(calib_samples=16))
    return net


def _hand_activity(net):
    """tests/test_energy.py's hand-counted case: 2 blocks of H=8 (M=2), T=3; mixer0 column j holds j + 1
    non-zeros, mixer1 column j 8 - j; 2 input spikes in layer 0, output spikes of neuron 3 (layer 0) and
    neurons 0 and 5 (layer 1)."""
    h, t = 8, 3
    rows_ = np.arange(h)[:, None]
    nodes = dict(net.nodes)
    for name, w in (("mixer0", np.where(rows_ <= np.arange(h)[None, :], 2, 0)),
                    ("mixer1", np.where(rows_ >= np.arange(h)[None, :], -4, 0))):
        old = nodes[name]
        nodes[name] = SparseSynapse.from_dense(name, w, old.weight_exp, old.num_weight_bits, old.num_message_bits,
                                               old.floats)
    net = Netlist(net.meta, nodes, net.edges)
    s_in = [np.zeros((1, t, h), bool) for _ in range(2)]
    s_out = [np.zeros((1, t, h), bool) for _ in range(2)]
    s_in[0][0, 0, [1, 2]] = True
    s_out[0][0, 1, 3] = True
    s_out[1][0, 2, [0, 5]] = True
    outputs = {"neuron0": s_out[0], "neuron1": s_out[1]}
    records = {"neuron0": {"s_in": s_in[0]}, "neuron1": {"s_in": s_in[1]}}
    return net, outputs, records, np.ones((1, t), bool)


def test_synaptic_accounting_of_a_hand_counted_netlist(netlist):
    net, outputs, records, valid = _hand_activity(netlist)
    rows = {r["node"]: r for r in synaptic(net, count_ops(net, outputs, records, valid))}
    # connections only: mixer0 4 accumulates (column 3: 4 weights), mixer1 8 + 3, the readout 3 x 8 x 10 MACs
    assert rows["mixer0"]["ac"] == 4 and rows["mixer1"]["ac"] == 11
    assert rows["readout_synapse"]["graded_synops"] == 3 * 8 * 10
    # the neurons' Bbar s and D s accumulates, every state update, add and message are not connections
    for name in ("input", "neuron0", "fuse0", "neuron1", "fuse1", "readout"):
        assert all(v == 0 for k, v in rows[name].items() if k not in ("node", "type")), name
    grand = total(list(rows.values()))
    assert (grand.ac, grand.graded_synops, grand.mac, grand.neuron_updates) == (15, 240, 0, 0)
    dense = total(synaptic(net, count_ops_dense(net, valid)))
    assert (dense.ac, dense.graded_synops) == (0, 2 * 3 * 8 * 8 + 3 * 8 * 10)
    e = energy_estimates(net, [(outputs, records, valid)], {"45nm": COST_MODELS["45nm"]})["models"]["45nm"]
    syn = e["accountings"]["synaptic"]
    assert syn["total_pj"] == pytest.approx(15 * 0.9 + 240 * 4.6)
    assert syn["non_spiking_total_pj"] == pytest.approx((2 * 3 * 64 + 240) * 4.6)
    # the full accounting is today's: it adds the 10 Bbar/D accumulates, the state MACs and the adds
    full = total(count_ops(net, outputs, records, valid))
    assert e["total_pj"] == e["accountings"]["full"]["total_pj"] == pytest.approx(
        (full.mac + full.graded_synops) * 4.6 + (full.ac + full.add) * 0.9)
    assert full.ac == 15 + 10


def test_static_energy_by_hand():
    model = COST_MODELS["loihi2"]
    got = static_pj(model, cores=9, cores_per_chip=128, steps=64)
    t_step = 1 / (408.91 * 16)  # the PilotNet LIF run: 408.91 fps at 16 steps per sample
    assert LOIHI2_TIME_PER_STEP_S == t_step and LOIHI2_STATIC_W == (0.232078, 0.281775)
    assert got["pj"] == pytest.approx(0.232078 * 9 / 128 * 64 * t_step * 1e12, rel=1e-12)
    assert got["pj_range"][1] == pytest.approx(0.281775 * 9 / 128 * 64 * t_step * 1e12, rel=1e-12)
    assert static_pj(model, 9, 128, 64, time_per_step_s=1e-3)["pj"] == pytest.approx(0.232078 * 9 / 128 * 64e-3 * 1e12)
    assert static_pj(COST_MODELS["45nm"], 9, 128, 64) == {}


def test_verify_reports_both_accountings_and_static_power(small_checkpoint, netlist):
    result, _ = compare(small_checkpoint, netlist, backend="reference", samples=6, seed=0, progress=False,
                        time_per_step_s=2e-4, cost_models=COST_MODELS)
    models = result["deployed"]["energy"]["models"]
    assert set(models) == {"45nm", "loihi1", "loihi2"}
    for name, m in models.items():
        assert set(m["accountings"]) == {"full", "synaptic"}
        assert result["deployed"]["synaptic_energy_pj_per_inference"][name] == m["accountings"]["synaptic"]["total_pj"]
        assert m["accountings"]["synaptic"]["total_pj"] < m["total_pj"]
    static = models["loihi2"]["static"]
    steps = result["deployed"]["energy"]["steps_per_inference"]
    assert static["pj"] == pytest.approx(0.232078 * static["cores"] / 128 * steps * 2e-4 * 1e12)
    dynamic = models["loihi1"]["total_pj"]  # same per-operation energies
    assert models["loihi2"]["total_pj"] == pytest.approx(dynamic + static["pj"])
    assert models["loihi2"]["parts_pj"]["static"] == static["pj"]
    assert models["loihi2"]["accountings"]["synaptic"]["total_pj"] == models["loihi1"]["accountings"]["synaptic"]["total_pj"]


def test_neurobench_counts_what_we_count_by_hand():
    pytest.importorskip("neurobench")
    from pspike_neuro.energy.crosscheck import our_activation_sparsity, run_neurobench
    from pspike_neuro.verify import float_activity

    model = trained_like(ModelConfig(d_model=6, d_state=4, n_layers=2), seed=1)
    x = torch.rand(5, 7, 1, generator=torch.Generator().manual_seed(0)).numpy()
    x[:, :2] = 0.0  # some zero inputs: the encoder's effective MACs skip them
    nb = run_neurobench(model, x, np.zeros(5, np.int64), None, seed=4, prob_bits=16, batch_size=2)

    class Ckpt:  # what float_activity reads of a checkpoint
        pass

    ckpt = Ckpt()
    ckpt.model = model
    f = float_activity(ckpt, x, None, 4, 16)
    spikes = f["spikes_in"] + f["spikes_out"]
    valid = np.ones(x.shape[:2], bool)
    # the same spikes (common random numbers): the same sparsity
    assert nb["activation_sparsity"] == pytest.approx(our_activation_sparsity(spikes, valid), abs=1e-12)
    # ACs: every output spike reaches the 6 non-zero float weights of its mixer column
    assert nb["effective_acs"] == pytest.approx(sum(int(s.sum()) for s in f["spikes_out"]) * 6 / 5)
    # MACs: the encoder (non-zero inputs x 6 outputs) and the readout once per sample on the time average (6 x 10)
    assert nb["effective_macs"] == pytest.approx((np.count_nonzero(x) * 6 + 5 * 6 * 10) / 5)
    assert nb["membrane_updates"] == 0  # no snnTorch neuron exposes a membrane
