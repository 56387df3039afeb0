"""What ``pspike inspect`` reports: nodes, edges, bit widths, memory, latency and the core mapping."""

from __future__ import annotations

import numpy as np

from ..graph import Netlist
from .mapping import LIMITS, Demand, place, synapse_bytes


def describe(netlist: Netlist) -> dict:
    """Nodes (bit widths, sizes, bytes), edges, latency and the Loihi 2 core mapping: every node
    says its own (``bits``, ``describe``, ``compartments``, ``synapse_memory``); synapses are stored
    on the core of their destination population."""
    nodes = []
    demands = {}
    for name in netlist.topological_order():
        node = netlist.nodes[name]
        entry = {"name": name, "type": node.type_name(), "bits": node.bits(),
                 "bytes": int(sum(v.nbytes for v in node.values.values() if isinstance(v, np.ndarray))),
                 **node.describe()}
        nodes.append(entry)
        if node.compartments():
            demands[name] = Demand(name, node.compartments(), 0)
    for e in netlist.edges:
        memory = netlist.nodes[e.src].synapse_memory()
        if memory is not None and e.dst in demands:
            demands[e.dst].synapse_bytes += synapse_bytes(*memory)
    placements, cores, chips = place(list(demands.values()))
    summary = netlist.summary()
    return {
        "format_version": netlist.meta["format_version"],
        "task": netlist.meta["task"],
        "model_type": netlist.meta.get("model_type", ""),
        "source_sha256": netlist.meta["source_sha256"],
        "nodes": nodes,
        "edges": [{"src": e.src, "dst": e.dst, "src_port": e.src_port, "dst_port": e.dst_port,
                   "recurrent": e in netlist.schedule().back} for e in netlist.edges],
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
    lines = [f"netlist v{info['format_version']} of a {info['model_type'] or 'model'} for task {info['task'] or '(none)'} "
             f"(checkpoint sha256 {info['source_sha256'][:12]}...)",
             f"{'node':18s} {'type':18s} {'size':>16s} {'nonzeros':>9s} {'bytes':>9s}  bits"]
    for n in info["nodes"]:
        size = "x".join(map(str, n["shape"])) if "shape" in n else f"{n.get('neurons', '')}" + (
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
