"""Fixtures of the robustness suite: small files to damage, and a watchdog against hangs."""

import signal
import subprocess
import sys

import pytest

from pspike_neuro.export.build import build_netlist
from pspike_neuro.export.hdf5 import write_netlist
from pspike_neuro.quant.quantize import QuantConfig

#: seconds any single fuzzed case may take before it counts as a hang
HANG_LIMIT_S = 20


@pytest.fixture(scope="session")
def robust_net(small_checkpoint, tmp_path_factory):
    """A valid netlist file of the small random model (reading it back must give the same digest)."""
    path = tmp_path_factory.mktemp("robust") / "model.net"
    netlist, _ = build_netlist(small_checkpoint, QuantConfig(calib_samples=16))
    write_netlist(netlist, path)
    return path


class Watchdog:
    """``with Watchdog():`` raises ``TimeoutError`` if the block runs longer than HANG_LIMIT_S."""

    def __enter__(self):
        def fire(signum, frame):
            raise TimeoutError(f"hang: over {HANG_LIMIT_S} s")

        self.previous = signal.signal(signal.SIGALRM, fire)
        signal.alarm(HANG_LIMIT_S)
        return self

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)
        return False


def run_cli(*args, timeout=120, **kwargs):
    """``python -m pspike_neuro.cli ARGS`` in a child process: (returncode, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "pspike_neuro.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kwargs)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(stderr: str, command: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"pspike {command}: error: ") and "Traceback" not in stderr
