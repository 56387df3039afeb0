"""A network imported from NIR, kept as NIR describes it: typed nodes with their continuous-time
parameters, and edges. ``GraphConfig`` holds the structure (stored in the checkpoint's
``model_config``), the parameters are tensors of the state dict, so the checkpoint machinery
(checksums, validation, atomic writes) applies unchanged and ``pspike export --format nir`` can
write the graph back as it came.

The float model is the discretized graph run by the graph executor with the node types' float
steps (``to_float_graph``): NIR's neurons are differential equations, and this module is where they
become steps, with the time step ``dt`` and the rule (``euler`` or ``exact``) recorded at import:

=========== ======================================================================================
NIR node     float graph
=========== ======================================================================================
Input        ``SpikeInput`` (spike trains; ``GradedInput`` for currents, ``input_spikes = False``)
Affine,      composed along every path between two stateful nodes into one ``DenseSynapse`` per
Linear,      (source, destination) pair; biases go to the destination; a destination's input gain
Scale        multiplies the rows (``W' = diag(g) W``)
LIF / IF     ``LIFNeuron``: ``alpha = 1 - dt/tau`` (euler) or ``exp(-dt/tau)`` (exact), ``g = (1 -
             alpha) r``, ``bias = (1 - alpha) v_leak + g b``; IF: ``alpha = 1``, ``g = dt r``
LI / I       ``LINeuron``, the same without threshold
CubaLIF /    ``CubaLIFNeuron`` / ``CubaLINeuron``: ``alpha_syn``, ``alpha_mem`` as above, input gain
CubaLI       ``(1 - alpha_syn) w_in``, ``gain = (1 - alpha_mem) r``, ``bias_mem = (1 - alpha_mem)
             v_leak``
Threshold    ``ThresholdNode``
Delay        ``DelayNode`` with ``round(delay / dt)`` steps
Output       ``OutputSink``: scores are the output summed over time
=========== ======================================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .config import ConfigDict
from .nir_steps import DISCRETIZATIONS, SUPPORTED, discretize


@dataclass
class GraphConfig(ConfigDict):
    """An imported graph: ``nodes`` ``[{"name", "type", "shape"}]`` (``shape``: the flat width),
    ``edges`` ``[[src, dst]]``, the parameter shapes, and how time is discretized."""

    kind: str = "graph"
    nodes: list = field(default_factory=list)
    edges: list = field(default_factory=list)
    param_shapes: dict = field(default_factory=dict)
    dt: float = 1e-3
    discretization: str = "euler"
    input_spikes: bool = True
    d_input: int = 1
    n_classes: int = 1
    input_kind: str = "real"
    n_layers: int = 0
    source: str = ""

    def __post_init__(self):
        if self.kind != "graph":
            raise UserError(f"model config: kind={self.kind!r} is not 'graph'")
        if self.discretization not in DISCRETIZATIONS:
            raise UserError(f"model config: discretization must be euler or exact, got {self.discretization!r}")
        if isinstance(self.dt, bool) or not isinstance(self.dt, (int, float)) or not (math.isfinite(self.dt)
                                                                                   and self.dt > 0):
            raise UserError(f"model config: dt must be a positive number, got {self.dt!r}")
        if not isinstance(self.nodes, list) or not isinstance(self.edges, list) or not isinstance(self.param_shapes,
                                                                                                 dict):
            raise UserError("model config: nodes and edges must be lists, param_shapes a mapping")
        names = set()
        for node in self.nodes:
            if not (isinstance(node, dict) and isinstance(node.get("name"), str) and node.get("type") in SUPPORTED
                    and isinstance(node.get("shape"), int) and 1 <= node["shape"] <= 1 << 20):
                raise UserError(f"model config: bad node entry {str(node)[:80]}")
            names.add(node["name"])
        for edge in self.edges:
            if not (isinstance(edge, list) and len(edge) == 2 and edge[0] in names and edge[1] in names):
                raise UserError(f"model config: bad edge {str(edge)[:80]}")
        for name, shapes in self.param_shapes.items():
            if name not in names or not isinstance(shapes, dict):
                raise UserError(f"model config: parameter shapes of unknown node {name!r}")
            for shape in shapes.values():
                if not (isinstance(shape, list) and len(shape) <= 2 and all(isinstance(d, int) and 1 <= d <= 1 << 20
                                                                            for d in shape)):
                    raise UserError(f"model config: bad parameter shape {shape!r} of node {name}")


def _key(index: int, param: str) -> str:
    return f"n{index}_{param}"


class GraphModel(nn.Module):
    """The imported graph: its NIR parameters as float64 buffers, its float network via the graph
    executor. Deterministic (no sampling): ``noise`` is accepted for a common interface."""

    def __init__(self, cfg: GraphConfig):
        super().__init__()
        self.cfg = cfg
        for i, node in enumerate(cfg.nodes):
            for param, shape in cfg.param_shapes.get(node["name"], {}).items():
                self.register_buffer(_key(i, param), torch.zeros(shape, dtype=torch.float64))

    @property
    def model_type(self) -> str:
        return "graph"

    def nir_params(self) -> dict:
        """``{node name: {parameter: numpy array}}`` as NIR names them."""
        out = {}
        for i, node in enumerate(self.cfg.nodes):
            out[node["name"]] = {p: getattr(self, _key(i, p)).detach().cpu().numpy().copy()
                                 for p in self.cfg.param_shapes.get(node["name"], {})}
        return out

    def to_float_graph(self):
        return discretize(self.cfg, self.nir_params())

    def _run(self, x, lengths=None):
        from ..graph import run

        x = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
        lengths = None if lengths is None else np.asarray(lengths.cpu() if torch.is_tensor(lengths) else lengths)
        return run(self.to_float_graph(), x, integer=False, seed=0, lengths=lengths)

    def forward(self, x, lengths=None, noise=None, probe=None):
        """Class scores (the output summed over the valid steps) of the float network."""
        return torch.from_numpy(self._run(x, lengths).scores)

    @torch.no_grad()
    def layer_activity(self, x, lengths=None, noise=None) -> dict:
        result = self._run(x, lengths)
        s_out = [np.asarray(s, bool) for s in result.spikes_out]
        s_in = [None if s is None else np.asarray(s, bool) for s in result.spikes_in]
        return {"scores": result.scores, "spikes_in": s_in, "spikes_out": s_out,
                "prob_in": [None if s is None else s.astype(np.float64) for s in s_in],
                "prob_out": [s.astype(np.float64) for s in s_out], "outputs": result.outputs}

    def ssm_parameters(self):
        return iter(())
