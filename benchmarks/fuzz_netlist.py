"""The long fuzz campaign of the netlist reader: many thousands of damaged files, two ways.

* plain: random multi-byte edits, zeroed ranges and spliced ranges of a netlist file; each must be
  refused by the integrity header (before libhdf5 parses a byte) or read back as the original;
* crafted: the same damage after the user block, then sealed again with a matching digest, so the
  file reaches libhdf5; the parse runs in an isolated child, so each must be one line or the
  original network, never a crash or a hang of this process.

Prints the outcome counts per kind and the time per file. ``make test`` runs a few hundred of each
(tests/robustness/test_fuzz_netlist_bytes.py); this runs as many as you ask:

    python benchmarks/fuzz_netlist.py                      # 10,000 plain and 1,000 crafted per kind
    python benchmarks/fuzz_netlist.py --plain 300 --crafted 30 --seed 5
    python benchmarks/fuzz_netlist.py --netlist runs/demo/model.net
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pspike_neuro import isolate  # noqa: E402
from pspike_neuro.errors import UserError  # noqa: E402
from pspike_neuro.export.hdf5 import USERBLOCK_BYTES, read_netlist, seal, write_netlist  # noqa: E402
from tests.robustness.test_fuzz_netlist_bytes import KINDS, mutate  # noqa: E402


def small_netlist(folder: Path) -> Path:
    """The robustness suite's netlist: the small random model of tests/conftest.py, exported."""
    from pspike_neuro.export.build import build_netlist
    from pspike_neuro.export.checkpoint import load_checkpoint, save_checkpoint
    from pspike_neuro.models import ModelConfig
    from pspike_neuro.quant.quantize import QuantConfig
    from tests.conftest import trained_like

    save_checkpoint(folder / "model.pt", trained_like(ModelConfig(d_model=8, d_state=4, n_layers=2)), task="sdigits")
    netlist, _ = build_netlist(load_checkpoint(folder / "model.pt"), QuantConfig(calib_samples=16))
    write_netlist(netlist, folder / "model.net")
    return folder / "model.net"


def campaign(source: Path, kind: str, count: int, crafted: bool, seed: int, folder: Path) -> Counter:
    raw = source.read_bytes()
    original = read_netlist(source).content_sha256()
    rng = np.random.default_rng(seed)
    path = folder / "case.net"
    outcomes: Counter = Counter()
    for _ in tqdm(range(count), desc=f"{'crafted' if crafted else 'plain'} {kind}", unit="file", leave=False):
        damaged = mutate(raw, kind, rng, lo=USERBLOCK_BYTES if crafted else 0)
        path.write_bytes(damaged)
        if crafted:
            seal(path)
        try:
            net = read_netlist(path)
        except UserError as exc:
            message = str(exc)
            if "\n" in message:
                outcomes["MULTI-LINE ERROR"] += 1
            elif "crashed its parser" in message:
                outcomes["refused: parser crashed (isolated)"] += 1
            elif "took longer" in message:
                outcomes["refused: parser hung (isolated)"] += 1
            elif "unreadable or corrupt HDF5" in message:
                outcomes["refused: HDF5 error"] += 1
            elif "sha256" in message or "truncated or extended" in message or "integrity header" in message:
                outcomes["refused: integrity header"] += 1
            else:
                outcomes["refused: by a named check"] += 1
            continue
        outcomes["read: the original network" if net.content_sha256() == original else "READ A DIFFERENT NETWORK"] += 1
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--netlist", help="netlist to damage (default: the robustness suite's small one)")
    parser.add_argument("--plain", type=int, default=10_000, help="plain damaged files per kind")
    parser.add_argument("--crafted", type=int, default=1_000, help="sealed damaged files per kind")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds a crafted file may keep the isolated parser busy before it counts as a hang "
                             "(the command's own limit is isolate.DEFAULT_TIMEOUT_S, 300 s)")
    args = parser.parse_args()
    isolate.DEFAULT_TIMEOUT_S = args.timeout
    bad = 0
    with tempfile.TemporaryDirectory(prefix="pspike-fuzz-") as tmp:
        folder = Path(tmp)
        source = Path(args.netlist) if args.netlist else small_netlist(folder)
        print(f"netlist {source} ({source.stat().st_size} bytes)")
        for crafted, count in ((False, args.plain), (True, args.crafted)):
            for i, kind in enumerate(KINDS):
                start = time.perf_counter()
                outcomes = campaign(source, kind, count, crafted, args.seed + 7 * i + int(crafted), folder)
                spent = time.perf_counter() - start
                bad += outcomes["MULTI-LINE ERROR"] + outcomes["READ A DIFFERENT NETWORK"]
                print(f"{'crafted' if crafted else 'plain  '} {kind:16s} {count:6d} files, "
                      f"{1e3 * spent / max(count, 1):6.1f} ms/file: "
                      + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())), flush=True)
    print("no crash, no hang, no multi-line error, no other network read" if bad == 0 else f"FAILURES: {bad}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
