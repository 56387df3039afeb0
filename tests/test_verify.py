"""`pspike verify`: passes a faithful deployment, fails (exit 1) when a tolerance is exceeded."""

import json

import pytest

from pspike_neuro.cli import main


def test_verify_reports_what_the_float_model_and_the_simulator_compute(trained_sdigits, capsys):
    import numpy as np
    import torch

    from pspike_neuro.data import load_task
    from pspike_neuro.export.hdf5 import read_netlist
    from pspike_neuro.numerics.rng import CounterNoise
    from pspike_neuro.sim.reference import simulate

    ckpt, net = trained_sdigits
    code = main(["verify", str(ckpt.path), str(net), "--samples", "100", "--seed", "3", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == (0 if result["passed"] else 1)
    task = load_task("sdigits")
    noise = CounterNoise(seed=3, prob_bits=16)
    probe = {}
    with torch.no_grad():
        logits = ckpt.model.double()(task.test.x[:100].double(), probe=probe,
                                     noise=lambda site, shape, dev, dt: noise(site, shape, dev, torch.float64))
    float_acc = float((logits.argmax(-1) == task.test.y[:100]).double().mean())
    assert result["float"]["accuracy"] == float_acc
    assert main(["simulate", str(net), "--samples", "100", "--seed", "3", "--json"]) == 0
    simulated = json.loads(capsys.readouterr().out)
    assert result["deployed"]["accuracy"] == simulated["accuracy"]
    assert result["checks"]["accuracy_drop"]["value"] == pytest.approx(100 * (float_acc - simulated["accuracy"]))
    deployed = simulate(read_netlist(net), np.asarray(task.test.x[:100]), seed=3)
    for l in range(2):
        f_out, d_out = probe[f"layer{l}.o"].numpy().astype(bool), deployed.spikes_out[l]
        row = result["layers"][l]["output"]
        assert row["deployed_rate"] == simulated["layers"][l]["output_rate"] == pytest.approx(d_out.mean())
        assert row["float_rate"] == pytest.approx(f_out.mean())
        assert row["agreement"] == pytest.approx((f_out == d_out).mean())   # spike by spike
        assert 0.5 < row["agreement"] < 1.0
    # energy per inference of the deployed spikes, counted here from docs/energy-model.md: per block
    # T H (1 + 6M) + T H MACs; ACs: S_in (2M + 1) plus each output spike's mixer fan-out; readout T H classes
    t, h, m, classes, n = 64, 32, 4, 10, 100
    graph = read_netlist(net)
    ac = sum(deployed.spikes_in[l].sum() * (2 * m + 1)
             + (deployed.spikes_out[l].sum((0, 1)) * np.count_nonzero(graph.nodes[f"mixer{l}"].to_dense(), 0)).sum()
             for l in range(2)) / n
    mac, graded, add = 2 * (t * h * (1 + 6 * m) + t * h), t * h * classes, 2 * 4 * t * h + t * classes
    assert result["deployed"]["energy_pj_per_inference"]["45nm"] == pytest.approx(
        4.6 * (mac + graded) + 0.9 * (ac + add), rel=1e-12)


def test_verify_passes_a_faithful_deployment(trained_sdigits, capsys):
    ckpt, net = trained_sdigits
    code = main(["verify", str(ckpt.path), str(net), "--seed", "4", "--seeds", "8", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["passed"] and result["failed_checks"] == []
    assert result["seeds"] == list(range(4, 12)) and len(result["float"]["accuracy_per_seed"]) == 8
    assert result["float"]["accuracy"] > 0.85
    assert abs(result["float"]["accuracy"] - result["deployed"]["accuracy"]) < 0.01
    assert result["checks"]["max_rate_difference"]["value"] < 0.02
    assert result["deployed"]["saturation_events"] == 0
    for layer in result["layers"]:
        assert layer["output"]["per_neuron_correlation"] > 0.99
        assert len(layer["output"]["deployed_per_neuron"]) == 32


def test_energy_in_verify_is_counts_times_constants(trained_sdigits, capsys):
    from pspike_neuro.energy.costs import COST_MODELS

    ckpt, net = trained_sdigits
    code = main(["verify", str(ckpt.path), str(net), "--samples", "20", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == (0 if result["passed"] else 1)
    energy = result["deployed"]["energy"]
    ops, dense = energy["ops_per_inference"], energy["non_spiking_ops_per_inference"]
    # the counts that do not depend on the spikes, from docs/energy-model.md (2 blocks, T=64, H=32, M=4, 10 classes)
    t, h, m, c = 64, 32, 4, 10
    fixed = dict(mac=2 * (t * h * (1 + 6 * m) + t * h), graded_synops=t * h * c, add=2 * 4 * t * h + t * c,
                 rng=2 * 2 * t * h, neuron_updates=2 * (t * h * (m + 1) + t * h) + t * c, graded_messages=3 * t * h)
    assert {k: ops[k] for k in fixed} == fixed == dict(mac=106496, graded_synops=20480, add=17024, rng=8192,
                                                        neuron_updates=25216, graded_messages=6144)
    assert ops["active_neuron_updates"] == ops["binary_messages"] > 0
    # the non-spiking counterpart: Bbar x, D x and the mixer are graded MACs, T H (2M + 1) + T H^2 per block
    assert dense == dict(mac=fixed["mac"], ac=0, graded_synops=2 * (t * h * (2 * m + 1) + t * h * h) + t * h * c,
                         add=fixed["add"], rng=0, neuron_updates=fixed["neuron_updates"], active_neuron_updates=0,
                         binary_messages=0, graded_messages=2 * t * h + 2 * t * h + t * h)
    for name in ("45nm", "loihi1"):   # the models priced per operation only (docs/energy-model.md, "Cost models")
        pj = COST_MODELS[name]["pj"]
        expected = sum(ops[k] * v for k, v in pj.items() if k != "active_extra")
        expected += ops["active_neuron_updates"] * pj.get("active_extra", 0.0)
        counterpart = sum(dense[k] * v for k, v in pj.items() if k != "active_extra")
        got = energy["models"][name]
        assert got["total_pj"] == pytest.approx(expected, rel=1e-12)
        assert got["non_spiking_total_pj"] == pytest.approx(counterpart, rel=1e-12)
        assert got["ratio_non_spiking_to_spiking"] == pytest.approx(counterpart / expected, rel=1e-12)
        assert sum(got["per_node_pj"].values()) == pytest.approx(expected, rel=1e-12)
    # the constants are the documented ones (docs/energy-model.md, "Cost models")
    assert COST_MODELS["45nm"]["pj"] == {"mac": 4.6, "graded_synops": 4.6, "ac": 0.9, "add": 0.9}
    assert COST_MODELS["loihi1"]["pj"] == {"ac": 23.6, "graded_synops": 23.6, "neuron_updates": 52.0, "active_extra": 29.0,
                                           "binary_messages": 1.7, "graded_messages": 1.7}


def test_verify_takes_a_user_cost_model(trained_sdigits, tmp_path, capsys):
    ckpt, net = trained_sdigits
    model = tmp_path / "mychip.json"
    model.write_text(json.dumps({"source": "made up for the test", "pj": {"ac": 1.0}}))
    code = main(["verify", str(ckpt.path), str(net), "--samples", "10", "--cost-model", str(model), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == (0 if result["passed"] else 1)
    energy = result["deployed"]["energy"]
    assert list(energy["models"]) == ["mychip"]
    assert energy["models"]["mychip"]["total_pj"] == pytest.approx(energy["ops_per_inference"]["ac"], rel=1e-12)
    bad = tmp_path / "bad.json"
    bad.write_text('{"source": "x", "pj": {"teleport": 3}}')
    assert main(["verify", str(ckpt.path), str(net), "--cost-model", str(bad)]) == 2
    assert "unknown operation 'teleport'" in capsys.readouterr().err


def test_verify_fails_with_two_bit_weights(trained_sdigits, tmp_path, capsys):
    ckpt, _ = trained_sdigits
    coarse = tmp_path / "w2.net"
    assert main(["export", str(ckpt.path), "-o", str(coarse), "--weight-bits", "2", "--calib-samples", "32"]) == 0
    capsys.readouterr()
    assert main(["verify", str(ckpt.path), str(coarse), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert not result["passed"] and "accuracy_drop" in result["failed_checks"]
    drop = result["checks"]["accuracy_drop"]
    assert drop["limit"] == 1.0 and drop["must_be"] == "<="
    assert drop["value"] > 1.0
    assert drop["value"] == pytest.approx(100 * (result["float"]["accuracy"] - result["deployed"]["accuracy"]))


def test_verify_refuses_a_netlist_from_another_checkpoint(trained_sdigits, small_checkpoint, capsys):
    _, net = trained_sdigits
    assert main(["verify", str(small_checkpoint.path), str(net)]) == 2
    assert "exported from a different checkpoint" in capsys.readouterr().err
