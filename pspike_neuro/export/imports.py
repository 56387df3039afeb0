"""``pspike import SRC -o DIR``: other people's models as checkpoints of ours.

Every source format is one importer in ``IMPORTERS`` (``--format`` forces one; ``auto`` tells it from
the file). An importer returns the model and an import record: the source file and its sha256, what
was converted and how, what was dropped and what that changes. ``DIR/model.pt`` and
``DIR/import.json`` are published together (the record last), and the record also travels inside
the checkpoint (``metrics["import"]``), so export, simulate, verify and report take the model like any
other and can say where it came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import UserError
from ..fileio import atomic_paths, sha256_file
from ..filekind import identify
from .checkpoint import checkpoint_payload


def import_nir(path: Path, options: dict):
    from ..models.graph import GraphModel
    from .nir_io import read_nir

    cfg, params, record = read_nir(path, dt=options.get("dt"), discretization=options.get("discretization"),
                                   input_spikes=options.get("input", "spikes") == "spikes")
    model = GraphModel(cfg)
    with torch.no_grad():
        for i, node in enumerate(cfg.nodes):
            for key, value in params[node["name"]].items():
                getattr(model, f"n{i}_{key}").copy_(torch.from_numpy(value))
    model.to_float_graph()  # discretize once now: a refusal (unstable Euler, a Delay off the grid) is an import error
    return model, record


def import_silif(path: Path, options: dict):
    from .import_silif import import_silif_repo

    return import_silif_repo(path, options)


def import_pspike(path: Path, options: dict):
    from .import_pspike import import_pspikessm

    return import_pspikessm(path, options)


#: format name -> importer(path, options) -> (model, record); a record's "task" becomes the checkpoint's
IMPORTERS = {"nir": import_nir, "silif-repo": import_silif, "pspikessm": import_pspike}
#: options only the pspikessm importer reads (None / False: not given)
PSPIKESSM_OPTIONS = ("kernel", "refit_modes", "two_sided", "inputs")


def detect_format(path: Path) -> str:
    kind = identify(path)
    if kind.name == "hdf5" and "NIR" in kind.description:
        return "nir"
    if kind.name == "torch":
        from .import_silif import is_silif_state_dict

        if is_silif_state_dict(path):
            return "silif-repo"
        from .import_pspike import is_pspikessm_checkpoint

        if is_pspikessm_checkpoint(path):
            return "pspikessm"
    raise UserError(f"import {path}: is {kind.description}; pspike import reads {', '.join(IMPORTERS)} (give --format "
                    "to force one)")


def import_model(source, out_dir, fmt: str = "auto", **options) -> dict:
    """Import ``source`` into ``out_dir``; returns the import record (with the files written)."""
    path = Path(source)
    if not path.exists():
        raise UserError(f"import {path}: no such file")
    if path.is_dir():
        raise UserError(f"import {path}: is a directory")
    fmt = detect_format(path) if fmt in (None, "auto") else fmt
    if fmt not in IMPORTERS:
        raise UserError(f"--format must be auto or one of {', '.join(IMPORTERS)}, got {fmt!r}")
    if options.get("discretization") not in (None, "euler", "exact"):
        raise UserError(f"--discretization must be euler or exact, got {options['discretization']!r}")
    if options.get("input", "spikes") not in ("spikes", "currents"):
        raise UserError(f"--input must be spikes or currents, got {options['input']!r}")
    if options.get("discretization") is None:
        options["discretization"] = "euler"
    given = [f"--{k.replace('_', '-')}" for k in PSPIKESSM_OPTIONS if options.get(k) not in (None, False)]
    if given and fmt != "pspikessm":
        raise UserError(f"{', '.join(given)} apply to P-SpikeSSM Lightning checkpoints (pspikessm), not to {fmt}")
    model, record = IMPORTERS[fmt](path, options)
    record = {"source": str(path), "source_sha256": sha256_file(path), **record}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"checkpoint": str(out / "model.pt"), "record": str(out / "import.json")}
    payload = checkpoint_payload(model, task=record.get("task", ""), metrics={"import": record})
    with atomic_paths(out / "model.pt", out / "import.json") as (ckpt_tmp, record_tmp):
        torch.save(payload, ckpt_tmp)
        record_tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return {**record, "files": files, "model_type": model.model_type}
