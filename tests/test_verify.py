"""`pspike verify`: passes a faithful deployment, fails (exit 1) when a tolerance is exceeded."""

import json

from pspike_neuro.cli import main


def test_verify_reports_what_the_float_model_and_the_simulator_compute(trained_sdigits, capsys):
    import numpy as np
    import torch

    from pspike_neuro.data import load_task
    from pspike_neuro.sim.rng import CounterNoise

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
