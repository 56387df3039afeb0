"""Run a netlist on a task's test split or on ``--inputs FILE.npz`` with either backend, and
summarize the activity."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import distributed
from ..data import load_task
from ..data.inputs import load_inputs_file
from ..errors import UserError
from ..fileio import atomic_paths
from ..graph import Netlist, RunResult
from .reference import simulate

BACKENDS = ("reference", "lava")
PRECISIONS = {"fixed": "fixed_pt", "float": "floating_pt"}


#: samples a Lava run takes when --samples is not given (Lava runs about 300 sample-steps per second)
LAVA_DEFAULT_SAMPLES = 8


def load_inputs(netlist: Netlist, task_name: str | None, samples: int | None, data_dir=None, inputs=None,
                default_cap: int | None = None):
    """``(name, x, labels, lengths)``: the first ``samples`` of ``inputs`` (an npz path), or of the test
    split of the task (default: the one the netlist was calibrated on); without ``samples``, all of
    them or the first ``default_cap``. ``labels`` may be None (an inputs file without them),
    ``lengths`` is None when nothing is padded."""
    if inputs is not None:
        data = load_inputs_file(inputs)
        name, x, labels, lengths = data.name, data.x, data.labels, data.lengths
    else:
        name = task_name or netlist.meta.get("task")
        if not name:
            raise UserError("this netlist records no task (an imported model): give --inputs FILE.npz")
        # the options the network was trained with (SHD's binning, ...) apply to the task it was trained on
        options = netlist.meta.get("task_options", {}) if name == netlist.meta.get("task") else {}
        task = load_task(name, data_dir=data_dir, **options)
        sink, width = netlist.sink(), netlist.source().input_width()
        if (task.input_kind == "tokens") != (width is None) or (width is not None and task.d_input != width):
            raise UserError(f"task {name} has d_input={task.d_input} ({task.input_kind}); the netlist's input takes "
                            f"{'token ids' if width is None else width}")
        if task.n_classes != sink.n:
            raise UserError(f"task {name} has {task.n_classes} classes; the netlist's readout has {sink.n}")
        data = task.test
        x, labels, lengths = data.x.numpy(), data.y.numpy(), data.lengths.numpy()
        if bool((lengths == x.shape[1]).all()):
            lengths = None
    n = (len(x) if default_cap is None else min(default_cap, len(x))) if samples is None else samples
    if not 1 <= n <= len(x):
        raise UserError(f"--samples must be in 1..{len(x)} for {name}, got {n}")
    if labels is not None and labels[:n].size and labels[:n].max() >= netlist.sink().n:
        raise UserError(f"{name}: label {int(labels[:n].max())} is not a class of the netlist's readout "
                        f"({netlist.sink().n} classes)")
    return name, x[:n], None if labels is None else labels[:n], None if lengths is None else lengths[:n]


def run_backend(netlist: Netlist, x, seed: int, lengths, backend: str, precision: str = "fixed",
                progress: bool = True, sample_ids=None) -> RunResult:
    """Run ``x`` on one backend; ``sample_ids`` key the random numbers (default 0..B-1: the first
    samples of the inputs)."""
    if backend not in BACKENDS:
        raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be fixed or float, got {precision!r}")
    if backend == "reference":
        return simulate(netlist, x, seed=seed, samples=sample_ids, lengths=lengths, integer=precision == "fixed")
    from .lava_backend import run_lava

    with tqdm(total=len(x), desc="lava", unit="sample", disable=not progress or None) as bar:
        return run_lava(netlist, x, sample_ids, seed, lengths=lengths, tag=PRECISIONS[precision], progress=bar.update)


#: samples in a block of float arithmetic (numpy's and torch's sums may round differently with the
#: batch size); sharded runs cut the samples into these blocks, so every block is computed as in one process
FLOAT_BLOCK = 64


def run_sharded(netlist: Netlist, x, seed: int, lengths, backend: str, precision: str = "fixed",
                progress: bool = True) -> RunResult | None:
    """:func:`run_backend` on this rank's share of the samples (each keeps its index as its sample id),
    gathered on rank 0 as one run (None on the other ranks); in one process, the whole run. The integer
    network is computed sample by sample, so any split gives its bits; the float one in whole blocks."""
    part = distributed.shard(len(x), 1 if precision == "fixed" else FLOAT_BLOCK)
    mine = None
    if len(part):
        cut = slice(part.start, part.stop)
        mine = run_backend(netlist, x[cut], seed, None if lengths is None else lengths[cut], backend, precision,
                           progress, sample_ids=np.arange(part.start, part.stop))
    return distributed.gather_run(mine)


def summarize(result: RunResult, labels, wall_s: float) -> dict:
    valid = result.valid
    n, seq_len = valid.shape
    steps = int(valid.sum())
    layers = []
    for l, (name, s_in, s_out) in enumerate(zip(result.layers, result.spikes_in, result.spikes_out)):
        width = s_out.shape[-1]
        n_out = int(s_out[valid].sum())
        row = {"layer": l, "node": name, "output_spikes": n_out, "output_rate": n_out / (steps * width)}
        if s_in is not None:
            n_in = int(s_in[valid].sum())
            row.update(input_spikes=n_in, input_rate=n_in / (steps * s_in.shape[-1]))
        layers.append(row)
    return {
        "samples": n,
        "accuracy": None if labels is None else float((result.predictions == labels).mean()),
        "layers": layers,
        "saturation": dict(result.saturation),
        "saturation_events": int(sum(result.saturation.values())),
        "wall_s": wall_s,
        "steps_per_second": n * seq_len / wall_s if wall_s > 0 else float("inf"),
    }


def write_activity(out_dir: Path, result: RunResult, summary: dict) -> None:
    """``activity.npz`` (spikes per layer, predictions, scores) and ``summary.json``, atomic together."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = {"predictions": result.predictions, "logits": result.scores}
    for l, (s_in, s_out) in enumerate(zip(result.spikes_in, result.spikes_out)):
        if s_in is not None:
            arrays[f"layer{l}_input_spikes"] = s_in
        arrays[f"layer{l}_output_spikes"] = s_out
    # published together, summary.json last: a killed run never leaves one run's summary beside
    # another run's spikes
    with atomic_paths(out_dir / "activity.npz", out_dir / "summary.json") as (npz_tmp, json_tmp):
        with open(npz_tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        json_tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def simulate_command(netlist: Netlist, *, backend: str, task: str | None, samples: int | None, seed: int | None,
                     precision: str = "fixed", out: str | None = None, data_dir=None, progress=True,
                     inputs=None) -> dict:
    if inputs is not None and task is not None:
        raise UserError("--task and --inputs name two different inputs; give one")
    name, x, labels, lengths = load_inputs(netlist, task, samples, data_dir, inputs,
                                           default_cap=LAVA_DEFAULT_SAMPLES if backend == "lava" else None)
    seed = int(netlist.meta["seed"]) if seed is None else seed
    start = time.perf_counter()
    result = run_sharded(netlist, x, seed, lengths, backend, precision, progress)
    if result is None:  # another rank than 0 under torchrun: rank 0 summarizes and writes
        return None
    summary = summarize(result, labels, time.perf_counter() - start)
    summary.update(task=name, backend=backend, precision=precision, seed=seed)
    if out:
        write_activity(Path(out), result, summary)
        summary["out"] = str(out)
    return summary
