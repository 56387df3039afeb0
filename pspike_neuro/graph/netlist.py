"""The netlist in memory: typed nodes, edges with ports, metadata; the schedule every executor walks.

A graph holds either float nodes (before quantization, ``nodes.FloatNode``) or integer node records
(``nodes.NodeType``); both answer the same questions (type, ports, widths), so validation and the
schedule are one code path. Edges are instantaneous in model time except the *recurrent* ones
(``schedule()``'s back edges), which deliver the previous step's value (zeros at step 0).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

FORMAT = "pspike-neuro-netlist"
FORMAT_VERSION = 3  # 2: SSMNeuron.c_shift per neuron; 3: integrity header, one graph for every model
META_KEYS = ("format", "format_version", "package_version", "source_sha256", "model_config",
             "quant_config", "seed", "latency_steps", "task")


class NetlistError(ValueError):
    """A structurally invalid netlist; the message names what is wrong."""


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    src_port: str = "out"
    dst_port: str = "in"


@dataclass(frozen=True)
class Schedule:
    """``order``: every node, sources first, each after the nodes feeding it over forward edges;
    ``back``: the recurrent edges (they close cycles and carry a one-step delay); ``groups``: the
    order split into steps an executor takes: a single acyclic node (whole sequences at once) or a
    cycle's nodes (stepped together through time)."""

    order: tuple
    back: frozenset
    groups: tuple


@dataclass
class Netlist:
    meta: dict
    nodes: dict
    edges: list[Edge] = field(default_factory=list)

    def to_networkx(self) -> nx.MultiDiGraph:
        graph = nx.MultiDiGraph()
        for name, node in self.nodes.items():
            graph.add_node(name, type=node.type_name())
        for e in self.edges:
            graph.add_edge(e.src, e.dst, src_port=e.src_port, dst_port=e.dst_port)
        return graph

    def of_role(self, role: str) -> list:
        return [n for n in self.nodes.values() if n.TYPE.ROLE == role]

    def source(self):
        return self.of_role("source")[0]

    def sink(self):
        return self.of_role("sink")[0]

    def inputs_of(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.dst == name]

    def outputs_of(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.src == name]

    # -- validation --

    def validate(self, require_meta: bool = True) -> None:
        """Structure: known endpoints and ports, every in port fed (once, unless the type sums its
        inputs), widths agree along edges, one source and one sink."""
        if require_meta:
            for key in META_KEYS:
                if key not in self.meta:
                    raise NetlistError(f"meta: missing key {key}")
        for e in self.edges:
            for end, port, ports in ((e.src, e.src_port, "OUT_PORTS"), (e.dst, e.dst_port, "IN_PORTS")):
                if end not in self.nodes:
                    raise NetlistError(f"edge {e.src}->{e.dst}: no node named {end}")
                if port not in getattr(self.nodes[end], ports):
                    raise NetlistError(f"edge {e.src}->{e.dst}: {self.nodes[end].type_name()} {end} "
                                       f"has no {'output' if ports == 'OUT_PORTS' else 'input'} port {port!r}")
        fed: dict = {}
        for e in self.edges:
            fed.setdefault((e.dst, e.dst_port), []).append(e.src)
        for (name, port), sources in fed.items():
            kind = self.nodes[name].TYPE
            sums = kind.SUMMING or (port in kind.SUMMING_PORTS and
                                    all(self.nodes[src].TYPE.ROLE == "synapse" for src in sources))
            if len(sources) > 1 and not sums:
                raise NetlistError(f"node {name}: input port {port} is fed by more than one edge")
        for name, node in self.nodes.items():
            for port in node.IN_PORTS:
                if (name, port) not in fed:
                    raise NetlistError(f"node {name}: input port {port} is not connected")
        for e in self.edges:
            src, dst = self.nodes[e.src], self.nodes[e.dst]
            if src.out_width(e.src_port) != dst.in_width(e.dst_port):
                raise NetlistError(f"edge {e.src}->{e.dst}: {e.src} sends {src.out_width(e.src_port)} values, "
                                   f"{e.dst} expects {dst.in_width(e.dst_port)}")
        for role in ("source", "sink"):
            found = self.of_role(role)
            if len(found) != 1:
                names = ", ".join(n.name for n in found) or "none"
                raise NetlistError(f"the netlist needs exactly one {'input' if role == 'source' else 'readout'} node "
                                   f"({role}), found {len(found)}: {names}")
        self.schedule()

    # -- schedule --

    def schedule(self) -> Schedule:
        """Deterministic: a depth-first walk from the source (then any node left, in insertion order)
        following edges in insertion order; an edge to a node on the walk's stack is recurrent."""
        rank = {name: i for i, name in enumerate(self.nodes)}
        succ: dict = {name: [] for name in self.nodes}
        for i, e in enumerate(self.edges):
            succ[e.src].append((rank[e.dst], i, e))
        back = set()
        state: dict = {}
        roots = [n.name for n in self.of_role("source")] + list(self.nodes)
        for root in roots:
            if root in state:
                continue
            stack = [(root, iter(sorted(succ[root], key=lambda x: (x[0], x[1]))))]
            state[root] = "open"
            while stack:
                name, it = stack[-1]
                for _, _, e in it:
                    if state.get(e.dst) == "open":
                        back.add(e)
                    elif e.dst not in state:
                        state[e.dst] = "open"
                        stack.append((e.dst, iter(sorted(succ[e.dst], key=lambda x: (x[0], x[1])))))
                        break
                else:
                    state[name] = "done"
                    stack.pop()
        forward = nx.DiGraph()
        forward.add_nodes_from(self.nodes)
        forward.add_edges_from((e.src, e.dst) for e in self.edges if e not in back)
        order = tuple(nx.lexicographical_topological_sort(forward, key=lambda n: rank[n]))
        full = nx.DiGraph()
        full.add_nodes_from(self.nodes)
        full.add_edges_from((e.src, e.dst) for e in self.edges)
        component = {}
        for comp in nx.strongly_connected_components(full):
            for name in comp:
                component[name] = frozenset(comp)
        groups, seen = [], set()
        for name in order:
            if name in seen:
                continue
            comp = component[name]
            cyclic = len(comp) > 1 or full.has_edge(name, name)
            members = tuple(n for n in order if n in comp) if cyclic else (name,)
            seen.update(members)
            groups.append(members)
        return Schedule(order=order, back=frozenset(back), groups=tuple(groups))

    def topological_order(self) -> list[str]:
        return list(self.schedule().order)

    def spiking_layers(self) -> list[str]:
        """Names of the spiking populations (binary-output neurons), in schedule order: the layers
        that verify compares and the report draws."""
        return [n for n in self.schedule().order
                if self.nodes[n].TYPE.ROLE == "neuron" and self.nodes[n].TYPE.BINARY_OUT]

    def layer_input(self, name: str) -> str | None:
        """The node whose spikes reach layer ``name`` through a synapse over a forward edge (None when
        its input is graded): what the layer's "input spikes" are when it has no sampler of its own."""
        back = self.schedule().back
        for e in self.inputs_of(name):
            if e in back:
                continue
            node = self.nodes[e.src]
            if node.TYPE.ROLE == "synapse":
                for e2 in self.inputs_of(e.src):
                    src = self.nodes[e2.src].TYPE
                    if e2 not in back and (src.BINARY_OUT or src.EVENT_DRIVEN):  # spikes, or events (counts)
                        return e2.src
            elif node.TYPE.BINARY_OUT:
                return e.src
        return None

    # -- identity and size --

    def content_sha256(self) -> str:
        """Digest of the metadata, every node field, float parameter and edge (the file stores it;
        the reader recomputes it, so a changed byte that still parses is caught)."""
        digest = hashlib.sha256()
        meta = {k: v for k, v in self.meta.items() if k != "content_sha256"}
        digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
        for name in sorted(self.nodes):
            node = self.nodes[name]
            digest.update(f"{name}:{node.type_name()}".encode())
            for group in (node.values, node.floats):
                for key in sorted(group):
                    value = np.asarray(group[key])
                    digest.update(f"{key}:{value.dtype.str}:{value.shape}".encode())
                    digest.update(value.tobytes() if value.dtype.kind != "U" else str(value).encode())
        for e in self.edges:
            digest.update(f"{e.src}.{e.src_port}>{e.dst}.{e.dst_port};".encode())
        return digest.hexdigest()

    def summary(self) -> dict:
        counts: dict[str, int] = {}
        param_bytes = 0
        synapses = 0
        for node in self.nodes.values():
            counts[node.type_name()] = counts.get(node.type_name(), 0) + 1
            param_bytes += sum(np.asarray(v).nbytes for v in node.values.values() if isinstance(v, np.ndarray))
            memory = node.synapse_memory()
            synapses += memory[0] if memory else 0
        return {"node_counts": counts, "nodes": len(self.nodes), "edges": len(self.edges),
                "nonzero_synapses": int(synapses), "parameter_bytes": int(param_bytes),
                "latency_steps": int(self.meta.get("latency_steps", 0))}


def lava_latency(netlist: Netlist) -> dict:
    """Lava steps from the source's send to each node's view of the same model time: a node sees
    its inputs ``max`` over forward edges of (source's latency + the source's own latency, 1 for a
    Lava synapse); the netlist's ``latency_steps`` is the sink's."""
    sched = netlist.schedule()
    latency = {}
    for name in sched.order:
        arrivals = [latency[e.src] + netlist.nodes[e.src].lava_latency()
                    for e in netlist.inputs_of(name) if e not in sched.back]
        latency[name] = max(arrivals, default=0)
    return latency
