"""Training time per epoch: stochastic P-SpikeSSM vs the LIF baseline at the same size.

The paper (Bal & Sengupta, ICLR 2025) reports 1.5 min vs 6.1 min per psMNIST run step for
P-SpikeSSM vs LIF-based spike generation (a ratio of about 4.1). Here both samplers run in the
same network (the authors' psMNIST preset by default: 2 layers, H=400, N=64), on the same random
pixel batches of length L; time per training step (forward, backward, AdamW) is measured after a
warm-up step and scaled to an epoch of 60,000 samples. Several lengths run one after the other,
each with its own batch size (a smaller batch keeps L=2048 affordable on a CPU); the two samplers
are always measured side by side at the same L and batch, so each ratio is like for like.

Usage: python benchmarks/train_speed.py [--seq-len 784 2048] [--batch-size 64 16] [--steps 3]
                                        [--device cpu] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from pspike_neuro.models import ModelConfig, PSpikeSSM, preset
from pspike_neuro.training import TrainConfig, build_optimizer, resolve_device


def time_per_step(sampler: str, args, device, seq_len: int, batch_size: int) -> list[float]:
    torch.manual_seed(0)
    size = dict(preset(args.preset).model)
    if args.d_model:
        size["d_model"] = args.d_model
    cfg = ModelConfig(d_input=1, n_classes=10, sampler=sampler, **size)
    model = PSpikeSSM(cfg).to(device).train()
    optimizer = build_optimizer(model, TrainConfig(lr=5e-4))
    x = torch.rand(batch_size, seq_len, 1, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    times = []
    for step in range(args.steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step:  # step 0 is warm-up
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, nargs="+", default=[784])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64],
                        help="one per --seq-len (or one for all)")
    parser.add_argument("--preset", default="psmnist")
    parser.add_argument("--d-model", type=int, help="override the preset's H (smaller = faster run)")
    parser.add_argument("--epoch-samples", type=int, default=60000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="H=64, batch 8, L=784 and 2048, one timed step")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.d_model, args.batch_size, args.steps = args.d_model or 64, [8], 1
        if args.seq_len == [784]:
            args.seq_len = [784, 2048]
    if len(args.batch_size) not in (1, len(args.seq_len)):
        parser.error("give one --batch-size, or one per --seq-len")
    batches = args.batch_size * len(args.seq_len) if len(args.batch_size) == 1 else args.batch_size
    device = resolve_device(args.device)
    runs = []
    for seq_len, batch_size in zip(args.seq_len, batches):
        steps_per_epoch = -(-args.epoch_samples // batch_size)
        result = {"seq_len": seq_len, "batch_size": batch_size, "preset": args.preset,
                  "d_model": args.d_model or preset(args.preset).model["d_model"], "device": str(device),
                  "torch_threads": torch.get_num_threads(), "steps": args.steps}
        for sampler in ("stochastic", "lif"):
            times = time_per_step(sampler, args, device, seq_len, batch_size)
            median = statistics.median(times)
            result[sampler] = {"step_s": times, "median_step_s": median,
                               "epoch_min": median * steps_per_epoch / 60}
        result["ratio_lif_over_stochastic"] = result["lif"]["median_step_s"] / result["stochastic"]["median_step_s"]
        result["paper_ratio"] = 6.1 / 1.5
        runs.append(result)
        if not args.json:
            print(f"L={seq_len} batch={batch_size} H={result['d_model']} on {device} "
                  f"({result['torch_threads']} threads), median of {args.steps} steps after a warm-up step")
            for sampler in ("stochastic", "lif"):
                r = result[sampler]
                print(f"  {sampler:10s} {r['median_step_s'] * 1000:9.1f} ms/step  -> {r['epoch_min']:7.1f} min/epoch "
                      f"({args.epoch_samples} samples)")
            ratio = result["ratio_lif_over_stochastic"]
            print(f"  LIF / stochastic = {ratio:.2f}x (paper: 6.1 / 1.5 min = {result['paper_ratio']:.2f}x; "
                  f"target >= 4x: {ratio / 4:.2f} of target)", flush=True)
    if args.json:
        print(json.dumps(runs if len(runs) > 1 else runs[0], indent=2))


if __name__ == "__main__":
    main()
