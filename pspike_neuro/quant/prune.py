"""Remove silent neurons from a calibrated float graph (``pspike export --prune-silent P``).

Runs between calibration and quantization (``export/build.py``). A neuron of a spiking population is
*silent* when its mean output probability over the valid steps of the calibration data is below ``P``
(``prob_sum / prob_count`` of its statistics: the output sampler's ``clamp(q, 0, 1)`` for an SSM neuron,
the spikes themselves for deterministic neurons). Removing it removes, with it:

* its state, modes and samplers (every per-neuron float parameter of the population);
* its input: an SSM neuron's channel of the residual stream (the population records ``n_in`` and the
  ``neuron_ids`` it keeps, which also keep each neuron's own random numbers), a SiLIF-family neuron's
  row of its input synapse;
* its output: its column of every synapse it feeds (the SpikeMixer, the next layer's synapse, the
  readout).

Its expected contribution to each synapse's sum, ``W[:, i] pbar_i``, is folded into the float ``bias``
that the synapse's destination adds to that sum (ClampFuse's mixer bias, a SiLIF neuron's or a
readout's bias). Per removed neuron the fold is

* ``exact``: the neuron's probability was the same 0 or 1 at every calibration step (it never fired,
  or always did): the sum is unchanged there, spike for spike;
* ``in_expectation``: a stochastic neuron with the same probability ``p`` in (0, 1) at every step:
  the sum's expectation is unchanged at every step (its variance loses ``W^2 p (1 - p)``; a nonlinear
  step after the sum, ClampFuse's relu or a threshold, sees that);
* ``approximate``: the probability varied; the folded mean is off by up to
  ``max |W[:, i]| max(pmax_i - pbar_i, pbar_i - pmin_i)`` at a step (recorded per population).

What was removed, with each neuron's statistics, is the report this module returns; export stores it in
the netlist's metadata (``pruning``), ``pspike inspect`` shows it and ``pspike verify`` compares the
pruned deployed network with the unpruned float model.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UserError
from ..graph import Edge, Netlist
from ..nodes import FloatNode
from ..nodes.clamp_fuse import ClampFuse
from ..nodes.csilif_neuron import CSiLIFNeuron
from ..nodes.leaky_readout import LeakyReadout
from ..nodes.readout_integrator import ReadoutIntegrator
from ..nodes.rf_neuron import RFNeuron
from ..nodes.silif_neuron import SiLIFNeuron
from ..nodes.ssm_neuron import SSMNeuron

#: populations that can lose neurons: every float parameter of theirs is per neuron (leading axis n)
PRUNABLE = (SSMNeuron, SiLIFNeuron, CSiLIFNeuron, RFNeuron)
#: destinations a removed neuron's expected contribution can be folded into: the in port whose sum
#: their float ``bias`` joins
FOLD_PORT = {ClampFuse: "mixer", SiLIFNeuron: "in", CSiLIFNeuron: "in", RFNeuron: "in", LeakyReadout: "in",
             ReadoutIntegrator: "in"}
#: two probabilities closer than this count as the same (constant over the calibration data)
SAME = 1e-12


def check_threshold(threshold) -> float:
    """``--prune-silent`` must be a probability in [0, 1] (one line, exit 2 otherwise)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
            or not 0.0 <= threshold <= 1.0:
        raise UserError(f"--prune-silent must be a probability in [0, 1], got {threshold!r}")
    return float(threshold)


def _where(node) -> str:
    layer = node.attrs.get("layer")
    return f"layer {layer} ({node.name})" if layer is not None else node.name


def _mean_probability(node, stats: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    st = stats.get(node.name, {})
    if "prob_sum" not in st or not st.get("prob_count"):
        raise UserError(f"{_where(node)}: calibration recorded no output probabilities (no valid calibration steps?); "
                        "cannot prune")
    return st["prob_sum"] / st["prob_count"], st["prob_min"], st["prob_max"]


def _fold_kind(stochastic: bool, pmin: float, pmax: float) -> str:
    if pmax - pmin <= SAME:
        return "exact" if (pmax <= SAME or pmin >= 1 - SAME or not stochastic) else "in_expectation"
    return "approximate"


def _slice_floats(node: FloatNode, keep: np.ndarray) -> dict:
    n = node.attrs["n"]
    return {k: (v[keep] if np.ndim(v) and np.shape(v)[0] == n else v) for k, v in node.floats.items()}


def prune_silent(graph: Netlist, probabilities: dict, threshold: float) -> tuple[Netlist, dict]:
    """The float graph without its silent neurons, and what was removed (see the module docstring).

    A population of a type outside ``PRUNABLE`` is kept whole (named in the report); one that would
    lose every neuron is refused, as is a silent neuron whose synapse feeds a node without a bias to
    fold into."""
    threshold = check_threshold(threshold)
    nodes = dict(graph.nodes)
    report = {"threshold": threshold, "populations": [], "kept_whole": []}
    for name in graph.schedule().order:
        node = nodes[name]
        if node.TYPE.ROLE != "neuron" or not node.TYPE.BINARY_OUT:
            continue
        if node.TYPE not in PRUNABLE:
            report["kept_whole"].append({"node": name, "type": node.type_name(), "why": "type cannot lose neurons"})
            continue
        mean, pmin, pmax = _mean_probability(node, probabilities)
        remove = mean < threshold
        n = int(node.attrs["n"])
        if remove.all():
            raise UserError(f"--prune-silent {threshold:g}: all {n} neurons of {_where(node)} have a mean output "
                            f"probability below {threshold:g} on the calibration data (largest {mean.max():.3g}); "
                            "pruning would remove the whole layer: lower the threshold")
        keep = np.flatnonzero(~remove)
        gone = np.flatnonzero(remove)
        stochastic = node.TYPE is SSMNeuron
        kinds = [_fold_kind(stochastic, float(pmin[i]), float(pmax[i])) for i in gone]
        entry = {"node": name, "layer": node.attrs.get("layer"), "type": node.type_name(), "neurons": n,
                 "kept": int(keep.size), "removed": int(gone.size),
                 "removed_ids": [int(i) for i in _original_ids(node)[gone]],
                 "kept_ids": [int(i) for i in _original_ids(node)[keep]],
                 "removed_mean_probability": [float(mean[i]) for i in gone],
                 "removed_max_probability": [float(pmax[i]) for i in gone],
                 "folds": {k: kinds.count(k) for k in ("exact", "in_expectation", "approximate")},
                 "folded_into": [], "largest_bias_change": 0.0, "largest_step_deviation": 0.0}
        report["populations"].append(entry)
        if not gone.size:
            continue
        nodes[name] = _shrunk_population(graph, nodes, node, keep)
        for e in graph.outputs_of(name):
            _fold_outputs(graph, nodes, e, keep, gone, mean, pmin, pmax, entry)
    report["neurons"] = sum(p["neurons"] for p in report["populations"])
    report["removed"] = sum(p["removed"] for p in report["populations"])
    return Netlist(meta=dict(graph.meta), nodes=nodes, edges=list(graph.edges)), report


def _original_ids(node) -> np.ndarray:
    ids = node.attrs.get("neuron_ids")
    return np.arange(node.attrs["n"]) if ids is None else np.asarray(ids)


def _shrunk_population(graph: Netlist, nodes: dict, node: FloatNode, keep: np.ndarray) -> FloatNode:
    """The population with neurons ``keep``, and its input narrowed to them."""
    attrs = dict(node.attrs, n=int(keep.size))
    if node.TYPE is SSMNeuron:  # a graded input stream: the neurons listen to their own channels
        attrs.update(n_in=int(node.attrs.get("n_in", node.attrs["n"])), neuron_ids=_original_ids(node)[keep])
    else:
        for e in graph.inputs_of(node.name):
            syn = nodes[e.src]
            if syn.TYPE.ROLE != "synapse":
                raise UserError(f"{_where(node)}: its input {e.src} is not a synapse; cannot remove neurons")
            nodes[e.src] = FloatNode(syn.TYPE, syn.name, dict(syn.attrs, n_out=int(keep.size)),
                                     dict(syn.floats, weight=syn.floats["weight"][keep]))
    return FloatNode(node.TYPE, node.name, attrs, _slice_floats(node, keep))


def _fold_outputs(graph: Netlist, nodes: dict, edge: Edge, keep, gone, mean, pmin, pmax, entry: dict) -> None:
    """Drop the removed neurons' columns of the synapse on ``edge`` and fold their mean contribution into
    the bias of the synapse's destination."""
    syn = nodes[edge.dst]
    if syn.TYPE.ROLE != "synapse":
        raise UserError(f"{entry['node']}: its spikes reach {edge.dst}, which is not a synapse; cannot remove neurons")
    w = syn.floats["weight"]
    delta = w[:, gone] @ mean[gone]
    spread = np.maximum(pmax[gone] - mean[gone], mean[gone] - pmin[gone])
    deviation = float((np.abs(w[:, gone]) * spread).sum(1).max(initial=0.0))
    nodes[syn.name] = FloatNode(syn.TYPE, syn.name, dict(syn.attrs, n_in=int(keep.size)),
                                dict(syn.floats, weight=w[:, keep]))
    if not np.any(delta):
        return
    for out in graph.outputs_of(syn.name):
        dest = nodes[out.dst]
        port = FOLD_PORT.get(dest.TYPE)
        if port != out.dst_port or "bias" not in dest.floats:
            raise UserError(f"{entry['node']}: the removed neurons' expected contribution cannot be folded: "
                            f"{out.dst} ({dest.type_name()}) has no bias on the port {syn.name} feeds; lower "
                            "--prune-silent so that only neurons that never fire are removed")
        nodes[dest.name] = FloatNode(dest.TYPE, dest.name, dict(dest.attrs),
                                     dict(dest.floats, bias=dest.floats["bias"] + delta))
        entry["folded_into"].append(f"{dest.name}.bias")
    entry["largest_bias_change"] = max(entry["largest_bias_change"], float(np.abs(delta).max()))
    entry["largest_step_deviation"] = max(entry["largest_step_deviation"], deviation)
