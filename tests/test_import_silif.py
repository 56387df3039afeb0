"""The SiLIF repository's trained SSC networks (SiLIF, C-SiLIF, CadLIF, RF): imported, checked against
the authors' golden outputs, deployed (export, reference, Lava, verify), and bad files refused.

The checkpoints and goldens live in ``shared/data/ssm-inspired-lif`` (MIT, © 2025 Maxime Fabre; its
README says how the goldens were made: the authors' code, zero initial states, eval mode).

Tolerances against the goldens:

* float64: spikes of both layers and predictions identical; scores within 1e-12 and membranes within
  1e-11. Ours runs the same equations in another order (BatchNorm through ``(B, H, T)``, the
  softmaxes summed with ``sum`` instead of one by one): rounding at 1e-16 per operation, carried
  through 100 steps of recurrences; measured 8e-15 (scores) and 9e-14 (C-SiLIF's |u| reaches 500).
* float32: scores within 2e-5 (measured 3.3e-6) and at most 4 spikes per layer different (measured
  0). A membrane within float32 rounding of its threshold decides a spike by the order of
  operations, and a flipped spike shifts the reset of the next step, so flips come in pairs: the
  goldens' own C-SiLIF float32 and float64 runs differ by such a pair (sample 2, neuron 127,
  t = 55 and 56, where 2 Re(u) - 1 is -2.1e-6 in float64 and +2.4e-6 in float32).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pspike_neuro.cli import main
from pspike_neuro.errors import UserError
from pspike_neuro.export.checkpoint import load_checkpoint
from pspike_neuro.export.import_silif import import_silif_repo
from pspike_neuro.models import SNNConfig
from pspike_neuro.models.silif import CadLIFLayer
from pspike_neuro.numerics.fixed import quantize_decay

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ssm-inspired-lif"
MODELS = {"SiLIF": "silif", "CSiLIF": "csilif", "CadLIF": "cadlif", "RF": "rf"}
needs_data = pytest.mark.skipif(not (DATA / "SiLIF" / "best_model.pth").is_file(),
                                reason=f"the SiLIF repository's checkpoints and goldens are not in {DATA}")

#: what the deployed networks do on the 8 golden inputs (measured; docs/results.md): per layer the
#: smallest spike agreement, and the fraction of samples whose predicted class is the float model's
DEPLOYED = {"SiLIF": (0.965, 1.0), "CSiLIF": (0.94, 0.5), "CadLIF": (0.975, 0.75), "RF": (0.999, 1.0)}


@pytest.fixture(scope="module")
def golden_inputs(tmp_path_factory):
    """The goldens' input (8 x 100 x 140 spikes) as an --inputs file, and 2 samples x 50 steps for Lava."""
    folder = tmp_path_factory.mktemp("golden-inputs")
    x = np.load(DATA / "SiLIF" / "golden.npz")["input"]
    np.savez(folder / "golden_inputs.npz", x=x)
    np.savez(folder / "lava_inputs.npz", x=x[:2, :50])
    return folder / "golden_inputs.npz", folder / "lava_inputs.npz"


def _run(model, x, dtype):
    probe = {}
    with torch.no_grad():
        scores = model.to(dtype)(torch.from_numpy(x).to(dtype), probe=probe).numpy()
    return scores, probe


@needs_data
@pytest.mark.parametrize("name", MODELS)
def test_float64_reproduces_the_goldens(name):
    torch.set_num_threads(1)
    model, record = import_silif_repo(DATA / name / "best_model.pth", {})
    assert record["model_type"] == MODELS[name] and record["task"] == "ssc"
    g = np.load(DATA / name / "golden.npz")
    scores, probe = _run(model, g["input"], torch.float64)
    for l in (0, 1):
        np.testing.assert_array_equal(probe[f"layer{l}.s"].numpy().astype(np.uint8), g[f"layer{l}_spikes_f64"])
        np.testing.assert_allclose(probe[f"layer{l}.u"].numpy()[[0, 2]], g[f"layer{l}_u_f64"], rtol=0, atol=1e-11)
    np.testing.assert_array_equal(scores.argmax(-1), g["pred_f64"])
    np.testing.assert_allclose(scores, g["scores_f64"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(probe["readout.r"].numpy(), g["readout_u_f64"], rtol=0, atol=1e-12)
    assert g["layer0_spikes_f64"].sum() > 100 and g["layer1_spikes_f64"].sum() > 100


@needs_data
@pytest.mark.parametrize("name", MODELS)
def test_float32_reproduces_the_goldens_within_rounding(name):
    torch.set_num_threads(1)
    model, _ = import_silif_repo(DATA / name / "best_model.pth", {})
    g = np.load(DATA / name / "golden.npz")
    scores, probe = _run(model, g["input"], torch.float32)
    for l in (0, 1):
        assert int((probe[f"layer{l}.s"].numpy().astype(np.uint8) != g[f"layer{l}_spikes_f32"]).sum()) <= 4
    np.testing.assert_allclose(scores, g["scores_f32"], rtol=0, atol=2e-5)
    np.testing.assert_array_equal(scores.argmax(-1), g["pred_f32"])


@needs_data
def test_goldens_csilif_float32_and_float64_differ_by_one_near_threshold_pair():
    """The explanation above, checked on the goldens themselves."""
    g = np.load(DATA / "CSiLIF" / "golden.npz")
    diff = np.argwhere(g["layer1_spikes_f32"] != g["layer1_spikes_f64"])
    assert diff.tolist() == [[2, 55, 127], [2, 56, 127]]
    margin = {tag: 2 * g[f"layer1_u_{tag}"][1, 55, 127].real - 1 for tag in ("f32", "f64")}
    assert -3e-6 < margin["f64"] < 0 < margin["f32"] < 3e-6


@needs_data
def test_cli_import_detects_the_format_and_writes_the_record(tmp_path, capsys):
    out = tmp_path / "rf"
    assert main(["import", str(DATA / "RF" / "best_model.pth"), "-o", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["format"] == "silif-repo" and record["model"] == "RF" and record["model_type"] == "rf"
    assert record["source_sha256"].startswith("28116a9d")
    assert record["converted"]["snn.0.alpha_real"] == "layers.0.alpha_real"
    assert record["converted"]["snn.2.W.weight"] == "readout.linear.weight" and record["tensors"] == 23
    effect = record["approximated"]["initial_states"]["measured"]
    assert len(effect["predictions_changed_of_8"]) == 5 and 0 < effect["max_abs_score_change"] < 100
    assert json.loads((out / "import.json").read_text())["model"] == "RF"
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt.model_type == "rf" and ckpt.task == "ssc" and ckpt.config.input_counts
    assert ckpt.config.rf_dt == 0.004 and ckpt.config.dropout == 0.25
    assert ckpt.metrics["import"]["model"] == "RF"
    layer = ckpt.model.layers[0]
    raw = torch.load(DATA / "RF" / "best_model.pth", weights_only=True)
    assert torch.equal(layer.alpha_real, raw["snn.0.alpha_real"]) and torch.equal(layer.linear.weight, raw["snn.0.W.weight"])
    assert main(["import", str(DATA / "RF" / "best_model.pth"), "-o", str(tmp_path / "again")]) == 0
    assert "RF network 140 -> 512 -> 512 -> 35" in capsys.readouterr().out


@needs_data
@pytest.mark.parametrize("name", MODELS)
def test_deployed_network_on_the_golden_inputs(name, golden_inputs, tmp_path, capsys):
    """export on the golden inputs, verify against the float model, Lava = reference on 2 samples."""
    inputs, lava_inputs = golden_inputs
    ckpt, net = tmp_path / "model.pt", tmp_path / "model.net"
    assert main(["import", str(DATA / name / "best_model.pth"), "-o", str(tmp_path)]) == 0
    capsys.readouterr()
    export = ["export", str(ckpt), "-o", str(net), "--calib-data", str(inputs), "--json"]
    if name == "CSiLIF":   # 5 + 27 nearly undamped neurons round onto |lambda| = 1 at 12 bits
        assert main(export) == 2
        assert "|decay| >= 1" in capsys.readouterr().err
        export.append("--stable-decays")
    assert main(export) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["calibration_saturation_events"] == 0 and summary["calibration"] == "8 samples of --calib-data"
    assert main(["verify", str(ckpt), str(net), "--inputs", str(inputs), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    least_agreement, predictions = DEPLOYED[name]
    assert [r["node"] for r in result["layers"]] == ["neuron0", "neuron1"]
    assert min(r["output"]["agreement"] for r in result["layers"]) >= least_agreement
    assert result["layers"][0]["input"]["agreement"] == 1.0   # the input events themselves
    assert result["prediction_agreement"] >= predictions - 1e-9
    assert result["deployed"]["saturation_events"] == 0
    energy = result["deployed"]["energy"]["models"]
    assert {"45nm", "loihi1"} <= set(energy)
    assert all(0 < m["total_pj"] < m["non_spiking_total_pj"] for m in energy.values())
    for backend in ("reference", "lava"):
        assert main(["simulate", str(net), "--inputs", str(lava_inputs), "--backend", backend, "--json",
                     "--out", str(tmp_path / backend)]) == 0
        capsys.readouterr()
    a, b = np.load(tmp_path / "reference" / "activity.npz"), np.load(tmp_path / "lava" / "activity.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    if name == "RF":   # the report too, on inputs without labels
        assert main(["report", str(ckpt), str(net), "--inputs", str(lava_inputs), "--out", str(tmp_path / "report")]) == 0
        assert "| accuracy | n/a (no labels) | n/a (no labels) |" in (tmp_path / "report" / "report.md").read_text()


def test_stable_decays_round_inward_to_the_nearest_grid_point():
    lam = np.array([0.99999 * np.exp(0.05j), 0.5 + 0.25j])   # the first rounds to (4091, 205): |.| > 4096
    with pytest.raises(ValueError, match="1 SSM mode"):
        quantize_decay(lam)
    re, im = quantize_decay(lam, stable=True)
    assert re[0] ** 2 + im[0] ** 2 < 4096**2 and (re[1], im[1]) == (2048, 1024)
    # the nearest of the four neighbours inside the circle
    target = lam[0] * 4096
    options = [(a, b) for a in (np.floor(target.real), np.ceil(target.real)) for b in (np.floor(target.imag),
                                                                                       np.ceil(target.imag))
               if a * a + b * b < 4096**2]
    best = min(options, key=lambda p: (p[0] - target.real) ** 2 + (p[1] - target.imag) ** 2)
    assert (re[0], im[0]) == best


def test_cadlif_clamps_alpha_and_beta_as_the_authors():
    layer = CadLIFLayer(1, 3, SNNConfig(kind="cadlif", d_input=1))
    with torch.no_grad():
        layer.alpha.copy_(torch.tensor([0.1, 0.5, 1.2]))
        layer.beta.copy_(torch.tensor([0.5, 0.97, 2.0]))
        layer.a.copy_(torch.tensor([-1.0, 0.5, 3.0]))
        layer.b.copy_(torch.tensor([-1.0, 1.0, 3.0]))
    alpha, beta, a, b = (t.detach().numpy() for t in layer.coefficients())
    np.testing.assert_allclose(alpha, [0.36, 0.5, 0.96], rtol=1e-7)
    np.testing.assert_allclose(beta, [0.96, 0.97, 0.99], rtol=1e-7)
    np.testing.assert_allclose(a, [0, 0.5, 1]) and np.testing.assert_allclose(b, [0, 1, 2])
    torch.manual_seed(0)
    fresh = CadLIFLayer(4, 256, SNNConfig(kind="cadlif"))
    assert 0.36 <= float(fresh.alpha.min()) and float(fresh.alpha.max()) <= 0.96
    assert 0.96 <= float(fresh.beta.min()) and float(fresh.beta.max()) <= 0.99


def test_train_cli_builds_cadlif_and_rf_networks(tmp_path, capsys):
    for kind in ("cadlif", "rf"):
        out = tmp_path / kind
        assert main(["train", "--task", "sdigits-spikes", "--model", kind, "--d-model", "8", "--epochs", "1",
                     "--out", str(out), "--json", "--quiet"]) == 0
        assert json.loads(capsys.readouterr().out)["model"] == kind
        ckpt = load_checkpoint(out / "model.pt")
        assert ckpt.model_type == kind and not ckpt.config.input_counts   # sdigits-spikes is binary
        assert main(["export", str(out / "model.pt"), "-o", str(out / "model.net"), "--calib-samples", "32"]) == 0
        capsys.readouterr()
        assert main(["simulate", str(out / "model.net"), "--samples", "4", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["samples"] == 4


# --- bad input ----------------------------------------------------------------------------------------


def _tiny_silif(n_in=3, width=4, classes=2) -> dict:
    """A state dict in the repository's layout, SiLIF neurons, small."""
    torch.manual_seed(0)
    state = {}
    for l, fan_in in enumerate((n_in, width)):
        state.update({f"snn.{l}.dt": torch.full((width,), -5.5), f"snn.{l}.alpha": torch.rand(width) + 3,
                      f"snn.{l}.beta": torch.rand(width) + 1, f"snn.{l}.a": torch.rand(width),
                      f"snn.{l}.b": torch.rand(width), f"snn.{l}.W.weight": torch.randn(width, fan_in)})
        state.update(_norm(f"snn.{l}", width))
    state.update({"snn.2.alpha": torch.full((classes,), 0.9), "snn.2.W.weight": torch.randn(classes, width),
                  **_norm("snn.2", classes)})
    return state


def _norm(prefix, width):
    return {f"{prefix}.norm.weight": torch.ones(width), f"{prefix}.norm.bias": torch.zeros(width),
            f"{prefix}.norm.running_mean": torch.zeros(width), f"{prefix}.norm.running_var": torch.ones(width),
            f"{prefix}.norm.num_batches_tracked": torch.tensor(7)}


def test_a_small_state_dict_in_the_repositorys_layout_imports(tmp_path, capsys):
    torch.save(_tiny_silif(), tmp_path / "best_model.pth")
    assert main(["import", str(tmp_path / "best_model.pth"), "-o", str(tmp_path / "out"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["model"] == "SiLIF" and "task" not in record   # not SSC's shapes: no task recorded
    ckpt = load_checkpoint(tmp_path / "out" / "model.pt")
    assert (ckpt.config.d_input, ckpt.config.d_hidden, ckpt.config.n_classes, ckpt.task) == (3, 4, 2, "")


def _edited(edit):
    state = _tiny_silif()
    edit(state)
    return state


@pytest.mark.parametrize("payload, fmt, message", [
    ({"fc.weight": torch.zeros(2, 2)}, "auto", "is a PyTorch checkpoint; pspike import reads"),
    ({"fc.weight": torch.zeros(2, 2)}, "silif-repo", "tensor fc.weight is not part of a SiLIF-repository network"),
    ([torch.zeros(2)], "silif-repo", "holds a list, not a state dict"),
    (_edited(lambda s: s.pop("snn.1.b")), "auto", "missing tensor snn.1.b (a SiLIF layer holds dt alpha beta a b)"),
    (_edited(lambda s: s.pop("snn.0.norm.running_var")), "auto", "layer 0: missing snn.0.norm.running_var"),
    (_edited(lambda s: s.__setitem__("snn.1.W.weight", torch.zeros(4, 5))), "auto",
     "tensor snn.1.W.weight has shape (4, 5), expected (4, 4)"),
    (_edited(lambda s: s.__setitem__("snn.0.a", torch.zeros(3))), "auto", "tensor snn.0.a has shape (3,), expected (4,)"),
    (_edited(lambda s: s.__setitem__("snn.0.alpha", torch.zeros(4, dtype=torch.float64))), "auto",
     "tensor snn.0.alpha has dtype float64, expected float32"),
    (_edited(lambda s: s["snn.2.W.weight"].__setitem__((0, 0), float("nan"))), "auto",
     "tensor snn.2.W.weight has 1 NaN or infinite value(s)"),
    (_edited(lambda s: s.__setitem__("snn.1.V.weight", torch.zeros(4, 4))), "auto", "recurrent matrix V"),
    (_edited(lambda s: s.__setitem__("snn.0.W.bias", torch.zeros(4))), "auto", "use_bias=True"),
    (_edited(lambda s: s.__setitem__("snn.1.W.weight", torch.zeros(4, 8))), "auto", "bidirectional network"),
    (_edited(lambda s: [s.pop(f"snn.1.{k}") for k in ("dt", "alpha", "beta", "a", "b")] and s.update(
        {"snn.1.alpha_real": torch.zeros(4), "snn.1.alpha_im": torch.zeros(4)})), "auto", "mix neuron models"),
    (_edited(lambda s: s.__setitem__("snn.2.extra", torch.zeros(2))), "auto", "is not the authors' leaky readout"),
    (_edited(lambda s: [s.pop(k) for k in list(s) if k.startswith("snn.2.")]), "auto",
     "layer 1 is not the authors' leaky readout"),
])
def test_bad_state_dicts_are_refused_in_one_line(tmp_path, capsys, payload, fmt, message):
    torch.save(payload, tmp_path / "best_model.pth")
    out = tmp_path / "out"
    assert main(["import", str(tmp_path / "best_model.pth"), "-o", str(out), "--format", fmt]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_file_that_is_no_state_dict_is_refused(tmp_path, capsys):
    (tmp_path / "best_model.pth").write_text("not a checkpoint\n")
    assert main(["import", str(tmp_path / "best_model.pth"), "-o", str(tmp_path / "out"), "--format", "silif-repo"]) == 2
    err = capsys.readouterr().err
    assert "not readable as a PyTorch state dict" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match="no such file"):
        from pspike_neuro.export.imports import import_model

        import_model(tmp_path / "missing.pth", tmp_path / "out", fmt="silif-repo")
