"""Interrupted work: killed writers leave the previous file intact (and their leftovers are cleared by
the next write), Ctrl-C in a Lava run leaves no process behind, reruns into one folder do not mix."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from pspike_neuro.cli import main

from .conftest import run_cli

SLOW_WRITER = textwrap.dedent("""
    import sys, time
    import {module} as target
    original = target.{name}
    def slow(*args, **kwargs):
        {pause}
        return original(*args, **kwargs)
    target.{name} = slow
    from pspike_neuro.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _start_slow(module: str, name: str, pause: str, args) -> subprocess.Popen:
    code = SLOW_WRITER.format(module=module, name=name, pause=pause)
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def _wait_for(predicate, timeout=90.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _session_processes(sid: int) -> list[str]:
    """Live (non-zombie) processes of session ``sid`` other than its leader."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == sid:
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(stat[:60])
    return found


def test_kill_during_export_keeps_the_previous_netlist(small_checkpoint, tmp_path):
    net = tmp_path / "model.net"
    assert run_cli("export", small_checkpoint.path, "-o", net, "--calib-samples", "8")[0] == 0
    before = net.read_bytes()
    # the writer pauses after the HDF5 file is complete but before the rename
    proc = _start_slow("h5py", "File", "time.sleep(60) if 'w' in args[1:2] else None",
                       ["export", small_checkpoint.path, "-o", net, "--calib-samples", "8", "--seed", "5"])
    try:
        assert _wait_for(lambda: list(tmp_path.glob(".model.net.*.tmp")))
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert net.read_bytes() == before
    leftovers = list(tmp_path.glob(".model.net.*.tmp"))
    assert leftovers and all(str(proc.pid) in p.name for p in leftovers)  # named after the dead writer
    assert run_cli("export", small_checkpoint.path, "-o", net, "--calib-samples", "8", "--seed", "5")[0] == 0
    assert net.read_bytes() != before and not list(tmp_path.glob(".model.net.*.tmp"))


def test_kill_during_report_keeps_the_previous_report(small_checkpoint, robust_net, tmp_path):
    # the small random model: a report is written whatever the verdict, and nothing needs training
    args = ["report", small_checkpoint.path, robust_net, "--samples", "20", "--out", tmp_path]
    assert run_cli(*args, timeout=300)[0] == 0
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    proc = _start_slow("pspike_neuro.report", "figure_rates", "time.sleep(120)", args + ["--seed", "9"])
    try:
        assert _wait_for(lambda: list(tmp_path.glob(".report-staging-*/figures/energy.png")), timeout=240)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*")
             if p.is_file() and not p.relative_to(tmp_path).parts[0].startswith(".report-staging-")}
    assert after == before
    assert list(tmp_path.glob(".report-staging-*"))       # the killed writer's staging folder
    assert run_cli(*args, "--seed", "9", timeout=300)[0] == 0
    assert not list(tmp_path.glob(".report-staging-*"))    # cleared by the next report
    assert json.loads((tmp_path / "report.json").read_text())["verification"]["seed"] == 9


def test_ctrl_c_in_a_lava_run_leaves_no_process_behind(robust_net):
    proc = subprocess.Popen([sys.executable, "-m", "pspike_neuro.cli", "simulate", str(robust_net), "--backend", "lava",
                             "--samples", "300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert _wait_for(lambda: len(_session_processes(proc.pid)) >= 2, timeout=120), "Lava never started"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "pspike simulate: interrupted"
    assert "Traceback" not in err
    assert _wait_for(lambda: not _session_processes(proc.pid), timeout=15), _session_processes(proc.pid)


def test_second_simulation_into_a_folder_replaces_the_first(robust_net, tmp_path, capsys):
    out = tmp_path / "sim"
    for seed in ("1", "2"):
        assert main(["simulate", str(robust_net), "--samples", "5", "--seed", seed, "--out", str(out), "--json"]) == 0
        capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 2 and summary["samples"] == 5
    assert sorted(p.name for p in out.iterdir()) == ["activity.npz", "summary.json"]
    # both files are the second run's: its spikes (a run of seed 2 elsewhere), not the first's
    runs = {}
    for seed in (1, 2):
        assert main(["simulate", str(robust_net), "--samples", "5", "--seed", str(seed), "--out", str(tmp_path / str(seed))]) == 0
        runs[seed] = np.load(tmp_path / str(seed) / "activity.npz")
    capsys.readouterr()
    kept = np.load(out / "activity.npz")
    assert sorted(kept.files) == sorted(runs[2].files)
    for key in kept.files:
        np.testing.assert_array_equal(kept[key], runs[2][key], err_msg=key)
    assert not np.array_equal(kept["layer0_input_spikes"], runs[1]["layer0_input_spikes"])
    assert summary["layers"] == json.loads((tmp_path / "2" / "summary.json").read_text())["layers"]


def test_interrupted_training_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    from dataclasses import replace

    import pspike_neuro.data as data
    import pspike_neuro.training as training
    from pspike_neuro.data.dataset import SeqDataset

    full = data.load_task("sdigits")
    head = lambda d: SeqDataset(d.x[:64], d.y[:64], d.lengths[:64])  # noqa: E731 - a second per training
    monkeypatch.setattr(data, "load_task", lambda *a, **k: replace(full, train=head(full.train), test=head(full.test)))
    assert main(["train", "--task", "sdigits", "--preset", "tiny", "--epochs", "1", "--out", str(tmp_path),
                 "--quiet"]) == 0
    before = (tmp_path / "model.pt").read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "evaluate", interrupted)   # after training, before saving
    assert main(["train", "--task", "sdigits", "--preset", "tiny", "--epochs", "1", "--seed", "3",
                 "--out", str(tmp_path), "--quiet"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert (tmp_path / "model.pt").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
