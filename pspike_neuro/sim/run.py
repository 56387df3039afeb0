"""Run a netlist on a task's test split with either backend and summarize the activity."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..data import load_task
from ..errors import UserError
from ..export.build import as_layers, encode_inputs
from ..export.netlist import Netlist
from ..fileio import atomic_paths
from .reference import ReferenceResult, simulate

BACKENDS = ("reference", "lava")
PRECISIONS = {"fixed": "fixed_pt", "float": "floating_pt"}


def load_inputs(netlist: Netlist, task_name: str | None, samples: int | None, data_dir=None):
    """Test split of the task (default: the one the netlist was calibrated on), first ``samples``."""
    name = task_name or netlist.meta["task"]
    # the options the network was trained with (SHD's binning, ...) apply to the task it was trained on
    options = netlist.meta.get("task_options", {}) if name == netlist.meta["task"] else {}
    task = load_task(name, data_dir=data_dir, **options)
    cfg = netlist.meta["model_config"]
    if (task.d_input, task.n_classes) != (cfg["d_input"], cfg["n_classes"]):
        raise UserError(f"task {name} has d_input={task.d_input}, n_classes={task.n_classes}; the netlist "
                        f"expects {cfg['d_input']}, {cfg['n_classes']}")
    n = len(task.test) if samples is None else samples
    if not 1 <= n <= len(task.test):
        raise UserError(f"--samples must be in 1..{len(task.test)} for task {name}, got {n}")
    data = task.test
    lengths = data.lengths[:n].numpy()
    full = bool((lengths == data.x.shape[1]).all())
    return name, encode_inputs(netlist, data.x[:n]), data.y[:n].numpy(), None if full else lengths


def run_backend(netlist: Netlist, x0, seed: int, lengths, backend: str, precision: str = "fixed",
                progress: bool = True) -> ReferenceResult:
    if backend not in BACKENDS:
        raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be fixed or float, got {precision!r}")
    samples = np.arange(x0.shape[0])
    if netlist.is_snn:
        return _run_snn(netlist, x0, lengths, backend, precision, progress)
    if backend == "reference":
        if precision != "fixed":
            raise UserError("the reference simulator is the integer network; use --backend lava for --precision float")
        return simulate(as_layers(netlist), x0, seed=seed, samples=samples, lengths=lengths)
    from .lava_backend import run_lava

    with tqdm(total=x0.shape[0], desc="lava", unit="sample", disable=not progress or None) as bar:
        return run_lava(netlist, x0, samples, seed, lengths=lengths, tag=PRECISIONS[precision], progress=bar.update)


def _run_snn(netlist: Netlist, x0, lengths, backend: str, precision: str, progress: bool) -> ReferenceResult:
    if lengths is not None:
        raise UserError("SiLIF netlists run full-length sequences only; this task pads its sequences")
    if backend == "reference":
        if precision != "fixed":
            raise UserError("the reference simulator is the integer network; use --backend lava for --precision float")
        from .snn_reference import simulate_snn

        return simulate_snn(netlist, x0)
    from .lava_snn import run_lava_snn

    with tqdm(total=x0.shape[0], desc="lava", unit="sample", disable=not progress or None) as bar:
        return run_lava_snn(netlist, x0, tag=PRECISIONS[precision], progress=bar.update)


def summarize(result: ReferenceResult, labels, lengths, seq_len: int, wall_s: float) -> dict:
    n = len(labels)
    valid = np.ones((n, seq_len), bool) if lengths is None else np.arange(seq_len)[None] < lengths[:, None]
    steps = int(valid.sum())
    layers = []
    for l, (s_in, s_out) in enumerate(zip(result.spikes_in, result.spikes_out)):
        width = s_in.shape[-1]
        n_in, n_out = int(s_in[valid].sum()), int(s_out[valid].sum())
        layers.append({"layer": l, "input_spikes": n_in, "output_spikes": n_out,
                       "input_rate": n_in / (steps * width), "output_rate": n_out / (steps * width)})
    return {
        "samples": n,
        "accuracy": float((result.predictions == labels).mean()),
        "layers": layers,
        "saturation": dict(result.saturation),
        "saturation_events": int(sum(result.saturation.values())),
        "wall_s": wall_s,
        "steps_per_second": n * seq_len / wall_s if wall_s > 0 else float("inf"),
    }


def write_activity(out_dir: Path, result: ReferenceResult, summary: dict) -> None:
    """``activity.npz`` (spikes per layer, predictions, logits) and ``summary.json``, atomic together."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = {"predictions": result.predictions, "logits": result.logits}
    for l, (s_in, s_out) in enumerate(zip(result.spikes_in, result.spikes_out)):
        arrays[f"layer{l}_input_spikes"] = s_in
        arrays[f"layer{l}_output_spikes"] = s_out
    # published together, summary.json last: a killed run never leaves one run's summary beside
    # another run's spikes
    with atomic_paths(out_dir / "activity.npz", out_dir / "summary.json") as (npz_tmp, json_tmp):
        with open(npz_tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        json_tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def simulate_command(netlist: Netlist, *, backend: str, task: str | None, samples: int | None, seed: int | None,
                     precision: str = "fixed", out: str | None = None, data_dir=None, progress=True) -> dict:
    if samples is None and backend == "lava":
        samples = 8
    name, x0, labels, lengths = load_inputs(netlist, task, samples, data_dir)
    seed = int(netlist.meta["seed"]) if seed is None else seed
    start = time.perf_counter()
    result = run_backend(netlist, x0, seed, lengths, backend, precision, progress)
    summary = summarize(result, labels, lengths, x0.shape[1], time.perf_counter() - start)
    summary.update(task=name, backend=backend, precision=precision, seed=seed)
    if out:
        write_activity(Path(out), result, summary)
        summary["out"] = str(out)
    return summary
