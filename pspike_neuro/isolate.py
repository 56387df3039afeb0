"""Parse untrusted files in a forked child, so that a C library that crashes or hangs on a crafted
file takes down the child and not the command.

libhdf5 (h5py) and torch's zip reader are C and C++ code: about one netlist in a thousand with a
hundred random bytes changed made libhdf5 dereference garbage and kill the whole process with
SIGSEGV, before any of our checks could run. Every reader of a file format parsed by a C library
therefore calls :func:`run_isolated`: the parse runs in a child made with ``os.fork`` (no
re-import, about 25 ms), which pickles its result back through a pipe. A child that dies by a
signal, runs past its time limit or its memory limit becomes one :class:`UserError` line.

The child only parses (h5py, zipfile, torch's unpickler on a zip archive): it never uses the
OpenMP or numba thread pools the parent may have started, which do not survive a fork.
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import resource
import select
import signal
import time
import traceback
from typing import Callable, TypeVar

from .errors import UserError

T = TypeVar("T")

#: seconds a parse may take before it counts as a hang (a real netlist of LRA size parses in ~2 s)
DEFAULT_TIMEOUT_S = 300.0
#: address space a parse may add to what the process already maps (a bomb cannot take the machine)
DEFAULT_MEMORY_BYTES = 16 << 30
_CHUNK = 1 << 20


def _address_space() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 0


def _child(write_fd: int, fn: Callable, args: tuple, memory_bytes: int) -> None:
    """Run ``fn(*args)`` and send ``(status, value)`` through ``write_fd``; never returns."""
    status, value = "error", "the parse did not finish"
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends the child at once; the parent reports it
        faulthandler.disable()  # a crash here is expected and reported by the parent, not dumped
        if memory_bytes:
            base = _address_space()
            limit = base + memory_bytes
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        try:
            status, value = "ok", fn(*args)
        except UserError as exc:
            status, value = "user", str(exc)
        except MemoryError:
            status, value = "memory", ""
        except Exception as exc:  # noqa: BLE001 - any parse failure becomes one line in the parent
            lines = traceback.format_exception_only(type(exc), exc)
            status, value = "error", " ".join(" ".join(lines).split())[:200] or type(exc).__name__
        try:
            data = pickle.dumps((status, value), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - an unpicklable result is our bug, still one line
            data = pickle.dumps(("error", f"result could not be sent back ({type(exc).__name__})"))
        view = memoryview(data)
        while view:
            written = os.write(write_fd, view[:_CHUNK])
            view = view[written:]
    finally:
        os._exit(0)


def _describe_signal(number: int) -> str:
    try:
        return f"signal {number}, {signal.Signals(number).name}"
    except ValueError:
        return f"signal {number}"


def run_isolated(fn: Callable[..., T], *args, what: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, crash_hint: str = "the file is damaged") -> T:
    """``fn(*args)`` computed in a forked child; its :class:`UserError` is re-raised here as it was.

    ``what`` starts every message (``netlist PATH``); ``crash_hint`` says what a crash means for
    this kind of file. A child killed by a signal, a time-out, a memory limit or any other exception
    become one :class:`UserError` line; ``KeyboardInterrupt`` kills the child and propagates.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which leaves through os._exit
        os.close(read_fd)
        _child(write_fd, fn, args, memory_bytes)
    os.close(write_fd)
    chunks: list[bytes] = []
    finished = False
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([read_fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(read_fd, _CHUNK)
            if not chunk:
                finished = True
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        if not finished:
            _kill(pid)
        _, status = os.waitpid(pid, 0)  # reaped on every path, an interrupt included
    if not finished:
        raise UserError(f"{what}: reading it took longer than {timeout_s:.0f} s and was stopped; {crash_hint}")
    if os.WIFSIGNALED(status):
        raise UserError(f"{what}: the file crashed its parser ({_describe_signal(os.WTERMSIG(status))}) in an "
                        f"isolated process; {crash_hint}")
    try:
        kind, value = pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001 - a child that died half-way through writing
        raise UserError(f"{what}: its parser stopped without an answer; {crash_hint}") from None
    if kind == "ok":
        return value
    if kind == "user":
        raise UserError(value)
    if kind == "memory":
        raise UserError(f"{what}: reading it needed more than {memory_bytes >> 30} GiB of memory; {crash_hint}")
    raise UserError(f"{what}: unreadable ({value}); {crash_hint}")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
