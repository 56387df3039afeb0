"""`pspike simulate`: JSON output, recorded activity, both backends agree, refused inputs."""

import json

import numpy as np
import pytest

from pspike_neuro.cli import main
from pspike_neuro.data import load_task


def test_reference_and_lava_agree_through_the_cli(trained_sdigits, tmp_path, capsys):
    _, net = trained_sdigits
    assert main(["simulate", str(net), "--samples", "3", "--seed", "4", "--json", "--out", str(tmp_path / "ref")]) == 0
    ref = json.loads(capsys.readouterr().out)
    assert main(["simulate", str(net), "--backend", "lava", "--samples", "3", "--seed", "4", "--json",
                 "--out", str(tmp_path / "lava")]) == 0
    lava = json.loads(capsys.readouterr().out)
    assert {"accuracy", "layers", "steps_per_second", "saturation_events"} <= set(ref)
    assert ref["accuracy"] == lava["accuracy"] and ref["layers"] == lava["layers"]
    assert ref["steps_per_second"] > 0 and len(ref["layers"]) == 2
    a = np.load(tmp_path / "ref" / "activity.npz")
    b = np.load(tmp_path / "lava" / "activity.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    assert a["layer0_output_spikes"].shape == (3, 64, 32) and a["predictions"].shape == (3,)
    # the summary's numbers, counted again from the recorded arrays and the task's labels
    labels = load_task("sdigits").test.y[:3].numpy()
    assert ref["accuracy"] == float((a["predictions"] == labels).mean())
    np.testing.assert_array_equal(a["predictions"], a["logits"].argmax(-1))
    for l in range(2):
        row, s_in, s_out = ref["layers"][l], a[f"layer{l}_input_spikes"], a[f"layer{l}_output_spikes"]
        assert (row["input_spikes"], row["output_spikes"]) == (int(s_in.sum()), int(s_out.sum()))
        assert row["input_rate"] == pytest.approx(s_in.mean()) and row["output_rate"] == pytest.approx(s_out.mean())
    assert 0 < ref["layers"][0]["output_spikes"] < 3 * 64 * 32
    assert json.loads((tmp_path / "ref" / "summary.json").read_text())["accuracy"] == ref["accuracy"]


def test_second_run_replaces_the_first_in_the_same_folder(trained_sdigits, tmp_path, capsys):
    _, net = trained_sdigits
    out = tmp_path / "run"
    main(["simulate", str(net), "--samples", "5", "--out", str(out), "--json"])
    main(["simulate", str(net), "--samples", "2", "--out", str(out), "--json"])
    capsys.readouterr()
    assert np.load(out / "activity.npz")["predictions"].shape == (2,)
    assert json.loads((out / "summary.json").read_text())["samples"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["activity.npz", "summary.json"]


@pytest.mark.parametrize("extra, message", [
    (["--backend", "gpu"], "--backend must be one of reference, lava"),
    (["--precision", "double"], "--precision must be fixed or float"),
    (["--samples", "0"], "--samples must be in 1..360"),
    (["--task", "listops"], "task listops has d_input=16 (tokens); the netlist's input takes 1"),
])
def test_simulate_user_errors(trained_sdigits, capsys, extra, message):
    _, net = trained_sdigits
    assert main(["simulate", str(net), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_quick_demo_runs_the_pipeline(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--epochs", "1", "--lava-samples", "1", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"float_accuracy", "deployed_accuracy", "lava_accuracy", "spike_rates"} <= set(summary)
    for name in ("model.pt", "metrics.json", "model.net", "reference/activity.npz", "lava/summary.json",
                 "verify.json", "report/report.html", "report/report.md", "report/figures/raster.png"):
        assert (out / name).exists(), name
    assert summary["lava_samples"] == 1 and len(summary["spike_rates"]) == 2
    verified = json.loads((out / "verify.json").read_text())
    assert verified["seeds"] == [0, 1, 2] and summary["verified"] == verified["passed"]
    assert summary["deployed_accuracy"] == verified["deployed"]["accuracy"]
    assert summary["float_accuracy_training_eval"] == json.loads((out / "metrics.json").read_text())["test_accuracy"]
    # the reference ran the whole test set, Lava its first sample, bit-exact to the reference's
    labels = load_task("sdigits").test.y.numpy()
    with np.load(out / "reference" / "activity.npz") as ref, np.load(out / "lava" / "activity.npz") as lava:
        assert ref["predictions"].shape == (360,) and lava["predictions"].shape == (1,)
        assert summary["reference_accuracy_seed"] == float((ref["predictions"] == labels).mean())
        assert summary["lava_accuracy"] == float(lava["predictions"][0] == labels[0])
        for key in ref.files:
            np.testing.assert_array_equal(lava[key], ref[key][:1], err_msg=key)
    assert summary["spike_rates"] == [[r["input"]["deployed_rate"], r["output"]["deployed_rate"]] for r in verified["layers"]]
    for name in ("45nm", "loihi1"):
        e = verified["deployed"]["energy"]["models"][name]
        assert summary["energy_uj_per_inference"][name] == e["total_pj"] / 1e6 > 0
        assert abs(summary["energy_ratio_non_spiking_to_spiking"][name] - e["non_spiking_total_pj"] / e["total_pj"]) < 1e-9
