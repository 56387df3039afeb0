"""Simulation throughput of one netlist in both backends, and Lava's time per step vs its floor.

Runs the same netlist on the same samples with the reference simulator and with Lava (fixed_pt),
checks that the two give identical logits and spikes, and prints samples x steps per second for
each, their ratio (target: reference >= 100x Lava) and Lava's time per Lava step against its floor
of about 0.3 ms per process per step (shared/reference/lava.md §4, measured with Lava 0.10 on 2
cores; target <= 1.5x). Lava runs all its samples in one network (build and compile included in
its time); a second, smaller Lava run gives the marginal cost of a step without the fixed costs.
The reference is timed after one warm-up call (which loads or compiles its numba kernels; that
time is printed too), median of --repeats runs.

Usage: python benchmarks/sim_speed.py [NETLIST] [--lava-samples 64] [--ref-samples 360] [--quick]
With no NETLIST it trains nothing: it exports runs/sdigits/model.pt if present, else a random
small model (sizes as the sdigits default).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from pspike_neuro.sim import lava_backend  # noqa: F401  (Lava must set its start method first)

LAVA_FLOOR_S_PER_PROCESS_STEP = 0.3e-3


def netlist_path(arg: str | None, tmp: Path) -> Path:
    if arg:
        return Path(arg)
    from pspike_neuro.export.build import build_netlist
    from pspike_neuro.export.checkpoint import load_checkpoint, save_checkpoint
    from pspike_neuro.export.hdf5 import write_netlist
    from pspike_neuro.models import ModelConfig, PSpikeSSM
    from pspike_neuro.quant.quantize import QuantConfig

    ckpt_path = Path("runs/sdigits/model.pt")
    if not ckpt_path.exists():
        ckpt_path = tmp / "model.pt"
        save_checkpoint(ckpt_path, PSpikeSSM(ModelConfig()).eval(), task="sdigits")
    net, _ = build_netlist(load_checkpoint(ckpt_path), QuantConfig(calib_samples=64))
    write_netlist(net, tmp / "model.net")
    return tmp / "model.net"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("netlist", nargs="?")
    parser.add_argument("--lava-samples", type=int, default=64)
    parser.add_argument("--ref-samples", type=int, default=360)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="16 Lava samples, one reference repeat")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.lava_samples, args.repeats = min(args.lava_samples, 16), 1
    from pspike_neuro.export.hdf5 import read_netlist
    from pspike_neuro.sim.lava_backend import run_lava
    from pspike_neuro.sim.reference import simulate
    from pspike_neuro.sim.run import load_inputs

    with tempfile.TemporaryDirectory() as tmp:
        net = read_netlist(netlist_path(args.netlist, Path(tmp)))
    _, x0, _, lengths = load_inputs(net, None, max(args.ref_samples, args.lava_samples))
    steps = x0.shape[1]
    seed = int(net.meta["seed"])

    from pspike_neuro.nodes import ssm_neuron

    layers, ref_x = net, x0[: args.ref_samples]
    start = time.perf_counter()
    ref = simulate(layers, ref_x, seed=seed)
    warmup_s = time.perf_counter() - start
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        simulate(layers, ref_x, seed=seed)
        times.append(time.perf_counter() - start)
    ref_s = float(np.median(times))

    # Lava steps per sample: back to back (one idle step between samples only where the graph has loops)
    period = steps + (1 if net.schedule().back else 0)
    small = max(1, args.lava_samples // 8)
    lava_runs = {}
    for n in sorted({small, args.lava_samples}):
        start = time.perf_counter()
        lava = run_lava(net, x0[:n], np.arange(n), seed, samples_per_network=n)
        lava_runs[n] = time.perf_counter() - start
    lava_s = lava_runs[args.lava_samples]
    n = args.lava_samples
    same = bool(np.array_equal(lava.logits, ref.logits[:n])
                and all(np.array_equal(a, b[:n]) for a, b in zip(lava.spikes_out, ref.spikes_out))
                and all(np.array_equal(a, b[:n]) for a, b in zip(lava.spikes_in, ref.spikes_in)))

    n_proc = len(net.nodes)  # one Lava process per node: source, neurons, mixers, fuses, readout synapse, integrator
    lava_steps = args.lava_samples * period + int(net.meta["latency_steps"]) + 1
    marginal = None
    if small != args.lava_samples:
        marginal = (lava_s - lava_runs[small]) / ((args.lava_samples - small) * period)
    result = {
        "samples_x_steps_per_s": {"reference": args.ref_samples * steps / ref_s, "lava": args.lava_samples * steps / lava_s},
        "reference_s": times, "reference_first_call_s": warmup_s, "lava_s": lava_runs,
        "lava_processes": n_proc,
        "lava_steps": lava_steps,
        "lava_s_per_step": lava_s / lava_steps,
        "lava_marginal_s_per_step": marginal,
        "lava_floor_s_per_step": n_proc * LAVA_FLOOR_S_PER_PROCESS_STEP,
        "identical_results": same,
        "samples": {"reference": args.ref_samples, "lava": args.lava_samples},
        "kernels": ssm_neuron.USE_KERNELS,
    }
    result["ratio_reference_over_lava"] = (result["samples_x_steps_per_s"]["reference"]
                                          / result["samples_x_steps_per_s"]["lava"])
    result["lava_step_over_floor"] = result["lava_s_per_step"] / result["lava_floor_s_per_step"]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    r = result["samples_x_steps_per_s"]
    print(f"reference: {r['reference']:10.0f} samples x steps / s ({args.ref_samples} samples, median of "
          f"{args.repeats}; first call {warmup_s:.2f} s; numba kernels: {ssm_neuron.USE_KERNELS})")
    print(f"lava:      {r['lava']:10.1f} samples x steps / s ({args.lava_samples} samples in one network, "
          f"fixed_pt, build and compile included: {lava_s:.2f} s)")
    print(f"ratio reference / lava = {result['ratio_reference_over_lava']:.0f}x (target >= 100x: "
          f"{result['ratio_reference_over_lava'] / 100:.2f} of target); identical logits and spikes: {same}")
    print(f"lava time per step {1000 * result['lava_s_per_step']:.2f} ms ({lava_steps} steps, {n_proc} processes); "
          f"floor {1000 * result['lava_floor_s_per_step']:.2f} ms -> {result['lava_step_over_floor']:.2f}x the floor "
          f"(target <= 1.5x)")
    if marginal is not None:
        print(f"lava marginal time per step (runs of {small} and {args.lava_samples} samples): {1000 * marginal:.2f} ms "
              f"= {marginal / result['lava_floor_s_per_step']:.2f}x the floor")


if __name__ == "__main__":
    main()
