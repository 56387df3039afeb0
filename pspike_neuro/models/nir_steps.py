"""From an imported graph's continuous-time NIR parameters to a float graph of our node types: the
discretization table of ``models/graph.py``, applied. Every refusal names the NIR node and field."""

from __future__ import annotations

import math

import numpy as np

from ..errors import UserError
from ..graph import Edge, Netlist
from ..nodes import FloatNode
from ..nodes.cuba_lif import CubaLIFNeuron, CubaLINeuron
from ..nodes.delay import DelayNode
from ..nodes.graded_input import GradedInput
from ..nodes.li import LINeuron
from ..nodes.lif import LIFNeuron
from ..nodes.output import OutputSink
from ..nodes.spike_input import SpikeInput
from ..nodes.synapses import DenseSynapse
from ..nodes.threshold import ThresholdNode

DISCRETIZATIONS = ("euler", "exact")
#: NIR node types the importer takes (Flatten and nested graphs are resolved at import)
NEURONS = ("LIF", "IF", "LI", "I", "CubaLIF", "CubaLI", "Threshold")
LINEAR = ("Affine", "Linear", "Scale")
SUPPORTED = ("Input", "Output", "Delay") + NEURONS + LINEAR
#: the parameters of each supported type (arrays; NIR's names)
PARAMS = {"Input": (), "Output": (), "Affine": ("weight", "bias"), "Linear": ("weight",), "Scale": ("scale",),
          "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"), "IF": ("r", "v_threshold", "v_reset"),
          "LI": ("tau", "r", "v_leak"), "I": ("r",),
          "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
          "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"), "Threshold": ("threshold",), "Delay": ("delay",)}


def _vector(params: dict, key: str, n: int, name: str, default=None) -> np.ndarray:
    value = params.get(key, default)
    if value is None:
        raise UserError(f"NIR node {name}: field {key}: missing")
    arr = np.asarray(value, np.float64).reshape(-1)
    if arr.size == 1 and n != 1:
        arr = np.full(n, float(arr[0]))
    if arr.size != n:
        raise UserError(f"NIR node {name}: field {key}: {arr.size} values for {n} neurons")
    return arr


def _decay(tau: np.ndarray, dt: float, rule: str, name: str, key: str) -> np.ndarray:
    """``alpha`` of ``tau dx/dt = -x + ...`` over one step: ``1 - dt/tau`` or ``exp(-dt/tau)``."""
    if np.any(tau <= 0):
        raise UserError(f"NIR node {name}: field {key}: time constants must be positive, got {float(tau.min()):.4g}")
    ratio = dt / tau
    if rule == "euler":
        if np.any(ratio > 1):
            raise UserError(f"NIR node {name}: field {key}: dt / {key} = {float(ratio.max()):.4g} > 1, forward Euler "
                            "is unstable there; use --discretization exact or a smaller --dt")
        return 1.0 - ratio
    return np.exp(-ratio)


def _linear_map(node_type: str, params: dict, name: str):
    """``(M, c)`` of a linear node: ``y = M x + c``."""
    if node_type == "Affine":
        return np.asarray(params["weight"], np.float64), np.asarray(params["bias"], np.float64).reshape(-1)
    if node_type == "Linear":
        w = np.asarray(params["weight"], np.float64)
        return w, np.zeros(w.shape[0])
    scale = np.asarray(params["scale"], np.float64).reshape(-1)
    return np.diag(scale), np.zeros(scale.size)


def neuron_floats(node_type: str, p: dict, n: int, dt: float, rule: str, name: str):
    """The node type, input gain (vector) and float parameters of one NIR neuron."""
    if node_type in ("LIF", "LI"):
        alpha = _decay(_vector(p, "tau", n, name), dt, rule, name, "tau")
        gain = (1 - alpha) * _vector(p, "r", n, name)
        floats = {"alpha": alpha, "bias": (1 - alpha) * _vector(p, "v_leak", n, name)}
    elif node_type in ("IF", "I"):
        gain = dt * _vector(p, "r", n, name)
        floats = {"alpha": np.ones(n), "bias": np.zeros(n)}
    elif node_type in ("CubaLIF", "CubaLI"):
        a_syn = _decay(_vector(p, "tau_syn", n, name), dt, rule, name, "tau_syn")
        a_mem = _decay(_vector(p, "tau_mem", n, name), dt, rule, name, "tau_mem")
        gain = (1 - a_syn) * _vector(p, "w_in", n, name, default=1.0)
        floats = {"alpha_syn": a_syn, "alpha_mem": a_mem, "gain": (1 - a_mem) * _vector(p, "r", n, name),
                  "bias_syn": np.zeros(n), "bias_mem": (1 - a_mem) * _vector(p, "v_leak", n, name)}
    else:  # Threshold
        gain = np.ones(n)
        floats = {"bias": np.zeros(n), "theta": _vector(p, "threshold", n, name)}
    if node_type in ("LIF", "IF", "CubaLIF"):
        floats["v_th"] = _vector(p, "v_threshold", n, name)
        floats["v_reset"] = _vector(p, "v_reset", n, name, default=0.0)
    our_type = {"LIF": LIFNeuron, "IF": LIFNeuron, "LI": LINeuron, "I": LINeuron, "CubaLIF": CubaLIFNeuron,
                "CubaLI": CubaLINeuron, "Threshold": ThresholdNode}[node_type]
    return our_type, gain, floats


def _sign_parts(w: np.ndarray) -> list:
    """A weight matrix as synapses of one sign each: ``[("", w)]`` when it has one sign, else its
    excitatory and inhibitory parts. Lava's fixed-point synapses keep 8 magnitude bits for one-signed
    weights but drop the lowest bit of mixed-sign ones, and each part gets its own exponent: on the
    peer networks of tests/test_nir_peers.py this halves the spikes that weight rounding flips."""
    if not (np.any(w > 0) and np.any(w < 0)):
        return [("", w)]
    return [("+", np.where(w > 0, w, 0.0)), ("-", np.where(w < 0, w, 0.0))]


def _bias_key(our_type) -> str:
    return "bias_syn" if our_type in (CubaLIFNeuron, CubaLINeuron) else "bias"


def discretize(cfg, params: dict) -> Netlist:
    """The float graph of an imported NIR graph (``cfg`` a ``models.graph.GraphConfig``; the table is in
    ``models/graph.py``)."""
    info = {n["name"]: n for n in cfg.nodes}
    preds: dict = {name: [] for name in info}
    for src, dst in cfg.edges:
        preds[dst].append(src)
    dt, rule = float(cfg.dt), cfg.discretization
    visiting: set = set()

    def in_width(name: str) -> int:
        if info[name]["type"] in ("Affine", "Linear"):
            return int(np.shape(params[name]["weight"])[1])
        return info[name]["shape"]

    def inputs_of(name: str):
        """What enters ``name``, over stateful sources: ``({source: W}, bias)``."""
        terms: dict = {}
        bias = np.zeros(in_width(name))
        for src in preds[name]:
            if info[src]["type"] in LINEAR:
                if src in visiting:
                    raise UserError(f"NIR node {src}: a loop of linear nodes with no neuron on it")
                visiting.add(src)
                sub_terms, sub_bias = inputs_of(src)
                visiting.discard(src)
                m, c = _linear_map(info[src]["type"], params[src], src)
                for source, w in sub_terms.items():
                    terms[source] = terms.get(source, 0) + m @ w
                bias = bias + m @ sub_bias + c
            else:
                width = info[src]["shape"]
                terms[src] = terms.get(src, 0) + np.eye(width)
        return terms, bias

    nodes, edges = [], []
    for spec in cfg.nodes:
        name, kind, n = spec["name"], spec["type"], spec["shape"]
        if kind in LINEAR:
            continue
        if kind == "Input":
            cls = SpikeInput if cfg.input_spikes else GradedInput
            nodes.append(FloatNode(cls, name, {"n": n}, {}))
            continue
        terms, bias = inputs_of(name)
        direct = len(terms) == 1 and not np.any(bias) and np.array_equal(next(iter(terms.values())),
                                                                         np.eye(n))
        if kind in ("Output", "Delay"):
            if kind == "Delay":
                if not direct:
                    raise UserError(f"NIR node {name}: a Delay must follow a node directly (no weights before it)")
                steps = _vector(params[name], "delay", n, name) / dt
                if np.any(np.abs(steps - np.rint(steps)) > 1e-6 * np.maximum(1, steps)) or np.any(steps < 0):
                    raise UserError(f"NIR node {name}: field delay: not a whole number of steps of dt = {dt:g}")
                node = FloatNode(DelayNode, name, {"n": n}, {"delay": np.rint(steps)})
            else:
                node = FloatNode(OutputSink, name, {"n": n}, {"bias": bias if not direct else np.zeros(n)})
            if direct:
                nodes.append(node)
                edges.append(Edge(next(iter(terms)), name))
                continue
            gain = np.ones(n)
        else:
            our_type, gain, floats = neuron_floats(kind, params[name], n, dt, rule, name)
            floats[_bias_key(our_type)] = floats[_bias_key(our_type)] + gain * bias
            node = FloatNode(our_type, name, {"n": n}, floats)
        for source, w in terms.items():
            for suffix, part in _sign_parts(gain[:, None] * w):
                syn = f"{source}->{name}{suffix}"
                nodes.append(FloatNode(DenseSynapse, syn, {"n_in": w.shape[1], "n_out": w.shape[0]}, {"weight": part}))
                edges += [Edge(source, syn), Edge(syn, name)]
        nodes.append(node)
    for node in nodes:
        for key, value in node.floats.items():
            if not np.all(np.isfinite(value)):
                raise UserError(f"NIR node {node.name}: field {key}: NaN or infinite after discretization")
    graph = Netlist(meta={}, nodes={n.name: n for n in nodes}, edges=edges)
    try:
        graph.validate(require_meta=False)
    except ValueError as exc:
        raise UserError(f"the imported graph does not connect: {exc}") from None
    return graph


def dt_is_positive(dt) -> bool:
    return isinstance(dt, (int, float)) and not isinstance(dt, bool) and math.isfinite(dt) and dt > 0
