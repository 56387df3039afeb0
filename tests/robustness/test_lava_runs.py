"""Lava runs end to end: one seed gives the same files from the Lava backend (in another process)
and from the reference simulator, other seeds give other spikes in both; a run that fails inside a
Lava process ends with one line and leaves no child process of ours alive."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pspike_neuro.cli import main
from pspike_neuro.data import load_task
from pspike_neuro.errors import UserError
from pspike_neuro.export.hdf5 import read_netlist
from pspike_neuro.sim.lava_backend import run_lava


def _live_children(pid: int) -> list[str]:
    """Command lines of the non-zombie processes whose parent is ``pid`` (from /proc; psutil is not a
    dependency), less Python's multiprocessing resource tracker: one per interpreter, started at the
    first shared-memory use and ended with the interpreter, not a Lava process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z" and "multiprocessing.resource_tracker" not in cmdline:
            found.append(f"{entry}: {cmdline[:100]}")
    return found


def _arrays(folder):
    with np.load(folder / "activity.npz") as npz:
        return {k: npz[k] for k in npz.files}


def test_one_seed_gives_the_same_files_from_lava_and_the_reference(robust_net, tmp_path, capsys):
    lava_out, ref_out, other_out = tmp_path / "lava", tmp_path / "ref", tmp_path / "other"
    cmd = [sys.executable, "-m", "pspike_neuro.cli", "simulate", str(robust_net), "--backend", "lava", "--samples",
           "3", "--seed", "4", "--out", str(lava_out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for out, seed in ((ref_out, "4"), (other_out, "5")):
        assert main(["simulate", str(robust_net), "--samples", "3", "--seed", seed, "--out", str(out)]) == 0
    capsys.readouterr()
    lava, ref, other = _arrays(lava_out), _arrays(ref_out), _arrays(other_out)
    assert sorted(lava) == sorted(ref) and len(lava) == 6          # predictions, logits, 2 layers x (in, out)
    for key in lava:
        np.testing.assert_array_equal(lava[key], ref[key], err_msg=key)
    summaries = [json.loads((d / "summary.json").read_text()) for d in (lava_out, ref_out)]
    for field in ("accuracy", "layers", "saturation", "seed", "samples"):
        assert summaries[0][field] == summaries[1][field], field
    for key in ("layer0_input_spikes", "layer1_output_spikes"):
        assert (ref[key] != other[key]).mean() > 0.05               # another seed, other spikes


def test_lava_itself_repeats_a_seed_and_changes_with_another(robust_net):
    net = read_netlist(robust_net)
    x0 = np.asarray(load_task("sdigits").test.x[:2])
    a = run_lava(net, x0, np.arange(2), seed=4, samples_per_network=2)
    b = run_lava(net, x0, np.arange(2), seed=4, samples_per_network=1)   # two networks, one sample each
    c = run_lava(net, x0, np.arange(2), seed=9, samples_per_network=2)
    for l in range(2):
        np.testing.assert_array_equal(a.spikes_out[l], b.spikes_out[l])
        assert (a.spikes_out[l] != c.spikes_out[l]).mean() > 0.05
    np.testing.assert_array_equal(a.logits, b.logits)
    assert _live_children(os.getpid()) == []


def test_the_process_check_sees_a_child():
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert any(line.startswith(f"{child.pid}: sleep 30") for line in _live_children(os.getpid()))
    finally:
        child.kill()
        child.wait()
    assert not any(line.startswith(f"{child.pid}:") for line in _live_children(os.getpid()))


def test_a_failure_inside_lava_leaves_no_process_behind(robust_net):
    from pspike_neuro.nodes.ssm_neuron import SSMNeuron

    net = read_netlist(robust_net)
    x0 = np.asarray(load_task("sdigits").test.x[:1])
    # a node whose parameters fail its own checks inside the Lava process (site -1 is out of range)
    node = net.nodes["neuron1"]
    net.nodes["neuron1"] = bad = SSMNeuron.__new__(SSMNeuron)
    bad.__dict__.update(name="neuron1", values={**node.values, "site_out": -1}, floats=node.floats, p=node.p)
    with pytest.raises(UserError, match=r"sample 0 failed in neuron1: NodeError: node neuron1 \(SSMNeuron\): field "
                                        r"site_out: value -1 outside") as info:
        run_lava(net, x0, np.arange(1), seed=0)
    assert "\n" not in str(info.value)
    assert _live_children(os.getpid()) == []
