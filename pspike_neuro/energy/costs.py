"""Cost models: energy per operation, every constant with its source (docs/energy-model.md)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from .ops import FIELDS, OpCounts

#: energy in pJ per operation of each kind; ``None`` means the model does not price that kind
COST_MODELS: dict[str, dict] = {
    "45nm": {
        "source": "M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014: "
                  "32-bit float multiply-add 4.6 pJ (3.7 + 0.9), add 0.9 pJ, 45 nm; the convention of "
                  "the P-SpikeSSM paper (E_MAC = 4.6 pJ, E_AC = 0.9 pJ)",
        "pj": {"mac": 4.6, "graded_synops": 4.6, "ac": 0.9, "add": 0.9},
    },
    "loihi1": {
        "source": "M. Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', "
                  "IEEE Micro 38(1), 2018, Table 2 (pre-silicon, 0.75 V): synaptic spike op 23.6 pJ (min), "
                  "neuron update 52 pJ inactive / 81 pJ active, spike within a tile 1.7 pJ",
        "pj": {"ac": 23.6, "graded_synops": 23.6, "neuron_updates": 52.0, "active_extra": 81.0 - 52.0, "binary_messages": 1.7,
               "graded_messages": 1.7},
    },
}


def load_cost_model(name_or_path: str) -> dict:
    """A built-in model by name, or a user JSON file ``{"source": ..., "pj": {kind: pJ}}``."""
    if name_or_path in COST_MODELS:
        return COST_MODELS[name_or_path]
    path = Path(name_or_path)
    if not path.exists():
        raise UserError(f"cost model {name_or_path!r}: not a built-in ({', '.join(COST_MODELS)}) and no such file")
    try:
        model = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cost model {path}: not valid JSON ({exc})") from None
    known = set(FIELDS) | {"active_extra"}
    if not isinstance(model, dict) or not isinstance(model.get("pj"), dict) or not model.get("source"):
        raise UserError(f"cost model {path}: needs a 'source' string and a 'pj' mapping of operation -> pJ")
    for kind, value in model["pj"].items():
        if kind not in known:
            raise UserError(f"cost model {path}: unknown operation {kind!r}; known: {', '.join(sorted(known))}")
        if not isinstance(value, (int, float)) or value < 0:
            raise UserError(f"cost model {path}: {kind} must be a non-negative number of pJ")
    return model


def energy_pj(ops: OpCounts, model: dict) -> dict:
    """Energy per operation kind and in total: counts times the model's constants."""
    pj = model["pj"]
    parts = {kind: getattr(ops, kind) * pj[kind] for kind in FIELDS if kind in pj}
    if "active_extra" in pj:
        parts["active_extra"] = ops.active_neuron_updates * pj["active_extra"]
    return {"parts_pj": parts, "total_pj": float(sum(parts.values()))}
