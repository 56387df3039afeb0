"""`pspike verify`: passes a faithful deployment, fails (exit 1) when a tolerance is exceeded."""

import json

import pytest

from pspike_neuro.cli import main


def test_verify_reports_what_the_float_model_and_the_simulator_compute(trained_sdigits, capsys):
    import numpy as np
    import torch

    from pspike_neuro.data import load_task
    from pspike_neuro.numerics.rng import CounterNoise

    ckpt, net = trained_sdigits
    code = main(["verify", str(ckpt.path), str(net), "--samples", "100", "--seed", "3", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == (0 if result["passed"] else 1)
    assert {"float", "deployed", "layers", "passed"} <= set(result)
    task = load_task("sdigits")
    noise = CounterNoise(seed=3, prob_bits=16)
    with torch.no_grad():
        logits = ckpt.model.double()(task.test.x[:100].double(),
                                     noise=lambda site, shape, dev, dt: noise(site, shape, dev, torch.float64))
    assert result["float"]["accuracy"] == float((logits.argmax(-1) == task.test.y[:100]).double().mean())
    assert main(["simulate", str(net), "--samples", "100", "--seed", "3", "--json"]) == 0
    simulated = json.loads(capsys.readouterr().out)
    assert result["deployed"]["accuracy"] == simulated["accuracy"]
    assert result["layers"][1]["output"]["deployed_rate"] == simulated["layers"][1]["output_rate"]
    assert 0.5 < result["layers"][0]["output"]["agreement"] <= 1.0
    assert result["deployed"]["energy_pj_per_inference"]["45nm"] > 0
    assert np.isfinite(result["checks"]["accuracy_drop"]["value"])


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
    assert main(["verify", str(ckpt.path), str(net), "--samples", "20", "--json"]) in (0, 1)
    energy = json.loads(capsys.readouterr().out)["deployed"]["energy"]
    ops = energy["ops_per_inference"]
    for name, model in COST_MODELS.items():
        pj = model["pj"]
        expected = sum(ops[k] * v for k, v in pj.items() if k != "active_extra")
        expected += ops["active_neuron_updates"] * pj.get("active_extra", 0.0)
        got = energy["models"][name]
        assert abs(got["total_pj"] - expected) < 1e-6 * expected
        assert got["ratio_non_spiking_to_spiking"] == pytest.approx(got["non_spiking_total_pj"] / got["total_pj"])
        assert got["non_spiking_total_pj"] > got["total_pj"]


def test_verify_takes_a_user_cost_model(trained_sdigits, tmp_path, capsys):
    ckpt, net = trained_sdigits
    model = tmp_path / "mychip.json"
    model.write_text(json.dumps({"source": "made up for the test", "pj": {"ac": 1.0}}))
    assert main(["verify", str(ckpt.path), str(net), "--samples", "10", "--cost-model", str(model), "--json"]) in (0, 1)
    result = json.loads(capsys.readouterr().out)
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


def test_verify_refuses_a_netlist_from_another_checkpoint(trained_sdigits, small_checkpoint, capsys):
    _, net = trained_sdigits
    assert main(["verify", str(small_checkpoint.path), str(net)]) == 2
    assert "exported from a different checkpoint" in capsys.readouterr().err
