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

from .. import __version__
from ..data import load_recorded_task
from ..errors import UserError
from ..graph import FORMAT, FORMAT_VERSION, Netlist, NetlistError, lava_latency, run
from ..quant.fold import fold
from ..quant.quantize import QuantConfig, calibrate, quantize_graph
from .checkpoint import Checkpoint


def calibration_inputs(ckpt: Checkpoint, qc: QuantConfig, data_dir=None, calib=None):
    """Raw calibration inputs and their lengths (None when unpadded): the first ``calib_samples`` of
    ``calib`` (an ``(x, lengths)`` pair) or of the training split of the checkpoint's task."""
    if calib is None:
        if not ckpt.task:
            raise UserError(f"checkpoint {ckpt.path}: records no task, so there is no calibration data; "
                            "give --calib-data FILE.npz")
        task = load_recorded_task(ckpt.task, ckpt.task_options, data_dir=data_dir)
        n = min(qc.calib_samples, len(task.train))
        x, lengths, seq_len = task.train.x[:n].numpy(), task.train.lengths[:n].numpy(), int(task.seq_len)
    else:
        x, lengths = calib
        n = min(qc.calib_samples, len(x))
        x, lengths = x[:n], None if lengths is None else lengths[:n]
        seq_len = int(x.shape[1])
    if lengths is not None and bool((lengths == x.shape[1]).all()):
        lengths = None
    return x, lengths, seq_len


def build_netlist(ckpt: Checkpoint, qc: QuantConfig, *, data_dir=None, calib=None) -> tuple[Netlist, dict]:
    """Quantize the checkpoint's model on calibration data; return the netlist and a report."""
    start = time.perf_counter()
    graph = fold(ckpt.model, qc.prob_bits)
    x, lengths, seq_len = calibration_inputs(ckpt, qc, data_dir, calib)
    stats = calibrate(graph, x, qc, lengths)
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
    report = {"calibration_samples": int(x.shape[0]), "export_time_s": time.perf_counter() - start,
              "calibration_saturation_events": int(sum(check.saturation.values())),
              "calibration_saturation": check.saturation,
              "frac_bits": {k: int(v) for k, v in formats.items() if v is not None}}
    return netlist, report
