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
        "pruning": netlist.meta.get("pruning"),
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
    lines += _pruning_lines(info.get("pruning"))
    lines.append("limits: " + "; ".join(f"{k} = {v['value']} ({v['source']})"
                                        for k, v in info["resource_limits"].items()))
    return "\n".join(lines)


def _pruning_lines(pruning: dict | None) -> list[str]:
    """What ``export --prune-silent`` removed, population by population (quant/prune.py)."""
    if not pruning:
        return []
    lines = [f"pruned: {pruning['removed']} of {pruning['neurons']} neurons had a mean output probability below "
             f"{pruning['threshold']:g} on the calibration data ({pruning.get('calibration', '')})"]
    for p in pruning["populations"]:
        f = p["folds"]
        where = ", ".join(sorted(set(p["folded_into"]))) or "nothing (no contribution to fold)"
        lines.append(f"  {p['node']:16s} {p['neurons']:>6d} -> {p['kept']:<6d} removed {p['removed']} (folds: exact "
                     f"{f['exact']}, in expectation {f['in_expectation']}, approximate {f['approximate']}; into {where}; "
                     f"largest bias change {p['largest_bias_change']:.3g}, largest per-step deviation "
                     f"{p['largest_step_deviation']:.3g})")
        if p["removed"]:
            lines.append(f"    removed neurons: {_ranges(p['removed_ids'])}")
    for k in pruning.get("kept_whole", []):
        lines.append(f"  {k['node']:16s} kept whole: {k['type']} ({k['why']})")
    return lines


def _ranges(ids: list) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``0-2, 5, 7-8``."""
    parts, start = [], None
    for i, v in enumerate(ids):
        if start is None:
            start = v
        if i + 1 == len(ids) or ids[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts)
