"""From a checkpoint to a netlist, one path for every model: fold into a float graph, calibrate on
the training data (or the given calibration inputs), quantize node by node, and run the integer
network on the calibration inputs once so that saturation is counted, never silent.

Node names follow the float graph (quant/fold.py): ``input``; per P-SpikeSSM block ``neuron{l}``,
``mixer{l}``, ``fuse{l}``; per SiLIF layer ``synapse{l}``, ``neuron{l}``; ``readout_synapse`` and
``readout``. Every node also carries its float parameters (``floats``) so that the float backends can
run from the netlist alone; the host encoder lives in ``input``'s floats.
"""

from __future__ import annotations

import time

import numpy as np

from .. import __version__
from ..data import load_recorded_task
from ..errors import UserError
from ..graph import FORMAT, FORMAT_VERSION, Netlist, NetlistError, lava_latency, run
from ..quant.fold import fold
from ..quant.prune import prune_silent
from ..quant.quantize import QuantConfig, calibrate, quantize_graph
from .checkpoint import Checkpoint

#: calibration inputs of a model without a task and without --calib-data: random spike trains
RANDOM_CALIBRATION = {"rate": 0.1, "steps": 100, "samples": 64}


def calibration_inputs(ckpt: Checkpoint, qc: QuantConfig, data_dir=None, calib=None):
    """Raw calibration inputs, their lengths (None when unpadded), their length and what they are:
    the first ``calib_samples`` of ``calib`` (an ``(x, lengths)`` pair), of the training split of the
    checkpoint's task, or (an imported model without either) random spike trains at a stated rate."""
    if calib is None and not ckpt.task:
        r = RANDOM_CALIBRATION
        n = min(qc.calib_samples, r["samples"])
        rng = np.random.default_rng(qc.seed)
        x = (rng.random((n, r["steps"], ckpt.config.d_input)) < r["rate"]).astype(np.float32)
        return x, None, r["steps"], (f"{n} random spike trains (rate {r['rate']}, {r['steps']} steps, seed {qc.seed}); "
                                     "give --calib-data FILE.npz to calibrate on your own inputs")
    if calib is None:
        task = load_recorded_task(ckpt.task, ckpt.task_options, data_dir=data_dir)
        n = min(qc.calib_samples, len(task.train))
        x, lengths, seq_len = task.train.x[:n].numpy(), task.train.lengths[:n].numpy(), int(task.seq_len)
        what = f"{n} training samples of {task.name}"
    else:
        x, lengths = calib
        n = min(qc.calib_samples, len(x))
        x, lengths = x[:n], None if lengths is None else lengths[:n]
        seq_len = int(x.shape[1])
        what = f"{n} samples of --calib-data"
    if lengths is not None and bool((lengths == x.shape[1]).all()):
        lengths = None
    return x, lengths, seq_len, what


def build_netlist(ckpt: Checkpoint, qc: QuantConfig, *, data_dir=None, calib=None) -> tuple[Netlist, dict]:
    """Quantize the checkpoint's model on calibration data; return the netlist and a report."""
    start = time.perf_counter()
    graph = fold(ckpt.model, qc.prob_bits, gelu=qc.gelu)
    x, lengths, seq_len, what = calibration_inputs(ckpt, qc, data_dir, calib)
    probabilities = {} if qc.prune_silent is not None else None
    stats = calibrate(graph, x, qc, lengths, probabilities=probabilities)
    pruning = None
    if qc.prune_silent is not None:
        graph, pruning = prune_silent(graph, probabilities, qc.prune_silent)
        pruning["calibration"] = what
    try:
        nodes = quantize_graph(graph, stats, qc)
    except UserError as exc:
        raise UserError(f"checkpoint {ckpt.path}: {exc}") from None
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__,
        "source_sha256": ckpt.sha256, "model_type": ckpt.model_type, "model_config": ckpt.config.to_dict(),
        "quant_config": qc.to_dict(), "seed": int(qc.seed), "latency_steps": 0, "task": ckpt.task or "",
        "seq_len": int(seq_len),
    }
    if pruning is not None:
        meta["pruning"] = pruning
    if ckpt.task_options.get("options"):  # e.g. SHD's binning: simulate and verify must load the same inputs
        meta["task_options"] = dict(ckpt.task_options["options"])
    netlist = Netlist(meta=meta, nodes=nodes, edges=list(graph.edges))
    meta["latency_steps"] = int(lava_latency(netlist)[netlist.sink().name])
    try:
        netlist.validate()
    except NetlistError as exc:
        raise UserError(f"checkpoint {ckpt.path}: the exported graph is invalid: {exc}") from None
    # the integer network on the calibration inputs: saturation events are counted, never silent
    check = run(netlist, x, integer=True, seed=qc.seed, lengths=lengths)
    formats = {name: node.values.get("state_frac_bits", node.values.get("frac_bits"))
               for name, node in nodes.items()}
    report = {"calibration_samples": int(x.shape[0]), "calibration": what, "export_time_s": time.perf_counter() - start,
              "calibration_saturation_events": int(sum(check.saturation.values())),
              "pruned": None if pruning is None else {k: pruning[k] for k in ("threshold", "neurons", "removed")},
              "calibration_saturation": check.saturation,
              "frac_bits": {k: int(v) for k, v in formats.items() if v is not None}}
    return netlist, report
