"""``python -m pspike_neuro``: the ``pspike`` command, as torchrun starts it on every rank
(``torchrun --nproc-per-node K -m pspike_neuro COMMAND ...``).

Given torchrun's own options before the command (``python -m pspike_neuro --nproc-per-node K
COMMAND ...``), it is the launcher: torchrun with those options, which reports the one-line message
and exit code of the rank that failed (``docs/scaling.md``).
"""

import os
import sys

from .cli import main


def _launcher_options(argv: list[str]) -> bool:
    return "RANK" not in os.environ and bool(argv) and argv[0].startswith("-") and argv[0] not in ("-h", "--help",
                                                                                                   "--version")


def _exit_rank(code: int) -> None:
    """A rank under torchrun leaves without the interpreter's teardown: its files are written and closed,
    its output flushed. Left to the C++ destructors (gloo's threads, Lava's message infrastructure in a
    process that has forked Lava's processes), a rank that had run Lava now and then aborted
    ("terminate called without an active exception") or hung after its work was done."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    if _launcher_options(sys.argv[1:]):
        from .distributed import launch

        sys.exit(launch(sys.argv[1:]))
    code = main()
    if "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        _exit_rank(code)
    sys.exit(code)
