"""How the reference simulator's cost grows with sequence length L, neurons H, state size N and batch.

Random-weight P-SpikeSSM networks (realistic BatchNorm statistics, calibrated on sdigits like any
export) are exported once per (H, N); random input sequences of any length L go through the
netlist's encoder. One factor is swept at a time around a base point, the others held; each time
is the fastest of --repeats runs after a warm-up call (the fastest, because other jobs on a shared
machine only ever add time). A power law ``time = c * size^k`` is fitted on log-log axes for each
factor: k = 1 means linear growth. The work per layer is B*L*H*N/2 complex mode updates (SSM),
B*L*H^2 multiply-adds (the mixer, BLAS) and B*L*H of per-neuron work (random numbers, samplers,
ClampFuse), so the cost model ``time = B*L*(a*H + b*H*N + c*H^2)`` is also fitted (non-negative
least squares over every point): linear in L and B, linear in H*N plus the mixer's H^2 term and a
per-neuron term, which is why the N slope is below 1 at small N.

Writes a table (stdout), a JSON (--json) and a log-log plot with the fitted slopes
(default docs/figures/sim_scaling.png).

Usage: python benchmarks/sim_scaling.py [--quick] [--repeats 3] [--plot PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

BASE = dict(L=256, H=128, N=32, B=32)
SWEEPS = {
    "L": [64, 128, 256, 512, 1024, 2048],
    "H": [32, 64, 128, 256, 512],
    "N": [8, 16, 32, 64, 128],
    "B": [8, 16, 32, 64, 128],
}
QUICK_SWEEPS = {"L": [64, 256, 1024], "H": [32, 128, 512], "N": [8, 32, 128], "B": [8, 32, 128]}
LAYERS = 2


def make_netlist(h: int, n: int, tmp: Path, cache: dict):
    """A calibrated netlist of a random 2-block model of width ``h`` and state size ``n``."""
    if (h, n) in cache:
        return cache[h, n]
    import torch

    from pspike_neuro.export.build import build_netlist
    from pspike_neuro.export.checkpoint import load_checkpoint, save_checkpoint
    from pspike_neuro.models import ModelConfig, PSpikeSSM
    from pspike_neuro.quant.quantize import QuantConfig

    torch.manual_seed(0)
    model = PSpikeSSM(ModelConfig(d_model=h, d_state=n, n_layers=LAYERS))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    path = tmp / f"h{h}_n{n}.pt"
    save_checkpoint(path, model.eval(), task="sdigits")
    net, _ = build_netlist(load_checkpoint(path), QuantConfig(calib_samples=16))
    cache[h, n] = net
    return net


def time_point(net, length: int, batch: int, repeats: int) -> float:
    import torch

    from pspike_neuro.sim.reference import simulate

    gen = torch.Generator().manual_seed(1)
    x0 = np.asarray(torch.rand(batch, length, 1, generator=gen))
    layers = net
    simulate(layers, x0[: min(batch, 2)], seed=0)  # warm-up (numba kernels load)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        simulate(layers, x0, seed=0)
        times.append(time.perf_counter() - start)
    return min(times)


def fit_cost_model(points: list[dict]) -> dict:
    """Non-negative least squares of time = B*L*(a*H + b*H*N + c*H^2), relative errors weighted equally."""
    from scipy.optimize import nnls

    feats = np.array([[p["B"] * p["L"] * p["H"], p["B"] * p["L"] * p["H"] * p["N"], p["B"] * p["L"] * p["H"] ** 2]
                      for p in points], float)
    t = np.array([p["seconds"] for p in points])
    coef, _ = nnls(feats / t[:, None], np.ones(len(t)))
    pred = feats @ coef
    base = np.array([BASE["B"] * BASE["L"] * BASE["H"], BASE["B"] * BASE["L"] * BASE["H"] * BASE["N"],
                     BASE["B"] * BASE["L"] * BASE["H"] ** 2]) * coef
    return {"ns_per_neuron_step": coef[0] * 1e9, "ns_per_neuron_state_step": coef[1] * 1e9,
            "ns_per_synapse_step": coef[2] * 1e9, "base_shares": (base / base.sum()).tolist(),
            "max_rel_error": float(np.max(np.abs(pred - t) / t)), "median_rel_error": float(np.median(np.abs(pred - t) / t))}


def fit_slope(sizes, times) -> tuple[float, float]:
    k, log_c = np.polyfit(np.log(sizes), np.log(times), 1)
    return float(k), float(np.exp(log_c))


def plot(results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), sharey=False)
    labels = {"L": "sequence length L", "H": "neurons H (= H·N / N)", "N": "state size N", "B": "batch"}
    for ax, (factor, r) in zip(axes, results.items()):
        sizes, times = np.array(r["sizes"]), np.array(r["seconds"])
        ax.loglog(sizes, times, "o", color="C0", label="measured")
        fit = r["fit_c"] * sizes ** r["slope"]
        ax.loglog(sizes, fit, "-", color="C1", label=f"fit: slope {r['slope']:.2f}")
        ax.loglog(sizes, times[0] * sizes / sizes[0], ":", color="grey", label="slope 1")
        ax.set_xlabel(labels[factor])
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(s) for s in sizes], fontsize=7)
        ax.minorticks_off()
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("reference simulation time (s)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three points per factor, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plot", default="docs/figures/sim_scaling.png", help="PNG path ('' for none)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sweeps = QUICK_SWEEPS if args.quick else SWEEPS
    repeats = 1 if args.quick else args.repeats
    from pspike_neuro.sim import reference

    results = {}
    points = []
    cache: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for factor, sizes in sweeps.items():
            seconds = []
            for size in sizes:
                point = dict(BASE, **{factor: size})
                net = make_netlist(point["H"], point["N"], Path(tmp), cache)
                seconds.append(time_point(net, point["L"], point["B"], repeats))
                points.append(dict(point, seconds=seconds[-1]))
                if not args.json:
                    print(f"  {factor}={size:5d} (L={point['L']}, H={point['H']}, N={point['N']}, B={point['B']}): "
                          f"{seconds[-1]:.3f} s", flush=True)
            k, c = fit_slope(sizes, seconds)
            results[factor] = {"sizes": sizes, "seconds": seconds, "slope": k, "fit_c": c}
    model = fit_cost_model(points)
    meta = {"base": BASE, "layers": LAYERS, "repeats": repeats, "numba_kernels": reference.USE_KERNELS,
            "cost_model": model}
    if args.plot:
        plot(results, Path(args.plot), f"reference simulator, {LAYERS} blocks, base L={BASE['L']} H={BASE['H']} "
                                       f"N={BASE['N']} batch={BASE['B']}; one factor varied at a time")
        meta["plot"] = args.plot
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    print(f"\nreference simulator, {LAYERS} blocks, base {BASE}, fastest of {repeats}:")
    print(f"{'factor':6s} {'sizes':32s} {'seconds':44s} slope (target: 1 for L and H*N)")
    for factor, r in results.items():
        sizes = " ".join(str(s) for s in r["sizes"])
        secs = " ".join(f"{t:.3f}" for t in r["seconds"])
        print(f"{factor:6s} {sizes:32s} {secs:44s} {r['slope']:.2f}")
    per = {f: results[f]["seconds"][-1] / results[f]["seconds"][0] / (results[f]["sizes"][-1] / results[f]["sizes"][0])
           for f in results}
    print("time ratio / size ratio over each sweep (1 = linear): "
          + ", ".join(f"{f} {v:.2f}" for f, v in per.items()))
    print(f"cost model time = B*L*(a*H + b*H*N + c*H^2) per {LAYERS} blocks: a = {model['ns_per_neuron_step']:.2f} ns, "
          f"b = {model['ns_per_neuron_state_step']:.3f} ns, c = {model['ns_per_synapse_step']:.4f} ns; shares at the base "
          f"point {', '.join(f'{x:.0%}' for x in model['base_shares'])}; relative error median "
          f"{model['median_rel_error']:.0%}, max {model['max_rel_error']:.0%}")
    if args.plot:
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
