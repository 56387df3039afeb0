"""Run every benchmark of issue 7, one after the other, each in its own process.

    python benchmarks/run_all.py            # the full runs behind docs/benchmarks.md (about 15 min on 2 cores)
    python benchmarks/run_all.py --quick    # small sizes, a couple of minutes: checks that all of them run
    python benchmarks/run_all.py --only sim_speed export_lra --device cuda

Each script also runs alone (``python benchmarks/<name>.py --help``). Every script prints its figures
and the ratio to its target; this runner prints them as they come and a summary of exit codes.
The machine may be shared: timings are wall-clock, so rerun a ratio that looks off.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def commands(quick: bool, device: str) -> dict[str, list[str]]:
    q = ["--quick"] if quick else []
    return {
        "sim_speed": ["sim_speed.py", *q],
        "sim_scaling": ["sim_scaling.py", *q] + (["--plot", ""] if quick else []),
        "train_speed": ["train_speed.py", *q] if quick else
                       ["train_speed.py", "--seq-len", "784", "2048", "--batch-size", "16", "16", "--steps", "2"],
        "export_lra": ["export_lra.py"] + (["--calib-samples", "16"] if quick else []),
        "infer_speed": ["infer_speed.py", "--device", device, *q],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; the quick scaling run writes no plot")
    parser.add_argument("--only", nargs="+", choices=list(commands(False, "cpu")), help="run only these")
    parser.add_argument("--device", default="cpu", help="device for infer_speed (cpu, cuda, auto)")
    args = parser.parse_args()
    todo = commands(args.quick, args.device)
    names = args.only or list(todo)
    status = {}
    for name in names:
        print(f"=== {name}: {' '.join(todo[name])}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / todo[name][0]), *todo[name][1:]], cwd=HERE.parent)
        status[name] = (rc, time.perf_counter() - start)
        print(f"=== {name}: exit {rc} after {status[name][1]:.0f} s\n", flush=True)
    print("summary: " + ", ".join(f"{n} {'ok' if rc == 0 else f'FAILED ({rc})'} ({s:.0f} s)"
                                  for n, (rc, s) in status.items()))
    sys.exit(1 if any(rc for rc, _ in status.values()) else 0)


if __name__ == "__main__":
    main()
