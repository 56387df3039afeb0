"""No command writes over what it reads: every command, each of its inputs given as (or inside) its
output, directly, through a symbolic link, written differently (``dir/../``) or as a hard link.
Each is refused before any work with one line naming both paths, exit 2, and nothing on disk changes."""

import json
import os
import shutil

import pytest

from pspike_neuro.cli import main
from pspike_neuro.export.checkpoint import save_checkpoint
from pspike_neuro.models import ModelConfig

from ..conftest import trained_like


def _snapshot(root):
    """Every file and folder under ``root`` with its bytes and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content = open(path, "rb").read() if os.path.isfile(path) and not os.path.islink(path) else None
            out[os.path.relpath(path, root)] = (st.st_mtime_ns, content)
    return out


@pytest.fixture
def workspace(tmp_path, robust_net, small_checkpoint):
    """run/model.pt, run/model.net (its netlist), a data folder, a cost model, links to them."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(small_checkpoint.path, run / "model.pt")
    shutil.copyfile(robust_net, run / "model.net")
    data = tmp_path / "data"
    data.mkdir()
    (data / "shd_train.h5").write_bytes(b"not read: the refusal comes first")
    costs = tmp_path / "costs"
    costs.mkdir()
    (costs / "chip.json").write_text(json.dumps({"source": "test", "pj": {"ac": 1.0}}))
    os.symlink(run / "model.pt", tmp_path / "link.pt")
    os.symlink(run, tmp_path / "runlink")
    os.link(run / "model.pt", tmp_path / "hard.pt")
    recorded = tmp_path / "recorded.pt"  # a checkpoint that records the data folder it was trained from
    save_checkpoint(recorded, trained_like(ModelConfig(d_model=8, d_state=4, n_layers=2)), task="sdigits",
                    task_options={"data_dir": str(data)})
    return tmp_path


CASES = {
    "export -o the checkpoint": (["export", "run/model.pt", "-o", "run/model.pt"],
                                 "--output run/model.pt is the checkpoint run/model.pt"),
    "export -o a symlink to it": (["export", "run/model.pt", "-o", "link.pt"],
                                  "--output link.pt is the checkpoint run/model.pt"),
    "export -o written differently": (["export", "run/model.pt", "-o", "data/../run/./model.pt"],
                                      "--output data/../run/model.pt is the checkpoint run/model.pt"),
    "export -o a hard link to it": (["export", "run/model.pt", "-o", "hard.pt"],
                                    "--output hard.pt is the checkpoint run/model.pt"),
    "export --netx the checkpoint": (["export", "run/model.pt", "-o", "new.net", "--netx", "run/model.pt"],
                                     "--netx run/model.pt is the checkpoint run/model.pt"),
    "export -o and --netx the same": (["export", "run/model.pt", "-o", "new.net", "--netx", "new.net"],
                                      "--output new.net and --netx new.net are the same path"),
    "export -o a data file": (["export", "run/model.pt", "--data-dir", "data", "-o", "data/shd_train.h5"],
                              "--output data/shd_train.h5 is the data file data/shd_train.h5"),
    "export -o a recorded data file": (["export", "recorded.pt", "-o", "data/shd_train.h5"],
                                       "--output data/shd_train.h5 is the data file {tmp}/data/shd_train.h5"),
    "train --out the --init checkpoint": (["train", "--init", "run/model.pt", "--out", "run/model.pt"],
                                          "--out run/model.pt is the --init checkpoint run/model.pt"),
    "train --out its folder": (["train", "--init", "run/model.pt", "--out", "run"],
                               "--out run contains the --init checkpoint run/model.pt"),
    "train --out a link to its folder": (["train", "--init", "run/model.pt", "--out", "runlink"],
                                         "--out runlink contains the --init checkpoint run/model.pt"),
    "train --out the data folder": (["train", "--task", "sdigits", "--data-dir", "data", "--out", "data"],
                                    "--out data is the data folder data"),
    "train --out above the data": (["train", "--task", "sdigits", "--data-dir", "data", "--out", "."],
                                   "--out . contains the data folder data"),
    "simulate --out the netlist": (["simulate", "run/model.net", "--out", "run/model.net"],
                                   "--out run/model.net is the netlist run/model.net"),
    "simulate --out its folder": (["simulate", "run/model.net", "--out", "run"],
                                  "--out run contains the netlist run/model.net"),
    "simulate --out the data folder": (["simulate", "run/model.net", "--data-dir", "data", "--out", "data"],
                                       "--out data is the data folder data"),
    "report --out the checkpoint's folder": (["report", "run/model.pt", "run/model.net", "--out", "run"],
                                             "--out run contains the checkpoint run/model.pt"),
    "report --out the netlist": (["report", "hard.pt", "run/model.net", "--out", "run/model.net"],
                                 "--out run/model.net is the netlist run/model.net"),
    "report --out a link to the netlist's folder": (["report", "hard.pt", "run/model.net", "--out", "runlink"],
                                                    "--out runlink contains the netlist run/model.net"),
    "report --out the cost model's folder": (["report", "hard.pt", "run/model.net", "--cost-model", "costs/chip.json",
                                              "--out", "costs"],
                                             "--out costs contains the cost model costs/chip.json"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_output_that_is_or_holds_an_input_is_refused_and_nothing_changes(workspace, monkeypatch, capsys, name):
    argv, message = CASES[name]
    monkeypatch.chdir(workspace)
    before = _snapshot(workspace)
    assert main(argv) == 2
    err = capsys.readouterr()
    lines = err.err.strip().splitlines()
    assert len(lines) == 1 and err.out == ""
    if " are the same path" in message:   # two outputs, no input involved
        want = f"pspike {argv[0]}: error: {message}; each output needs its own"
    else:
        want = (f"pspike {argv[0]}: error: {message.format(tmp=workspace)}, which this command reads; "
                + ("write into a folder of its own" if " contains " in message else "choose another path")
                + " (nothing was written)")
    assert lines[0] == want
    assert _snapshot(workspace) == before
