"""Several processes under torchrun: which rank this is, which samples are its own, gathering their
results on rank 0, and the checks that every rank runs the same command (``docs/scaling.md``).

Started by ``torchrun`` (it sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous), the
command joins one process group: gloo for CPU tensors and Python objects, nccl for CUDA tensors where
CUDA is present (``"cpu:gloo,cuda:nccl"``). Started any other way, everything here is the identity of
one process: one rank, every sample, gathering returns what it is given.

Sharding is by contiguous blocks of samples: rank ``r`` of ``K`` takes blocks ``[r * n_blocks // K,
(r + 1) * n_blocks // K)``, so concatenating the ranks' results in rank order is the one-process
order. A sample's random numbers are addressed by its index (``docs/rng.md``), never by the rank or
the position in a batch, and the float models are evaluated in the same fixed blocks as in one
process, so the gathered results are those of one process, bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .errors import UserError

#: the commands that run sharded under torchrun; the others are one-process work
SHARDED_COMMANDS = ("train", "eval", "simulate", "verify", "report")


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of one command."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


_ranks = Ranks()


def launched() -> bool:
    """Started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def ranks() -> Ranks:
    return _ranks


def is_main() -> bool:
    return _ranks.main


def _dist():
    import torch.distributed  # imported when needed: the one-process commands need no torch at all

    return torch.distributed


def start() -> Ranks:
    """Join the process group torchrun prepared (once per process); one process: ``Ranks()``."""
    global _ranks
    if not launched() or _ranks.world > 1:
        return _ranks
    import torch

    dist = _dist()
    dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    _ranks = Ranks(rank=dist.get_rank(), world=dist.get_world_size(),
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                   local_world=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    _share_cores(_ranks.local_world)
    return _ranks


def _share_cores(local_world: int) -> None:
    """The reference simulator's numba threads: the machine's cores divided among its ranks (torchrun
    already sets ``OMP_NUM_THREADS=1`` for torch), unless ``NUMBA_NUM_THREADS`` says otherwise. Set
    through the environment before numba loads: starting numba's threads here would fix the
    multiprocessing start method, which Lava must set itself."""
    if "NUMBA_NUM_THREADS" not in os.environ and "numba" not in sys.modules:
        os.environ["NUMBA_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // local_world))


def device_for(device):
    """Under torchrun every rank drives the GPU of its local rank; ``--device cuda:N`` is refused there."""
    if _ranks.world == 1 or device.type != "cuda":
        return device
    if device.index is not None and device.index != _ranks.local_rank:
        raise UserError(f"--device {device}: under torchrun each rank uses cuda:LOCAL_RANK; give --device cuda")
    import torch

    device = torch.device("cuda", _ranks.local_rank)
    torch.cuda.set_device(device)
    return device


# ---------------------------------------------------------------- the samples of this rank

def shard(n: int, block: int = 1) -> range:
    """This rank's contiguous share of ``n`` samples, in whole blocks of ``block`` samples (the last
    block may be shorter). Ranks left without a block get an empty range."""
    if block < 1:
        raise ValueError(f"block must be at least 1, got {block}")
    lo, hi = split(math.ceil(n / block), _ranks.rank, _ranks.world)
    return range(min(n, lo * block), min(n, hi * block))


def split(items: int, rank: int, world: int) -> tuple[int, int]:
    """``[lo, hi)`` of part ``rank`` when ``items`` consecutive items are cut into ``world`` parts."""
    return items * rank // world, items * (rank + 1) // world


class GlobalBatchSampler:
    """The distributed sampler of training: one permutation of the training set per epoch, the same on
    every rank (seeded by the run's seed and the epoch alone, so it needs no state to resume), cut into
    global batches of ``batch_size`` samples; each global batch is split into ``world`` contiguous
    parts and this sampler yields part ``rank`` of each, as a tensor of sample indices.

    The ranks' parts of one step are exactly the one-process batch of that step. An epoch whose last
    global batch has fewer samples than ranks drops it (a rank cannot take zero samples); one process
    keeps it (``dropped``).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world = rank, world
        self.epoch = 0
        self.dropped = 0 < n % batch_size < world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.batch_size + (0 < self.n % self.batch_size and not self.dropped)

    def order(self):
        """The epoch's permutation of the sample indices."""
        import torch

        from .numerics.rng import hash_u32

        key = int(hash_u32(self.seed, 0xFFFFFFFF, self.epoch, 0, 0))  # a stream of its own per epoch
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(key))

    def __iter__(self):
        order = self.order()
        for step in range(len(self)):
            batch = order[step * self.batch_size:(step + 1) * self.batch_size]
            lo, hi = split(len(batch), self.rank, self.world)
            yield batch[lo:hi]

    def global_size(self, step: int) -> int:
        """Samples in global batch ``step`` of an epoch (all ranks together)."""
        return min(self.batch_size, self.n - step * self.batch_size)


# ---------------------------------------------------------------- collectives

def gather(obj) -> list | None:
    """Every rank's ``obj`` on rank 0, in rank order (None elsewhere)."""
    if _ranks.world == 1:
        return [obj]
    out = [None] * _ranks.world if _ranks.main else None
    _dist().gather_object(obj, out, dst=0)
    return out


def all_gather(obj) -> list:
    """Every rank's ``obj`` on every rank, in rank order (small objects only)."""
    if _ranks.world == 1:
        return [obj]
    out = [None] * _ranks.world
    _dist().all_gather_object(out, obj)
    return out


def broadcast(obj):
    """Rank 0's ``obj`` on every rank."""
    if _ranks.world == 1:
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if _ranks.world > 1:
        _dist().barrier()


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sums over the ranks, in float64 (metrics; small)."""
    if _ranks.world == 1:
        return list(values)
    return [sum(col) for col in zip(*all_gather([float(v) for v in values]))]


def concat_samples(parts: list):
    """The ranks' results joined along the sample axis: arrays concatenated, lists and dicts joined
    item by item, None kept where every part has None. Ranks without samples send None."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    first = parts[0]
    if isinstance(first, np.ndarray):
        return first if len(parts) == 1 else np.concatenate(parts)
    if type(first).__name__ == "Tensor":
        import torch

        return first if len(parts) == 1 else torch.cat(parts)
    if isinstance(first, dict):
        return {key: concat_samples([p[key] for p in parts]) for key in first}
    if isinstance(first, (list, tuple)):
        return type(first)(concat_samples([p[i] for p in parts]) for i in range(len(first)))
    raise TypeError(f"cannot join {type(first).__name__} along samples")


def gather_samples(obj):
    """:func:`concat_samples` of every rank's ``obj`` on rank 0 (None elsewhere)."""
    parts = gather(obj)
    return None if parts is None else concat_samples(parts)


def gather_run(result):
    """The ranks' :class:`~pspike_neuro.graph.RunResult` of their shards as one run on rank 0 (None
    elsewhere): per-sample arrays concatenated, saturation events summed."""
    parts = gather(result)
    if parts is None:
        return None
    parts = [p for p in parts if p is not None]
    if len(parts) == 1:
        return parts[0]
    from dataclasses import replace

    saturation: dict = {}
    for p in parts:
        for key, count in p.saturation.items():
            saturation[key] = saturation.get(key, 0) + int(count)
    return replace(parts[0], outputs=concat_samples([p.outputs for p in parts]),
                   records=concat_samples([p.records for p in parts]),
                   scores=concat_samples([p.scores for p in parts]),
                   predictions=concat_samples([p.predictions for p in parts]),
                   valid=concat_samples([p.valid for p in parts]), saturation=saturation)


# ---------------------------------------------------------------- one command, every rank

def check_command(command: str, argv: list[str]) -> None:
    """Refuse a command that does not shard, and ranks started with different command lines."""
    if _ranks.world == 1:
        return
    if command not in SHARDED_COMMANDS:
        raise UserError(f"{command} runs in one process; start it without torchrun (commands that shard: "
                        f"{', '.join(SHARDED_COMMANDS)})")
    seen = all_gather([str(a) for a in argv])
    for rank, other in enumerate(seen):
        if other != seen[0]:
            at = next((i for i, (a, b) in enumerate(zip(seen[0], other)) if a != b), min(len(seen[0]), len(other)))
            mine, theirs = (repr(args[at]) if at < len(args) else "the end of the line" for args in (seen[0], other))
            raise UserError(f"ranks disagree on the command line: argument {at + 1} is {mine} on rank 0 "
                            f"but {theirs} on rank {rank}; start every rank with the same arguments")


@contextlib.contextmanager
def main_rank_output() -> Iterator[None]:
    """Rank 0 alone prints: the others' stdout and stderr go nowhere while a command runs (a traceback
    of theirs still shows, printed after the command has left this block)."""
    if _ranks.main:
        yield
        return
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        yield


def agreed_exit_code(code: int) -> int:
    """Rank 0's exit code on every rank (verify's verdict is computed there)."""
    try:
        return int(broadcast(code))
    except RuntimeError:  # another rank has already failed; torchrun reports it
        return code


#: set by the launcher for its ranks
LAUNCHER_ENV = "PSPIKE_LAUNCHER"


def record_error(line: str) -> None:
    """Leave a failing rank's one-line message where torchrun's agent reads it (its error file);
    ``python -m pspike_neuro --nproc-per-node K ...`` prints it when that rank failed first."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path or not launched():
        return
    with contextlib.suppress(OSError):
        with open(path, "w") as fh:
            json.dump({"message": line, "timestamp": int(time.time())}, fh)


def print_error(line: str) -> None:
    """A user error: one line from rank 0 (every rank records its own for the launcher, which prints the
    line itself: a rank printing too would race it)."""
    record_error(line)
    if os.environ.get("RANK", "0") == "0" and not os.environ.get(LAUNCHER_ENV):
        print(line, file=sys.stderr)


# ---------------------------------------------------------------- the launcher

def launch(argv: list[str]) -> int:
    """``python -m pspike_neuro [TORCHRUN OPTIONS] COMMAND ...``: torchrun (``torch.distributed.run``,
    the same launcher and options) running ``python -m pspike_neuro COMMAND ...`` on every rank, with
    the exit code and the one-line message of the rank that failed first instead of torchrun's report."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # the agent checks its workers every 0.5 s instead of torchrun's 5 s (a short command ends sooner)
    args = get_args_parser().parse_args(["--monitor-interval", "0.5", *argv])
    args.training_script_args = [args.training_script, *args.training_script_args]
    args.training_script, args.module, args.no_python = "pspike_neuro", True, False
    for name in list(logging.root.manager.loggerDict):  # torchrun's own report of a failed rank: ours is one line
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ[LAUNCHER_ENV] = "1"  # the ranks record their error lines and leave the printing to us
    try:
        run(args)
    except ChildFailedError as exc:
        # rank 0's line when it has one (it fails like the others on a user error, but may be stopped first),
        # else the line of the rank that failed first; without any line (a crash): rank and exit code
        order = sorted(exc.failures.items(), key=lambda item: (item[0] != 0, item[1].timestamp))
        for _, failure in order:
            message = " ".join(failure.message.split()) if isinstance(failure.message, str) else ""
            if message and failure.exitcode in (1, 2):
                print(message, file=sys.stderr)
                return failure.exitcode
        rank, failure = exc.get_first_failure()
        print(f"rank {rank} failed with exit code {failure.exitcode}", file=sys.stderr)
        return failure.exitcode if failure.exitcode in (1, 2) else 1
    return 0
