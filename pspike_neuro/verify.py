"""``pspike verify``: the float model and the deployed network on the same inputs and random numbers.

The float model samples with the counter-based generator (``CounterNoise``, the netlist's seed and
``prob_bits``), the deployed network with the same generator, so spikes can be compared one by one:
they differ only where quantization moved a probability across its random number. With several
seeds (``--seeds K``) accuracies are averaged over seeds ``seed .. seed + K - 1`` and spike
statistics pooled, which separates a real deployment error from the luck of one noise draw.
Models with deterministic neurons (SiLIF, imported graphs) run once: every seed is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .energy.costs import COST_MODELS, energy_pj
from .energy.ops import FIELDS, OpCounts, count_ops, count_ops_dense, total
from .errors import UserError
from .export.checkpoint import Checkpoint
from .graph import Netlist, RunResult
from .numerics.rng import CounterNoise
from .sim.run import LAVA_DEFAULT_SAMPLES, load_inputs, run_backend


@dataclass
class Activity:
    """What both networks did on the first seed (the report draws it)."""

    labels: np.ndarray | None
    valid: np.ndarray                                   # (B, L) bool
    float_in: list = field(default_factory=list)        # per layer (B, L, H) bool (None: graded input)
    float_out: list = field(default_factory=list)
    float_prob_in: list = field(default_factory=list)   # per layer (B, L, H): clamp(p_in, 0, 1)
    float_prob_out: list = field(default_factory=list)  # per layer (B, L, H): clamp(q, 0, 1)
    deployed: RunResult | None = None
    deterministic: bool = False


def float_activity(ckpt: Checkpoint, x: np.ndarray, lengths, seed: int, prob_bits: int) -> dict:
    """The float model's scores and per-layer spikes and probabilities under common random numbers."""
    noise = CounterNoise(seed=seed, prob_bits=prob_bits)
    tensor = torch.from_numpy(np.ascontiguousarray(x))
    return ckpt.model.layer_activity(tensor, None if lengths is None else torch.as_tensor(lengths),
                                     noise=lambda site, shape, dev, dt: noise(site, shape, dev, torch.float64))


def layer_nodes(result: RunResult, spikes_in: list, spikes_out: list) -> tuple[dict, dict]:
    """Per-layer spikes as the node outputs and records they are in the deployed run (so the float
    model's activity is counted by the same node types)."""
    outputs, records = {}, {}
    for name, src, s_in, s_out in zip(result.layers, result.layer_inputs, spikes_in, spikes_out):
        outputs[name] = s_out
        if "s_in" in result.records.get(name, {}):
            records[name] = {"s_in": s_in}
        elif src is not None and s_in is not None:
            outputs[src] = s_in
    return outputs, records


def energy_estimates(netlist: Netlist, runs: list, cost_models: dict | None = None) -> dict:
    """Energy per inference under each cost model, per operation kind and per node, with the
    non-spiking counterpart of the same network (docs/energy-model.md). ``runs``: (outputs, records,
    valid) of one or more runs, pooled."""
    cost_models = COST_MODELS if cost_models is None else cost_models
    n = sum(valid.shape[0] for _, _, valid in runs)
    rows = _sum_rows([count_ops(netlist, outputs, records, valid) for outputs, records, valid in runs])
    dense_rows = _sum_rows([count_ops_dense(netlist, valid) for _, _, valid in runs])
    ops, dense = total(rows), total(dense_rows)
    out = {"ops_per_inference": ops.scaled(1 / n).as_dict(),
           "non_spiking_ops_per_inference": dense.scaled(1 / n).as_dict(), "models": {}}
    for name, model in cost_models.items():
        spiking, counterpart = energy_pj(ops, model), energy_pj(dense, model)
        per_node = [energy_pj(OpCounts(**{f: row[f] for f in FIELDS}), model)["total_pj"] / n for row in rows]
        out["models"][name] = {
            "source": model["source"],
            "total_pj": spiking["total_pj"] / n,
            "parts_pj": {k: v / n for k, v in spiking["parts_pj"].items()},
            "per_node_pj": dict(zip([r["node"] for r in rows], per_node)),
            "non_spiking_total_pj": counterpart["total_pj"] / n,
            "non_spiking_parts_pj": {k: v / n for k, v in counterpart["parts_pj"].items()},
            "ratio_non_spiking_to_spiking": (counterpart["total_pj"] / spiking["total_pj"]
                                             if spiking["total_pj"] else float("inf")),
        }
    return out


def _sum_rows(per_run: list) -> list:
    rows = [dict(r) for r in per_run[0]]
    for other in per_run[1:]:
        for row, add in zip(rows, other):
            for f in FIELDS:
                row[f] += add[f]
    return rows


def _rates(f: np.ndarray, d: np.ndarray, valid: np.ndarray) -> dict:
    f_rate, d_rate = float(f[valid].mean()), float(d[valid].mean())
    per_f, per_d = f[valid].mean(0), d[valid].mean(0)
    corr = float(np.corrcoef(per_f, per_d)[0, 1]) if per_f.std() > 0 and per_d.std() > 0 else 1.0
    return {"float_rate": f_rate, "deployed_rate": d_rate,
            "relative_difference": abs(d_rate - f_rate) / f_rate if f_rate else float(d_rate > 0),
            "per_neuron_correlation": corr, "agreement": float((f[valid] == d[valid]).mean()),
            "float_spikes": int(f[valid].sum()), "deployed_spikes": int(d[valid].sum()),
            "float_per_neuron": per_f.tolist(), "deployed_per_neuron": per_d.tolist()}


def _layer_stats(names, f_in, f_out, d_in, d_out, valid) -> list[dict]:
    layers = []
    for l, name in enumerate(names):
        row = {"layer": l, "node": name, "output": _rates(f_out[l], d_out[l], valid)}
        if f_in[l] is not None and d_in[l] is not None:
            row["input"] = _rates(f_in[l], d_in[l], valid)
        layers.append(row)
    return layers


def compare(ckpt: Checkpoint, netlist: Netlist, *, backend: str, samples: int | None, seed: int | None,
            seeds: int = 1, max_accuracy_drop: float = 1.0, max_rate_diff: float = 0.05,
            min_agreement: float = 0.85, cost_models: dict | None = None, progress: bool = True,
            inputs=None) -> tuple[dict, Activity]:
    """Run both networks; returns the verification result and the first seed's activity."""
    if netlist.meta["source_sha256"] != ckpt.sha256:
        raise UserError(f"netlist was exported from a different checkpoint (sha256 {netlist.meta['source_sha256'][:12]}... "
                        f"vs {ckpt.sha256[:12]}... of {ckpt.path})")
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    data_dir = ckpt.task_options.get("data_dir")  # where export found a real dataset (shd, smnist)
    name, x, labels, lengths = load_inputs(netlist, None, samples, data_dir, inputs,
                                           default_cap=LAVA_DEFAULT_SAMPLES if backend == "lava" else None)
    first = int(netlist.meta["seed"]) if seed is None else seed
    prob_bits = int(netlist.meta["quant_config"].get("prob_bits", 16))
    valid = np.ones(x.shape[:2], bool) if lengths is None else np.arange(x.shape[1])[None] < lengths[:, None]
    deterministic = ckpt.model_type != "pspike"
    seed_list = list(range(first, first + seeds))
    f_acc, d_acc, runs_f, runs_d = [], [], [], []
    pooled = None
    activity = None
    saturation: dict[str, int] = {}
    for s in seed_list[:1] if deterministic else seed_list:
        f = float_activity(ckpt, x, lengths, s, prob_bits)
        dep = run_backend(netlist, x, s, lengths, backend, "fixed", progress)
        if labels is not None:
            f_acc.append(float((f["scores"].argmax(-1) == labels).mean()))
            d_acc.append(float((dep.predictions == labels).mean()))
        for key, count in dep.saturation.items():
            saturation[key] = saturation.get(key, 0) + int(count)
        runs_f.append((*layer_nodes(dep, f["spikes_in"], f["spikes_out"]), valid))
        runs_d.append((dep.outputs, dep.records, valid))
        sets = (f["spikes_in"], f["spikes_out"], dep.spikes_in, dep.spikes_out)
        if activity is None:
            activity = Activity(labels=labels, valid=valid, float_in=f["spikes_in"], float_out=f["spikes_out"],
                                float_prob_in=f["prob_in"], float_prob_out=f["prob_out"], deployed=dep,
                                deterministic=deterministic)
            pooled = [list(a) for a in sets]
            pooled_pred = [f["scores"].argmax(-1) == dep.predictions]
        else:  # pool spikes over seeds along the sample axis
            for acc, new in zip(pooled, sets):
                for l, arr in enumerate(new):
                    acc[l] = None if arr is None else np.concatenate([acc[l], arr])
            pooled_pred.append(f["scores"].argmax(-1) == dep.predictions)
    n_runs = len(runs_d)
    valid_all = np.concatenate([valid] * n_runs)
    layers = _layer_stats(dep.layers, *pooled, valid_all)
    rate_diffs = [r[k]["relative_difference"] for r in layers for k in ("input", "output") if k in r]
    agreements = [r[k]["agreement"] for r in layers for k in ("input", "output") if k in r]
    checks = {
        "max_rate_difference": (max(rate_diffs, default=0.0), max_rate_diff, "<="),
        "min_agreement": (min(agreements, default=1.0), min_agreement, ">="),
    }
    if labels is not None:
        checks = {"accuracy_drop": (100 * (float(np.mean(f_acc)) - float(np.mean(d_acc))), max_accuracy_drop, "<="),
                  **checks}
    failed = [key for key, (value, limit, op) in checks.items() if (value > limit if op == "<=" else value < limit)]
    f_energy = energy_estimates(netlist, runs_f, cost_models)
    d_energy = energy_estimates(netlist, runs_d, cost_models)
    per_model = lambda e: {k: m["total_pj"] for k, m in e["models"].items()}  # noqa: E731
    result = {
        "passed": not failed,
        "failed_checks": failed,
        "checks": {k: {"value": v, "limit": lim, "must_be": op} for k, (v, lim, op) in checks.items()},
        "samples": int(x.shape[0]), "seed": first, "seeds": seed_list[:n_runs], "backend": backend,
        "task": name, "deterministic": deterministic,
        "prediction_agreement": float(np.mean(np.concatenate(pooled_pred))),
        "float": {"accuracy": float(np.mean(f_acc)) if f_acc else None, "accuracy_per_seed": f_acc,
                  "energy_pj_per_inference": per_model(f_energy)},
        "deployed": {"accuracy": float(np.mean(d_acc)) if d_acc else None, "accuracy_per_seed": d_acc,
                     "energy_pj_per_inference": per_model(d_energy), "energy": d_energy,
                     "saturation": saturation, "saturation_events": int(sum(saturation.values()))},
        "non_spiking_energy_pj_per_inference": {k: m["non_spiking_total_pj"] for k, m in d_energy["models"].items()},
        "layers": layers,
    }
    return result, activity


def verify(ckpt: Checkpoint, netlist: Netlist, **kwargs) -> dict:
    """:func:`compare`'s result alone (see its keyword arguments)."""
    return compare(ckpt, netlist, **kwargs)[0]
