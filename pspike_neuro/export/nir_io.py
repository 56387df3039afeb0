"""NIR files in and out.

In: ``read_nir`` parses a ``.nir`` file (``nir.read``, in an isolated child: it is libhdf5), flattens
nested graphs, resolves pass-through nodes (the inner ``Input``/``Output`` of a subgraph,
``Flatten`` on flat vectors), checks every node and edge, and returns what ``models.graph``
stores: the structure, the NIR parameters, and an import record of what became what. Every
refusal is one line naming the NIR node and, where it applies, the field.

Out: ``write_nir`` writes an imported graph back as NIR nodes (the parameters as they came) with
``dt`` and the discretization in the graph's metadata, so reading it again needs no flags.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fileio import atomic_path
from ..isolate import run_isolated
from ..models.graph import GraphConfig
from ..models.nir_steps import NEURONS, PARAMS, SUPPORTED

PASS_THROUGH = "pass-through"
REFUSED_WITH_REASON = {
    "Conv1d": "convolutions are not supported (unroll them into a Linear node before exporting)",
    "Conv2d": "convolutions are not supported (unroll them into a Linear node before exporting)",
    "SumPool2d": "pooling is not supported (express it as a Linear node)",
    "AvgPool2d": "pooling is not supported (express it as a Linear node)",
}


def _load(path: str):
    import nir

    try:
        return nir.read(path, type_check=False)  # our own checks below name node and field
    except Exception as exc:  # noqa: BLE001 - nir raises anything on a malformed file
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise UserError(f"NIR file {path}: not a readable NIR graph ({reason})") from None


def _flatten(graph, prefix: str, nodes: dict, edges: list, kinds: dict) -> tuple[list, list]:
    """Add ``graph``'s nodes under ``prefix`` to ``nodes``; returns its Input and Output names."""
    import nir

    inputs, outputs, local = [], [], {}
    for name, node in graph.nodes.items():
        full = prefix + str(name)
        if isinstance(node, nir.NIRGraph):
            local[name] = _flatten(node, full + ".", nodes, edges, kinds)
            continue
        local[name] = ([full], [full])
        nodes[full] = node
        kinds[full] = type(node).__name__
        if isinstance(node, nir.Input):
            inputs.append(full)
        elif isinstance(node, nir.Output):
            outputs.append(full)
    for src, dst in graph.edges:
        for end in (src, dst):
            if end not in local:
                raise UserError(f"NIR graph{' ' + prefix[:-1] if prefix else ''}: edge {src} -> {dst}: no node "
                                f"named {end}")
        for s in local[src][1]:
            for d in local[dst][0]:
                edges.append((s, d))
    return inputs, outputs


def _width(node, kind: str, name: str):
    """Values per step a node carries, from its parameters (None: scalars only, inferred later)."""
    if kind in ("Input", "Output"):
        shape = node.input_type.get("input") if kind == "Input" else node.output_type.get("output")
        return int(np.prod(np.asarray(shape, np.int64))) if shape is not None else None
    if kind in ("Affine", "Linear"):
        return None  # two widths: checked on the edges
    sizes = {np.asarray(getattr(node, p)).size for p in PARAMS.get(kind, ()) if getattr(node, p, None) is not None}
    big = {s for s in sizes if s > 1}
    if len(big) > 1:
        raise UserError(f"NIR node {name} ({kind}): its parameters have different sizes {sorted(big)}")
    return big.pop() if big else None


def read_nir(path, dt: float | None = None, discretization: str = "euler", input_spikes: bool = True):
    """``(GraphConfig, {node: {param: array}}, record)`` of a NIR file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"NIR file {path}: no such file")
    graph = run_isolated(_load, str(path), what=f"NIR file {path}",
                         crash_hint="the file is damaged or is not a NIR graph")
    import nir

    if not isinstance(graph, nir.NIRGraph):
        raise UserError(f"NIR file {path}: holds a single {type(graph).__name__} node, not a graph")
    metadata = dict(getattr(graph, "metadata", None) or {})
    meta_dt = metadata.get("dt")
    if dt is None:
        if meta_dt is None:
            raise UserError(f"NIR file {path}: the graph records no dt in its metadata; give --dt (snnTorch exports: "
                            "1e-4; Norse 1.1 exports: the square of its dt, e.g. 1e-6; docs/nir.md)")
        dt = float(np.asarray(meta_dt))
        dt_from = "the graph's metadata"
    else:
        dt_from = "--dt"
    if not (isinstance(dt, float) and math.isfinite(dt) and dt > 0):
        raise UserError(f"--dt must be a positive number, got {dt}")
    if "discretization" in metadata and discretization is None:
        discretization = str(np.asarray(metadata["discretization"]).astype(str))
    nodes: dict = {}
    edges: list = []
    kinds: dict = {}
    inputs, outputs = _flatten(graph, "", nodes, edges, kinds)
    for name, kind in kinds.items():
        if kind in REFUSED_WITH_REASON:
            raise UserError(f"NIR node {name} ({kind}): {REFUSED_WITH_REASON[kind]}")
        if kind not in SUPPORTED + ("Flatten",):
            raise UserError(f"NIR node {name} ({kind}): node type not supported; docs/nir.md lists what is")
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(f"NIR file {path}: the graph needs exactly one Input and one Output, found {len(inputs)} and "
                        f"{len(outputs)}")
    # nested Input / Output and Flatten carry values through unchanged: connect around them
    through = [n for n in nodes if kinds[n] == "Flatten" or (kinds[n] in ("Input", "Output")
                                                             and n not in inputs + outputs)]
    for name in through:
        preds = [s for s, d in edges if d == name]
        succs = [d for s, d in edges if s == name]
        edges = [(s, d) for s, d in edges if name not in (s, d)] + [(p, q) for p in preds for q in succs]
        del nodes[name]
    edges = list(dict.fromkeys(edges))
    params, widths = {}, {}
    for name, node in nodes.items():
        kind = kinds[name]
        values = {}
        for key in PARAMS[kind]:
            value = getattr(node, key, None)
            if value is None:
                if key in ("v_reset", "w_in"):
                    continue
                raise UserError(f"NIR node {name} ({kind}): field {key}: missing")
            arr = np.asarray(value, np.float64)
            if arr.ndim > 2 or (kind not in ("Affine", "Linear") and arr.ndim > 1):
                raise UserError(f"NIR node {name} ({kind}): field {key}: shape {arr.shape} is not flat; flatten the "
                                "graph's neurons to vectors")
            if not np.all(np.isfinite(arr)):
                raise UserError(f"NIR node {name} ({kind}): field {key}: NaN or infinite values")
            values[key] = arr
        if kind in ("Affine", "Linear") and values["weight"].ndim != 2:
            raise UserError(f"NIR node {name} ({kind}): field weight: must be a matrix, got shape "
                            f"{values['weight'].shape}")
        if kind == "Affine" and values["bias"].reshape(-1).size != values["weight"].shape[0]:
            raise UserError(f"NIR node {name} (Affine): field bias: {values['bias'].size} values for "
                            f"{values['weight'].shape[0]} outputs")
        params[name] = values
        widths[name] = _width(node, kind, name)
    _infer_widths(nodes, kinds, params, widths, edges)
    for src, dst in edges:
        out_w = params[src]["weight"].shape[0] if kinds[src] in ("Affine", "Linear") else widths[src]
        in_w = params[dst]["weight"].shape[1] if kinds[dst] in ("Affine", "Linear") else widths[dst]
        if out_w != in_w:
            raise UserError(f"NIR edge {src} -> {dst}: {src} sends {out_w} values, {dst} takes {in_w}")
    for name in nodes:
        for key, arr in params[name].items():
            if kinds[name] not in ("Affine", "Linear") and arr.size == 1 and widths[name] != 1:
                params[name][key] = np.full(widths[name], float(arr.reshape(-1)[0]))
            elif kinds[name] not in ("Affine", "Linear"):
                params[name][key] = arr.reshape(-1)
        if kinds[name] == "Affine":
            params[name]["bias"] = params[name]["bias"].reshape(-1)
    order = [inputs[0]] + [n for n in nodes if n not in (inputs[0], outputs[0])] + [outputs[0]]
    spiking = [n for n in order if kinds[n] in ("LIF", "IF", "CubaLIF", "Threshold")]
    cfg = GraphConfig(
        nodes=[{"name": n, "type": kinds[n], "shape": int(_node_width(n, kinds, params, widths))} for n in order],
        edges=[[s, d] for s, d in edges],
        param_shapes={n: {k: list(v.shape) for k, v in params[n].items()} for n in order if params[n]},
        dt=float(dt), discretization=discretization, input_spikes=bool(input_spikes),
        d_input=int(widths[inputs[0]]), n_classes=int(widths[outputs[0]]), n_layers=len(spiking),
        source=f"NIR {getattr(nir, '__version__', '')}".strip())
    record = {
        "format": "nir", "nir_version": getattr(nir, "__version__", "unknown"),
        "dt": float(dt), "dt_from": dt_from, "discretization": discretization,
        "inputs": "spike trains (SpikeInput)" if input_spikes else "currents (GradedInput)",
        "nodes": {n: kinds[n] for n in order},
        "resolved": {n: "Flatten / nested Input or Output: carries values through, removed" for n in through},
        "refused": [], "approximated": "nothing: the discretization is the documented rule, not an approximation "
                                       "of the file (docs/nir.md)",
    }
    return cfg, {n: params[n] for n in order}, record


def _node_width(name, kinds, params, widths) -> int:
    if kinds[name] in ("Affine", "Linear"):
        return params[name]["weight"].shape[0]
    return widths[name]


def _infer_widths(nodes, kinds, params, widths, edges) -> None:
    """Nodes with scalar parameters only take the width of a neighbour (a Linear's out or in side)."""
    for _ in range(len(nodes) + 1):
        changed = False
        for src, dst in edges:
            out_w = params[src]["weight"].shape[0] if kinds[src] in ("Affine", "Linear") else widths[src]
            in_w = params[dst]["weight"].shape[1] if kinds[dst] in ("Affine", "Linear") else widths[dst]
            if kinds[dst] not in ("Affine", "Linear") and widths[dst] is None and out_w is not None:
                widths[dst], changed = out_w, True
            if kinds[src] not in ("Affine", "Linear") and widths[src] is None and in_w is not None:
                widths[src], changed = in_w, True
        if not changed:
            break
    for name in nodes:
        if kinds[name] not in ("Affine", "Linear") and widths[name] is None:
            widths[name] = 1 if kinds[name] not in NEURONS + ("Output", "Input", "Delay", "Scale") else None
            if widths[name] is None:
                raise UserError(f"NIR node {name} ({kinds[name]}): its width cannot be told from its parameters or "
                                "its neighbours")


def write_nir(model, path) -> None:
    """Write an imported graph as NIR (nodes and parameters as imported; ``dt`` and the
    discretization in the metadata)."""
    import nir

    params = model.nir_params()
    nodes = {}
    for spec in model.cfg.nodes:
        name, kind, n = spec["name"], spec["type"], spec["shape"]
        p = params[name]
        if kind == "Input":
            nodes[name] = nir.Input(input_type={"input": np.array([n])})
        elif kind == "Output":
            nodes[name] = nir.Output(output_type={"output": np.array([n])})
        else:
            cls = getattr(nir, kind)
            nodes[name] = cls(**{k: v for k, v in p.items()})
    graph = nir.NIRGraph(nodes=nodes, edges=[tuple(e) for e in model.cfg.edges],
                         metadata={"dt": float(model.cfg.dt), "discretization": model.cfg.discretization,
                                   "producer": "pspike-neuro"})
    with atomic_path(path) as tmp:
        nir.write(str(tmp), graph)


#: why a node type of ours has no NIR counterpart (NIR 1.0 has no extension mechanism for new types)
NOT_IN_NIR = {
    "SSMNeuron": "the stochastic SSM neuron (samplers drawing random numbers, complex modes) has no NIR node type",
    "ClampFuse": "the ClampFuse residual join has no NIR node type",
    "SiLIFNeuron": "SiLIF's adaptation variable has no NIR node type",
    "CSiLIFNeuron": "C-SiLIF's complex state has no NIR node type",
    "ReadoutIntegrator": "the integrating readout has no NIR node type",
    "LeakyReadout": "the summed-softmax readout has no NIR node type",
}


def refuse_nir_export(ckpt) -> None:
    """Refuse (one line naming the first node NIR cannot express) any model that is not an imported graph."""
    from ..quant.fold import fold

    if ckpt.model_type == "graph":
        return
    graph = fold(ckpt.model)
    for name, node in graph.nodes.items():
        reason = NOT_IN_NIR.get(node.type_name())
        if reason:
            raise UserError(f"checkpoint {ckpt.path}: node {name} ({node.type_name()}): {reason}, and NIR 1.0 offers "
                            "no extension mechanism for new node types; export a netlist (-o FILE.net) instead")
    raise UserError(f"checkpoint {ckpt.path}: only imported graphs export to NIR")
