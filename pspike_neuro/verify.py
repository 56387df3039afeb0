"""``pspike verify``: the float model and the deployed network on the same inputs and random numbers.

The float model samples with the counter-based generator (``CounterNoise``, the netlist's seed and
``prob_bits``), the deployed network with the same generator, so spikes can be compared one by one:
they differ only where quantization moved a probability across its random number.
"""

from __future__ import annotations

import numpy as np
import torch

from .energy.costs import COST_MODELS, energy_pj
from .energy.ops import count_ops, total
from .errors import UserError
from .export.checkpoint import Checkpoint
from .export.netlist import Netlist
from .sim.rng import CounterNoise
from .sim.run import load_inputs, run_backend


def float_spikes(ckpt: Checkpoint, x: torch.Tensor, lengths, seed: int, prob_bits: int):
    """Predictions and per-layer input/output spikes of the float model under common random numbers."""
    noise = CounterNoise(seed=seed, prob_bits=prob_bits)
    probe: dict = {}
    with torch.no_grad():
        logits = ckpt.model.double()(x.double() if x.is_floating_point() else x,
                                     None if lengths is None else torch.as_tensor(lengths),
                                     noise=lambda site, shape, dev, dt: noise(site, shape, dev, torch.float64),
                                     probe=probe)
    n_layers = ckpt.config.n_layers
    s_in = [probe[f"layer{l}.s_in"].numpy().astype(bool) for l in range(n_layers)]
    s_out = [probe[f"layer{l}.o"].numpy().astype(bool) for l in range(n_layers)]
    return logits.argmax(-1).numpy(), s_in, s_out


def _energy(netlist, s_in, s_out, steps) -> dict:
    ops = total(count_ops(netlist, s_in, s_out, steps))
    n = s_in[0].shape[0]
    return {name: energy_pj(ops, model)["total_pj"] / n for name, model in COST_MODELS.items()}


def verify(ckpt: Checkpoint, netlist: Netlist, *, backend: str, samples: int | None, seed: int | None,
           max_accuracy_drop: float, max_rate_diff: float, min_agreement: float, progress: bool = True) -> dict:
    if netlist.meta["source_sha256"] != ckpt.sha256:
        raise UserError(f"netlist was exported from a different checkpoint (sha256 {netlist.meta['source_sha256'][:12]}... "
                        f"vs {ckpt.sha256[:12]}... of {ckpt.path})")
    if backend == "lava" and samples is None:
        samples = 8
    task = netlist.meta["task"]
    _, x0, labels, lengths = load_inputs(netlist, task, samples)
    from .data import load_task

    x = load_task(task).test.x[: len(labels)]
    seed = int(netlist.meta["seed"]) if seed is None else seed
    prob_bits = int(netlist.nodes["neuron0"].prob_bits)
    f_pred, f_in, f_out = float_spikes(ckpt, x, lengths, seed, prob_bits)
    dep = run_backend(netlist, x0, seed, lengths, backend, "fixed", progress)
    steps = x0.shape[1] * len(labels) if lengths is None else int(np.sum(lengths))
    valid = np.ones(f_in[0].shape[:2], bool) if lengths is None else np.arange(x0.shape[1])[None] < lengths[:, None]
    layers = []
    for l in range(len(f_in)):
        rates = {}
        for key, f, d in (("input", f_in[l], dep.spikes_in[l]), ("output", f_out[l], dep.spikes_out[l])):
            f_rate, d_rate = float(f[valid].mean()), float(d[valid].mean())
            per_f, per_d = f[valid].sum(0), d[valid].sum(0)
            corr = float(np.corrcoef(per_f, per_d)[0, 1]) if per_f.std() > 0 and per_d.std() > 0 else 1.0
            rates[key] = {"float_rate": f_rate, "deployed_rate": d_rate,
                          "relative_difference": abs(d_rate - f_rate) / f_rate if f_rate else float(d_rate > 0),
                          "per_neuron_correlation": corr, "agreement": float((f[valid] == d[valid]).mean())}
        layers.append({"layer": l, **rates})
    f_acc, d_acc = float((f_pred == labels).mean()), float((dep.predictions == labels).mean())
    checks = {
        "accuracy_drop": (100 * (f_acc - d_acc), max_accuracy_drop, "<="),
        "max_rate_difference": (max(r[k]["relative_difference"] for r in layers for k in ("input", "output")),
                                max_rate_diff, "<="),
        "min_agreement": (min(r[k]["agreement"] for r in layers for k in ("input", "output")), min_agreement, ">="),
    }
    failed = [name for name, (value, limit, op) in checks.items()
              if (value > limit if op == "<=" else value < limit)]
    return {
        "passed": not failed,
        "failed_checks": failed,
        "checks": {k: {"value": v, "limit": lim, "must_be": op} for k, (v, lim, op) in checks.items()},
        "samples": len(labels), "seed": seed, "backend": backend, "task": task,
        "float": {"accuracy": f_acc, "energy_pj_per_inference": _energy(netlist, f_in, f_out, steps)},
        "deployed": {"accuracy": d_acc, "energy_pj_per_inference": _energy(netlist, dep.spikes_in, dep.spikes_out, steps),
                     "saturation": dep.saturation},
        "layers": layers,
    }
