"""Calibrate a float graph and quantize it to the integer contract of docs/numerics.md: one path for
every model family (the float graph comes from quant/fold.py or from an import).

Calibration runs the float graph (the node types' float steps, common random numbers with the
export seed) on calibration inputs and keeps each node's activation statistics. Quantization then
walks the graph in its schedule: every node chooses the integer format of its output from its
statistics (``out_format``), says which format it needs on inputs that synapses feed
(``needs_formats``), and turns its float parameters into integer fields (``quantize``); a synapse
is quantized to deliver exactly what its destination asked for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import UserError
from ..graph import Netlist, run
from ..nodes import BINARY, NodeError, QuantContext


@dataclass
class QuantConfig:
    """Bit widths and calibration settings (defaults: docs/numerics.md)."""

    weight_bits: int = 8        # Lava num_weight_bits of the mixer and readout synapses
    ssm_bits: int = 8           # mantissa of Bbar, C, D
    affine_bits: int = 12       # mantissa of the input-sampler and post-norm scales
    prob_bits: int = 16         # P: probability 1.0 == 2^P
    headroom_bits: int = 1      # calibrated maxima get this many spare bits
    calib_samples: int = 256
    density: float | None = None  # magnitude-prune each mixer to this fraction of non-zeros
    prune_silent: float | None = None  # remove neurons whose mean output probability is below this (quant/prune.py)
    seed: int = 0
    stable_decays: bool = False   # C-SiLIF: decays that round onto |lambda| >= 1 move inside instead of refusing
    gelu: str = "none"            # "table": a P-SpikeSSM's GELUs deploy as the table of docs/numerics.md §7

    def __post_init__(self):
        if not 1 <= self.weight_bits <= 8:
            raise UserError(f"--weight-bits must be in 1..8 (Lava synapses hold 8-bit weights), got {self.weight_bits}")
        if not 1 <= self.prob_bits <= 24:
            raise UserError(f"--prob-bits must be in 1..24, got {self.prob_bits}")
        for name in ("ssm_bits", "affine_bits"):
            if not 2 <= getattr(self, name) <= 16:
                raise UserError(f"{name} must be in 2..16, got {getattr(self, name)}")
        if self.density is not None and not 0 < self.density <= 1:
            raise UserError(f"--density must be in (0, 1], got {self.density}")
        if self.prune_silent is not None:
            from .prune import check_threshold

            check_threshold(self.prune_silent)
        if self.calib_samples < 1:
            raise UserError(f"--calib-samples must be at least 1, got {self.calib_samples}")
        if self.gelu not in ("none", "table"):
            raise UserError(f"--gelu must be none or table, got {self.gelu!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)



def calibrate(graph: Netlist, x, qc: QuantConfig, lengths=None, probabilities: dict | None = None) -> dict:
    """Per node, the statistics its float step records on calibration inputs ``x`` (raw inputs);
    ``probabilities``, if a dict, receives every spiking node's per-neuron output probabilities (mean,
    min, max: what ``--prune-silent`` reads)."""
    stats: dict = {}
    run(graph, x, integer=False, seed=qc.seed, lengths=lengths, stats=stats, prob_stats=probabilities)
    return stats


def quantize_graph(graph: Netlist, stats: dict, qc: QuantConfig) -> dict:
    """Integer node records of every node of ``graph``, in its node order.

    A trained value that lands outside a field's integer range is refused in one line naming the
    node and field."""
    sched = graph.schedule()
    formats: dict = {}
    done: dict = {}
    try:
        for name in sched.order:
            node = graph.nodes[name]
            if node.TYPE.ROLE == "synapse":
                continue  # quantized below, for the format its destination needs
            edges = graph.inputs_of(name)
            in_formats = {e.dst_port: formats[e.src] for e in edges if graph.nodes[e.src].TYPE.ROLE != "synapse"}
            q = QuantContext(node, stats.get(name, {}), in_formats, qc)
            needs = node.TYPE.needs_formats(q)
            for e in edges:
                src = graph.nodes[e.src]
                if src.TYPE.ROLE != "synapse":
                    continue
                if e.dst_port not in needs:
                    raise UserError(f"node {name} ({node.type_name()}): its input {e.dst_port} cannot come from a "
                                    f"synapse ({e.src})")
                want = needs[e.dst_port]
                if e.src in done:
                    if formats[e.src] != want:
                        raise UserError(f"synapse {e.src}: its destinations need different formats")
                else:
                    done[e.src] = src.TYPE.quantize(QuantContext(src, stats.get(e.src, {}),
                                                                 {"in": _source_format(graph, e.src, formats)}, qc,
                                                                 out_format=want))
                    formats[e.src] = want
                in_formats[e.dst_port] = want
            done[name] = node.TYPE.quantize(q)
            formats[name] = node.TYPE.out_format(q) if not node.TYPE.BINARY_OUT else BINARY
    except NodeError as exc:
        raise UserError(f"cannot be deployed: {exc} (a trained value too large or too small for the chip's "
                        "fixed-point ranges)") from None
    missing = [name for name in graph.nodes if name not in done]
    if missing:
        raise UserError(f"synapse {missing[0]} feeds nothing that takes a synapse's output")
    return {name: done[name] for name in graph.nodes}


def _source_format(graph: Netlist, synapse: str, formats: dict):
    """The format arriving at a synapse: its source's (spiking sources are binary even before their
    own turn, which is how a recurrent synapse knows its input)."""
    (edge,) = graph.inputs_of(synapse)
    if edge.src in formats:
        return formats[edge.src]
    if graph.nodes[edge.src].TYPE.BINARY_OUT:
        return BINARY
    raise UserError(f"synapse {synapse}: it closes a loop of graded values ({edge.src} -> {synapse}), which the "
                    "quantizer cannot order; only spiking recurrent loops are supported")
