"""Cost models: energy per operation, every constant with its source (docs/energy-model.md); a chip
model (``loihi2``) adds static power, pro-rated by the cores a mapping uses, over the run time."""

from __future__ import annotations

import json
import math
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
#: what verify and report price with unless --cost-model says otherwise (loihi2 on request: its static power
#: depends on an assumed time per step)
DEFAULT_COST_MODELS = ("45nm", "loihi1")
#: Loihi 2 static power per chip (W), measured idle after a run by lava's Loihi 2 power profiler and divided by
#: the 8 chips of the board: 0.232078 W in the PilotNet LIF benchmark, 0.281775 W in the PilotNet SDNN benchmark
#: (lava-nc/lava-dl, tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb and pilotnet_sdnn/benchmark.ipynb,
#: cell outputs "Static Power")
LOIHI2_STATIC_W = (0.232078, 0.281775)
#: time per step (s) of the same PilotNet LIF run: "Throughput : 408.91 fps" at 16 steps per sample
#: (reset_interval 16), i.e. 1 / (408.91 * 16) s = 152.8 us; our default for --time-per-step-us
LOIHI2_TIME_PER_STEP_S = 1.0 / (408.91 * 16)
COST_MODELS["loihi2"] = {
    "source": "dynamic: the loihi1 per-operation energies (Davies et al., IEEE Micro 2018, Table 2; no per-operation "
              "table for Loihi 2 is published, so these are an assumption); static: Loihi 2 chip at "
              "0.232 W (PilotNet LIF) to 0.282 W (PilotNet SDNN), lava-dl tutorials/lava/lib/dl/netx/"
              "pilotnet_{snn,sdnn}/benchmark.ipynb, pro-rated by the cores used of 128 per chip",
    "pj": dict(COST_MODELS["loihi1"]["pj"]),
    "static": {"watts_per_chip": LOIHI2_STATIC_W[0], "watts_per_chip_range": list(LOIHI2_STATIC_W),
               "time_per_step_s": LOIHI2_TIME_PER_STEP_S},
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
    static = model.get("static")
    if static is not None and (not isinstance(static, dict) or not all(
            isinstance(static.get(k), (int, float)) and math.isfinite(static[k]) and static[k] > 0
            for k in ("watts_per_chip", "time_per_step_s"))):
        raise UserError(f"cost model {path}: 'static' needs positive numbers watts_per_chip and time_per_step_s")
    for kind, value in model["pj"].items():
        if kind not in known:
            raise UserError(f"cost model {path}: unknown operation {kind!r}; known: {', '.join(sorted(known))}")
        if not isinstance(value, (int, float)) or value < 0:
            raise UserError(f"cost model {path}: {kind} must be a non-negative number of pJ")
    return model


def static_pj(model: dict, cores: int, cores_per_chip: int, steps: float, time_per_step_s: float | None = None) -> dict:
    """A chip model's static energy for ``steps`` steps: ``P_static * cores / cores_per_chip * steps * t_step``
    (pJ), with the range the measured powers span; ``{}`` for a model without static power."""
    static = model.get("static")
    if not static:
        return {}
    t_step = static["time_per_step_s"] if time_per_step_s is None else time_per_step_s
    share = cores / cores_per_chip
    lo, hi = static.get("watts_per_chip_range", [static["watts_per_chip"]] * 2)
    joules = lambda watts: watts * share * steps * t_step * 1e12  # noqa: E731  (pJ)
    return {"pj": joules(static["watts_per_chip"]), "pj_range": [joules(lo), joules(hi)],
            "watts_per_chip": static["watts_per_chip"], "cores": int(cores), "cores_per_chip": int(cores_per_chip),
            "steps": float(steps), "time_per_step_s": t_step}


def energy_pj(ops: OpCounts, model: dict) -> dict:
    """Energy per operation kind and in total: counts times the model's constants."""
    pj = model["pj"]
    parts = {kind: getattr(ops, kind) * pj[kind] for kind in FIELDS if kind in pj}
    if "active_extra" in pj:
        parts["active_extra"] = ops.active_neuron_updates * pj["active_extra"]
    return {"parts_pj": parts, "total_pj": float(sum(parts.values()))}
