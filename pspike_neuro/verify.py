"""``pspike verify``: the float model and the deployed network on the same inputs and random numbers.

The float model samples with the counter-based generator (``CounterNoise``, the netlist's seed and
``prob_bits``), the deployed network with the same generator, so spikes can be compared one by one:
they differ only where quantization moved a probability across its random number. With several
seeds (``--seeds K``) accuracies are averaged over seeds ``seed .. seed + K - 1`` and spike
statistics pooled, which separates a real deployment error from the luck of one noise draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .energy.costs import COST_MODELS, energy_pj
from .energy.ops import FIELDS, OpCounts, count_ops, count_ops_dense, total
from .errors import UserError
from .export.checkpoint import Checkpoint
from .export.netlist import Netlist
from .sim.reference import ReferenceResult
from .sim.rng import CounterNoise
from .sim.run import load_inputs, run_backend


@dataclass
class Activity:
    """What both networks did on the first seed (the report draws it)."""

    labels: np.ndarray
    valid: np.ndarray                                   # (B, L) bool
    float_in: list = field(default_factory=list)        # per layer (B, L, H) bool
    float_out: list = field(default_factory=list)
    float_prob_in: list = field(default_factory=list)   # per layer (B, L, H): clamp(p_in, 0, 1)
    float_prob_out: list = field(default_factory=list)  # per layer (B, L, H): clamp(q, 0, 1)
    deployed: ReferenceResult | None = None


def _snn_float_run(ckpt: Checkpoint, x: torch.Tensor, lengths):
    """A SiLIF network is deterministic: its spike 'probabilities' are the spikes themselves."""
    probe: dict = {}
    with torch.no_grad():
        scores = ckpt.model.double()(x.double(), None if lengths is None else torch.as_tensor(lengths), probe=probe)
    s_out = [probe[f"layer{l}.s"].numpy().astype(bool) for l in range(ckpt.config.n_layers)]
    s_in = [x.numpy().astype(bool)] + s_out[:-1]
    as_prob = lambda spikes: [s.astype(np.float64) for s in spikes]  # noqa: E731
    return scores.argmax(-1).numpy(), s_in, s_out, as_prob(s_in), as_prob(s_out)


def float_run(ckpt: Checkpoint, x: torch.Tensor, lengths, seed: int, prob_bits: int):
    """Predictions, spikes and spike probabilities of the float model under common random numbers."""
    if ckpt.model_type != "pspike":
        return _snn_float_run(ckpt, x, lengths)
    noise = CounterNoise(seed=seed, prob_bits=prob_bits)
    probe: dict = {}
    with torch.no_grad():
        logits = ckpt.model.double()(x.double() if x.is_floating_point() else x,
                                     None if lengths is None else torch.as_tensor(lengths),
                                     noise=lambda site, shape, dev, dt: noise(site, shape, dev, torch.float64),
                                     probe=probe)
    layers = range(ckpt.config.n_layers)
    grab = lambda key, fn: [fn(probe[f"layer{l}.{key}"].numpy()) for l in layers]  # noqa: E731
    return (logits.argmax(-1).numpy(), grab("s_in", lambda a: a.astype(bool)), grab("o", lambda a: a.astype(bool)),
            grab("p_in", lambda a: np.clip(a, 0, 1)), grab("q", lambda a: np.clip(a, 0, 1)))


def float_spikes(ckpt: Checkpoint, x: torch.Tensor, lengths, seed: int, prob_bits: int):
    """Predictions and per-layer input/output spikes of the float model under common random numbers."""
    pred, s_in, s_out, _, _ = float_run(ckpt, x, lengths, seed, prob_bits)
    return pred, s_in, s_out


def energy_estimates(netlist: Netlist, spikes_in: list, spikes_out: list, valid: np.ndarray,
                     cost_models: dict | None = None) -> dict:
    """Energy per inference under each cost model, per operation kind and per layer, with the
    non-spiking counterpart of the same network (docs/energy-model.md)."""
    cost_models = COST_MODELS if cost_models is None else cost_models
    n = valid.shape[0]
    mask = valid[..., None]
    rows = count_ops(netlist, [s & mask for s in spikes_in], [s & mask for s in spikes_out], int(valid.sum()))
    dense_rows = count_ops_dense(netlist, int(valid.sum()))
    ops, dense = total(rows), total(dense_rows)
    out = {"ops_per_inference": ops.scaled(1 / n).as_dict(),
           "non_spiking_ops_per_inference": dense.scaled(1 / n).as_dict(), "models": {}}
    for name, model in cost_models.items():
        spiking, counterpart = energy_pj(ops, model), energy_pj(dense, model)
        per_layer = [energy_pj(OpCounts(**{f: row[f] for f in FIELDS}), model)["total_pj"] / n for row in rows]
        out["models"][name] = {
            "source": model["source"],
            "total_pj": spiking["total_pj"] / n,
            "parts_pj": {k: v / n for k, v in spiking["parts_pj"].items()},
            "per_layer_pj": dict(zip([str(r["layer"]) for r in rows], per_layer)),
            "non_spiking_total_pj": counterpart["total_pj"] / n,
            "non_spiking_parts_pj": {k: v / n for k, v in counterpart["parts_pj"].items()},
            "ratio_non_spiking_to_spiking": (counterpart["total_pj"] / spiking["total_pj"]
                                             if spiking["total_pj"] else float("inf")),
        }
    return out


def _layer_stats(f_in, f_out, d_in, d_out, valid) -> list[dict]:
    layers = []
    for l in range(len(f_in)):
        rates = {}
        for key, f, d in (("input", f_in[l], d_in[l]), ("output", f_out[l], d_out[l])):
            f_rate, d_rate = float(f[valid].mean()), float(d[valid].mean())
            per_f, per_d = f[valid].mean(0), d[valid].mean(0)
            corr = float(np.corrcoef(per_f, per_d)[0, 1]) if per_f.std() > 0 and per_d.std() > 0 else 1.0
            rates[key] = {"float_rate": f_rate, "deployed_rate": d_rate,
                          "relative_difference": abs(d_rate - f_rate) / f_rate if f_rate else float(d_rate > 0),
                          "per_neuron_correlation": corr, "agreement": float((f[valid] == d[valid]).mean()),
                          "float_spikes": int(f[valid].sum()), "deployed_spikes": int(d[valid].sum()),
                          "float_per_neuron": per_f.tolist(), "deployed_per_neuron": per_d.tolist()}
        layers.append({"layer": l, **rates})
    return layers


def compare(ckpt: Checkpoint, netlist: Netlist, *, backend: str, samples: int | None, seed: int | None,
            seeds: int = 1, max_accuracy_drop: float = 1.0, max_rate_diff: float = 0.05,
            min_agreement: float = 0.85, cost_models: dict | None = None,
            progress: bool = True) -> tuple[dict, Activity]:
    """Run both networks; returns the verification result and the first seed's activity."""
    if netlist.meta["source_sha256"] != ckpt.sha256:
        raise UserError(f"netlist was exported from a different checkpoint (sha256 {netlist.meta['source_sha256'][:12]}... "
                        f"vs {ckpt.sha256[:12]}... of {ckpt.path})")
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    if backend == "lava" and samples is None:
        samples = 8
    task = netlist.meta["task"]
    data_dir = ckpt.task_options.get("data_dir")  # where export found a real dataset (shd, smnist)
    _, x0, labels, lengths = load_inputs(netlist, task, samples, data_dir)
    from .data import load_task

    x = load_task(task, data_dir=data_dir, **netlist.meta.get("task_options", {})).test.x[: len(labels)]
    first = int(netlist.meta["seed"]) if seed is None else seed
    prob_bits = int(netlist.nodes["neuron0"].values.get("prob_bits", 16))
    valid = np.ones(x0.shape[:2], bool) if lengths is None else np.arange(x0.shape[1])[None] < lengths[:, None]
    f_acc, d_acc = [], []
    pooled = None
    activity = None
    saturation: dict[str, int] = {}
    for s in range(first, first + seeds):
        f_pred, f_in, f_out, p_in, p_out = float_run(ckpt, x, lengths, s, prob_bits)
        dep = run_backend(netlist, x0, s, lengths, backend, "fixed", progress)
        f_acc.append(float((f_pred == labels).mean()))
        d_acc.append(float((dep.predictions == labels).mean()))
        for key, count in dep.saturation.items():
            saturation[key] = saturation.get(key, 0) + int(count)
        if activity is None:
            activity = Activity(labels=labels, valid=valid, float_in=f_in, float_out=f_out, float_prob_in=p_in,
                                float_prob_out=p_out, deployed=dep)
            pooled = [list(f_in), list(f_out), list(dep.spikes_in), list(dep.spikes_out)]  # copies: pooled below
        else:  # pool spikes over seeds along the sample axis
            for acc, new in zip(pooled, (f_in, f_out, dep.spikes_in, dep.spikes_out)):
                for l, arr in enumerate(new):
                    acc[l] = np.concatenate([acc[l], arr])
    valid_all = np.concatenate([valid] * seeds)
    layers = _layer_stats(*pooled, valid_all)
    f_mean, d_mean = float(np.mean(f_acc)), float(np.mean(d_acc))
    checks = {
        "accuracy_drop": (100 * (f_mean - d_mean), max_accuracy_drop, "<="),
        "max_rate_difference": (max(r[k]["relative_difference"] for r in layers for k in ("input", "output")),
                                max_rate_diff, "<="),
        "min_agreement": (min(r[k]["agreement"] for r in layers for k in ("input", "output")), min_agreement, ">="),
    }
    failed = [name for name, (value, limit, op) in checks.items()
              if (value > limit if op == "<=" else value < limit)]
    f_energy = energy_estimates(netlist, pooled[0], pooled[1], valid_all, cost_models)
    d_energy = energy_estimates(netlist, pooled[2], pooled[3], valid_all, cost_models)
    per_model = lambda e: {k: m["total_pj"] for k, m in e["models"].items()}  # noqa: E731
    result = {
        "passed": not failed,
        "failed_checks": failed,
        "checks": {k: {"value": v, "limit": lim, "must_be": op} for k, (v, lim, op) in checks.items()},
        "samples": len(labels), "seed": first, "seeds": list(range(first, first + seeds)), "backend": backend,
        "task": task,
        "float": {"accuracy": f_mean, "accuracy_per_seed": f_acc, "energy_pj_per_inference": per_model(f_energy)},
        "deployed": {"accuracy": d_mean, "accuracy_per_seed": d_acc,
                     "energy_pj_per_inference": per_model(d_energy), "energy": d_energy,
                     "saturation": saturation, "saturation_events": int(sum(saturation.values()))},
        "non_spiking_energy_pj_per_inference": {k: m["non_spiking_total_pj"] for k, m in d_energy["models"].items()},
        "layers": layers,
    }
    return result, activity


def verify(ckpt: Checkpoint, netlist: Netlist, **kwargs) -> dict:
    """:func:`compare`'s result alone (see its keyword arguments)."""
    return compare(ckpt, netlist, **kwargs)[0]
