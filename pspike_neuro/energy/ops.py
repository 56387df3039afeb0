"""Operation counts of one inference of a deployed netlist, from its recorded activity.

Per block (H neurons, M complex modes, T valid steps), what the integer network of
docs/numerics.md does:

* ``rng``: two random numbers per neuron per step (input and output sampler);
* ``mac`` (inside neurons, dense, every step whatever the spikes): the input-sampler scale (1 per
  neuron), the mode decays (4 real multiplies per mode: a complex product), the mode readout ``C z``
  (2 per mode), the ClampFuse scale (1 per neuron);
* ``graded_synops``: multiply-accumulates of synapses with graded inputs: the readout synapse
  (H x classes per step);
* ``ac`` (spike-triggered accumulates): ``Bbar s`` (2 per mode per input spike), ``D s`` (1 per
  input spike), the SpikeMixer (one per output spike and non-zero weight of its column);
* ``add``: sampler offsets and biases (2 per neuron), ClampFuse bias and residual (2 per neuron),
  readout bias (1 per class);
* ``neuron_updates``: compartments updated per step (M + 1 per SSM neuron, 1 per ClampFuse and
  readout neuron), with ``active`` ones those that spiked (SSM neurons only);
* ``messages``: binary spikes sent to the mixer, and graded (24-bit) residual-stream messages.

The non-spiking counterpart is the same network with real-valued activations instead of spikes:
``Bbar x``, ``D x`` and the mixer become graded synaptic MACs and there is nothing to sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..export.netlist import Netlist

FIELDS = ("mac", "ac", "graded_synops", "add", "rng", "neuron_updates", "active_neuron_updates",
          "binary_messages", "graded_messages")


@dataclass
class OpCounts:
    mac: float = 0.0
    ac: float = 0.0
    graded_synops: float = 0.0
    add: float = 0.0
    rng: float = 0.0
    neuron_updates: float = 0.0
    active_neuron_updates: float = 0.0
    binary_messages: float = 0.0
    graded_messages: float = 0.0

    def __add__(self, other: "OpCounts") -> "OpCounts":
        return OpCounts(*(getattr(self, f) + getattr(other, f) for f in FIELDS))

    def scaled(self, factor: float) -> "OpCounts":
        return OpCounts(*(getattr(self, f) * factor for f in FIELDS))

    def as_dict(self) -> dict:
        return asdict(self)


def column_fanout(mixer) -> np.ndarray:
    """Non-zero weights per input (column) of a Sparse synapse."""
    return np.bincount(mixer.indices, minlength=mixer.n_in)


#: per neuron and step in a SiLIF / C-SiLIF population (docs/energy-model.md): multiplies, adds
SNN_NEURON_OPS = {"silif": {"mac": 4, "add": 5}, "csilif": {"mac": 4, "add": 4}}
SNN_COMPARTMENTS = 2  # u and w (SiLIF), Re and Im (C-SiLIF)


def _snn_kind(node) -> str:
    return "csilif" if "decay_re" in node.values else "silif"


def count_ops_snn(netlist: Netlist, spikes_in: list, spikes_out: list, valid_steps) -> list[dict]:
    """A SiLIF / C-SiLIF network: spike-driven synaptic ACs, dense neuron updates, readout."""
    steps = float(np.sum(valid_steps))
    out = []
    for l, layer in enumerate(netlist.snn_layers()):
        syn, nrn = layer["synapse"], layer["neuron"]
        fan = (syn.weights != 0).sum(axis=0)
        per = SNN_NEURON_OPS[_snn_kind(nrn)]
        n_out = float(spikes_out[l].sum())
        ops = OpCounts(ac=float((spikes_in[l].sum(axis=(0, 1)) * fan).sum()), mac=steps * nrn.n * per["mac"],
                       add=steps * nrn.n * per["add"], neuron_updates=steps * nrn.n * SNN_COMPARTMENTS,
                       active_neuron_updates=n_out, binary_messages=n_out)
        out.append({"layer": l, **ops.as_dict()})
    syn, ro = netlist.nodes["readout_synapse"], netlist.nodes["readout"]
    fan = (syn.weights != 0).sum(axis=0)
    last = spikes_out[-1] if spikes_out else spikes_in[0]
    out.append({"layer": "readout", **OpCounts(ac=float((last.sum(axis=(0, 1)) * fan).sum()), mac=steps * ro.n,
                                                add=steps * ro.n * 2, neuron_updates=steps * ro.n).as_dict()})
    return out


def count_ops_dense_snn(netlist: Netlist, valid_steps) -> list[dict]:
    """The non-spiking counterpart of a SiLIF network: every synapse a graded MAC every step."""
    steps = float(np.sum(valid_steps))
    out = []
    for l, layer in enumerate(netlist.snn_layers()):
        syn, nrn = layer["synapse"], layer["neuron"]
        per = SNN_NEURON_OPS[_snn_kind(nrn)]
        out.append({"layer": l, **OpCounts(graded_synops=steps * syn.n_in * syn.n_out, mac=steps * nrn.n * per["mac"],
                                           add=steps * nrn.n * per["add"],
                                           neuron_updates=steps * nrn.n * SNN_COMPARTMENTS,
                                           graded_messages=steps * nrn.n).as_dict()})
    syn, ro = netlist.nodes["readout_synapse"], netlist.nodes["readout"]
    out.append({"layer": "readout", **OpCounts(graded_synops=steps * syn.n_in * syn.n_out, mac=steps * ro.n,
                                                add=steps * ro.n * 2, neuron_updates=steps * ro.n).as_dict()})
    return out


def count_ops(netlist: Netlist, spikes_in: list, spikes_out: list, valid_steps: int | np.ndarray) -> list[dict]:
    """Per-layer and readout op counts, summed over the samples in the spike arrays.

    ``spikes_in[l]``, ``spikes_out[l]``: (B, T, H) bool arrays of the valid steps (padding removed or
    all-False); ``valid_steps``: total valid steps summed over samples.
    """
    if netlist.is_snn:
        return count_ops_snn(netlist, spikes_in, spikes_out, valid_steps)
    steps = float(np.sum(valid_steps))
    out = []
    for l, blk in enumerate(netlist.blocks()):
        nrn, mixer = blk["neuron"], blk["mixer"]
        h, m = nrn.n, nrn.n_modes
        n_s = float(spikes_in[l].sum())
        fan = column_fanout(mixer)
        mixer_ac = float((spikes_out[l].sum(axis=(0, 1)) * fan).sum())
        ops = OpCounts(
            mac=steps * h * (1 + 4 * m + 2 * m) + steps * h,
            ac=n_s * (2 * m + 1) + mixer_ac,
            add=steps * h * 4,
            rng=steps * h * 2,
            neuron_updates=steps * h * (m + 1) + steps * h,
            active_neuron_updates=float(spikes_out[l].sum()),
            binary_messages=float(spikes_out[l].sum()),
            graded_messages=steps * h,
        )
        out.append({"layer": l, **ops.as_dict()})
    syn, integ = netlist.nodes["readout_synapse"], netlist.nodes["readout"]
    out.append({"layer": "readout", **_readout_ops(netlist, steps).as_dict()})
    return out


def _readout_ops(netlist: Netlist, steps: float) -> OpCounts:
    syn, integ = netlist.nodes["readout_synapse"], netlist.nodes["readout"]
    return OpCounts(graded_synops=steps * syn.n_in * syn.n_out, add=steps * integ.n,
                    neuron_updates=steps * integ.n, graded_messages=steps * syn.n_in)


def count_ops_dense(netlist: Netlist, valid_steps: int | np.ndarray) -> list[dict]:
    """The non-spiking counterpart: same sizes, real-valued activations everywhere."""
    if netlist.is_snn:
        return count_ops_dense_snn(netlist, valid_steps)
    steps = float(np.sum(valid_steps))
    out = []
    for l, blk in enumerate(netlist.blocks()):
        nrn, mixer = blk["neuron"], blk["mixer"]
        h, m = nrn.n, nrn.n_modes
        ops = OpCounts(
            mac=steps * h * (1 + 6 * m) + steps * h,
            graded_synops=steps * h * (2 * m + 1) + steps * mixer.n_in * mixer.n_out,
            add=steps * h * 4, neuron_updates=steps * h * (m + 1) + steps * h, graded_messages=2 * steps * h)
        out.append({"layer": l, **ops.as_dict()})
    out.append({"layer": "readout", **_readout_ops(netlist, steps).as_dict()})
    return out


def total(rows: list[dict]) -> OpCounts:
    acc = OpCounts()
    for row in rows:
        acc = acc + OpCounts(**{f: row[f] for f in FIELDS})
    return acc
