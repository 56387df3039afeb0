"""Float-model inference throughput (samples / s) on CPU, and on a GPU with --device cuda.

Stochastic inference as the package runs it (eval mode, one forward pass per seed, spikes drawn
by the model's own sampler), random inputs, no gradient. Configurations: the sdigits default
(``small``: 4 x 128, N=32, L=64), the authors' psMNIST network (2 x 400, N=64, L=784) and the
LRA-Image size (6 x 512, N=64, L=1024, one input per step). Each is timed over --iters batches
after --warmup batches (CUDA synchronized around each timed region); the median batch time gives
samples/s and samples x steps/s. Issue 7 sets no target here: the figures are reported as is,
with the device named.

Usage: python benchmarks/infer_speed.py [--device cpu|cuda] [--config small|psmnist|lra-image|all]
                                        [--batch-size 64] [--iters 5] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from pspike_neuro.models import ModelConfig, PSpikeSSM, preset
from pspike_neuro.training import resolve_device

CONFIGS = {
    "small": dict(preset="small", seq_len=64, d_input=1),
    "psmnist": dict(preset="psmnist", seq_len=784, d_input=1),
    "lra-image": dict(preset="lra-image", seq_len=1024, d_input=1),
}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} torch threads"


def measure(name: str, device: torch.device, batch: int, iters: int, warmup: int, dtype: torch.dtype) -> dict:
    spec = CONFIGS[name]
    torch.manual_seed(0)
    cfg = ModelConfig(d_input=spec["d_input"], n_classes=10, **preset(spec["preset"]).model)
    model = PSpikeSSM(cfg).to(device=device, dtype=dtype).eval()
    x = torch.rand(batch, spec["seq_len"], spec["d_input"], device=device, dtype=dtype)
    times = []
    with torch.no_grad():
        for i in range(warmup + iters):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"config": name, "d_model": cfg.d_model, "d_state": cfg.d_state, "layers": cfg.n_layers,
            "seq_len": spec["seq_len"], "batch": batch, "batch_s": times, "median_batch_s": median,
            "samples_per_s": batch / median, "samples_x_steps_per_s": batch * spec["seq_len"] / median,
            "peak_gpu_mem_gb": (torch.cuda.max_memory_allocated(device) / 2**30) if device.type == "cuda" else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto")
    parser.add_argument("--config", default="all", choices=[*CONFIGS, "all"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--quick", action="store_true", help="batch 16, 2 timed batches")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.batch_size, args.iters = min(args.batch_size, 16), 2
    device = resolve_device(args.device)
    dtype = getattr(torch, args.dtype)
    names = list(CONFIGS) if args.config == "all" else [args.config]
    results = [measure(n, device, args.batch_size, args.iters, args.warmup, dtype) for n in names]
    info = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
            "dtype": args.dtype}
    if args.json:
        print(json.dumps({"info": info, "results": results}, indent=2))
        return
    print(f"float-model inference on {info['device_name']} ({device}), torch {torch.__version__}, {args.dtype}; "
          f"median of {args.iters} batches (no target in issue 7: figures only)")
    for r in results:
        mem = f", peak GPU memory {r['peak_gpu_mem_gb']:.2f} GB" if r["peak_gpu_mem_gb"] is not None else ""
        print(f"  {r['config']:9s} {r['layers']} x H={r['d_model']:3d} N={r['d_state']:2d} L={r['seq_len']:4d} "
              f"batch {r['batch']:3d}: {r['median_batch_s'] * 1000:9.1f} ms/batch -> {r['samples_per_s']:9.1f} samples/s "
              f"({r['samples_x_steps_per_s']:,.0f} samples x steps/s){mem}")


if __name__ == "__main__":
    main()
