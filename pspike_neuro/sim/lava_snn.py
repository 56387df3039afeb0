"""Run a SiLIF / C-SiLIF netlist in Lava under ``Loihi2SimCfg``::

    SpikeSource ─► Dense (synapse0) ─► SNNNeuron_0 ─► Dense (synapse1) ─► ... ─► Dense (readout) ─► LeakyReadout

Binary spikes travel through ``lava.proc.dense.Dense`` (``num_message_bits = 0``); each Dense adds a
step of latency. Up to ``SAMPLES_PER_NETWORK`` samples share one network and run back to back,
``length`` Lava steps each (every process resets its state where its view of a sample begins), plus
``latency_steps`` at the end; the network is stopped whatever happens; processes save what they
recorded at the last step, and the host decodes the readout potentials as the reference does.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401  (fork start method first)
import numpy as np

from ..errors import UserError
from ..export.netlist import Netlist
from ..export.nodes import CSiLIFNeuron
from .lava_backend import check_int32_sums, run_network
from .reference import ReferenceResult
from .snn_reference import decode_scores

TAGS = ("fixed_pt", "floating_pt")
SAMPLES_PER_NETWORK = 64


def _dense(syn, tag: str):
    from lava.proc.dense.process import Dense

    if tag == "fixed_pt":
        return Dense(weights=syn.weights.astype(np.int32), weight_exp=syn.weight_exp,
                     num_weight_bits=syn.num_weight_bits, num_message_bits=0)
    return Dense(weights=syn.floats["weight"], num_message_bits=0)


def _build(netlist: Netlist, spikes: np.ndarray, tag: str, record_dir: Path):
    from .lava.snn_processes import LeakyReadoutProcess, SNNNeuron, SpikeSource

    n_samples, length = spikes.shape[:2]
    layers = netlist.snn_layers()
    num_steps = n_samples * length + len(layers) + 1
    run = dict(length=length, n_samples=n_samples, num_steps=num_steps)
    source = SpikeSource(data=spikes.astype(np.int64), **run)
    port = source.s_out
    for l, layer in enumerate(layers):
        node = layer["neuron"]
        syn = _dense(layer["synapse"], tag)
        kind = "csilif" if isinstance(node, CSiLIFNeuron) else "silif"
        neuron = SNNNeuron(n=node.n, layer=l, kind=kind, params=dict(node.values), floats=node.floats,
                           record_path=str(record_dir / f"neuron{l}.npz"), **run)
        port.connect(syn.s_in)
        syn.a_out.connect(neuron.a_in)
        port = neuron.s_out
    ro = netlist.nodes["readout"]
    syn = _dense(netlist.nodes["readout_synapse"], tag)
    readout = LeakyReadoutProcess(n=ro.n, layer=len(layers), params=dict(ro.values), floats=ro.floats,
                                  record_path=str(record_dir / "readout.npz"), **run)
    port.connect(syn.s_in)
    syn.a_out.connect(readout.a_in)
    return source, num_steps


def run_lava_snn(netlist: Netlist, spikes: np.ndarray, tag: str = "fixed_pt", progress=None,
                 samples_per_network: int = SAMPLES_PER_NETWORK) -> ReferenceResult:
    """Simulate input spike trains (B, T, d_input) in Lava; returns what the reference returns.

    ``progress(n)`` is called after each network with its number of samples."""
    if tag not in TAGS:
        raise UserError(f"Lava backend precision must be one of {', '.join(TAGS)}, got {tag!r}")
    if tag == "fixed_pt":
        check_int32_sums(netlist)
    if samples_per_network < 1:
        raise UserError(f"samples_per_network must be at least 1, got {samples_per_network}")
    n_layers = len(netlist.snn_layers())
    per_network = []
    saturation: dict[str, int] = {}
    for lo in range(0, spikes.shape[0], samples_per_network):
        hi = min(spikes.shape[0], lo + samples_per_network)
        which = f"sample {lo}" if hi - lo == 1 else f"samples {lo}..{hi - 1}"
        with tempfile.TemporaryDirectory(prefix="pspike-lava-snn-") as tmp:
            record_dir = Path(tmp)
            source, num_steps = _build(netlist, np.asarray(spikes[lo:hi]) != 0, tag, record_dir)
            run_network(source, num_steps, tag, which)
            errors = sorted(record_dir.glob("*.error"))
            if errors:
                raise UserError(f"Lava simulation of {which} failed in {errors[0].name.split('.')[0]}: "
                                f"{errors[0].read_text().strip()[:200]}")
            rec = {name: dict(np.load(record_dir / f"{name}.npz"))
                   for name in [f"neuron{l}" for l in range(n_layers)] + ["readout"]}
            for values in rec.values():
                for key, count in values.items():
                    if key.startswith("sat:"):
                        saturation[key[4:]] = saturation.get(key[4:], 0) + int(count)
            per_network.append(rec)
        if progress is not None:
            progress(hi - lo)
    potentials = np.concatenate([s["readout"]["r"] for s in per_network])
    frac_bits = netlist.nodes["readout"].state_frac_bits if tag == "fixed_pt" else 0
    logits = decode_scores(potentials, frac_bits)
    result = ReferenceResult(logits=logits, predictions=logits.argmax(-1), saturation=saturation)
    x = np.asarray(spikes) != 0
    for l in range(n_layers):
        out = np.concatenate([s[f"neuron{l}"]["s"] for s in per_network])
        result.spikes_in.append(x)
        result.spikes_out.append(out)
        x = out
    result.residual_out = potentials
    return result
