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


if __name__ == "__main__":
    if _launcher_options(sys.argv[1:]):
        from .distributed import launch

        sys.exit(launch(sys.argv[1:]))
    sys.exit(main())
