"""Simulation throughput of one netlist in both backends, and Lava's time per step vs its floor.

Runs the same netlist on the same samples with the reference simulator and with Lava (fixed_pt),
checks that the two give identical predictions, and prints samples x steps per second for each,
their ratio (target: reference >= 100x Lava) and Lava's time per step against its floor of about
0.3 ms per process per step (shared/reference/lava.md §4, measured with Lava 0.10 on 2 cores).

Usage: python benchmarks/sim_speed.py NETLIST [--lava-samples 4] [--ref-samples 360]
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
    parser.add_argument("--lava-samples", type=int, default=4)
    parser.add_argument("--ref-samples", type=int, default=360)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from pspike_neuro.export.build import as_layers
    from pspike_neuro.export.hdf5 import read_netlist
    from pspike_neuro.sim.lava_backend import run_lava
    from pspike_neuro.sim.reference import simulate
    from pspike_neuro.sim.run import load_inputs

    with tempfile.TemporaryDirectory() as tmp:
        net = read_netlist(netlist_path(args.netlist, Path(tmp)))
    _, x0, _, lengths = load_inputs(net, None, max(args.ref_samples, args.lava_samples))
    steps = x0.shape[1]
    seed = int(net.meta["seed"])

    start = time.perf_counter()
    ref = simulate(as_layers(net), x0[: args.ref_samples], seed=seed)
    ref_s = time.perf_counter() - start
    start = time.perf_counter()
    lava = run_lava(net, x0[: args.lava_samples], np.arange(args.lava_samples), seed)
    lava_s = time.perf_counter() - start
    same = bool(np.array_equal(lava.logits, ref.logits[: args.lava_samples]))

    n_proc = 3 * len(net.blocks()) + 3  # neurons, mixers, fuses + source, readout synapse, integrator
    lava_steps = args.lava_samples * (steps + int(net.meta["latency_steps"]))
    result = {
        "samples_x_steps_per_s": {"reference": args.ref_samples * steps / ref_s, "lava": args.lava_samples * steps / lava_s},
        "lava_processes": n_proc,
        "lava_s_per_step": lava_s / lava_steps,
        "lava_floor_s_per_step": n_proc * LAVA_FLOOR_S_PER_PROCESS_STEP,
        "identical_results": same,
        "samples": {"reference": args.ref_samples, "lava": args.lava_samples},
    }
    result["ratio_reference_over_lava"] = (result["samples_x_steps_per_s"]["reference"]
                                          / result["samples_x_steps_per_s"]["lava"])
    result["lava_step_over_floor"] = result["lava_s_per_step"] / result["lava_floor_s_per_step"]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    r = result["samples_x_steps_per_s"]
    print(f"reference: {r['reference']:10.0f} samples x steps / s ({args.ref_samples} samples)")
    print(f"lava:      {r['lava']:10.1f} samples x steps / s ({args.lava_samples} samples, fixed_pt, "
          f"build and compile included)")
    print(f"ratio reference / lava = {result['ratio_reference_over_lava']:.0f}x (target >= 100x); "
          f"identical results: {same}")
    print(f"lava time per step {1000 * result['lava_s_per_step']:.2f} ms with {n_proc} processes; floor "
          f"{1000 * result['lava_floor_s_per_step']:.2f} ms -> {result['lava_step_over_floor']:.2f}x the floor "
          f"(target <= 1.5x)")


if __name__ == "__main__":
    main()
