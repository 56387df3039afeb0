"""Build the Lava process graph of any netlist, run it under Loihi2SimCfg, collect what it recorded.

Every node becomes one process: Lava's own ``Dense``/``Sparse`` for synapses (their types say so,
``lava_library``), ``ReplaySource`` for the source (its rows computed on the host: the encoder and the
24-bit messages), and the generic process of ``sim/lava`` running the node type's step for
everything else. Edges become port connections; several edges into one port are summed by Lava.

Timing: a Lava synapse adds one step, our processes none. A node's ``latency`` is the Lava steps
between the source sending a model step and the node seeing it (the largest over its forward
inputs); an in port whose inputs arrive earlier waits in a buffer. A recurrent edge must arrive one
model step late, which a synapse on the loop provides; a loop without a synapse would deadlock Lava
and is refused. One network runs up to 64 samples back to back (Lava processes cannot be rerun
after ``stop()``, and building and compiling a network costs as much as a few hundred steps);
graphs with loops leave one idle step between samples so that nothing recurrent crosses over.
Every process saves its recordings to a temporary folder at the last step (reading Lava Vars costs
about 20 µs per element). ``fixed_pt`` runs the integer contract, ``floating_pt`` the float steps.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

# Lava sets the 'fork' start method when this module is imported and fails if any library chose a
# multiprocessing context first; importing it here, before data loading, keeps that order.
import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
import numpy as np

from ..errors import UserError
from ..graph import Netlist, RunResult, lava_latency, valid_mask
from ..nodes import RunContext
from ..numerics.fixed import SaturationCounter, shift

BACKEND_TAGS = ("fixed_pt", "floating_pt")
SAMPLES_PER_NETWORK = 64
INT32_MAX = 2**31 - 1


def check_int32_sums(netlist: Netlist) -> None:
    """Refuse a netlist whose synaptic sums could exceed Lava's int32 synapse output ports.

    Lava's bit-accurate Dense/Sparse send ``a_out`` as int32, so a larger sum would wrap silently.
    Worst cases: every binary input active, every graded input at its largest message (2^23 - 1 for
    24-bit messages).
    """
    for name, node in netlist.nodes.items():
        if node.TYPE.ROLE != "synapse":
            continue
        w = np.abs(node.to_dense())
        peak = 1 if node.num_message_bits == 0 else 2 ** (node.num_message_bits - 1) - 1
        worst = int(shift(np.array([int(w.sum(axis=1).max(initial=0)) * peak]), node.weight_exp)[0])
        if worst > INT32_MAX:
            raise UserError(f"synapse {name}: its sums can reach {worst}, beyond the int32 output of Lava's "
                            "synapses; re-export with fewer fraction bits (this netlist cannot run in Lava exactly)")


def port_delays(netlist: Netlist, latency: dict) -> dict:
    """Steps each in port of each node waits so that its inputs line up with its view of a model
    step (recurrent edges one model step later). Refuses what Lava cannot line up."""
    sched = netlist.schedule()
    for group in sched.groups:
        if len(group) > 1 and not any(netlist.nodes[n].lava_latency() for n in group):
            raise UserError(f"the loop through {', '.join(group)} has no synapse on it: in Lava it would wait on "
                            "itself; this netlist runs in the reference simulator only")
    delays: dict = {name: {} for name in netlist.nodes}
    for e in netlist.edges:
        arrival = latency[e.src] + netlist.nodes[e.src].lava_latency()
        wanted = latency[e.dst] + (1 if e in sched.back else 0)
        delay = wanted - arrival
        dst = netlist.nodes[e.dst]
        if delay < 0 or (delay > 0 and dst.TYPE.ROLE == "synapse"):  # Lava's synapses have no buffers
            raise UserError(f"edge {e.src}->{e.dst}: a loop without a synapse on it (or one through several) "
                            "cannot keep its one-step delay in Lava; this netlist runs in the reference simulator only")
        if delays[e.dst].setdefault(e.dst_port, delay) != delay:
            raise UserError(f"node {e.dst}: its input {e.dst_port} sums values that reach it after different "
                            "delays in Lava")
    return delays


def run_lava(netlist: Netlist, x, sample_ids=None, seed: int = 0, lengths=None, tag: str = "fixed_pt",
             record_states: bool = False, progress=None,
             samples_per_network: int = SAMPLES_PER_NETWORK) -> RunResult:
    """Simulate raw inputs ``x`` in Lava; returns what the reference simulator returns.

    Up to ``samples_per_network`` samples share one Lava network and run one after the other;
    ``progress(n)`` is called after each network with its number of samples.
    """
    if tag not in BACKEND_TAGS:
        raise UserError(f"Lava backend precision must be one of {', '.join(BACKEND_TAGS)}, got {tag!r}")
    if samples_per_network < 1:
        raise UserError(f"samples_per_network must be at least 1, got {samples_per_network}")
    integer = tag == "fixed_pt"
    if integer:
        check_int32_sums(netlist)
    x = np.asarray(x)
    batch, length = x.shape[0], x.shape[1]
    sample_ids = np.arange(batch) if sample_ids is None else np.asarray(sample_ids)
    valid = valid_mask(batch, length, lengths)
    latency = lava_latency(netlist)
    delays = port_delays(netlist, latency)
    source = netlist.source()
    host = RunContext(seed=int(seed), samples=sample_ids, valid=valid)
    data = (source.int_sequence if integer else source.float_sequence)({"external": x}, host)[0]["out"]
    period = length + (1 if netlist.schedule().back else 0)
    outputs: dict = {source.name: [data]}
    records: dict = {}
    saturation = SaturationCounter()
    for key, count in host.sat.as_dict().items():
        saturation.add(key, count)
    for lo in range(0, batch, samples_per_network):
        hi = min(batch, lo + samples_per_network)
        ids = sample_ids[lo:hi]
        which = f"sample {int(ids[0])}" if len(ids) == 1 else f"samples {int(ids[0])}..{int(ids[-1])}"
        run = dict(seed=int(seed), samples=ids.astype(np.int64), length=length, period=period,
                   valid_lengths=valid[lo:hi].sum(1).astype(np.int64), record_states=record_states,
                   num_steps=(hi - lo) * period + max(latency.values()) + 1)
        with tempfile.TemporaryDirectory(prefix="pspike-lava-") as tmp:
            folder = Path(tmp)
            first = _build(netlist, data[lo:hi], run, latency, delays, tag, folder)
            run_network(first, run["num_steps"], tag, which)
            errors = sorted(folder.glob("*.error"))
            if errors:
                name = errors[0].name.split(".")[0]
                failed, _, message = errors[0].read_text().partition("\n")
                raise UserError(f"Lava simulation of sample {failed.strip()} failed in {name}: {message.strip()[:200]}")
            for path in folder.glob("*.npz"):
                rec = dict(np.load(path))
                name = path.stem
                for key, value in rec.items():
                    if key.startswith("sat:"):
                        saturation.add(key[4:], int(value))
                    elif key == "out":
                        outputs.setdefault(name, []).append(value)
                    else:
                        records.setdefault(name, {}).setdefault(key, []).append(value)
        if progress is not None:
            progress(hi - lo)
    values = {name: np.concatenate(parts) for name, parts in outputs.items()}
    recs = {name: {k: np.concatenate(v) for k, v in rec.items()} for name, rec in records.items()}
    sink = netlist.sink()
    scores = sink.scores(recs[sink.name], RunContext(seed=int(seed), samples=sample_ids, valid=valid), integer)
    layers = netlist.spiking_layers()
    return RunResult(outputs=values, records=recs, scores=scores, predictions=np.asarray(scores).argmax(-1),
                     saturation=saturation.as_dict(), layers=layers,
                     layer_inputs=[netlist.layer_input(name) for name in layers], valid=valid)


def _build(netlist: Netlist, data: np.ndarray, run: dict, latency: dict, delays: dict, tag: str, folder: Path):
    """The processes of one network and their connections; returns the source process."""
    from .lava.processes import PROCESSES, ReplaySource

    ports: dict = {}
    first = None
    for name in netlist.schedule().order:
        node = netlist.nodes[name]
        if node.TYPE.ROLE == "source":
            proc = first = ReplaySource(data=data, period=run["period"])
            ports[name] = ({}, {"out": proc.out_out})
            continue
        proc = node.lava_library(tag)
        if proc is None:
            proc = PROCESSES[node.type_name()](
                in_ports={p: node.in_width(p) for p in node.IN_PORTS},
                out_ports={p: node.out_width(p) for p in node.OUT_PORTS},
                node={"type": node.type_name(), "name": name, "values": node.values, "floats": node.floats},
                latency=latency[name], delays=delays[name], record_path=str(folder / f"{name}.npz"), **run)
            ports[name] = ({p: getattr(proc, f"in_{p}") for p in node.IN_PORTS},
                           {p: getattr(proc, f"out_{p}") for p in node.OUT_PORTS})
        else:
            ports[name] = node.lava_ports(proc)
    for e in netlist.edges:
        ports[e.src][1][e.src_port].connect(ports[e.dst][0][e.dst_port])
    return first


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
