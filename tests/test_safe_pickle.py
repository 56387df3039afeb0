"""Lightning checkpoints as real training writes them (OmegaConf objects, callback, loop and optimizer
states) are read without running code and without omegaconf; a pickle that would run code is refused
before anything is called."""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import sys
import types
import typing
from pathlib import Path

import pytest
import torch

from pspike_neuro.cli import main
from pspike_neuro.errors import UserError
from pspike_neuro.export.safe_pickle import load_torch_zip

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pspikessms"
needs_data = pytest.mark.skipif(not (DATA / "lra-small.ckpt").is_file(),
                                reason=f"no P-SpikeSSM checkpoints in {DATA} (the workplace's shared/data)")
OMEGACONF = {"omegaconf.dictconfig": ("DictConfig",), "omegaconf.listconfig": ("ListConfig",),
             "omegaconf.nodes": ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode"),
             "omegaconf.base": ("Metadata", "ContainerMetadata")}


@contextlib.contextmanager
def fake_omegaconf():
    """Classes named as OmegaConf's (module and qualified name), registered only while pickling:
    omegaconf is not installed, and the reader must not need it."""
    saved = {name: sys.modules.get(name) for name in ["omegaconf", *OMEGACONF]}
    classes = {}
    try:
        sys.modules["omegaconf"] = types.ModuleType("omegaconf")
        for module, names in OMEGACONF.items():
            mod = types.ModuleType(module)
            for name in names:
                cls = type(name, (), {"__module__": module, "__qualname__": name})
                setattr(mod, name, cls)
                classes[name] = cls
            sys.modules[module] = mod
        yield classes
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


def omegaconf_tree(value, classes, parent=None):
    """``value`` as OmegaConf holds it: containers with metadata and parent links (a cycle), leaves as
    typed nodes; the state is what OmegaConf's ``__getstate__`` returns (its ``__dict__``)."""
    def metadata(kind, **extra):
        meta = classes[kind].__new__(classes[kind])
        meta.__dict__.update(ref_type=typing.Any, object_type=extra.pop("object_type", None), optional=True, key=None,
                             flags={}, flags_root=False, resolver_cache=collections.defaultdict(dict), **extra)
        return meta

    if isinstance(value, (dict, list)):
        cls = classes["DictConfig" if isinstance(value, dict) else "ListConfig"]
        node = cls.__new__(cls)
        meta = metadata("ContainerMetadata", object_type=dict if isinstance(value, dict) else list, key_type=typing.Any,
                        element_type=typing.Any)
        node.__dict__.update(_metadata=meta, _parent=parent, _flags_cache=None)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        content = {k: omegaconf_tree(v, classes, node) for k, v in items}
        node.__dict__["_content"] = content if isinstance(value, dict) else list(content.values())
        return node
    kind = {bool: "BooleanNode", int: "IntegerNode", float: "FloatNode", str: "StringNode"}.get(type(value), "AnyNode")
    node = classes[kind].__new__(classes[kind])
    node.__dict__.update(_val=value, _metadata=metadata("Metadata"), _parent=parent)
    return node


def lightning_checkpoint(path: Path, base: dict) -> None:
    """``base`` (a checkpoint dict) saved as Lightning saves it after real training: hyper-parameters as a
    DictConfig, ``hparams_type``, callback, loop, optimizer and scheduler states, bytes and a set."""
    with fake_omegaconf() as classes:
        payload = dict(base)
        payload["hyper_parameters"] = omegaconf_tree(base["hyper_parameters"], classes)
        payload["hparams_type"] = classes["DictConfig"]
        payload["callbacks"] = {"ModelCheckpoint{'monitor': 'val/accuracy', 'mode': 'max'}": {
            "best_model_score": torch.tensor(0.97), "best_model_path": "checkpoints/val/accuracy.ckpt",
            "best_k_models": {"checkpoints/val/accuracy.ckpt": torch.tensor(0.97)}}}
        payload["loops"] = {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 3, "completed": 3}}}}
        payload["optimizer_states"] = [{"state": {0: {"step": torch.tensor(12.0), "exp_avg": torch.zeros(3)}},
                                        "param_groups": [{"lr": 5e-4, "betas": (0.9, 0.999), "params": [0]}]}]
        payload["lr_schedulers"] = [{"best": 0.97, "mode_worse": float("-inf"), "_last_lr": [5e-4]}]
        payload["extra"] = {"blob": b"\x00\x01\xff", "tags": {"a", "b"}}
        torch.save(payload, path)
    assert "omegaconf" not in sys.modules


@needs_data
def test_lightning_checkpoint_with_omegaconf_reads_as_plain_values(tmp_path):
    base = torch.load(DATA / "lra-small.ckpt", weights_only=True)
    path = tmp_path / "trained.ckpt"
    lightning_checkpoint(path, base)
    with pytest.raises(pickle.UnpicklingError):  # what torch's own safe loader makes of it
        torch.load(path, weights_only=True)
    got = load_torch_zip(path)
    assert "omegaconf" not in sys.modules
    assert got["hyper_parameters"] == base["hyper_parameters"]
    assert type(got["hyper_parameters"]) is dict and type(got["hyper_parameters"]["model"]["layer"]) is dict
    assert got["hparams_type"] == "omegaconf.dictconfig.DictConfig"
    assert got["state_dict"].keys() == base["state_dict"].keys()
    for key, value in base["state_dict"].items():
        assert got["state_dict"][key].dtype == value.dtype and torch.equal(got["state_dict"][key], value)
    assert torch.equal(got["optimizer_states"][0]["state"][0]["exp_avg"], torch.zeros(3))
    assert got["optimizer_states"][0]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert got["extra"] == {"blob": b"\x00\x01\xff", "tags": {"a", "b"}}
    assert float(next(iter(got["callbacks"].values()))["best_model_score"]) == pytest.approx(0.97)


@needs_data
def test_trained_lightning_checkpoint_imports_like_the_plain_one(tmp_path, capsys):
    base = torch.load(DATA / "lra-small.ckpt", weights_only=True)
    path = tmp_path / "trained.ckpt"
    lightning_checkpoint(path, base)
    assert main(["import", str(path), "-o", str(tmp_path / "a")]) == 0
    assert main(["import", str(DATA / "lra-small.ckpt"), "-o", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("fmt", [[], ["--format", "pspikessm"]])
def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path, capsys, fmt):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "pytorch-lightning_version": "1.9.5",
                "callbacks": {"x": _RunsCode(marker)}}, path)
    out = tmp_path / "out"
    assert main(["import", str(path), "-o", str(out), *fmt]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{os.system.__module__}.system" in err and "never unpickles" in err
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("payload, message", [
    ({"x": collections.Counter("ab")}, "collections.Counter"),
    ({"x": Path("/tmp")}, "pathlib"),
])
def test_other_objects_are_refused_by_name(tmp_path, payload, message):
    path = tmp_path / "other.ckpt"
    torch.save(payload, path)
    with pytest.raises(UserError, match=message):
        load_torch_zip(path)


def test_damaged_storage_and_legacy_files_are_one_line(tmp_path):
    path = tmp_path / "short.ckpt"
    torch.save({"w": torch.arange(16, dtype=torch.float32)}, path)
    import zipfile

    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "cut.ckpt", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data[:8] if "/data/" in info.filename else data)
    with pytest.raises(UserError, match="storage 0 holds 8 bytes"):
        load_torch_zip(tmp_path / "cut.ckpt")
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(UserError, match="legacy"):
        load_torch_zip(legacy)
