"""Build the Lava process graph of a netlist, run it under Loihi2SimCfg, collect what it recorded.

One Lava network per sample (Lava processes cannot be rerun after ``stop()``)::

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


def _build(netlist: Netlist, x_sample: np.ndarray, sample: int, seed: int, valid_length: int, tag: str,
           record_dir: Path, record_states: bool):
    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse

    from .lava.processes import ClampFuse, GradedSource, ReadoutIntegrator, SSMNeuron

    length = x_sample.shape[0]
    blocks = netlist.blocks()
    num_steps = length + int(netlist.meta["latency_steps"])
    run = dict(seed=seed, sample=sample, length=length, valid_length=valid_length, num_steps=num_steps)
    source = GradedSource(data=x_sample, **run)
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


def run_lava(netlist: Netlist, x0: np.ndarray, sample_ids, seed: int, lengths=None, tag: str = "fixed_pt",
             record_states: bool = False, progress=None) -> ReferenceResult:
    """Simulate host-encoded inputs ``x0`` (B, L, H) in Lava; returns what the reference returns."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    if tag not in BACKEND_TAGS:
        raise UserError(f"Lava backend precision must be one of {', '.join(BACKEND_TAGS)}, got {tag!r}")
    if tag == "fixed_pt":
        check_int32_sums(netlist)
    batch, length, _ = x0.shape
    lengths = np.full(batch, length) if lengths is None else np.asarray(lengths)
    sample_ids = np.asarray(sample_ids)
    per_sample = []
    sat_total: dict[str, int] = {}
    for b in range(batch):
        if tag == "fixed_pt":
            counts = _Counts()
            x_sample = quantize_input(x0[b:b + 1], netlist.nodes["input"].frac_bits, counts)[0]
        else:
            x_sample = x0[b]
        with tempfile.TemporaryDirectory(prefix="pspike-lava-") as tmp:
            record_dir = Path(tmp)
            source, num_steps = _build(netlist, x_sample, int(sample_ids[b]), seed, int(lengths[b]), tag,
                                       record_dir, record_states)
            started = False
            try:
                source.run(condition=RunSteps(num_steps=num_steps), run_cfg=Loihi2SimCfg(select_tag=tag))
                started = True
            except Exception as exc:  # Lava wraps model exceptions in RuntimeError
                reason = " ".join(str(exc).split())[:200]
                raise UserError(f"Lava simulation of sample {int(sample_ids[b])} failed: {reason}") from None
            finally:
                _stop(source, started)
            errors = sorted(record_dir.glob("*.error"))
            if errors:
                name = errors[0].name.split(".")[0]
                raise UserError(f"Lava simulation of sample {int(sample_ids[b])} failed in {name}: "
                                f"{errors[0].read_text().strip()[:200]}")
            per_sample.append(_load(record_dir, len(netlist.blocks()), sat_total))
            if tag == "fixed_pt":
                sat_total["input"] = sat_total.get("input", 0) + counts.n
        if progress is not None:
            progress(1)
    return _stack(per_sample, sat_total, record_states)


class _Counts:
    def __init__(self):
        self.n = 0

    def add(self, name, n):
        self.n += int(n)


def _stop(source, started: bool) -> None:
    """Stop the runtime (and its forked processes) whatever happened; never raise from here."""
    try:
        runtime = getattr(source, "runtime", None)
        if runtime is not None and (started or getattr(runtime, "_is_started", False)):
            source.stop()
    except Exception:
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


def _stack(per_sample: list, sat_total: dict, record_states: bool) -> ReferenceResult:
    n_layers = len(per_sample[0]["neurons"])
    logits = np.stack([s["readout"]["acc"][-1] for s in per_sample])
    result = ReferenceResult(logits=logits, predictions=logits.argmax(-1), saturation=sat_total)
    for l in range(n_layers):
        result.spikes_in.append(np.stack([s["neurons"][l]["s"] for s in per_sample]))
        result.spikes_out.append(np.stack([s["neurons"][l]["o"] for s in per_sample]))
        result.residual.append(np.stack([s["neurons"][l]["x"] for s in per_sample]))
        if record_states:
            result.states.append(np.stack([s["neurons"][l]["state"] for s in per_sample]))
    result.residual_out = np.stack([s["fuses"][-1]["x_out"] for s in per_sample])
    return result



