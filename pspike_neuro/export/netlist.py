"""The netlist in memory: typed nodes, edges with ports, metadata; a networkx graph on demand."""

from __future__ import annotations

from dataclasses import dataclass, field

import hashlib
import json

import networkx as nx
import numpy as np

from .nodes import (
    ClampFuse, CSiLIFNeuron, DenseSynapse, GradedInput, LeakyReadout, Node, ReadoutIntegrator, SiLIFNeuron,
    SparseSynapse, SpikeInput, SSMNeuron,
)

FORMAT = "pspike-neuro-netlist"
FORMAT_VERSION = 3  # 2: SSMNeuron.c_shift per neuron; 3: integrity header in the HDF5 user block
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


def _in_width(node: Node) -> int:
    return node.n_in if isinstance(node, (SparseSynapse, DenseSynapse)) else node.n


def _out_width(node: Node) -> int:
    return node.n_out if isinstance(node, (SparseSynapse, DenseSynapse)) else node.n


@dataclass
class Netlist:
    meta: dict
    nodes: dict[str, Node]
    edges: list[Edge] = field(default_factory=list)

    def to_networkx(self) -> nx.DiGraph:
        graph = nx.DiGraph()
        for name, node in self.nodes.items():
            graph.add_node(name, type=node.type_name(), record=node)
        for e in self.edges:
            graph.add_edge(e.src, e.dst, src_port=e.src_port, dst_port=e.dst_port)
        return graph

    def topological_order(self) -> list[str]:
        return list(nx.topological_sort(self.to_networkx()))

    def of_type(self, cls) -> list[Node]:
        return [n for n in self.nodes.values() if isinstance(n, cls)]

    def inputs_of(self, name: str) -> dict[str, str]:
        """``{dst_port: src}`` of the edges into ``name``."""
        return {e.dst_port: e.src for e in self.edges if e.dst == name}

    def validate(self) -> None:
        """Structure: known endpoints and ports, acyclic, every in port fed once, sizes agree."""
        for key in META_KEYS:
            if key not in self.meta:
                raise NetlistError(f"meta: missing key {key}")
        for e in self.edges:
            for end, port, ports in ((e.src, e.src_port, "OUT_PORTS"), (e.dst, e.dst_port, "IN_PORTS")):
                if end not in self.nodes:
                    raise NetlistError(f"edge {e.src}->{e.dst}: no node named {end}")
                if port not in getattr(self.nodes[end], ports):
                    raise NetlistError(f"edge {e.src}->{e.dst}: {type(self.nodes[end]).__name__} {end} "
                                       f"has no {'output' if ports == 'OUT_PORTS' else 'input'} port {port!r}")
        seen = set()
        for e in self.edges:
            if (e.dst, e.dst_port) in seen:
                raise NetlistError(f"node {e.dst}: input port {e.dst_port} is fed by more than one edge")
            seen.add((e.dst, e.dst_port))
        for name, node in self.nodes.items():
            for port in node.IN_PORTS:
                if (name, port) not in seen:
                    raise NetlistError(f"node {name}: input port {port} is not connected")
        graph = self.to_networkx()
        if not nx.is_directed_acyclic_graph(graph):
            cycle = " -> ".join(e[0] for e in nx.find_cycle(graph))
            raise NetlistError(f"the graph has a cycle ({cycle}); a deployed network is feed-forward")
        for e in self.edges:
            src, dst = self.nodes[e.src], self.nodes[e.dst]
            if _out_width(src) != _in_width(dst):
                raise NetlistError(f"edge {e.src}->{e.dst}: {e.src} sends {_out_width(src)} values, "
                                   f"{e.dst} expects {_in_width(dst)}")
        families = {"P-SpikeSSM": (GradedInput, ReadoutIntegrator), "SiLIF": (SpikeInput, LeakyReadout)}
        counts = {fam: [len(self.of_type(cls)) for cls in classes] for fam, classes in families.items()}
        found = [fam for fam, c in counts.items() if any(c)]
        if len(found) != 1:
            raise NetlistError("the netlist needs exactly one input and one readout node: GradedInput and "
                               "ReadoutIntegrator (P-SpikeSSM) or SpikeInput and LeakyReadout (SiLIF)"
                               + ("; found both kinds" if found else "; found none"))
        for cls, count in zip(families[found[0]], counts[found[0]]):
            if count != 1:
                raise NetlistError(f"the netlist needs exactly one {cls.__name__}, found {count}")
        other = (SSMNeuron, ClampFuse, SparseSynapse) if found[0] == "SiLIF" else (SiLIFNeuron, CSiLIFNeuron)
        mixed = [n.name for n in self.nodes.values() if isinstance(n, other)]
        if mixed:
            raise NetlistError(f"node {mixed[0]} ({type(self.nodes[mixed[0]]).__name__}) does not belong in a "
                               f"{found[0]} netlist")

    @property
    def is_snn(self) -> bool:
        """True for a SiLIF / C-SiLIF network (``SpikeInput`` ... ``LeakyReadout``)."""
        return any(isinstance(n, SpikeInput) for n in self.nodes.values())

    def snn_layers(self) -> list[dict]:
        """Per layer of a SiLIF network ``{"synapse", "neuron"}``, in layer order."""
        neurons = sorted((n for n in self.nodes.values() if isinstance(n, (SiLIFNeuron, CSiLIFNeuron))),
                         key=lambda n: n.layer)
        return [{"synapse": self.nodes[self.inputs_of(n.name)["in"]], "neuron": n} for n in neurons]

    def blocks(self) -> list[dict]:
        """Per layer ``{"neuron", "mixer", "fuse"}`` nodes, in layer order."""
        neurons = sorted(self.of_type(SSMNeuron), key=lambda n: n.layer)
        fuses = {f.layer: f for f in self.of_type(ClampFuse)}
        out = []
        for neuron in neurons:
            mixer = next(self.nodes[e.dst] for e in self.edges if e.src == neuron.name)
            out.append({"neuron": neuron, "mixer": mixer, "fuse": fuses[neuron.layer]})
        return out

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
        for node in self.nodes.values():
            counts[node.type_name()] = counts.get(node.type_name(), 0) + 1
            param_bytes += sum(np.asarray(v).nbytes for v in node.values.values() if isinstance(v, np.ndarray))
        synapses = sum(n.nnz for n in self.of_type(SparseSynapse))
        synapses += sum(int(np.count_nonzero(n.weights)) for n in self.of_type(DenseSynapse))
        return {"node_counts": counts, "nodes": len(self.nodes), "edges": len(self.edges),
                "nonzero_synapses": synapses, "parameter_bytes": int(param_bytes),
                "latency_steps": int(self.meta.get("latency_steps", 0))}
