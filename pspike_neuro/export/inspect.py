"""What ``pspike inspect`` reports: nodes, edges, bit widths, memory, latency and the core mapping."""

from __future__ import annotations

import numpy as np

from .mapping import LIMITS, Demand, place, synapse_bytes
from .netlist import Netlist
from .nodes import (
    ClampFuse, CSiLIFNeuron, DenseSynapse, GradedInput, LeakyReadout, ReadoutIntegrator, SiLIFNeuron, SparseSynapse,
    SpikeInput, SSMNeuron,
)


def _bits(node) -> dict:
    if isinstance(node, SSMNeuron):
        return {"decay": 12, "state": 24, "prob": node.prob_bits}
    if isinstance(node, (SparseSynapse, DenseSynapse)):
        return {"weight": node.num_weight_bits, "message": node.num_message_bits or 1}
    if isinstance(node, (ClampFuse, ReadoutIntegrator, GradedInput)):
        return {"state": 24, "message": 24}
    if isinstance(node, (SiLIFNeuron, CSiLIFNeuron, LeakyReadout)):
        return {"decay": 12, "state": 24, "message": 1}
    if isinstance(node, SpikeInput):
        return {"message": 1}
    return {}


def _demand(netlist: Netlist, node) -> Demand | None:
    if isinstance(node, SSMNeuron):
        return Demand(node.name, node.n * (node.n_modes + 1), 0)
    if isinstance(node, (ClampFuse, ReadoutIntegrator, LeakyReadout)):
        return Demand(node.name, node.n, 0)
    if isinstance(node, (SiLIFNeuron, CSiLIFNeuron)):  # two state words: u and w, or Re and Im
        return Demand(node.name, node.n, 0)
    return None


def describe(netlist: Netlist) -> dict:
    nodes = []
    demands = {}
    for name in netlist.topological_order():
        node = netlist.nodes[name]
        entry = {"name": name, "type": node.type_name(), "bits": _bits(node),
                 "bytes": int(sum(v.nbytes for v in node.values.values() if isinstance(v, np.ndarray)))}
        if isinstance(node, SSMNeuron):
            entry.update(neurons=node.n, modes=node.n_modes, state_words=2 * node.n * node.n_modes)
        elif isinstance(node, SparseSynapse):
            entry.update(shape=[node.n_out, node.n_in], nonzeros=node.nnz,
                         density=node.nnz / (node.n_out * node.n_in), weight_exp=node.weight_exp)
        elif isinstance(node, DenseSynapse):
            entry.update(shape=[node.n_out, node.n_in], nonzeros=int(np.count_nonzero(node.weights)),
                         weight_exp=node.weight_exp)
        else:
            entry.update(neurons=node.n)
        nodes.append(entry)
        demand = _demand(netlist, node)
        if demand is not None:
            demands[name] = demand
    # synapses live on the core of their destination population
    for e in netlist.edges:
        syn = netlist.nodes[e.src]
        if isinstance(syn, (SparseSynapse, DenseSynapse)) and e.dst in demands:
            sparse = isinstance(syn, SparseSynapse)
            nnz = syn.nnz if sparse else int(np.count_nonzero(syn.weights))
            demands[e.dst].synapse_bytes += synapse_bytes(nnz, syn.num_weight_bits, syn.n_in, sparse)
    placements, cores, chips = place(list(demands.values()))
    summary = netlist.summary()
    return {
        "format_version": netlist.meta["format_version"],
        "task": netlist.meta["task"],
        "source_sha256": netlist.meta["source_sha256"],
        "nodes": nodes,
        "edges": [{"src": e.src, "dst": e.dst, "src_port": e.src_port, "dst_port": e.dst_port}
                  for e in netlist.edges],
        "nonzero_synapses": summary["nonzero_synapses"],
        "parameter_bytes": summary["parameter_bytes"],
        "latency_steps": int(netlist.meta["latency_steps"]),
        "cores": cores,
        "chips": chips,
        "core_mapping": [vars(p) for p in placements],
        "resource_limits": {k: {"value": v, "source": src} for k, (v, src) in LIMITS.items()},
        "quant_config": netlist.meta["quant_config"],
    }


def render_text(info: dict) -> str:
    lines = [f"netlist v{info['format_version']} for task {info['task']} "
             f"(checkpoint sha256 {info['source_sha256'][:12]}...)",
             f"{'node':18s} {'type':18s} {'size':>16s} {'nonzeros':>9s} {'bytes':>9s}  bits"]
    for n in info["nodes"]:
        size = "x".join(map(str, n["shape"])) if "shape" in n else f"{n['neurons']}" + (
            f" x {n['modes']} modes" if "modes" in n else "")
        bits = ", ".join(f"{k} {v}" for k, v in n["bits"].items())
        lines.append(f"{n['name']:18s} {n['type']:18s} {size:>16s} {str(n.get('nonzeros', '')):>9s} "
                     f"{n['bytes']:>9d}  {bits}")
    lines.append(f"edges: {len(info['edges'])}; non-zero synapses: {info['nonzero_synapses']}; "
                 f"parameter memory: {info['parameter_bytes']} bytes; latency: {info['latency_steps']} steps")
    lines.append(f"Loihi 2 mapping: {info['cores']} cores on {info['chips']} chip(s)")
    for p in info["core_mapping"]:
        lines.append(f"  {p['name']:16s} {p['compartments']:>8d} compartments {p['synapse_bytes']:>9d} synapse bytes"
                     f" -> {p['cores']} core(s), limited by {p['limited_by']}")
    lines.append("limits: " + "; ".join(f"{k} = {v['value']} ({v['source']})"
                                        for k, v in info["resource_limits"].items()))
    return "\n".join(lines)
