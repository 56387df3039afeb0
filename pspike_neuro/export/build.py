"""From a checkpoint to a netlist: fold, calibrate, quantize, wire the graph.

Node names: ``input``; per block ``neuron{l}``, ``mixer{l}``, ``fuse{l}``; ``readout_synapse`` and
``readout``. Every node also carries its folded float parameters (``floats``) so that the float
backends can run from the netlist alone; the host encoder lives in ``input``'s floats.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .. import __version__
from ..data import load_recorded_task
from ..errors import UserError
from ..quant.fold import FoldedBlock, FoldedNetwork, encode, fold_model
from ..quant.quantize import QuantConfig, calibrate, quantize_network
from ..sim.reference import simulate
from .checkpoint import Checkpoint
from .netlist import FORMAT, FORMAT_VERSION, Edge, Netlist
from .nodes import ClampFuse, DenseSynapse, GradedInput, NodeError, ReadoutIntegrator, SparseSynapse, SSMNeuron


def _encoder_floats(folded: FoldedNetwork) -> dict:
    enc = folded.encoder
    if isinstance(enc, torch.nn.Embedding):
        return {"embedding": enc.weight.detach().double().numpy()}
    return {"encoder_weight": enc.weight.detach().double().numpy(),
            "encoder_bias": enc.bias.detach().double().numpy()}


def _neuron_floats(blk: FoldedBlock) -> dict:
    return {"alpha": blk.alpha, "beta": blk.beta, "lam_re": blk.lam.real, "lam_im": blk.lam.imag,
            "b_unit_re": blk.b_unit.real, "b_unit_im": blk.b_unit.imag, "c_re": blk.c.real,
            "c_im": blk.c.imag, "d": blk.d, "b_out": blk.b_out, "out_sign": blk.out_sign.astype(np.float64)}


def build_netlist(ckpt: Checkpoint, qc: QuantConfig, *, data_dir=None) -> tuple[Netlist, dict]:
    """Quantize the checkpoint's model on calibration data from its task; return netlist and report.

    A trained value that lands outside a field's integer range (a weight so large that its shift
    exceeds Lava's, say) is refused in one line naming the node and field."""
    try:
        return _build_netlist(ckpt, qc, data_dir=data_dir)
    except NodeError as exc:
        raise UserError(f"checkpoint {ckpt.path}: cannot be deployed: {exc} (a trained value too large or "
                        "too small for the chip's fixed-point ranges)") from None


def _build_netlist(ckpt: Checkpoint, qc: QuantConfig, *, data_dir=None) -> tuple[Netlist, dict]:
    if ckpt.model_type != "pspike":
        from .snn import build_snn_netlist

        return build_snn_netlist(ckpt, qc, data_dir=data_dir)
    start = time.perf_counter()
    folded = fold_model(ckpt.model)
    if not ckpt.task:
        raise UserError(f"checkpoint {ckpt.path}: records no task, so there is no calibration data")
    task = load_recorded_task(ckpt.task, ckpt.task_options, data_dir=data_dir)
    n_calib = min(qc.calib_samples, len(task.train))
    calib = task.train
    lengths = None if bool((calib.lengths[:n_calib] == calib.x.shape[1]).all()) else calib.lengths[:n_calib].numpy()
    stats = calibrate(folded, encode(folded, calib.x[:n_calib]), qc, lengths=lengths)
    q = quantize_network(folded, stats, qc)
    cfg = folded.config
    nodes = [GradedInput("input", q["input"], _encoder_floats(folded))]
    edges = [Edge("input", "neuron0"), Edge("input", "fuse0", dst_port="residual")]
    for l, (blk, parts) in enumerate(zip(folded.blocks, q["blocks"])):
        mixer = parts["mixer"]
        nodes.append(SSMNeuron(f"neuron{l}", parts["neuron"], _neuron_floats(blk)))
        nodes.append(SparseSynapse.from_dense(f"mixer{l}", mixer["weights"], mixer["weight_exp"],
                                              mixer["num_weight_bits"], mixer["num_message_bits"],
                                              {"weight": blk.w_mix}))
        nodes.append(ClampFuse(f"fuse{l}", parts["fuse"], {"bias": blk.c_mix, "post_scale": blk.post_scale,
                                                           "post_offset": blk.post_offset}))
        edges += [Edge(f"neuron{l}", f"mixer{l}"), Edge(f"mixer{l}", f"fuse{l}", dst_port="mixer")]
        if l + 1 < len(folded.blocks):
            edges += [Edge(f"fuse{l}", f"neuron{l + 1}"), Edge(f"fuse{l}", f"fuse{l + 1}", dst_port="residual")]
    readout = q["readout"]
    nodes.append(DenseSynapse("readout_synapse", readout["synapse"], {"weight": folded.w_readout}))
    nodes.append(ReadoutIntegrator("readout", {**readout["integrator"], "acc_frac_bits": readout["acc_frac_bits"]},
                                   {"bias": folded.b_readout}))
    edges += [Edge(f"fuse{len(folded.blocks) - 1}", "readout_synapse"), Edge("readout_synapse", "readout")]
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__,
        "source_sha256": ckpt.sha256, "model_config": cfg.to_dict(), "quant_config": qc.to_dict(),
        "seed": int(qc.seed), "latency_steps": len(folded.blocks) + 1, "task": ckpt.task,
        "seq_len": int(task.seq_len),
    }
    if ckpt.task_options.get("options"):  # e.g. SHD's binning: simulate and verify must load the same inputs
        meta["task_options"] = dict(ckpt.task_options["options"])
    netlist = Netlist(meta=meta, nodes={n.name: n for n in nodes}, edges=edges)
    netlist.validate()
    # the integer network on the calibration inputs: saturation events are counted, never silent
    check = simulate(as_layers(netlist), encode_inputs(netlist, calib.x[:n_calib]), seed=qc.seed, lengths=lengths)
    report = {"calibration_samples": n_calib, "export_time_s": time.perf_counter() - start,
              "calibration_saturation_events": int(sum(check.saturation.values())),
              "calibration_saturation": check.saturation,
              "frac_bits": [b["neuron"]["in_frac_bits"] for b in q["blocks"]],
              "state_frac_bits": [b["neuron"]["state_frac_bits"] for b in q["blocks"]]}
    return netlist, report


def as_layers(netlist: Netlist) -> dict:
    """The ``{"input", "blocks", "readout"}`` view the simulators walk."""
    return {"input": netlist.nodes["input"], "blocks": netlist.blocks(),
            "readout": {"synapse": netlist.nodes["readout_synapse"], "integrator": netlist.nodes["readout"]}}


def encode_inputs(netlist: Netlist, x: torch.Tensor) -> np.ndarray:
    """Run the host encoder stored in the netlist: (B, L[, d_in]) -> (B, L, H) float64.

    A SiLIF netlist has no encoder: its input is the spike train itself."""
    if x.dim() < 2 or x.shape[1] == 0:
        raise UserError(f"inputs must hold at least one time step, got shape {tuple(x.shape)}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise UserError(f"inputs: {int((~torch.isfinite(x)).sum())} value(s) are NaN or infinite")
    if netlist.is_snn:
        width = netlist.nodes["input"].n
        if x.dim() != 3 or x.shape[-1] != width:
            raise UserError(f"inputs must be spike trains (B, T, {width}), got shape {tuple(x.shape)}")
        return x.double().numpy()
    floats = netlist.nodes["input"].floats
    if "embedding" in floats:
        table = floats["embedding"]
        ids = x.numpy()
        if ids.min() < 0 or ids.max() >= table.shape[0]:
            raise UserError(f"input tokens must lie in [0, {table.shape[0]}), got [{ids.min()}, {ids.max()}]")
        return table[ids]
    w, b = floats["encoder_weight"], floats["encoder_bias"]
    if x.shape[-1] != w.shape[1]:
        raise UserError(f"inputs have {x.shape[-1]} features per step, the netlist's encoder takes {w.shape[1]}")
    return x.double().numpy() @ w.T + b
