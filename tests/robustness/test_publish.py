"""Files that belong together (``activity.npz`` + ``summary.json`` of a simulation, ``model.pt`` +
``metrics.json`` of a training run) are published as a set: a writer SIGKILLed while writing leaves
the previous set byte for byte; one killed between two renames leaves a set without its marker file
(``summary.json``, ``metrics.json``), never one run's marker beside another run's data. The next run
removes the dead writer's temporary files."""

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pspike_neuro.cli import main

#: child-process preambles that SIGKILL the child at a chosen moment of publishing
KILL_WHILE_WRITING = """
import numpy, torch
def _die(*args, **kwargs):
    fh = args[0] if not isinstance(args[0], str) else open(args[0], "ab")
    fh.write(b"half a file"); fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)
numpy.savez_compressed = _die
torch.save = lambda obj, f, *a, **k: _die(open(f, "ab"))
"""
KILL_BETWEEN_RENAMES = """
_real_replace = os.replace
def _replace(src, dst, *args, **kwargs):
    _real_replace(src, dst, *args, **kwargs)
    if os.path.basename(str(dst)) in ("activity.npz", "model.pt"):
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = _replace
"""


def _run_child(preamble: str, body: str) -> int:
    code = "import os, signal, sys\n" + preamble + "\n" + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    return proc.returncode


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _simulate(net, out, seed):
    return f"""
        from pspike_neuro.cli import main
        sys.exit(main(["simulate", {str(net)!r}, "--samples", "5", "--seed", "{seed}", "--out", {str(out)!r}]))
    """


@pytest.mark.parametrize("moment", ["while writing", "between renames"])
def test_killed_simulation_never_mixes_two_runs(robust_net, tmp_path, capsys, moment):
    out = tmp_path / "sim"
    assert main(["simulate", str(robust_net), "--samples", "5", "--seed", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    before = _snapshot(out)
    preamble = KILL_WHILE_WRITING if moment == "while writing" else KILL_BETWEEN_RENAMES
    assert _run_child(preamble, _simulate(robust_net, out, 2)) == -signal.SIGKILL
    after = {name: data for name, data in _snapshot(out).items() if not name.startswith(".")}
    leftovers = [name for name in _snapshot(out) if name.startswith(".")]
    if moment == "while writing":
        assert after == before and leftovers                   # the previous set, byte for byte
    else:
        assert sorted(after) == ["activity.npz"]                # no marker: an incomplete set
        assert after["activity.npz"] != before["activity.npz"]  # the new spikes, complete:
        with np.load(out / "activity.npz") as npz:
            assert npz["predictions"].shape == (5,)
    assert main(["simulate", str(robust_net), "--samples", "5", "--seed", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    final = _snapshot(out)
    assert sorted(final) == ["activity.npz", "summary.json"]   # the dead writer's temporaries are gone
    assert json.loads(final["summary.json"])["seed"] == 2
    if moment == "between renames":
        assert final["activity.npz"] == after["activity.npz"]  # same seed, same spikes


TRAIN = """
    import dataclasses
    import lava.magma.runtime.message_infrastructure.multiprocessing
    from pspike_neuro.data import load_task
    from pspike_neuro.data.dataset import SeqDataset
    from pspike_neuro.models import ModelConfig
    from pspike_neuro.training import TrainConfig, train
    task = load_task("sdigits")
    small = lambda d: SeqDataset(d.x[:48], d.y[:48], d.lengths[:48])
    task = dataclasses.replace(task, train=small(task.train), test=small(task.test))
    train(task, ModelConfig(d_model=4, d_state=2, n_layers=1), TrainConfig(epochs=1, eval_seeds=1, seed={seed}),
          {out!r}, progress=False, log=lambda m: None)
"""


def _train_here(seed, out):
    """The child's training, in this process (48 samples, H=4: about a second)."""
    exec(textwrap.dedent(TRAIN.format(seed=seed, out=str(out))), {})


def test_killed_training_never_pairs_a_model_with_other_metrics(tmp_path):
    out = tmp_path / "run"
    _train_here(0, out)
    before = _snapshot(out)
    assert sorted(before) == ["metrics.json", "model.pt"]
    assert _run_child(KILL_WHILE_WRITING, TRAIN.format(seed=1, out=str(out))) == -signal.SIGKILL
    assert {k: v for k, v in _snapshot(out).items() if not k.startswith(".")} == before
    assert _run_child(KILL_BETWEEN_RENAMES, TRAIN.format(seed=1, out=str(out))) == -signal.SIGKILL
    after = {k: v for k, v in _snapshot(out).items() if not k.startswith(".")}
    # the new model without the old metrics; the killed run's resume.pt stays (it goes once metrics.json is in
    # place), so --resume can still finish that run
    assert sorted(after) == ["model.pt", "resume.pt"] and after["model.pt"] != before["model.pt"]
    _train_here(1, out)
    final = _snapshot(out)
    assert sorted(final) == ["metrics.json", "model.pt"]       # temporaries of both killed runs removed
    assert final["model.pt"] != before["model.pt"] and final["metrics.json"] != before["metrics.json"]
