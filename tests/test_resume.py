"""Resumable training: a run killed after its first epoch and resumed ends with the model of an
uninterrupted run, tensor for tensor; a resume folder of another configuration or version, or none,
is refused with one line before anything is written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pspike_neuro import training
from pspike_neuro.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["train", "--task", "sdigits", "--preset", "tiny", "--d-model", "8", "--d-state", "4", "--batch-size", "64",
        "--epochs", "2", "--eval-seeds", "1", "--quiet"]


@pytest.fixture
def one_thread():
    """The killed run is a child with OMP_NUM_THREADS=1; the runs here use the same thread count, so
    that their float sums round the same way."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_killed_after(checkpoints: int, args: list, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m pspike_neuro ARGS`` that ends with os._exit(9) right after its N-th resume.pt (the test hook)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", training.EXIT_AFTER_CHECKPOINTS_ENV: str(checkpoints),
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pspike_neuro", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A 2-epoch run killed right after writing its epoch-1 resume.pt."""
    folder = tmp_path_factory.mktemp("killed")
    proc = run_killed_after(1, TINY + ["--out", folder / "run"], folder)
    assert proc.returncode == 9, proc.stderr
    return folder / "run"


def test_killed_run_leaves_its_epoch_state_and_nothing_else(killed_run):
    assert sorted(p.name for p in killed_run.iterdir()) == ["resume.pt"]
    state = torch.load(killed_run / "resume.pt", weights_only=True)
    assert state["progress"]["epoch"] == 1 and state["progress"]["step_in_epoch"] == 0
    assert state["progress"]["global_step"] == 23 and len(state["progress"]["history"]) == 1
    assert {"optimizer", "scheduler", "model", "per_rank", "identity"} <= set(state)
    assert state["scheduler"]["last_epoch"] == 23 and len(state["per_rank"]) == 1
    assert {"torch", "numpy", "python", "cuda"} <= set(state["per_rank"][0]["rng"])


def test_resumed_run_ends_with_the_model_of_an_uninterrupted_run(killed_run, tmp_path, one_thread, capsys):
    resumed = tmp_path / "resumed"
    import shutil

    shutil.copytree(killed_run, resumed)
    assert main(TINY + ["--resume", str(resumed), "--json"]) == 0
    assert main(TINY + ["--out", str(tmp_path / "whole"), "--json"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in resumed.iterdir()) == ["metrics.json", "model.pt"]  # resume.pt is gone
    a = torch.load(resumed / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    assert states_equal(a["state_dict"], b["state_dict"])
    timing = {"train_time_s", "history"}
    assert {k: v for k, v in a["metrics"].items() if k not in timing} == \
        {k: v for k, v in b["metrics"].items() if k not in timing}
    for x, y in zip(a["metrics"]["history"], b["metrics"]["history"], strict=True):
        assert {**x, "elapsed_s": 0} == {**y, "elapsed_s": 0}


def _refused(args, folder: Path, capsys) -> str:
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing overwritten
    return err


def test_resume_of_another_configuration_is_refused(killed_run, capsys):
    err = _refused([a if a != "2" else "3" for a in TINY] + ["--resume", str(killed_run)], killed_run, capsys)
    assert "another configuration: train_config.epochs is 2 there and 3 here" in err


def test_resume_written_by_another_version_is_refused(killed_run, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    state = torch.load(killed_run / "resume.pt", weights_only=True)
    state["package_version"] = "0.0.1"
    torch.save(state, other / "resume.pt")
    err = _refused(TINY + ["--resume", str(other)], other, capsys)
    assert "written by pspike-neuro 0.0.1" in err


@pytest.mark.parametrize("damage,problem", [
    (lambda s: s.__setitem__("ranks", s.pop("per_rank")), "no per_rank list"),    # an older development layout
    (lambda s: s["progress"].pop("global_step"), "progress lacks global_step"),
    (lambda s: s["per_rank"].append(s["per_rank"][0]), "per_rank holds 2 rank states, not 1 with rng and sums"),
    (lambda s: s.__setitem__("optimizer", None), "no optimizer mapping"),
])
def test_an_incomplete_state_is_refused_in_one_line(killed_run, tmp_path, capsys, damage, problem):
    """A state whose header and configuration match but whose parts do not: named, nothing written."""
    other = tmp_path / "other"
    other.mkdir()
    state = torch.load(killed_run / "resume.pt", weights_only=True)
    damage(state)
    torch.save(state, other / "resume.pt")
    err = _refused(TINY + ["--resume", str(other)], other, capsys)
    assert err.endswith(f"resume.pt is incomplete: {problem} (nothing was written)"), err


def test_resume_without_a_state_is_refused(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text(json.dumps({}))
    (tmp_path / "model.pt").write_bytes(b"x")
    err = _refused(TINY + ["--resume", str(tmp_path)], tmp_path, capsys)
    assert "no resume.pt there (the run there has finished" in err


def test_resume_into_another_folder_may_not_contain_the_state(killed_run, capsys):
    err = _refused(TINY + ["--resume", str(killed_run), "--out", str(killed_run.parent)], killed_run, capsys)
    assert "contains the training state" in err
