"""What kind of file a path holds, told from its first bytes, so that a file given in the wrong
place is named for what it is ("a netlist, not a checkpoint") with the command that takes it.

Kinds: ``netlist`` (sealed by ``export/hdf5.py``), ``hdf5`` (with a ``detail``: an unsealed older
netlist, a NIR graph, a lava-dl netx file, a spike dataset), ``torch`` (a zip archive holding
``data.pkl``, or a legacy pickle), ``npz``, ``zip``, ``empty``, ``text``, ``unknown``. Peeking
inside an HDF5 file parses it, so that runs in an isolated child (:mod:`pspike_neuro.isolate`).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NETLIST_MAGIC = b"pspike-neuro netlist\n"
#: where HDF5 looks for its superblock: offset 0, then every power of two from 512
HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)


@dataclass(frozen=True)
class FileKind:
    name: str
    description: str  # "a NIR graph", completing "PATH: is ..."
    hint: str = ""    # which command takes it


def _hdf5_offset(head: bytes) -> int | None:
    for offset in HDF5_OFFSETS:
        if head[offset:offset + len(HDF5_SIGNATURE)] == HDF5_SIGNATURE:
            return offset
    return None


def _peek_hdf5(path: str) -> str:
    """The top-level layout of an HDF5 file, as a detail name (run in an isolated child)."""
    import h5py

    with h5py.File(path, "r") as f:
        keys = set(f.keys())
        if "meta" in keys and isinstance(f["meta"], h5py.Group):
            fmt = f["meta"].attrs.get("format")
            if isinstance(fmt, bytes):
                fmt = fmt.decode("utf-8", "replace")
            if fmt == "pspike-neuro-netlist":
                return "old-netlist"
        if "node" in keys and "version" in keys:
            return "nir"
        if "layer" in keys:
            return "netx"
        if "spikes" in keys and "labels" in keys:
            return "spike-dataset"
    return "other"


TORCH_HINT = "'pspike export CKPT -o model.net' turns a checkpoint into a netlist"
HDF5_DETAILS = {
    "old-netlist": FileKind("hdf5", "a pspike-neuro netlist of an older format (no integrity header, which "
                            "lets a file be checked before it is parsed)",
                            "export its checkpoint again with this version"),
    "nir": FileKind("hdf5", "a NIR graph", "turn it into a checkpoint with 'pspike import FILE -o DIR'"),
    "netx": FileKind("hdf5", "a lava-dl netx network", "pspike reads netlists (.net) and checkpoints (.pt)"),
    "spike-dataset": FileKind("hdf5", "a spike dataset in the SHD/SSC layout",
                              "give its folder as --data-dir with --task shd or ssc"),
    "other": FileKind("hdf5", "an HDF5 file that is not a pspike-neuro netlist"),
}


def identify(path: str | Path) -> FileKind:
    """The kind of the file at ``path`` (which must exist and be a file)."""
    from .isolate import run_isolated

    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(4096 + len(HDF5_SIGNATURE))
    if not head:
        return FileKind("empty", "an empty file")
    if head.startswith(NETLIST_MAGIC):
        return FileKind("netlist", "a pspike-neuro netlist",
                        "inspect and simulate take it, and verify and report as their second argument")
    if _hdf5_offset(head) is not None:
        try:
            detail = run_isolated(_peek_hdf5, str(path), what=str(path), timeout_s=60)
        except Exception:  # noqa: BLE001 - a damaged HDF5 file is still an HDF5 file
            detail = "other"
        return HDF5_DETAILS.get(detail, HDF5_DETAILS["other"])
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_kind(path)
    if head[:1] == b"\x80":  # a pickle (protocol 2+): torch's legacy format
        return FileKind("torch", "a PyTorch (pickle) file", TORCH_HINT)
    sample = head[:512]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return FileKind("text", "a text file")
    return FileKind("unknown", "not a file pspike reads (unrecognised format)")


def _zip_kind(path: Path) -> FileKind:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError):
        return FileKind("zip", "a damaged zip archive")
    if any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        return FileKind("torch", "a PyTorch checkpoint", TORCH_HINT)
    if names and all(name.endswith(".npy") for name in names):
        return FileKind("npz", "a NumPy .npz archive", "--inputs and --calib-data take it")
    return FileKind("zip", "a zip archive")
