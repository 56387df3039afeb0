"""torchrun with 2 ranks on the CPU (gloo): training with the global batch split across ranks matches
one process, a killed distributed run resumes exactly, and simulate / verify / eval shard their
samples and gather on rank 0 the results of one process, bit for bit, on both backends."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from pspike_neuro import distributed, training
from pspike_neuro.cli import main
from pspike_neuro.numerics.rng import CounterNoise

ROOT = Path(__file__).resolve().parents[1]
TINY = ["train", "--task", "sdigits", "--preset", "tiny", "--d-model", "8", "--d-state", "4", "--batch-size", "64",
        "--epochs", "1", "--eval-seeds", "1", "--quiet"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, cwd: Path, env: dict | None = None, launcher: bool = False) -> subprocess.CompletedProcess:
    """2 ranks on this machine, each with one torch thread, through torchrun (or our launcher)."""
    start = [sys.executable, "-m", "pspike_neuro"] if launcher else [sys.executable, "-m", "torch.distributed.run"]
    cmd = [*start, "--nproc-per-node", "2", "--master-port", str(free_port()), "--monitor-interval", "0.2",
           *map(str, args)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=600)


# ---------------------------------------------------------------- pieces, in one process

def test_shards_are_contiguous_whole_blocks_covering_every_sample(monkeypatch):
    for n, block, world in [(100, 1, 2), (100, 64, 2), (10, 64, 3), (360, 256, 2), (7, 1, 4)]:
        parts = []
        for rank in range(world):
            monkeypatch.setattr(distributed, "_ranks", distributed.Ranks(rank=rank, world=world))
            parts.append(distributed.shard(n, block))
        assert [i for p in parts for i in p] == list(range(n))
        assert all(p.start % block == 0 for p in parts if len(p))


def test_global_batches_are_split_so_that_the_ranks_hold_the_one_process_batch():
    one = list(distributed.GlobalBatchSampler(150, 64, seed=3))
    two = [list(distributed.GlobalBatchSampler(150, 64, seed=3, rank=r, world=2)) for r in range(2)]
    assert [len(b) for b in one] == [64, 64, 22]
    for step, batch in enumerate(one):
        assert torch.equal(torch.cat([two[0][step], two[1][step]]), batch)
    assert not torch.equal(torch.cat(one), torch.arange(150))  # shuffled, and per epoch differently
    other = distributed.GlobalBatchSampler(150, 64, seed=3)
    other.set_epoch(1)
    assert not torch.equal(torch.cat(list(other)), torch.cat(one))
    assert len(distributed.GlobalBatchSampler(129, 64, 0, rank=0, world=2)) == 2  # a last batch of 1 < 2 ranks


def test_sample_noise_is_the_counter_generator_addressed_by_sample():
    ids = torch.tensor([5, 900, 17])
    u = training.SampleNoise(11, ids)(6, (3, 20, 7), "cpu", torch.float32)
    ref = CounterNoise(11, 24, ids)(6, (3, 20, 7), "cpu", torch.float32)
    assert torch.equal(u, ref)
    alone = training.SampleNoise(11, ids[1:2])(6, (1, 20, 7), "cpu", torch.float32)
    assert torch.equal(alone[0], u[1])


# ---------------------------------------------------------------- training under torchrun

class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def killed_at_step_3(tmp_path_factory):
    """A 2-rank run (global batch 64: 32 per rank) killed right after its resume.pt of step 3."""
    folder = tmp_path_factory.mktemp("dist")
    proc = torchrun("-m", "pspike_neuro", *TINY, "--checkpoint-every", "3", "--out", folder / "run", cwd=folder,
                    env={training.EXIT_AFTER_CHECKPOINTS_ENV: "1"})
    assert "exitcode  : 9" in proc.stderr, proc.stderr[-3000:]
    return folder / "run"


def test_two_ranks_of_32_give_the_parameters_of_one_process_of_64(killed_at_step_3, tmp_path, monkeypatch, capsys):
    """Equal up to float rounding: DDP sums the two ranks' gradient sums and the synchronized BatchNorm
    the ranks' moments, in another order than one process's sums over 64 samples; the differences,
    ~1e-7 relative, pass through 3 Adam steps (observed below 2e-5). Exception: ``encoder.bias``
    feeds only BatchNorms, which subtract it again, so its true gradient is zero and autograd's is
    rounding noise whose sign Adam turns into steps of +-lr: it may differ by 2 lr per step, and the
    BatchNorms' running means, which see it, by momentum times the bias differences of the steps
    they saw (0.1 * (0 + 2 + 4) lr)."""
    def stop_after_first(self):
        raise _Stop

    monkeypatch.setattr(training._CheckpointHook, "written", stop_after_first)
    with pytest.raises(_Stop):
        main(TINY + ["--checkpoint-every", "3", "--out", str(tmp_path)])
    capsys.readouterr()
    one = torch.load(tmp_path / "resume.pt", weights_only=True)
    two = torch.load(killed_at_step_3 / "resume.pt", weights_only=True)
    assert one["progress"]["global_step"] == two["progress"]["global_step"] == 3
    lr = 4e-3
    worst = {}
    for name, a in one["model"].items():
        b = two["model"][name]
        assert a.shape == b.shape and a.dtype == b.dtype
        diff = float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
        worst[name] = diff
        if name == "encoder.bias":
            assert diff <= 3 * 2 * lr * 1.001
        elif name.endswith("running_mean"):
            assert diff <= 0.1 * 6 * lr * 1.001
        elif name.endswith("num_batches_tracked"):
            assert diff == 0
        else:
            assert diff <= 1e-4, (name, diff)
    print(f"largest difference outside encoder.bias and running means: "
          f"{max(v for k, v in worst.items() if k != 'encoder.bias' and 'running_mean' not in k):.2e}")


# ---------------------------------------------------------------- one torchrun, several commands

#: run under torchrun: several pspike commands in one process group; each rank keeps each one's exit code and output
DRIVER = textwrap.dedent("""
    import lava.magma.runtime.message_infrastructure.multiprocessing  # Lava picks the start method first
    import contextlib, io, json, os, sys
    from pspike_neuro.cli import main
    out, commands = sys.argv[1], json.loads(sys.argv[2])
    rank = int(os.environ["RANK"])
    for name, argv in commands:
        if name == "disagree" and rank == 1:
            argv = argv + ["--seed", "5"]
        stdout, stderr = io.StringIO(), io.StringIO()
        # every rank records its one-line error here (what torchrun's agent would read; rank 1 prints nothing)
        os.environ["TORCHELASTIC_ERROR_FILE"] = os.path.join(out, f"{name}.{rank}.error")
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(argv)
        with open(os.path.join(out, f"{name}.{rank}.json"), "w") as fh:
            json.dump({"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}, fh)
        if code not in (0, 1) and name != "disagree":  # an error (1 is a verdict): the ranks would no longer meet
            error = os.path.join(out, f"{name}.{rank}.error")
            why = open(error).read() if os.path.exists(error) else "no error recorded"
            print(f"rank {rank}: {name} ended with {code}: {why}", file=sys.stderr, flush=True)
            os._exit(3)
    os._exit(0)  # as python -m pspike_neuro leaves a rank (pspike_neuro/__main__.py)
""")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A small P-SpikeSSM trained for one epoch (its predictions depend on the noise) and its netlist."""
    from pspike_neuro.data import load_task
    from pspike_neuro.export.build import build_netlist
    from pspike_neuro.export.checkpoint import load_checkpoint
    from pspike_neuro.export.hdf5 import write_netlist
    from pspike_neuro.models import ModelConfig
    from pspike_neuro.quant.quantize import QuantConfig

    folder = tmp_path_factory.mktemp("deployed")
    training.train(load_task("sdigits"), ModelConfig(d_model=16, d_state=4, n_layers=2),
                   training.TrainConfig(epochs=1, batch_size=32, lr=0.01, eval_seeds=1), folder,
                   progress=False, log=lambda msg: None)
    write_netlist(build_netlist(load_checkpoint(folder / "model.pt"), QuantConfig(calib_samples=16))[0],
                  folder / "model.net")
    return folder


def _sharded_commands(folder: Path, out: str) -> list:
    ckpt, net = str(folder / "model.pt"), str(folder / "model.net")
    return [
        ("sim_ref", ["simulate", net, "--samples", "100", "--seed", "3", "--json", "--out", str(folder / out / "ref")]),
        ("sim_lava", ["simulate", net, "--backend", "lava", "--samples", "4", "--json",
                      "--out", str(folder / out / "lava")]),
        ("verify_ref", ["verify", ckpt, net, "--samples", "100", "--seeds", "2", "--json"]),
        ("verify_lava", ["verify", ckpt, net, "--backend", "lava", "--samples", "4", "--json"]),
        ("eval", ["eval", ckpt, "--seeds", "2", "--batch-size", "64", "--json"]),
    ]


@pytest.fixture(scope="module")
def two_ranks(killed_at_step_3, deployed):
    """One torchrun of 2 ranks running: the resumption of the killed run, the same run uninterrupted,
    the sharded commands, and a command line that differs between the ranks."""
    runs = deployed / "runs"
    runs.mkdir()
    shutil.copytree(killed_at_step_3, deployed / "resumed")
    commands = [("resume", TINY + ["--checkpoint-every", "3", "--resume", str(deployed / "resumed")]),
                ("whole", TINY + ["--out", str(deployed / "whole")]),
                *_sharded_commands(deployed, "two"),
                ("disagree", ["simulate", str(deployed / "model.net"), "--samples", "8",
                              "--out", str(deployed / "nowhere")])]
    (deployed / "driver.py").write_text(DRIVER)
    proc = torchrun(deployed / "driver.py", runs, json.dumps(commands), cwd=deployed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return lambda name, rank=0: json.loads((runs / f"{name}.{rank}.json").read_text())


def test_killed_distributed_run_resumes_to_the_uninterrupted_model(two_ranks, deployed):
    assert two_ranks("resume")["code"] == two_ranks("whole")["code"] == 0
    assert "resuming" in two_ranks("resume")["stdout"] and two_ranks("resume", 1)["stdout"] == ""  # rank 0 prints
    a = torch.load(deployed / "resumed" / "model.pt", weights_only=True)
    b = torch.load(deployed / "whole" / "model.pt", weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["metrics"]["test_accuracy"] == b["metrics"]["test_accuracy"] and a["metrics"]["ranks"] == 2
    assert sorted(p.name for p in (deployed / "resumed").iterdir()) == ["metrics.json", "model.pt"]


def test_simulate_verify_and_eval_on_two_ranks_give_the_one_process_results(two_ranks, deployed, capsys):
    for name, argv in _sharded_commands(deployed, "one"):
        code = main(argv)
        one, two = json.loads(capsys.readouterr().out), two_ranks(name)
        assert two["code"] == code and two_ranks(name, 1)["stdout"] == ""  # rank 0 alone prints
        two = json.loads(two["stdout"])
        if name.startswith("sim"):
            timing = {"wall_s", "steps_per_second", "out"}
            assert {k: v for k, v in one.items() if k not in timing} == {k: v for k, v in two.items() if k not in timing}
            kind = name.split("_")[1]
            x = np.load(deployed / "one" / kind / "activity.npz")
            y = np.load(deployed / "two" / kind / "activity.npz")
            assert x.files == y.files and all(np.array_equal(x[k], y[k]) for k in x.files)
        else:
            assert one == two
    per_seed = json.loads(two_ranks("eval")["stdout"])["test_accuracy_per_seed"]
    assert per_seed[0] != per_seed[1]  # the predictions depend on the noise: a real test of its addressing


def test_ranks_with_different_arguments_are_refused_in_one_line(two_ranks, deployed):
    for rank in (0, 1):
        got = two_ranks("disagree", rank)
        assert got["code"] == 2 and len(got["stderr"].splitlines()) == (1 if rank == 0 else 0)
    assert ("ranks disagree on the command line: argument 7 is the end of the line on rank 0 but '--seed' on rank 1"
            in two_ranks("disagree")["stderr"])
    assert not (deployed / "nowhere").exists()


def test_launcher_refuses_a_resume_of_another_configuration_in_one_line(killed_at_step_3, tmp_path):
    """``python -m pspike_neuro --nproc-per-node 2 ...``: torchrun underneath, our line and exit code on top."""
    folder = tmp_path / "run"
    shutil.copytree(killed_at_step_3, folder)
    before = (folder / "resume.pt").read_bytes()
    args = [a if a != "64" else "32" for a in TINY]
    proc = torchrun(*args, "--checkpoint-every", "3", "--resume", folder, cwd=tmp_path, launcher=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"pspike train: error: --resume {folder}: the run there has another configuration: train_config.batch_size "
        "is 64 there and 32 here (resume it with the command line that started it; nothing was written)"]
    assert (folder / "resume.pt").read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["resume.pt"]


def test_one_process_commands_are_refused_under_torchrun(monkeypatch):
    monkeypatch.setattr(distributed, "_ranks", distributed.Ranks(rank=0, world=2))
    with pytest.raises(distributed.UserError, match="export runs in one process"):
        distributed.check_command("export", ["export"])
