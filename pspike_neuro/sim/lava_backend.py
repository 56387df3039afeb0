"""Build the Lava process graph of a netlist, run it under Loihi2SimCfg, collect what it recorded.

One Lava network per batch of samples (Lava processes cannot be rerun after ``stop()``, and
building and compiling a network costs as much as a few hundred steps): the samples run back to
back in time, ``period = length + latency`` Lava steps each, every process resetting its state
where its own view of a sample begins (``sim/lava/models.py``)::

    GradedSource ─► SSMNeuron_0 ─► Sparse (mixer_0) ─► ClampFuse_0.mixer ─► SSMNeuron_1 ...
          └─────────────────────────────────────────► ClampFuse_0.residual ─► ClampFuse_1.residual ...
    ClampFuse_last ─► Dense (readout) ─► ReadoutIntegrator

Every process saves its recordings to a temporary folder at the last step (reading Lava Vars costs
about 20 µs per element). ``fixed_pt`` runs the integer contract, ``floating_pt`` the folded float
network carried in the netlist's ``float/`` parameters.
"""

from __future__ import annotations

import tempfile

from pathlib import Path

# Lava sets the 'fork' start method when this module is imported and fails if any library chose a
# multiprocessing context first; importing it here, before data loading, keeps that order.
import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
import numpy as np

from ..errors import UserError
from ..export.netlist import Netlist
from .reference import ReferenceResult, quantize_input

BACKEND_TAGS = ("fixed_pt", "floating_pt")


def _node_params(node) -> dict:
    return dict(node.values)


def _build(netlist: Netlist, x_batch: np.ndarray, samples: np.ndarray, seed: int, valid_lengths: np.ndarray,
           tag: str, record_dir: Path, record_states: bool):
    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse

    from .lava.processes import ClampFuse, GradedSource, ReadoutIntegrator, SSMNeuron

    length = x_batch.shape[1]
    blocks = netlist.blocks()
    period = length + int(netlist.meta["latency_steps"])
    num_steps = len(samples) * period
    run = dict(seed=seed, samples=np.asarray(samples, np.int64), length=length,
               valid_lengths=np.asarray(valid_lengths, np.int64), period=period, num_steps=num_steps)
    source = GradedSource(data=x_batch, **run)
    stream = source.s_out
    procs = {"source": source}
    for l, blk in enumerate(blocks):
        neuron, mixer, fuse = blk["neuron"], blk["mixer"], blk["fuse"]
        nrn = SSMNeuron(n=neuron.n, layer=l, params=_node_params(neuron), floats=neuron.floats,
                        record_path=str(record_dir / f"neuron{l}.npz"), record_states=record_states, **run)
        if tag == "fixed_pt":
            syn = Sparse(weights=mixer.to_scipy(), weight_exp=mixer.weight_exp,
                         num_weight_bits=mixer.num_weight_bits, num_message_bits=0)
        else:
            syn = Sparse(weights=mixer.floats["weight"], num_message_bits=0)
        fz = ClampFuse(n=fuse.n, layer=l, params=_node_params(fuse), floats=fuse.floats,
                       record_path=str(record_dir / f"fuse{l}.npz"), **run)
        stream.connect(nrn.a_in)
        stream.connect(fz.residual)
        nrn.s_out.connect(syn.s_in)
        syn.a_out.connect(fz.mixer)
        stream = fz.x_out
        procs.update({f"neuron{l}": nrn, f"mixer{l}": syn, f"fuse{l}": fz})
    rsyn, integ = netlist.nodes["readout_synapse"], netlist.nodes["readout"]
    if tag == "fixed_pt":
        dense = Dense(weights=rsyn.weights.astype(np.int32), weight_exp=rsyn.weight_exp,
                      num_weight_bits=rsyn.num_weight_bits, num_message_bits=rsyn.num_message_bits)
    else:
        dense = Dense(weights=rsyn.floats["weight"], num_message_bits=24)
    readout = ReadoutIntegrator(n=integ.n, layer=len(blocks), params=_node_params(integ), floats=integ.floats,
                                record_path=str(record_dir / "readout.npz"), **run)
    stream.connect(dense.s_in)
    dense.a_out.connect(readout.a_in)
    procs.update({"readout_synapse": dense, "readout": readout})
    return source, num_steps


INT32_MAX = 2**31 - 1


def check_int32_sums(netlist: Netlist) -> None:
    """Refuse a netlist whose synaptic sums could exceed Lava's int32 synapse output ports.

    Lava's bit-accurate Dense/Sparse send ``a_out`` as int32, so a larger sum would wrap silently.
    Worst cases: every binary input active for a mixer, every graded input at 2^23 - 1 for the readout.
    """
    from ..quant.fixed import shift

    for name, node in netlist.nodes.items():
        if not hasattr(node, "weight_exp"):
            continue
        w = np.abs(node.to_dense())
        peak = 1 if node.num_message_bits == 0 else 2**23 - 1
        worst = int(shift(np.array([int(w.sum(axis=1).max(initial=0)) * peak]), node.weight_exp)[0])
        if worst > INT32_MAX:
            raise UserError(f"synapse {name}: its sums can reach {worst}, beyond the int32 output of Lava's "
                            "synapses; re-export with fewer fraction bits (this netlist cannot run in Lava exactly)")


SAMPLES_PER_NETWORK = 64


def run_lava(netlist: Netlist, x0: np.ndarray, sample_ids, seed: int, lengths=None, tag: str = "fixed_pt",
             record_states: bool = False, progress=None,
             samples_per_network: int = SAMPLES_PER_NETWORK) -> ReferenceResult:
    """Simulate host-encoded inputs ``x0`` (B, L, H) in Lava; returns what the reference returns.

    Up to ``samples_per_network`` samples share one Lava network and run one after the other;
    ``progress(n)`` is called after each network with its number of samples.
    """
    if tag not in BACKEND_TAGS:
        raise UserError(f"Lava backend precision must be one of {', '.join(BACKEND_TAGS)}, got {tag!r}")
    if tag == "fixed_pt":
        check_int32_sums(netlist)
    batch, length, _ = x0.shape
    lengths = np.full(batch, length) if lengths is None else np.asarray(lengths)
    sample_ids = np.asarray(sample_ids)
    if samples_per_network < 1:
        raise UserError(f"samples_per_network must be at least 1, got {samples_per_network}")
    per_network = []
    sat_total: dict[str, int] = {}
    for lo in range(0, batch, samples_per_network):
        hi = min(batch, lo + samples_per_network)
        ids = sample_ids[lo:hi]
        which = f"sample {int(ids[0])}" if len(ids) == 1 else f"samples {int(ids[0])}..{int(ids[-1])}"
        if tag == "fixed_pt":
            counts = _Counts()
            x_batch = quantize_input(x0[lo:hi], netlist.nodes["input"].frac_bits, counts)
        else:
            x_batch = x0[lo:hi]
        with tempfile.TemporaryDirectory(prefix="pspike-lava-") as tmp:
            record_dir = Path(tmp)
            source, num_steps = _build(netlist, x_batch, ids, seed, lengths[lo:hi], tag, record_dir, record_states)
            run_network(source, num_steps, tag, which)
            errors = sorted(record_dir.glob("*.error"))
            if errors:
                name = errors[0].name.split(".")[0]
                failed, _, message = errors[0].read_text().partition("\n")
                raise UserError(f"Lava simulation of sample {failed.strip()} failed in {name}: "
                                f"{message.strip()[:200]}")
            per_network.append(_load(record_dir, len(netlist.blocks()), sat_total))
            if tag == "fixed_pt":
                sat_total["input"] = sat_total.get("input", 0) + counts.n
        if progress is not None:
            progress(hi - lo)
    return _stack(per_network, sat_total, record_states)


class _Counts:
    def __init__(self):
        self.n = 0

    def add(self, name, n):
        self.n += int(n)


def run_network(source, num_steps: int, tag: str, which: str) -> None:
    """Run a built graph for ``num_steps`` under ``Loihi2SimCfg`` and always stop it (with its forked
    processes); a failure inside Lava becomes one line naming ``which`` samples."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    started = False
    try:
        source.run(condition=RunSteps(num_steps=num_steps), run_cfg=Loihi2SimCfg(select_tag=tag))
        started = True
    except Exception as exc:  # Lava wraps model exceptions in RuntimeError
        reason = " ".join(str(exc).split())[:200]
        raise UserError(f"Lava simulation of {which} failed: {reason}") from None
    finally:
        _stop(source, started)


def _stop(source, started: bool) -> None:
    """Stop the runtime whatever happened; never raise from here."""
    try:
        runtime = getattr(source, "runtime", None)
        if runtime is not None and (started or getattr(runtime, "_is_started", False)):
            source.stop()
    except Exception:  # noqa: BLE001
        pass


def _load(record_dir: Path, n_layers: int, sat_total: dict) -> dict:
    out = {"neurons": [], "fuses": []}
    for l in range(n_layers):
        out["neurons"].append(dict(np.load(record_dir / f"neuron{l}.npz")))
        out["fuses"].append(dict(np.load(record_dir / f"fuse{l}.npz")))
    out["readout"] = dict(np.load(record_dir / "readout.npz"))
    for rec in out["neurons"] + out["fuses"] + [out["readout"]]:
        for key, value in rec.items():
            if key.startswith("sat:"):
                sat_total[key[4:]] = sat_total.get(key[4:], 0) + int(value)
    return out


def _stack(per_network: list, sat_total: dict, record_states: bool) -> ReferenceResult:
    """Concatenate the networks' recordings, each (samples, length, ...), along the samples."""
    n_layers = len(per_network[0]["neurons"])
    logits = np.concatenate([s["readout"]["acc"][:, -1] for s in per_network])
    result = ReferenceResult(logits=logits, predictions=logits.argmax(-1), saturation=sat_total)
    for l in range(n_layers):
        result.spikes_in.append(np.concatenate([s["neurons"][l]["s"] for s in per_network]))
        result.spikes_out.append(np.concatenate([s["neurons"][l]["o"] for s in per_network]))
        result.residual.append(np.concatenate([s["neurons"][l]["x"] for s in per_network]))
        if record_states:
            result.states.append(np.concatenate([s["neurons"][l]["state"] for s in per_network]))
    result.residual_out = np.concatenate([s["fuses"][-1]["x_out"] for s in per_network])
    return result



