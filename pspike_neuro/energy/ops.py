"""Operation counts of a deployed netlist from its recorded activity: each node type counts its own
(``NodeType.ops``, docs/energy-model.md), this module only gathers what each node did.

The non-spiking counterpart is the same network with real-valued activations instead of spikes
(``NodeType.dense_ops``): synapses become graded multiply-accumulates over every weight and every
step, neurons send graded messages, nothing is sampled.
"""

from __future__ import annotations

import numpy as np

from ..graph import Netlist
from ..nodes import OP_FIELDS, Activity, OpCounts

FIELDS = OP_FIELDS


def _masked(values, valid: np.ndarray):
    """Values of the valid steps only (padded steps cleared)."""
    if values is None:
        return None
    values = np.asarray(values)
    mask = valid.reshape(valid.shape + (1,) * (values.ndim - 2))
    return np.where(mask, values, 0) if values.dtype != bool else values & mask


def count_ops(netlist: Netlist, outputs: dict, records: dict, valid: np.ndarray) -> list[dict]:
    """Per node, its operations over the run, summed over samples. ``outputs`` and ``records`` map
    node names to what they sent and recorded (a ``RunResult``'s, or the float model's spikes under
    the same names); ``valid`` (B, T) marks the unpadded steps."""
    steps = float(valid.sum())
    rows = []
    for name in netlist.schedule().order:
        node = netlist.nodes[name]
        inputs = {}
        for e in netlist.inputs_of(name):
            src = netlist.nodes[e.src].TYPE
            if (src.BINARY_OUT or src.EVENT_DRIVEN) and e.src in outputs:  # spikes, or the events of counts
                inputs[e.dst_port] = _masked(np.asarray(outputs[e.src], bool), valid)
        act = Activity(steps=steps, inputs=inputs, output=_masked(outputs.get(name), valid),
                       records={k: _masked(v, valid) for k, v in records.get(name, {}).items()})
        rows.append({"node": name, "type": node.type_name(), **node.ops(act).as_dict()})
    return rows


def count_ops_dense(netlist: Netlist, valid: np.ndarray) -> list[dict]:
    """The non-spiking counterpart's operations per node."""
    steps = float(valid.sum())
    return [{"node": name, "type": netlist.nodes[name].type_name(), **netlist.nodes[name].dense_ops(steps).as_dict()}
            for name in netlist.schedule().order]


#: the synaptic accounting's kinds: effective accumulates (binary spikes) and multiply-accumulates (graded values)
SYNAPTIC_FIELDS = ("ac", "graded_synops")


def synaptic(netlist: Netlist, rows: list[dict]) -> list[dict]:
    """The *synaptic* accounting of per-node ``rows`` (the convention of the seed papers and NeuroBench):
    the operations on connections only, i.e. each synapse node's accumulates of arriving spikes times
    their stored fan-out and multiply-accumulates of graded values; every other operation (state
    updates, samplers, adds, messages) is zero. The *full* accounting is ``rows`` themselves."""
    out = []
    for row in rows:
        keep = netlist.nodes[row["node"]].TYPE.ROLE == "synapse"
        out.append({**row, **{f: (row[f] if keep and f in SYNAPTIC_FIELDS else 0.0) for f in FIELDS}})
    return out


def total(rows: list[dict]) -> OpCounts:
    acc = OpCounts()
    for row in rows:
        acc = acc + OpCounts(**{f: row[f] for f in FIELDS})
    return acc
