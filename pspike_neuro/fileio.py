"""Atomic file writing: a file is either the old one or the complete new one, never partial."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator


def check_output_folder(path: str | os.PathLike, what: str) -> None:
    """Refuse (one line) a folder to write into that is a file, or lies below a file."""
    from .errors import UserError

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{what} {folder}: exists and is not a folder")
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise UserError(f"{what} {folder}: {ancestor} is a file, not a folder")


def check_output_file(path: str | os.PathLike, what: str) -> None:
    """Refuse (one line) a file to write that is a folder, or lies below a file."""
    from .errors import UserError

    target = Path(path)
    if target.is_dir():
        raise UserError(f"{what} {target}: is a folder; name the file to write")
    check_output_folder(target.parent, what)


def _real(path: Path) -> str:
    """The path with every symbolic link, ``..`` and ``.`` resolved (of its existing part)."""
    return os.path.realpath(path)


def same_path(a: Path, b: Path) -> bool:
    """The same file or folder: one real path, or (hard links) one inode."""
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def within(inner: Path, folder: Path) -> bool:
    """``inner`` is ``folder`` or lies somewhere below it."""
    if same_path(inner, folder):
        return True
    real_inner, real_folder = _real(inner), _real(folder)
    return real_inner.startswith(real_folder.rstrip(os.sep) + os.sep)


def check_outputs_spare_inputs(outputs: list[tuple[str, str | os.PathLike, str]],
                               inputs: list[tuple[str, str | os.PathLike]]) -> None:
    """Refuse (one line naming both paths) an output that is, contains or would replace an input.

    ``outputs``: ``(what, path, "file" | "folder")``, the files a command writes and the folders it
    writes into; ``inputs``: ``(what, path)``, every file and folder it reads (a folder stands for
    everything in it). A file output may not be an input file or an input folder; a folder output
    may not be an input, nor contain one, since the command writes there. Two outputs may not be
    the same path either. Symbolic links, ``..`` and hard links are seen through.
    """
    from .errors import UserError

    outs = [(what, Path(p), kind) for what, p, kind in outputs if p is not None]
    ins = [(what, Path(p)) for what, p in inputs if p is not None]
    for what, out, kind in outs:
        for in_what, inp in ins:
            if same_path(out, inp):
                raise UserError(f"{what} {out} is {in_what} {inp}, which this command reads; choose another "
                                "path (nothing was written)")
            if kind == "folder" and within(inp, out):
                raise UserError(f"{what} {out} contains {in_what} {inp}, which this command reads; write into a "
                                "folder of its own (nothing was written)")
    for i, (what, out, _) in enumerate(outs):
        for other_what, other, _ in outs[i + 1:]:
            if same_path(out, other):
                raise UserError(f"{what} {out} and {other_what} {other} are the same path; each output needs its own")


def folder_and_files(folder: str | os.PathLike | None) -> list[Path]:
    """A data folder as inputs: the folder itself and every file directly in it."""
    if folder is None:
        return []
    path = Path(folder)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else []
    return [path] + files


def _temp_beside(target: Path) -> str:
    """Check ``target``, clear dead writers' leftovers beside it, create the temporary file."""
    from .errors import UserError

    check_output_file(target, "cannot write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(target.parent, f".{target.name}.", ".tmp")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent)
    except OSError as exc:  # a read-only or full disk, a folder we may not write
        raise UserError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    return tmp


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale(folder: Path, prefix: str, suffix: str = "") -> int:
    """Remove ``{prefix}{pid}-*{suffix}`` entries left by processes that no longer run (a SIGKILL
    during a write cannot clean up after itself). Returns how many were removed."""
    removed = 0
    for entry in folder.glob(f"{prefix}*{suffix}"):
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()
            removed += 1
        except OSError:
            pass
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    On any exception (or Ctrl-C) the temporary file is removed and ``path`` is untouched. The
    temporary name carries the writer's pid (``.NAME.PID-XXXX.tmp``): one left behind by a killed
    process is removed by the next write to the same path.
    """
    target = Path(path)
    tmp = _temp_beside(target)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Like :func:`atomic_path` for files that belong together (``activity.npz`` and its
    ``summary.json``; ``model.pt`` and its ``metrics.json``): one temporary path per target, each
    written completely before any is published.

    The last path is the set's marker: it is removed before the others are renamed into place and
    renamed last, so a kill at any moment leaves the previous set, or a set without its marker,
    never a marker beside files of another run.
    """
    targets = [Path(p) for p in paths]
    tmps: list[str] = []
    try:
        for target in targets:
            tmps.append(_temp_beside(target))
        yield [Path(t) for t in tmps]
        for tmp in tmps:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        if len(targets) > 1:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(targets[-1])
        for tmp, target in zip(tmps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def write_atomic(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        writer(tmp)


def write_json_atomic(path: str | os.PathLike, data) -> None:
    def dump(tmp: Path) -> None:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    write_atomic(path, dump)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
