"""Checkpoints and the train/eval command line: round trips, JSON output, refused inputs."""

import json
import subprocess
import sys

import pytest
import torch

from pspike_neuro.cli import main
from pspike_neuro.errors import UserError
from pspike_neuro.export.checkpoint import load_checkpoint, save_checkpoint
from pspike_neuro.models import ModelConfig, PSpikeSSM
from pspike_neuro.training import SeededNoise


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return PSpikeSSM(ModelConfig(d_model=8, d_state=4, n_layers=2)).eval()


@pytest.fixture
def ckpt_path(tmp_path, tiny_model):
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_model, task="sdigits", metrics={"test_accuracy": 0.5})
    return path


def test_round_trip_gives_identical_outputs(ckpt_path, tiny_model):
    ckpt = load_checkpoint(ckpt_path)
    x = torch.rand(4, 64, 1)
    torch.testing.assert_close(ckpt.model(x, noise=SeededNoise(3)), tiny_model(x, noise=SeededNoise(3)),
                               rtol=0, atol=0)
    assert ckpt.config == tiny_model.cfg and ckpt.task == "sdigits"
    assert ckpt.metrics["test_accuracy"] == 0.5 and len(ckpt.sha256) == 64


def _resave(path, mutate):
    payload = torch.load(path, weights_only=True)
    mutate(payload)
    torch.save(payload, path)


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p["state_dict"].pop("blocks.1.ssm.C"), "missing tensor.*blocks.1.ssm.C"),
    (lambda p: p["state_dict"].__setitem__("blocks.0.mixer.weight", torch.zeros(8, 9)),
     r"blocks.0.mixer.weight has shape \(8, 9\), model_config needs \(8, 8\)"),
    (lambda p: p["state_dict"]["readout.bias"].__setitem__(0, float("nan")), "readout.bias has 1 NaN"),
    (lambda p: p["state_dict"].__setitem__("extra.weight", torch.zeros(2)), "unexpected tensor.*extra.weight"),
    (lambda p: p.pop("model_config"), r"missing field\(s\) model_config$"),
    (lambda p: p["model_config"].__setitem__("d_state", 5), r"model config: d_state must be an even integer >= 2, got 5$"),
    (lambda p: p.__setitem__("format_version", 99),
     r"format version 99 is newer than this pspike-neuro reads \(1\); upgrade pspike-neuro$"),
    (lambda p: p.__setitem__("format", "something-else"), "not a pspike-neuro checkpoint"),
])
def test_damaged_checkpoints_are_refused_with_a_named_reason(ckpt_path, mutate, message):
    _resave(ckpt_path, mutate)
    with pytest.raises(UserError, match=message):
        load_checkpoint(ckpt_path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_files_that_are_not_checkpoints_are_refused(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match="not a pspike-neuro checkpoint"):
        load_checkpoint(path)


def test_truncated_checkpoint_is_refused(ckpt_path):
    data = ckpt_path.read_bytes()
    ckpt_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="not a pspike-neuro checkpoint"):
        load_checkpoint(ckpt_path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_checkpoint(tmp_path / "nope.pt")


def test_train_then_eval_json(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--task", "sdigits", "--preset", "tiny", "--epochs", "1", "--out", str(out),
                 "--eval-seeds", "2", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["checkpoint"] == str(out / "model.pt")
    per_seed = result["test_accuracy_per_seed"]
    assert len(per_seed) == 2 and result["inference_seeds"] == [0, 1]
    # each seed's accuracy is a count of the 360 test samples, and the reported one their mean
    assert all(abs(a * 360 - round(a * 360)) < 1e-4 for a in per_seed)
    assert result["test_accuracy"] == pytest.approx(sum(per_seed) / 2)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] == result["test_accuracy"]
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt.config.d_model == 32 and ckpt.train_config["epochs"] == 1

    assert main(["eval", str(out / "model.pt"), "--seeds", "2", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["checkpoint"] == str(out / "model.pt")
    # the same seeds give the same stochastic accuracy as at the end of training
    assert evaluated["test_accuracy"] == pytest.approx(result["test_accuracy"])


@pytest.mark.parametrize("argv, message", [
    (["train", "--task", "imagenet", "--out", "X"], "unknown task 'imagenet'; known tasks: sdigits"),
    (["train", "--task", "sdigits", "--preset", "huge", "--out", "X"], "unknown preset 'huge'"),
    (["train", "--task", "smnist", "--out", "X"], "needs data_dir"),
    (["train", "--task", "sdigits", "--d-state", "3", "--out", "X"], "d_state must be an even"),
    (["eval", "missing.pt"], "no such file"),
])
def test_user_errors_are_one_line_with_exit_code_2(tmp_path, capsys, argv, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_console_script_exit_code_and_message_for_a_non_checkpoint(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    proc = subprocess.run([sys.executable, "-m", "pspike_neuro.cli", "eval", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"pspike eval: error: checkpoint {bad}: is a text file, not a pspike-neuro checkpoint"]
