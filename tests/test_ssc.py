"""The Spiking Speech Commands task (``--task ssc``): the SiLIF repository's binning on small files in
SHD's layout, event counts through training, export (CountInput), both backends and verify, and the
imported SSC networks evaluated and verified from a data folder."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from pspike_neuro.cli import main
from pspike_neuro.data import load_task
from pspike_neuro.errors import UserError
from pspike_neuro.export.checkpoint import load_checkpoint
from pspike_neuro.export.hdf5 import read_netlist
from pspike_neuro.nodes import RunContext
from pspike_neuro.nodes.count_input import CountInput

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ssm-inspired-lif"
EDGES = np.linspace(0.0, 1.2, 300)   # the authors' bin edges at the defaults


def _write_ssc(path, times, units, labels):
    with h5py.File(path, "w") as f:
        vf, vi = h5py.vlen_dtype(np.float64), h5py.vlen_dtype(np.uint16)
        t_set = f.create_dataset("spikes/times", (len(labels),), dtype=vf)
        u_set = f.create_dataset("spikes/units", (len(labels),), dtype=vi)
        for i, (t, u) in enumerate(zip(times, units)):
            t_set[i], u_set[i] = np.asarray(t, np.float64), np.asarray(u, np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, np.uint16))


def _banded(n, rng, n_classes=35, events=400):
    """``n`` samples; class ``c`` fires units ``20c .. 20c + 19`` at random times in [0, 1) (several
    events per 4 ms step and 5-channel group, so counts exceed 1)."""
    labels = np.arange(n) % n_classes
    times = [rng.uniform(0, 1.0, events) for _ in labels]
    units = [20 * c + rng.integers(0, 20, events) for c in labels]
    return times, units, labels


def test_ssc_binning_by_hand(tmp_path):
    times = [[0.0, 0.0, EDGES[10], EDGES[10] - 1e-9, 0.5, 1.19, 1.2, 1.3, -0.01], [0.6]]
    units = [[0, 4, 12, 13, 699, 5, 6, 7, 9], [3]]
    _write_ssc(tmp_path / "ssc_train.h5", times, units, [3, 34])
    _write_ssc(tmp_path / "ssc_test.h5", [[0.001, 0.0039]], [[7, 8]], [0])
    task = load_task("ssc", data_dir=str(tmp_path))
    assert (task.d_input, task.seq_len, task.n_classes, len(task.train), len(task.test)) == (140, 300, 35, 2, 1)
    x = task.train.x.numpy()
    got = {tuple(int(v) for v in idx): float(x[0][tuple(idx)]) for idx in np.argwhere(x[0])}
    # t = 0 lands on step 1 (edges[0] <= t < edges[1]), twice in channels 0..4: a count of 2, not clipped;
    # t = edges[10] exactly goes to the upper step 11, just below it to step 10 (units 12, 13 -> channel 2);
    # t = 0.5 lies in [edges[124], edges[125]) -> step 125 (unit 699 -> channel 139); t = 1.19 -> step 297;
    # t = 1.2 and 1.3 would be step 300: dropped; t < 0 is step 0, the only way into it
    assert got == {(1, 0): 2.0, (11, 2): 1.0, (10, 2): 1.0, (125, 139): 1.0, (297, 1): 1.0, (0, 1): 1.0}
    assert x[1].sum() == 1 and x[1][int(np.digitize(0.6, EDGES)), 0] == 1
    assert task.train.y.tolist() == [3, 34]
    # 1 ms and 3.9 ms both fall in [edges[0], edges[1]) = [0, 4.013 ms): one step, units 7, 8 -> channel 1
    assert task.test.x[0, 1, 1] == 2.0 and task.test.x.sum() == 2.0


def test_ssc_options_and_splits(tmp_path):
    rng = np.random.default_rng(0)
    _write_ssc(tmp_path / "ssc_train.h5", *_banded(5, rng))
    _write_ssc(tmp_path / "ssc_test.h5", *_banded(4, rng))
    _write_ssc(tmp_path / "ssc_valid.h5", *_banded(3, rng))
    task = load_task("ssc", data_dir=str(tmp_path), n_steps=100, max_time=1.0, spatial_bin=10, limit_train=2)
    assert (task.d_input, task.seq_len, len(task.train), len(task.test)) == (70, 100, 2, 4)
    assert task.train.x.max() > 1   # counts, not spikes
    assert len(load_task("ssc", data_dir=str(tmp_path), eval_on_valid=1, limit_test=2).test) == 2
    (tmp_path / "ssc_valid.h5").unlink()
    with pytest.raises(UserError, match="no ssc_valid.h5"):
        load_task("ssc", data_dir=str(tmp_path), eval_on_valid=1)
    for options, message in (({"spatial_bin": 3}, "spatial_bin must divide 700"), ({"n_steps": 1}, "n_steps"),
                             ({"max_time": -1.0}, "max_time"), ({"eval_on_valid": 2}, "eval_on_valid"),
                             ({"bins": 3}, "has no option bins")):
        with pytest.raises(UserError, match=message):
            load_task("ssc", data_dir=str(tmp_path), **options)
    with pytest.raises(UserError, match="needs data_dir"):
        load_task("ssc")


def test_ssc_files_outside_the_layout_are_refused(tmp_path):
    _write_ssc(tmp_path / "ssc_train.h5", [[0.1]], [[1]], [35])
    _write_ssc(tmp_path / "ssc_test.h5", [[0.1]], [[1]], [0])
    with pytest.raises(UserError, match=r"SSC file .*ssc_train.h5: labels outside 0..34"):
        load_task("ssc", data_dir=str(tmp_path))
    with h5py.File(tmp_path / "ssc_train.h5", "a") as f:
        del f["labels"]
    with pytest.raises(UserError, match="missing /labels"):
        load_task("ssc", data_dir=str(tmp_path))


def test_count_input_saturates_and_refuses_what_is_not_a_count():
    node = CountInput("input", dict(n=3, count_bits=2))
    ctx = RunContext(seed=0, samples=np.arange(1), valid=np.array([[True, True, False]]))
    x = np.array([[[0, 1, 3], [4, 9, 2], [5, 5, 5]]], np.float32)
    out = node.int_step(None, {"external": x}, -1, ctx)[0]["out"]
    # largest count 2^2 - 1 = 3: 4 and 9 saturate (counted); the padded step sends nothing
    np.testing.assert_array_equal(out, [[[0, 1, 3], [3, 3, 2], [0, 0, 0]]])
    assert ctx.sat.as_dict() == {"input.out": 2}
    for bad, what in ((np.full((1, 3, 3), 0.5), "not event counts"), (np.full((1, 3, 3), -1.0), "not event counts"),
                      (np.zeros((1, 3, 4)), "(samples, steps, 3)")):
        with pytest.raises(UserError, match=what.replace("(", r"\(").replace(")", r"\)")):
            node.int_step(None, {"external": bad}, -1, ctx)


def _ssc_folder(tmp_path, seed: int, n_train: int, n_test: int):
    """``tmp_path/ssc`` with banded training and test files of ``n_train`` and ``n_test`` samples."""
    rng = np.random.default_rng(seed)
    data = tmp_path / "ssc"
    data.mkdir()
    _write_ssc(data / "ssc_train.h5", *_banded(n_train, rng))
    _write_ssc(data / "ssc_test.h5", *_banded(n_test, rng))
    return data


def test_train_export_simulate_and_verify_on_ssc_counts(tmp_path, capsys):
    """pspike train --task ssc --model rf: the inputs are counts, so the network takes counts
    (CountInput, graded messages); Lava = reference, and verify reads the recorded folder."""
    data = _ssc_folder(tmp_path, seed=1, n_train=35, n_test=6)
    run = tmp_path / "run"
    assert main(["train", "--task", "ssc", "--model", "rf", "--data-dir", str(data), "--task-option", "n_steps=40",
                 "--d-model", "16", "--layers", "1", "--epochs", "1", "--out", str(run), "--json", "--quiet"]) == 0
    capsys.readouterr()
    ckpt = load_checkpoint(run / "model.pt")
    assert ckpt.config.input_counts and ckpt.task == "ssc" and ckpt.task_options["options"] == {"n_steps": 40}
    assert main(["export", str(run / "model.pt"), "-o", str(run / "model.net"), "--json"]) == 0
    capsys.readouterr()
    net = read_netlist(run / "model.net")
    source = net.nodes["input"]
    assert source.type_name() == "CountInput" and source.count_bits >= 2      # counts above 1 in calibration
    assert net.nodes["synapse0"].num_message_bits == source.count_bits + 1
    for backend in ("reference", "lava"):
        assert main(["simulate", str(run / "model.net"), "--backend", backend, "--samples", "2",
                     "--data-dir", str(data), "--out", str(tmp_path / backend), "--json"]) == 0
        capsys.readouterr()
    a, b = np.load(tmp_path / "reference" / "activity.npz"), np.load(tmp_path / "lava" / "activity.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert a["layer0_input_spikes"].any()
    assert main(["verify", str(run / "model.pt"), str(run / "model.net"), "--json", "--min-agreement", "0"]) in (0, 1)
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "ssc" and result["samples"] == 6
    assert result["layers"][0]["input"]["agreement"] == 1.0
    synapse = result["deployed"]["energy"]["models"]["45nm"]["per_node_pj"]["synapse0"]
    assert synapse > 0


@pytest.mark.skipif(not (DATA / "RF" / "best_model.pth").is_file(), reason=f"no SiLIF-repository checkpoints in {DATA}")
def test_imported_network_evaluates_and_verifies_on_an_ssc_folder(tmp_path, capsys):
    data = _ssc_folder(tmp_path, seed=2, n_train=4, n_test=3)
    model = tmp_path / "rf"
    assert main(["import", str(DATA / "RF" / "best_model.pth"), "-o", str(model)]) == 0
    assert main(["eval", str(model / "model.pt"), "--json"]) == 2
    assert "needs data_dir" in capsys.readouterr().err
    assert main(["eval", str(model / "model.pt"), "--data-dir", str(data), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["task"] == "ssc" and evaluated["n_test"] == 3
    assert main(["export", str(model / "model.pt"), "-o", str(model / "model.net"), "--data-dir", str(data),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calibration"] == "4 training samples of ssc"
    assert main(["verify", str(model / "model.pt"), str(model / "model.net"), "--data-dir", str(data), "--json"]) in (0, 1)
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "ssc" and result["samples"] == 3 and result["float"]["accuracy"] is not None
    assert result["deployed"]["saturation_events"] == 0
