"""``pspike verify``: the float model and the deployed network on the same inputs and random numbers.

The float model samples with the counter-based generator (``CounterNoise``, the netlist's seed and
``prob_bits``), the deployed network with the same generator, so spikes can be compared one by one:
they differ only where quantization moved a probability across its random number. With several
seeds (``--seeds K``) accuracies are averaged over seeds ``seed .. seed + K - 1`` and spike
statistics pooled, which separates a real deployment error from the luck of one noise draw.
Models with deterministic neurons (SiLIF, imported graphs) run once: every seed is the same.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from . import distributed
from .energy.costs import COST_MODELS, DEFAULT_COST_MODELS, energy_pj, static_pj
from .energy.ops import FIELDS, OpCounts, count_ops, count_ops_dense, synaptic, total
from .errors import UserError
from .export.checkpoint import Checkpoint
from .graph import Netlist, RunResult
from .numerics.rng import CounterNoise
from .sim.run import FLOAT_BLOCK, LAVA_DEFAULT_SAMPLES, load_inputs, run_sharded


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
    float_removed: list = field(default_factory=list)  # per layer the float spikes of the neurons export removed
    float_ops: dict = field(default_factory=dict)  # operation counts of the float spikes of this seed (no prices)
    float_activations: list = field(default_factory=list)  # every sampler's / neuron layer's float spikes, unpruned


def float_activity(ckpt: Checkpoint, x: np.ndarray, lengths, seed: int, prob_bits: int, first_id: int = 0) -> dict:
    """The float model's scores and per-layer spikes and probabilities under common random numbers;
    sample ``i`` of ``x`` draws with id ``first_id + i``. Computed in blocks of ``FLOAT_BLOCK`` samples
    (from ``first_id``, a multiple of it), so a sharded run does the arithmetic of one process."""
    parts = []
    model = copy.deepcopy(ckpt.model).double()  # layer_activity runs in float64; the checkpoint's model stays as it is
    for lo in range(0, len(x), FLOAT_BLOCK):
        hi = min(len(x), lo + FLOAT_BLOCK)
        noise = CounterNoise(seed=seed, prob_bits=prob_bits, sample_ids=np.arange(first_id + lo, first_id + hi))
        tensor = torch.from_numpy(np.ascontiguousarray(x[lo:hi]))
        parts.append(model.layer_activity(
            tensor, None if lengths is None else torch.as_tensor(lengths[lo:hi]),
            noise=lambda site, shape, dev, dt, noise=noise: noise(site, shape, dev, torch.float64)))
    return distributed.concat_samples(parts)


def _float_sharded(ckpt: Checkpoint, x: np.ndarray, lengths, seed: int, prob_bits: int) -> dict | None:
    """:func:`float_activity` of this rank's blocks, gathered on rank 0 (None elsewhere)."""
    part = distributed.shard(len(x), FLOAT_BLOCK)
    cut = slice(part.start, part.stop)
    mine = float_activity(ckpt, x[cut], None if lengths is None else lengths[cut], seed, prob_bits,
                          part.start) if len(part) else None
    return distributed.gather_samples(mine)


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


def energy_estimates(netlist: Netlist, runs: list, cost_models: dict | None = None, static: dict | None = None) -> dict:
    """Energy per inference under each cost model, per operation kind and per node, with the
    non-spiking counterpart of the same network, in two accountings side by side (docs/energy-model.md):
    ``full`` (every operation counted, dense state updates included; the top-level totals) and
    ``synaptic`` (operations on connections only: the seed papers' and NeuroBench's convention). A chip
    model with static power (``loihi2``) adds it to the full accounting: ``static`` gives the cores the
    mapping uses, the cores per chip and the time per step (None: the model's default). ``runs``:
    (outputs, records, valid) of one or more runs, pooled."""
    cost_models = COST_MODELS if cost_models is None else cost_models
    n = sum(valid.shape[0] for _, _, valid in runs)
    steps = sum(float(valid.sum()) for _, _, valid in runs) / n
    rows = _sum_rows([count_ops(netlist, outputs, records, valid) for outputs, records, valid in runs])
    dense_rows = _sum_rows([count_ops_dense(netlist, valid) for _, _, valid in runs])
    syn_rows, syn_dense = synaptic(netlist, rows), synaptic(netlist, dense_rows)
    out = {"ops_per_inference": total(rows).scaled(1 / n).as_dict(),
           "non_spiking_ops_per_inference": total(dense_rows).scaled(1 / n).as_dict(),
           "synaptic_ops_per_inference": total(syn_rows).scaled(1 / n).as_dict(),
           "non_spiking_synaptic_ops_per_inference": total(syn_dense).scaled(1 / n).as_dict(),
           "steps_per_inference": steps, "models": {}}
    for name, model in cost_models.items():
        st = static_pj(model, static["cores"], static["cores_per_chip"], steps, static.get("time_per_step_s")) \
            if static else {}
        full = _priced(rows, dense_rows, model, n, st.get("pj", 0.0))
        syn = _priced(syn_rows, syn_dense, model, n)
        out["models"][name] = {"source": model["source"], **full, "static": st,
                               "accountings": {"full": {k: v for k, v in full.items() if k != "per_node_pj"},
                                               "synaptic": syn}}
    return out


def _priced(rows: list, dense_rows: list, model: dict, n: int, static: float = 0.0) -> dict:
    """Counts times constants per inference (plus ``static`` pJ on both sides: the same chip runs either)."""
    spiking, counterpart = energy_pj(total(rows), model), energy_pj(total(dense_rows), model)
    parts = {k: v / n for k, v in spiking["parts_pj"].items()}
    dense_parts = {k: v / n for k, v in counterpart["parts_pj"].items()}
    if static:
        parts["static"], dense_parts["static"] = static, static
    e, e_dense = spiking["total_pj"] / n + static, counterpart["total_pj"] / n + static
    per_node = {r["node"]: energy_pj(OpCounts(**{f: r[f] for f in FIELDS}), model)["total_pj"] / n for r in rows}
    return {"total_pj": e, "parts_pj": parts, "per_node_pj": per_node, "non_spiking_total_pj": e_dense,
            "non_spiking_parts_pj": dense_parts, "ratio_non_spiking_to_spiking": e_dense / e if e else float("inf")}


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


def kept_neurons(netlist: Netlist) -> dict:
    """Per population that ``export --prune-silent`` shrank, the unpruned indices of the neurons it kept."""
    pruning = netlist.meta.get("pruning") or {}
    return {p["node"]: np.asarray(p["kept_ids"], np.int64) for p in pruning.get("populations", []) if p["removed"]}


def kept_spikes(result: RunResult, kept: dict, spikes_in: list, spikes_out: list) -> tuple[list, list]:
    """The unpruned float model's per-layer spikes restricted to the neurons the deployed network kept
    (a layer's input spikes: its own sampler's, or those of the population that feeds it)."""
    f_in, f_out = [], []
    for name, src, s_in, s_out in zip(result.layers, result.layer_inputs, spikes_in, spikes_out):
        own = kept.get(name)
        f_out.append(s_out if own is None else s_out[..., own])
        cut = own if "s_in" in result.records.get(name, {}) else kept.get(src)
        f_in.append(s_in if s_in is None or cut is None else s_in[..., cut])
    return f_in, f_out


def removed_activity(netlist: Netlist, activity: Activity, kept: dict, probs_out: list) -> dict | None:
    """What the float model's removed neurons did on the verified inputs (first seed): their spikes and
    mean output probability, next to what calibration saw (None for an unpruned netlist)."""
    if not kept:
        return None
    rows = []
    valid = activity.valid
    for l, name in enumerate(activity.deployed.layers):
        if name not in kept:
            continue
        n = probs_out[l].shape[-1]
        gone = np.setdiff1d(np.arange(n), kept[name])
        p = probs_out[l][..., gone][valid]
        rows.append({"node": name, "removed": int(gone.size), "float_spikes": int(activity.float_removed[l][valid].sum()),
                     "float_mean_probability": float(p.mean()) if p.size else 0.0,
                     "float_largest_neuron_mean_probability": float(p.mean(0).max()) if p.size else 0.0})
    pruning = netlist.meta["pruning"]
    return {"threshold": pruning["threshold"], "neurons": pruning["neurons"], "removed": pruning["removed"],
            "populations": rows}


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
            inputs=None, data_dir=None, time_per_step_s: float | None = None) -> tuple[dict, Activity]:
    """Run both networks; returns the verification result and the first seed's activity. ``data_dir``:
    the real dataset's folder (default: the one the checkpoint records); ``time_per_step_s``: the chip's
    time per step for static energy (default: the cost model's). A pruned netlist is compared with the
    unpruned float model: spikes neuron by neuron on the neurons it kept, accuracy as a whole."""
    if netlist.meta["source_sha256"] != ckpt.sha256:
        raise UserError(f"netlist was exported from a different checkpoint (sha256 {netlist.meta['source_sha256'][:12]}... "
                        f"vs {ckpt.sha256[:12]}... of {ckpt.path})")
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    data_dir = data_dir or ckpt.task_options.get("data_dir")  # where export found a real dataset (shd, smnist)
    name, x, labels, lengths = load_inputs(netlist, None, samples, data_dir, inputs,
                                           default_cap=LAVA_DEFAULT_SAMPLES if backend == "lava" else None)
    first = int(netlist.meta["seed"]) if seed is None else seed
    prob_bits = int(netlist.meta["quant_config"].get("prob_bits", 16))
    valid = np.ones(x.shape[:2], bool) if lengths is None else np.arange(x.shape[1])[None] < lengths[:, None]
    deterministic = ckpt.model_type != "pspike"
    kept = kept_neurons(netlist)
    seed_list = list(range(first, first + seeds))
    f_acc, d_acc, runs_f, runs_d = [], [], [], []
    pooled = None
    activity = None
    saturation: dict[str, int] = {}
    for s in seed_list[:1] if deterministic else seed_list:
        # under torchrun every rank runs its share of the samples; rank 0 gathers and compares
        f = _float_sharded(ckpt, x, lengths, s, prob_bits)
        dep = run_sharded(netlist, x, s, lengths, backend, "fixed", progress)
        if dep is None:
            continue
        f_in, f_out = kept_spikes(dep, kept, f["spikes_in"], f["spikes_out"])
        if labels is not None:
            f_acc.append(float((f["scores"].argmax(-1) == labels).mean()))
            d_acc.append(float((dep.predictions == labels).mean()))
        for key, count in dep.saturation.items():
            saturation[key] = saturation.get(key, 0) + int(count)
        runs_f.append((*layer_nodes(dep, f_in, f_out), valid))
        runs_d.append((dep.outputs, dep.records, valid))
        sets = (f_in, f_out, dep.spikes_in, dep.spikes_out)
        if activity is None:
            activity = Activity(labels=labels, valid=valid, float_in=f_in, float_out=f_out,
                                float_prob_in=f["prob_in"], float_prob_out=f["prob_out"], deployed=dep,
                                deterministic=deterministic,
                                float_removed=[np.delete(o, kept[name], -1) if name in kept else o[..., :0]
                                               for name, o in zip(dep.layers, f["spikes_out"])],
                                float_activations=(f["spikes_out"] if deterministic else
                                                   f["spikes_in"] + f["spikes_out"]))
            pooled = [list(a) for a in sets]
            pooled_pred = [f["scores"].argmax(-1) == dep.predictions]
        else:  # pool spikes over seeds along the sample axis
            for acc, new in zip(pooled, sets):
                for l, arr in enumerate(new):
                    acc[l] = None if arr is None else np.concatenate([acc[l], arr])
            pooled_pred.append(f["scores"].argmax(-1) == dep.predictions)
    if not distributed.is_main():
        return None, None
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
    static = chip_occupancy(netlist, time_per_step_s)
    if cost_models is None:  # verify's and report's default (docs/energy-model.md); loihi2 on request
        cost_models = {k: COST_MODELS[k] for k in DEFAULT_COST_MODELS}
    activity.float_ops = energy_estimates(netlist, runs_f[:1], {})
    f_energy = energy_estimates(netlist, runs_f, cost_models, static)
    d_energy = energy_estimates(netlist, runs_d, cost_models, static)
    per_model = lambda e: {k: m["total_pj"] for k, m in e["models"].items()}  # noqa: E731
    per_model_syn = lambda e: {k: m["accountings"]["synaptic"]["total_pj"] for k, m in e["models"].items()}  # noqa: E731
    result = {
        "passed": not failed,
        "failed_checks": failed,
        "checks": {k: {"value": v, "limit": lim, "must_be": op} for k, (v, lim, op) in checks.items()},
        "samples": int(x.shape[0]), "seed": first, "seeds": seed_list[:n_runs], "backend": backend,
        "task": name, "deterministic": deterministic,
        "prediction_agreement": float(np.mean(np.concatenate(pooled_pred))),
        "float": {"accuracy": float(np.mean(f_acc)) if f_acc else None, "accuracy_per_seed": f_acc,
                  "energy_pj_per_inference": per_model(f_energy),
                  "synaptic_energy_pj_per_inference": per_model_syn(f_energy),
                  "ops_per_inference": f_energy["ops_per_inference"],
                  "synaptic_ops_per_inference": f_energy["synaptic_ops_per_inference"]},
        "deployed": {"accuracy": float(np.mean(d_acc)) if d_acc else None, "accuracy_per_seed": d_acc,
                     "energy_pj_per_inference": per_model(d_energy),
                     "synaptic_energy_pj_per_inference": per_model_syn(d_energy), "energy": d_energy,
                     "saturation": saturation, "saturation_events": int(sum(saturation.values()))},
        "non_spiking_energy_pj_per_inference": {k: m["non_spiking_total_pj"] for k, m in d_energy["models"].items()},
        "layers": layers,
        "pruning": removed_activity(netlist, activity, kept, activity.float_prob_out),
    }
    return result, activity


def chip_occupancy(netlist: Netlist, time_per_step_s: float | None = None) -> dict:
    """What static energy needs: the Loihi 2 cores the netlist's mapping uses, cores per chip, time per step."""
    from .export.inspect import describe
    from .export.mapping import CORES_PER_CHIP

    return {"cores": describe(netlist)["cores"], "cores_per_chip": CORES_PER_CHIP, "time_per_step_s": time_per_step_s}


def verify(ckpt: Checkpoint, netlist: Netlist, **kwargs) -> dict:
    """:func:`compare`'s result alone (see its keyword arguments)."""
    return compare(ckpt, netlist, **kwargs)[0]
