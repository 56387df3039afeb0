"""The graph executor: any netlist, integer (the deployed network, bit for bit) or float (the folded
network, with calibration statistics), walked in its schedule.

A node outside a cycle runs over the whole sequence at once (its ``int_sequence``: vectorized over
samples and neurons, over time too for stateless nodes, compiled kernels where its type has them).
The nodes of a cycle step together through time; a recurrent edge delivers its source's value of
the previous step (zeros at step 0). Several edges into one port are summed. Nothing here knows any
node type: everything type-specific is a method of the type (``nodes/``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..nodes import RunContext
from .netlist import Netlist


@dataclass
class RunResult:
    """What a run produced: per node its output (B, T, n) and its step records, the sink's class
    scores and predictions, saturation events per place, and the spiking layers' names."""

    outputs: dict
    records: dict
    scores: np.ndarray
    predictions: np.ndarray
    saturation: dict
    layers: list
    layer_inputs: list
    valid: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def logits(self) -> np.ndarray:
        return self.scores

    @property
    def spikes_out(self) -> list:
        """Output spikes of every spiking layer, (B, T, n) bool each."""
        return [np.asarray(self.outputs[name], bool) for name in self.layers]

    @property
    def spikes_in(self) -> list:
        """Input spikes of every spiking layer: its own input sampler's (SSM neurons), else the
        spikes that reach it through its synapse (None where its input is graded)."""
        out = []
        for name, src in zip(self.layers, self.layer_inputs):
            rec = self.records.get(name, {})
            if "s_in" in rec:
                out.append(np.asarray(rec["s_in"], bool))
            else:
                out.append(None if src is None else np.asarray(self.outputs[src], bool))
        return out

    def states(self, name: str) -> np.ndarray | None:
        return self.records.get(name, {}).get("state")


def valid_mask(batch: int, length: int, lengths=None) -> np.ndarray:
    if lengths is None:
        return np.ones((batch, length), bool)
    return np.arange(length)[None] < np.asarray(lengths)[:, None]


def _as_number(value, integer: bool) -> np.ndarray:
    return np.asarray(value, np.int64 if integer else np.float64) if value.dtype == bool else value


def _add(inputs: dict, port: str, value, integer: bool) -> None:
    """Put ``value`` on ``port``, summed with what is there (spikes stay bool when alone: a synapse
    reads them as they are, and every step converts what it needs)."""
    if port not in inputs:
        inputs[port] = value
    else:
        inputs[port] = _as_number(inputs[port], integer) + _as_number(value, integer)


def _gather(netlist: Netlist, name: str, values: dict, integer: bool) -> dict:
    """The inputs of an acyclic node by port: the sum of the sequences on its edges."""
    inputs: dict = {}
    for e in netlist.inputs_of(name):
        _add(inputs, e.dst_port, values[e.src], integer)
    return inputs


def run(netlist: Netlist, x, *, integer: bool, seed: int, samples=None, lengths=None, record_states: bool = False,
        stats: dict | None = None, prob_stats: dict | None = None) -> RunResult:
    """Run ``netlist`` on raw inputs ``x`` (what its source takes: (B, T, d) values or (B, T) tokens).

    ``integer``: the deployed integer network; otherwise the float network of the nodes' float
    parameters (``stats``, if a dict, receives each node's calibration statistics; ``prob_stats`` each
    spiking node's per-neuron output probabilities, ``RunContext.stat_probability``). ``samples`` are
    the sample ids that key the random numbers (default 0..B-1); ``lengths`` the unpadded steps.
    """
    x = np.asarray(x)
    batch, length = x.shape[0], x.shape[1]
    ctx = RunContext(seed=int(seed), samples=np.arange(batch) if samples is None else np.asarray(samples),
                     valid=valid_mask(batch, length, lengths), stats=stats, record_states=record_states,
                     prob_stats=prob_stats)
    sched = netlist.schedule()
    values: dict = {}
    records: dict = {}
    consumers = {name: sum(1 for e in netlist.outputs_of(name)) for name in netlist.nodes}
    looped = {e.dst for e in sched.back}
    for group in sched.groups:
        acyclic = len(group) == 1 and group[0] not in looped  # a node feeding itself is a cycle of one
        if acyclic:
            name = group[0]
            node = netlist.nodes[name]
            inputs = {"external": x} if node.TYPE.ROLE == "source" else _gather(netlist, name, values, integer)
            outputs, recs = node.int_sequence(inputs, ctx) if integer else node.float_sequence(inputs, ctx)
        else:
            outputs, recs = {}, {}
            _run_cycle(netlist, group, sched.back, values, records, integer, ctx)
        for member in group:
            if acyclic:
                if "out" in outputs:
                    values[member] = outputs["out"]
                records[member] = recs
            if prob_stats is not None and not integer and netlist.nodes[member].TYPE.BINARY_OUT and member in values:
                _spike_statistics(prob_stats, member, values[member], ctx.valid)
        for member in group:  # a synapse's sums are dropped once every consumer has them
            for e in netlist.inputs_of(member):
                consumers[e.src] -= 1
                if consumers[e.src] == 0 and netlist.nodes[e.src].TYPE.ROLE == "synapse":
                    values.pop(e.src, None)
    sink = netlist.sink()
    scores = sink.scores(records[sink.name], ctx, integer)
    layers = netlist.spiking_layers()
    return RunResult(outputs=values, records=records, scores=scores, predictions=np.asarray(scores).argmax(-1),
                     saturation=ctx.sat.as_dict(), layers=layers,
                     layer_inputs=[netlist.layer_input(name) for name in layers], valid=ctx.valid)


def _spike_statistics(stats: dict, name: str, spikes, valid: np.ndarray) -> None:
    """Calibration: a spiking node that records no output probability of its own (deterministic neurons)
    has its spikes as probabilities: per neuron their sum, count, min and max over the valid steps (the
    statistics ``RunContext.stat_probability`` keeps)."""
    entry = stats.setdefault(name, {})
    s = np.asarray(spikes, np.float64)[valid]
    if "prob_sum" in entry or not s.size:
        return
    entry.update(prob_sum=s.sum(0), prob_count=float(s.shape[0]), prob_min=s.min(0), prob_max=s.max(0))


def _run_cycle(netlist: Netlist, group: tuple, back, values: dict, records: dict, integer: bool,
               ctx: RunContext) -> None:
    """Step the nodes of one cycle together through time, in schedule order: a forward edge inside
    the cycle carries this step's value, a recurrent one the previous step's (zeros at step 0)."""
    batch, length = ctx.valid.shape
    nodes = [netlist.nodes[name] for name in group]
    members = set(group)
    states = {n.name: (n.int_init(batch) if integer else n.float_init(batch)) for n in nodes}
    outs: dict = {}
    recs: dict = {n.name: {} for n in nodes}
    previous: dict = {}
    for t in range(length):
        current: dict = {}
        for node in nodes:
            inputs: dict = {}
            for e in netlist.inputs_of(node.name):
                if e.src in members:
                    value = previous.get(e.src) if e in back else current.get(e.src)
                else:
                    value = values[e.src][:, t]
                if value is not None:
                    _add(inputs, e.dst_port, value, integer)
            for port in node.IN_PORTS:
                if port not in inputs:
                    inputs[port] = np.zeros((batch, node.in_width(port)), np.int64 if integer else np.float64)
            step = node.int_step if integer else node.float_step
            out, states[node.name], rec = step(states[node.name], inputs, t, ctx)
            current[node.name] = out.get("out")
            for store, key, value in [(outs, node.name, out["out"])] * ("out" in out) + \
                    [(recs[node.name], k, v) for k, v in rec.items()]:
                if key not in store:
                    store[key] = np.zeros((batch, length) + np.shape(value)[1:], np.asarray(value).dtype)
                store[key][:, t] = value
        previous = current
    values.update(outs)
    records.update(recs)
