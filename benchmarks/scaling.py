"""1 process vs K ranks under torchrun, side by side: simulate on the whole sdigits test set (both
backends) and training steps of the psMNIST preset.

Three configurations, each run as a fresh command, alternating so that all meet the same load on a
shared machine (the load average is recorded before and after every run): one process with every
core (torch's and numba's default threads), one process on one thread, and K ranks under torchrun
(one torch thread each, torchrun's default; cores / K numba threads each).

- simulate: ``pspike simulate`` of the sdigits-sized netlist (4 blocks, H=128, N=32: runs/sdigits/model.pt
  when present, else random weights with realistic BatchNorm statistics) on all 360 test samples,
  one process vs ``torchrun --nproc-per-node K -m pspike_neuro simulate``. Times: the whole command
  (start-up included) and
  the simulation as the command measures it (rank 0: from its shard's start to the gathered run).
  The activity files of both are compared: they must be identical.
- training: the psMNIST preset (2 blocks, H=400, N=64, L=784, global batch 64) on random pixel
  sequences, the training step of ``pspike train`` (DistributedDataParallel, synchronized BatchNorm,
  counter-based noise; forward, backward, AdamW); seconds per step after a warm-up step.

Usage: python benchmarks/scaling.py [--ranks 2] [--repeats 2] [--train-steps 2] [--no-lava] [--quick] [--json]
(the worker mode ``--train-worker`` is what torchrun starts on every rank).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: (ranks, threads per rank): one process with every core, one process on one core, K ranks of one
#: torch thread (torchrun's default) and cores / K numba threads each
def configs(k: int) -> list[tuple[int, int | None]]:
    return [(1, None), (1, 1), (k, 1)]


def launch(ranks: int, threads: int | None, module_or_script: list[str], args: list[str]) -> tuple[float, str, list]:
    """Run one command (through torchrun for ranks > 1); its wall time, stdout and the load averages around it."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env.pop(name, None)
        if ranks == 1 and threads:
            env[name] = str(threads)
    if ranks == 1:
        cmd = [sys.executable, *module_or_script, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "--master-port",
               str(free_port()), "--monitor-interval", "0.2", *module_or_script, *args]
    load = [os.getloadavg()[0]]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    load.append(os.getloadavg()[0])
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout, load


def sdigits_netlist(tmp: Path) -> Path:
    import torch

    from pspike_neuro.export.build import build_netlist
    from pspike_neuro.export.checkpoint import load_checkpoint, save_checkpoint
    from pspike_neuro.export.hdf5 import write_netlist
    from pspike_neuro.models import ModelConfig, PSpikeSSM
    from pspike_neuro.quant.quantize import QuantConfig

    ckpt = ROOT / "runs" / "sdigits" / "model.pt"
    if not ckpt.exists():
        torch.manual_seed(0)
        model = PSpikeSSM(ModelConfig(d_model=128, d_state=32, n_layers=4))
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm1d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
        ckpt = tmp / "model.pt"
        save_checkpoint(ckpt, model.eval(), task="sdigits")
    net, _ = build_netlist(load_checkpoint(ckpt), QuantConfig(calib_samples=64))
    write_netlist(net, tmp / "model.net")
    return tmp / "model.net"


def simulate_run(net: Path, ranks: int, threads: int | None, backend: str, out: Path) -> dict:
    wall, stdout, load = launch(ranks, threads, ["-m", "pspike_neuro"],
                                ["simulate", str(net), "--backend", backend, "--samples", "360", "--json", "--out", str(out)])
    summary = json.loads(stdout)
    return {"ranks": ranks, "threads": threads, "backend": backend, "command_s": wall, "simulate_s": summary["wall_s"],
            "accuracy": summary["accuracy"], "load": load}


def train_run(ranks: int, threads: int | None, steps: int, batch: int, d_model: int | None) -> dict:
    args = ["--train-worker", "--train-steps", str(steps), "--batch-size", str(batch)]
    if d_model:
        args += ["--d-model", str(d_model)]
    wall, stdout, load = launch(ranks, threads, [str(Path(__file__).resolve())], args)
    result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, "threads": threads, "command_s": wall, "load": load}


def train_worker(args) -> None:
    """Under torchrun (or alone): time ``--train-steps`` steps of the psMNIST preset after a warm-up step."""
    import torch

    from pspike_neuro import distributed, training
    from pspike_neuro.models import ModelConfig, PSpikeSSM, preset

    ranks = distributed.start()
    chosen = preset("psmnist")
    size = {**chosen.model, **({"d_model": args.d_model} if args.d_model else {})}
    torch.manual_seed(0)
    model = PSpikeSSM(ModelConfig(d_input=1, n_classes=10, **size)).train()
    optimizer = training.build_optimizer(model, training.TrainConfig(**chosen.train))
    net = training.replicate(model, torch.device("cpu"))
    n = args.batch_size * (args.train_steps + 1)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, 784, 1, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    sampler = distributed.GlobalBatchSampler(n, args.batch_size, 0, ranks.rank, ranks.world)
    times = []
    for step, idx in enumerate(sampler):
        distributed.barrier()
        start = time.perf_counter()
        logits = net(x[idx], noise=training.SampleNoise(0, idx))
        loss = training.batch_loss(logits, y[idx], ranks.world / sampler.global_size(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        distributed.barrier()
        times.append(time.perf_counter() - start)
    if ranks.main:
        print(json.dumps({"ranks": ranks.world, "torch_threads": torch.get_num_threads(), "d_model": size["d_model"],
                          "batch": args.batch_size, "step_s": times[1:], "warmup_s": times[0]}))


def _same_activity(a: Path, b: Path) -> bool:
    x, y = np.load(a / "activity.npz"), np.load(b / "activity.npz")
    return x.files == y.files and all(np.array_equal(x[k], y[k]) for k in x.files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2, help="K, compared with 1 (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each configuration")
    parser.add_argument("--train-steps", type=int, default=2, help="timed training steps per run")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch of training (default 64)")
    parser.add_argument("--d-model", type=int, help="override the psMNIST preset's H=400 (smaller = faster)")
    parser.add_argument("--no-lava", action="store_true", help="skip the Lava simulation (about a minute per run)")
    parser.add_argument("--quick", action="store_true", help="one repeat, H=64, one timed step, no Lava")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--train-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_worker:
        return train_worker(args)
    if args.quick:
        args.repeats, args.d_model, args.train_steps, args.no_lava = 1, args.d_model or 64, 1, True
    runs = configs(args.ranks)
    label = lambda r: f"{r['ranks']} x {r['threads'] or 'all'}"  # noqa: E731
    rows = []
    with tempfile.TemporaryDirectory(prefix="pspike-scaling-") as tmp_name:
        tmp = Path(tmp_name)
        net = sdigits_netlist(tmp)
        for backend in ("reference",) + (() if args.no_lava else ("lava",)):
            for repeat in range(args.repeats if backend == "reference" else 1):
                for k, threads in runs:
                    out = tmp / f"{backend}-{k}-{threads}-{repeat}"
                    row = simulate_run(net, k, threads, backend, out)
                    row["identical_to_first"] = _same_activity(tmp / f"{backend}-1-None-{repeat}", out)
                    rows.append({"what": "simulate " + backend, **row})
                    print(f"simulate {backend:9s} ranks x threads {label(row)}: command {row['command_s']:.1f} s, "
                          f"simulation {row['simulate_s']:.2f} s, identical {row['identical_to_first']}, load "
                          f"{row['load'][0]:.1f}->{row['load'][1]:.1f}", file=sys.stderr)
        for _ in range(args.repeats):
            for k, threads in runs:
                row = train_run(k, threads, args.train_steps, args.batch_size, args.d_model)
                rows.append({"what": "train", **row})
                print(f"train psmnist ranks x threads {label(row)}: {np.median(row['step_s']):.2f} s/step, load "
                      f"{row['load'][0]:.1f}->{row['load'][1]:.1f}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| what | ranks x threads | median | runs | load average |")
    print("|---|---|---|---|---|")
    for what in dict.fromkeys(r["what"] for r in rows):
        for k, threads in runs:
            sel = [r for r in rows if r["what"] == what and (r["ranks"], r["threads"]) == (k, threads)]
            key = "step_s" if what == "train" else "simulate_s"
            values = [v for r in sel for v in (r[key] if isinstance(r[key], list) else [r[key]])]
            commands = [r["command_s"] for r in sel]
            loads = [x for r in sel for x in r["load"]]
            unit = "s/step" if what == "train" else f"s (command {np.median(commands):.1f} s)"
            print(f"| {what} | {label(sel[0])} | {np.median(values):.2f} {unit} | {len(sel)} | "
                  f"{min(loads):.1f}-{max(loads):.1f} |")

if __name__ == "__main__":
    main()
