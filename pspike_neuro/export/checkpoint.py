"""Checkpoint files: writing them atomically and reading them back with every check a user needs.

A checkpoint is a ``torch.save`` of a plain dict (loaded with ``weights_only=True``, so opening one
never runs code)::

    format          "pspike-neuro-checkpoint"
    format_version  1
    package_version the pspike-neuro version that wrote it
    model_type      "pspike", "silif", "csilif", "cadlif", "rf" or "graph" (imported from NIR)
    model_config    ModelConfig.to_dict() (P-SpikeSSM), SNNConfig.to_dict() (SiLIF, C-SiLIF, CadLIF, RF) or
                    GraphConfig.to_dict() (an imported graph: its nodes, edges, dt, discretization)
    task            task name the model was trained on
    task_options    {"data_dir": folder of a real dataset, "options": the task's options, e.g. SHD's
                    binning}; either may be absent
    train_config    the training settings
    state_dict      parameter and buffer tensors
    state_sha256    digest of the state dict (names, dtypes, shapes, bytes); a file whose tensors
                    changed after it was written is refused (files without it are read unchecked)
    config_sha256   digest of model_config (canonical JSON); a config edited after the file was
                    written (a flag such as ``residual`` changes the network, not its tensors) is
                    refused the same way
    metrics         training and evaluation results
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..errors import UserError
from ..fileio import atomic_path, sha256_file
from ..filekind import identify
from ..isolate import run_isolated
from ..models import SNN, GraphConfig, GraphModel, ModelConfig, PSpikeSSM, SNNConfig

FORMAT = "pspike-neuro-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("format", "format_version", "model_type", "model_config", "state_dict")
#: model_type -> (network class, config class)
MODEL_TYPES = {"pspike": (PSpikeSSM, ModelConfig), "silif": (SNN, SNNConfig), "csilif": (SNN, SNNConfig),
               "cadlif": (SNN, SNNConfig), "rf": (SNN, SNNConfig), "graph": (GraphModel, GraphConfig)}


@dataclass
class Checkpoint:
    path: Path
    model: torch.nn.Module
    config: ModelConfig | SNNConfig
    model_type: str
    task: str | None
    task_options: dict
    train_config: dict
    metrics: dict
    sha256: str
    package_version: str


def state_digest(state: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return digest.hexdigest()


def config_digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=repr).encode()).hexdigest()


def save_checkpoint(path, model: PSpikeSSM | SNN, *, task: str, task_options: dict | None = None,
                    train_config: dict | None = None, metrics: dict | None = None) -> None:
    payload = checkpoint_payload(model, task=task, task_options=task_options, train_config=train_config,
                                 metrics=metrics)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def checkpoint_payload(model: PSpikeSSM | SNN, *, task: str, task_options: dict | None = None,
                       train_config: dict | None = None, metrics: dict | None = None) -> dict:
    """What :func:`save_checkpoint` writes (for writers that publish it with other files)."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "model_type": getattr(model, "model_type", "pspike"),
        "model_config": model.cfg.to_dict(),
        "task": task,
        "task_options": dict(task_options or {}),
        "train_config": dict(train_config or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metrics": dict(metrics or {}),
    }
    payload["state_sha256"] = state_digest(payload["state_dict"])
    payload["config_sha256"] = config_digest(payload["model_config"])
    return payload


def _torch_load(path: Path):
    """``torch.load`` with ``weights_only=True`` (run in an isolated child: torch's zip reader is C++)."""
    try:
        return "ok", torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged pickle raises almost anything (even AssertionError)
        text = str(exc)
        if "Unsupported global" in text or "Unsupported class" in text or "weights_only" in text:
            found = re.search(r"Unsupported (?:global|class):? (?:GLOBAL )?([\w.]+)", text)
            return "objects", found[1] if found else ""
        reason = text.strip().splitlines()[0][:160] if text.strip() else type(exc).__name__
        return "damaged", reason


def _foreign(payload) -> str:
    """What a loadable PyTorch file that is not ours is, and where it goes."""
    convert = "; convert it with 'pspike import FILE -o DIR'"
    if isinstance(payload, dict) and ("pytorch-lightning_version" in payload or
                                      ("state_dict" in payload and "epoch" in payload)):
        return "a PyTorch Lightning checkpoint (as the P-SpikeSSM authors' code writes), not a pspike-neuro " \
               "checkpoint" + convert
    if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return "a bare PyTorch state dict (as the SiLIF repository's best_model.pth), not a pspike-neuro " \
               "checkpoint" + convert
    return f"a PyTorch file without the '{FORMAT}' format field, not a pspike-neuro checkpoint"


def _read_payload(path: Path) -> dict:
    if not path.exists():
        raise UserError(f"checkpoint {path}: no such file")
    if path.is_dir():
        raise UserError(f"checkpoint {path}: is a directory (expected a model.pt file)")
    kind = identify(path)
    if kind.name != "torch":
        hint = f"; {kind.hint}" if kind.hint else ""
        raise UserError(f"checkpoint {path}: is {kind.description}, not a pspike-neuro checkpoint{hint}")
    status, payload = run_isolated(_torch_load, path, what=f"checkpoint {path}",
                                   crash_hint="the file is damaged or is not a checkpoint")
    if status == "objects":
        which = f" ({payload})" if payload else ""
        raise UserError(f"checkpoint {path}: pickles Python objects besides tensors{which}, which pspike never "
                        "unpickles; a Lightning checkpoint of the P-SpikeSSM authors' code is converted by "
                        "'pspike import FILE -o DIR'")
    if status == "damaged":
        raise UserError(f"checkpoint {path}: not a pspike-neuro checkpoint (unreadable: {payload})")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"checkpoint {path}: is {_foreign(payload)}")
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise UserError(f"checkpoint {path}: missing field(s) {', '.join(missing)}")
    version = payload["format_version"]
    if not isinstance(version, int) or version < 1:
        raise UserError(f"checkpoint {path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise UserError(f"checkpoint {path}: format version {version} is newer than this pspike-neuro "
                        f"reads ({FORMAT_VERSION}); upgrade pspike-neuro")
    return payload


def _check_state_dict(path: Path, model: torch.nn.Module, state: dict) -> None:
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"checkpoint {path}: state_dict is not a mapping of tensors")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise UserError(f"checkpoint {path}: missing tensor(s) {', '.join(missing[:3])}{more}; "
                        "the file does not match its model_config")
    extra = [k for k in state if k not in expected]
    if extra:
        raise UserError(f"checkpoint {path}: unexpected tensor(s) {', '.join(extra[:3])} not in the "
                        "model described by its model_config")
    for name, ref in expected.items():
        got = state[name]
        if tuple(got.shape) != tuple(ref.shape):
            raise UserError(f"checkpoint {path}: tensor {name} has shape {tuple(got.shape)}, "
                            f"model_config needs {tuple(ref.shape)}")
        if got.dtype != ref.dtype:
            raise UserError(f"checkpoint {path}: tensor {name} has dtype {str(got.dtype).replace('torch.', '')}, "
                            f"the model needs {str(ref.dtype).replace('torch.', '')}")
        if got.is_floating_point() and not torch.isfinite(got).all():
            bad = int((~torch.isfinite(got)).sum())
            raise UserError(f"checkpoint {path}: tensor {name} has {bad} NaN or infinite value(s)")


def load_checkpoint(path, device: str = "cpu") -> Checkpoint:
    """Read and validate a checkpoint; raise :class:`UserError` naming the problem."""
    path = Path(path)
    payload = _read_payload(path)
    model_type = payload["model_type"]
    if model_type not in MODEL_TYPES:
        raise UserError(f"checkpoint {path}: unknown model_type {model_type!r}; "
                        f"known: {', '.join(MODEL_TYPES)}")
    if not isinstance(payload["model_config"], dict):
        raise UserError(f"checkpoint {path}: model_config is not a mapping")
    network, config_type = MODEL_TYPES[model_type]
    try:
        config = config_type.from_dict(payload["model_config"])
    except UserError as exc:
        raise UserError(f"checkpoint {path}: {exc}") from None
    except TypeError as exc:
        raise UserError(f"checkpoint {path}: invalid model_config ({exc})") from None
    if getattr(config, "kind", model_type) != model_type:
        raise UserError(f"checkpoint {path}: model_type {model_type!r} but model_config.kind {config.kind!r}")
    model = network(config)
    _check_state_dict(path, model, payload["state_dict"])
    stored = payload.get("state_sha256")
    if stored is not None and stored != state_digest(payload["state_dict"]):
        raise UserError(f"checkpoint {path}: tensor checksum mismatch (the weights changed after the file was "
                        "written: a corrupt or edited file)")
    stored = payload.get("config_sha256")
    if stored is not None and stored != config_digest(payload["model_config"]):
        raise UserError(f"checkpoint {path}: model_config checksum mismatch (the configuration changed after the "
                        "file was written: a corrupt or edited file)")
    for key, kind in (("task", str), ("task_options", dict), ("train_config", dict), ("metrics", dict),
                      ("package_version", str)):
        if payload.get(key) is not None and not isinstance(payload[key], kind):
            raise UserError(f"checkpoint {path}: {key} must be a {'string' if kind is str else 'mapping'}, "
                            f"got {type(payload[key]).__name__}")
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return Checkpoint(
        path=path, model=model, config=config, model_type=model_type,
        task=payload.get("task"), task_options=dict(payload.get("task_options") or {}),
        train_config=dict(payload.get("train_config") or {}), metrics=dict(payload.get("metrics") or {}),
        sha256=sha256_file(path), package_version=str(payload.get("package_version", "unknown")),
    )
