"""A file of the wrong kind is named for what it is, with the command that takes it: a netlist where
a checkpoint is expected and the reverse, a NIR graph, a Lightning checkpoint, a bare state dict, an
.npz archive, an empty or a text file, a netlist of an older format, and a pickle that would run
code if it were unpickled (it is not). No message relays torch's advice to load with
``weights_only=False``."""

import os
import shutil

import h5py
import numpy as np
import pytest
import torch

from pspike_neuro.cli import main

MARKER = "pwned.txt"


class RunsCode:
    """Unpickling this would create MARKER: what a malicious checkpoint does."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def _make(kind, folder, robust_net, small_checkpoint):
    path = folder / f"{kind}.bin"
    if kind == "netlist":
        shutil.copyfile(robust_net, path)
    elif kind == "checkpoint":
        shutil.copyfile(small_checkpoint.path, path)
    elif kind == "nir":
        with h5py.File(path, "w") as f:  # NIR's layout: a version and the graph under /node
            f.create_dataset("version", data=b"1.0.8")
            f.create_group("node").create_dataset("type", data=b"NIRGraph")
    elif kind == "lightning":
        torch.save({"epoch": 3, "global_step": 30, "pytorch-lightning_version": "2.2.0",
                    "state_dict": {"model.w": torch.zeros(2)}}, path)
    elif kind == "state_dict":
        torch.save({"snn.0.W.weight": torch.zeros(4, 2)}, path)
    elif kind == "code":
        torch.save({"hyper_parameters": RunsCode(), "state_dict": {}}, path)
    elif kind == "npz":
        with open(path, "wb") as fh:
            np.savez(fh, x=np.zeros((1, 2, 3)))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello\n")
    elif kind == "old_netlist":
        shutil.copyfile(os.path.join(os.path.dirname(__file__), "..", "data", "crashes", "netlist-segfault-1.net"),
                        path)
    return path


AS_CHECKPOINT = {
    "netlist": "is a pspike-neuro netlist, not a pspike-neuro checkpoint; inspect and simulate take it, and verify "
               "and report as their second argument",
    "nir": "is a NIR graph, not a pspike-neuro checkpoint; turn it into a checkpoint with 'pspike import FILE -o DIR'",
    "lightning": "is a PyTorch Lightning checkpoint (as the P-SpikeSSM authors' code writes), not a pspike-neuro "
                 "checkpoint; convert it with 'pspike import FILE -o DIR'",
    "state_dict": "is a bare PyTorch state dict (as the SiLIF repository's best_model.pth), not a pspike-neuro "
                  "checkpoint; convert it with 'pspike import FILE -o DIR'",
    "code": "pickles Python objects besides tensors (posix.system), which pspike never unpickles; a Lightning "
            "checkpoint of the P-SpikeSSM authors' code is converted by 'pspike import FILE -o DIR'",
    "npz": "is a NumPy .npz archive, not a pspike-neuro checkpoint; --inputs and --calib-data take it",
    "empty": "is an empty file, not a pspike-neuro checkpoint",
    "text": "is a text file, not a pspike-neuro checkpoint",
    "old_netlist": "is a pspike-neuro netlist of an older format (no integrity header, which lets a file be checked "
                   "before it is parsed), not a pspike-neuro checkpoint; export its checkpoint again with this version",
}
AS_NETLIST = {
    "checkpoint": "is a PyTorch checkpoint, not a pspike-neuro netlist; 'pspike export CKPT -o model.net' turns a "
                  "checkpoint into a netlist",
    "nir": "is a NIR graph, not a pspike-neuro netlist; turn it into a checkpoint with 'pspike import FILE -o DIR'",
    "npz": "is a NumPy .npz archive, not a pspike-neuro netlist; --inputs and --calib-data take it",
    "empty": "is an empty file, not a pspike-neuro netlist",
    "text": "is a text file, not a pspike-neuro netlist",
    "old_netlist": "was written by an older pspike-neuro, without the integrity header that lets a file be checked "
                   "before it is parsed; export its checkpoint again",
}


@pytest.mark.parametrize("kind", sorted(AS_CHECKPOINT))
def test_wrong_files_given_as_checkpoint_are_named(tmp_path, robust_net, small_checkpoint, capsys, monkeypatch,
                                                    kind):
    monkeypatch.chdir(tmp_path)
    path = _make(kind, tmp_path, robust_net, small_checkpoint)
    for argv in (["eval", str(path)], ["export", str(path), "-o", "out.net"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == f"pspike {argv[0]}: error: checkpoint {path}: {AS_CHECKPOINT[kind]}\n"
        assert "weights_only" not in err
    assert not (tmp_path / MARKER).exists() and not (tmp_path / "out.net").exists()


@pytest.mark.parametrize("kind", sorted(AS_NETLIST))
def test_wrong_files_given_as_netlist_are_named(tmp_path, robust_net, small_checkpoint, capsys, kind):
    path = _make(kind, tmp_path, robust_net, small_checkpoint)
    for argv in (["inspect", str(path)], ["simulate", str(path)]):
        assert main(argv) == 2
        assert capsys.readouterr().err == f"pspike {argv[0]}: error: netlist {path}: {AS_NETLIST[kind]}\n"
