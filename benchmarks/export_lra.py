"""Export and inspect time and peak memory at the authors' LRA sizes.

Configurations (shared/reference/pspikessm.md §5.2, made causal and deployable):
  listops: 4 blocks, H=128, N=16, token input (calibrated on the embedded ListOps generator);
  image:   6 blocks, H=512, N=64, one real input per step (calibrated on sdigits sequences, a
           stand-in: LRA-Image data is not shipped; calibration cost grows with L, reported below).
Weights are random with realistic BatchNorm statistics (export cost does not depend on training).
Each configuration runs in its own process so that peak memory (max RSS) is its own.

Usage: python benchmarks/export_lra.py [--config image|listops|all] [--calib-samples 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "listops": dict(task="listops", model=dict(d_input=16, n_classes=10, input_kind="tokens", d_model=128,
                                               d_state=16, n_layers=4, prenorm=False, share_ab=True)),
    "image": dict(task="sdigits", model=dict(d_input=1, n_classes=10, d_model=512, d_state=64, n_layers=6,
                                             prenorm=False, share_ab=True)),
}
TARGET_S, TARGET_GB = 5.0, 2.0  # issue 7's targets for the Image size


def run_one(name: str, calib_samples: int) -> dict:
    import torch

    from pspike_neuro.export.build import build_netlist
    from pspike_neuro.export.checkpoint import load_checkpoint, save_checkpoint
    from pspike_neuro.export.hdf5 import read_netlist, write_netlist
    from pspike_neuro.export.inspect import describe
    from pspike_neuro.models import ModelConfig, PSpikeSSM
    from pspike_neuro.quant.quantize import QuantConfig

    spec = CONFIGS[name]
    torch.manual_seed(0)
    model = PSpikeSSM(ModelConfig(**spec["model"])).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_var.uniform_(0.5, 2.0)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt_path, net_path = Path(tmp) / "model.pt", Path(tmp) / "model.net"
        save_checkpoint(ckpt_path, model, task=spec["task"])
        start = time.perf_counter()
        ckpt = load_checkpoint(ckpt_path)
        netlist, report = build_netlist(ckpt, QuantConfig(calib_samples=calib_samples))
        write_netlist(netlist, net_path)
        export_s = time.perf_counter() - start
        start = time.perf_counter()
        info = describe(read_netlist(net_path))
        inspect_s = time.perf_counter() - start
        size = net_path.stat().st_size
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"config": name, "export_s": export_s, "calibration_s": report["export_time_s"],
            "inspect_s": inspect_s, "peak_rss_gb": peak_gb, "file_mb": size / 2**20,
            "synapses": info["nonzero_synapses"], "cores": info["cores"], "calib_samples": calib_samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="all", choices=[*CONFIGS, "all"])
    parser.add_argument("--calib-samples", type=int, default=64)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.config, args.calib_samples)))
        return
    names = list(CONFIGS) if args.config == "all" else [args.config]
    results = []
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--child", "--config", name,
                              "--calib-samples", str(args.calib_samples)], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"{r['config']:8s} export {r['export_s']:6.2f} s (calibration on {r['calib_samples']} samples incl.), "
              f"inspect {r['inspect_s']:5.2f} s, peak RSS {r['peak_rss_gb']:.2f} GB, file {r['file_mb']:.1f} MB, "
              f"{r['synapses']} synapses, {r['cores']} cores")
        if r["config"] == "image":
            print(f"         vs target: time {r['export_s'] / TARGET_S:.2f}x of {TARGET_S:.0f} s, "
                  f"memory {r['peak_rss_gb'] / TARGET_GB:.2f}x of {TARGET_GB:.0f} GB")


if __name__ == "__main__":
    main()
