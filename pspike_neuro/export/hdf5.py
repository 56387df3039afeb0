"""The netlist file (HDF5, ``.net``): one generic writer and one validating reader.

Layout (docs/netlist-format.md): a 512-byte HDF5 user block holding the integrity header (magic
line, sha256 and length of every byte after the block), then the HDF5 file: ``/meta`` attributes
(dicts as JSON strings); ``/nodes/<name>`` groups with attribute ``type``, one dataset per array
field, one attribute per scalar field, and optional float64 datasets under ``float/``; ``/edges``
with four string datasets ``src``, ``dst``, ``src_port``, ``dst_port``.

Reading checks the header first, with plain file reads: a file changed anywhere after it was
written is refused before libhdf5 parses a byte of it (about one random multi-byte edit in a
thousand crashed libhdf5 outright). A file crafted to carry a matching digest is then parsed in an
isolated child process (:mod:`pspike_neuro.isolate`), so even a crash there is one line.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import h5py
import numpy as np

from .. import isolate
from ..errors import UserError
from ..fileio import atomic_path
from ..filekind import HDF5_DETAILS, NETLIST_MAGIC, identify
from ..graph import FORMAT, FORMAT_VERSION, META_KEYS, Edge, Netlist, NetlistError
from ..isolate import run_isolated
from ..nodes import REGISTRY, NodeError

JSON_META = ("model_config", "quant_config")
OPTIONAL_JSON_META = ("task_options", "import_record", "pruning")  # task options; an import's record; what --prune-silent removed
EDGE_FIELDS = ("src", "dst", "src_port", "dst_port")
#: no dataset of a netlist may declare more elements than this (a compressed dataset of zeros can
#: declare terabytes in a few kilobytes of file; it is refused before anything is read)
MAX_ELEMENTS = 1 << 27
#: bytes of the HDF5 user block that holds the integrity header (HDF5 allows 512 * 2^k)
USERBLOCK_BYTES = 512
_HEADER = re.compile(rb"pspike-neuro netlist\nintegrity: sha256\ndigest: ([0-9a-f]{64})\nlength: ([0-9]{1,15})\n\0*")


def _digest_after_header(path, length: int | None = None) -> tuple[str, int]:
    """sha256 and length of the bytes after the user block (the first ``length`` of them, if given)."""
    digest, total = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        fh.seek(USERBLOCK_BYTES)
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
    return digest.hexdigest(), total


def seal(path) -> None:
    """Write the integrity header into the user block of a finished netlist file."""
    digest, length = _digest_after_header(path)
    header = (NETLIST_MAGIC + f"integrity: sha256\ndigest: {digest}\nlength: {length}\n".encode())
    with open(path, "r+b") as fh:
        fh.write(header.ljust(USERBLOCK_BYTES, b"\0"))


def check_integrity(path: Path) -> None:
    """Refuse, before any HDF5 parsing, a file that is not a sealed netlist or whose bytes changed."""
    with open(path, "rb") as fh:
        head = fh.read(USERBLOCK_BYTES)
    if not head.startswith(NETLIST_MAGIC):
        kind = identify(path)
        if kind is HDF5_DETAILS["old-netlist"]:
            raise UserError(f"netlist {path}: was written by an older pspike-neuro, without the integrity header "
                            "that lets a file be checked before it is parsed; export its checkpoint again")
        hint = f"; {kind.hint}" if kind.hint else ""
        raise UserError(f"netlist {path}: is {kind.description}, not a pspike-neuro netlist{hint}")
    match = _HEADER.fullmatch(head)
    if match is None:
        raise UserError(f"netlist {path}: its integrity header is damaged; export the checkpoint again")
    digest, length = _digest_after_header(path)
    if length != int(match[2]):
        raise UserError(f"netlist {path}: {length} bytes after the header, the header says {int(match[2])} "
                        "(truncated or extended after it was written); export the checkpoint again")
    if digest != match[1].decode():
        raise UserError(f"netlist {path}: its bytes do not match the sha256 written with them (the file was "
                        "changed or damaged after export); export the checkpoint again")


def write_netlist(netlist: Netlist, path) -> None:
    """Validate, then write atomically: the old file stays until the new one is complete."""
    netlist.validate()
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=USERBLOCK_BYTES) as f:
            meta = f.create_group("meta")
            for key, value in netlist.meta.items():
                meta.attrs[key] = json.dumps(value) if key in JSON_META + OPTIONAL_JSON_META else value
            meta.attrs["content_sha256"] = netlist.content_sha256()
            nodes = f.create_group("nodes")
            for name, node in netlist.nodes.items():
                g = nodes.create_group(name)
                g.attrs["type"] = node.type_name()
                for fld in node.FIELDS:
                    value = node.values[fld.name]
                    if fld.kind == "array":
                        g.create_dataset(fld.name, data=value)
                    else:
                        g.attrs[fld.name] = value
                if node.floats:
                    fg = g.create_group("float")
                    for key, value in node.floats.items():
                        fg.create_dataset(key, data=np.asarray(value, np.float64))
            edges = f.create_group("edges")
            for attr in EDGE_FIELDS:
                edges.create_dataset(attr, data=np.array([getattr(e, attr) for e in netlist.edges], dtype="S"))
        seal(tmp)


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _read_meta(path: Path, f: h5py.File) -> dict:
    if "meta" not in f:
        raise UserError(f"netlist {path}: not a pspike-neuro netlist (no /meta group)")
    meta = {k: _decode(v) for k, v in f["meta"].attrs.items()}
    if meta.get("format") != FORMAT:
        raise UserError(f"netlist {path}: not a pspike-neuro netlist (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise UserError(f"netlist {path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise UserError(f"netlist {path}: format version {version} is newer than this pspike-neuro reads "
                        f"({FORMAT_VERSION}); upgrade pspike-neuro")
    if version < FORMAT_VERSION:
        raise UserError(f"netlist {path}: format version {version} is older than this pspike-neuro reads "
                        f"({FORMAT_VERSION}); export the checkpoint again")
    for key in META_KEYS:
        if key not in meta:
            raise UserError(f"netlist {path}: /meta is missing {key}")
    for key in JSON_META + tuple(k for k in OPTIONAL_JSON_META if k in meta):
        try:
            meta[key] = json.loads(meta[key])
        except (TypeError, ValueError):
            raise UserError(f"netlist {path}: /meta {key} is not valid JSON") from None
        if not isinstance(meta[key], dict):
            raise UserError(f"netlist {path}: /meta {key} is not a mapping")
    for key in ("seed", "latency_steps"):
        if not isinstance(meta[key], int) or meta[key] < 0:
            raise UserError(f"netlist {path}: /meta {key} must be a non-negative integer")
    sha = meta["source_sha256"]
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise UserError(f"netlist {path}: /meta source_sha256 is not a sha256 hex digest")
    return meta


def _safe_read(path: Path, where: str, data, expected_shape: tuple | None = None):
    """Read a dataset only after checking that it is plain, stored in this file and of sane size."""
    if not isinstance(data, h5py.Dataset):
        raise UserError(f"netlist {path}: {where} is not a dataset")
    if data.external or data.is_virtual:
        raise UserError(f"netlist {path}: {where} stores its data outside the file (external or virtual "
                        "dataset), which a netlist never does")
    if expected_shape is not None and tuple(data.shape) != tuple(expected_shape):
        raise UserError(f"netlist {path}: {where}: shape {tuple(data.shape)}, expected {tuple(expected_shape)}")
    if data.size > MAX_ELEMENTS:
        raise UserError(f"netlist {path}: {where} declares {data.size} elements (limit {MAX_ELEMENTS})")
    return data[()]


def _no_links(path: Path, group, where: str) -> None:
    for key in group:
        link = group.get(key, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise UserError(f"netlist {path}: {where}/{key} is a {type(link).__name__}; a netlist holds no links")


def _expected_shape(fld, scalars: dict, declared: dict):
    shape = []
    for dim in fld.shape:
        base = dim[:-2] if dim.endswith("+1") else dim
        value = scalars.get(base)
        if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
            return None  # the node check names the bad scalar
        size = declared.get(base)
        if size is not None and size.lo is not None and size.hi is not None and not size.lo <= value <= size.hi:
            return None  # out of its range: named by the node check, not as a wrong array shape
        shape.append(int(value) + (1 if dim.endswith("+1") else 0))
    return tuple(shape)


def _read_node(path: Path, name: str, g) -> object:
    if not isinstance(g, h5py.Group):
        raise UserError(f"netlist {path}: /nodes/{name} is not a group")
    _no_links(path, g, f"/nodes/{name}")
    type_name = _decode(g.attrs.get("type"))
    cls = REGISTRY.get(type_name)
    if cls is None:
        raise UserError(f"netlist {path}: node {name} has unknown type {type_name!r}; "
                        f"known: {', '.join(REGISTRY)}")
    declared = {fld.name: fld for fld in cls.FIELDS}
    values = {}
    for fld in cls.FIELDS:  # scalars first: they give the shapes the arrays must have
        if fld.kind != "array":
            if fld.name not in g.attrs and fld.default is not None:
                continue  # optional: the record fills its default
            if fld.name not in g.attrs:
                raise UserError(f"netlist {path}: node {name} ({type_name}): field {fld.name}: missing")
            values[fld.name] = _decode(g.attrs[fld.name])
    for fld in cls.FIELDS:
        if fld.kind == "array":
            if fld.name not in g and fld.default is not None:
                continue  # optional: the record fills its default
            if fld.name not in g or not isinstance(g[fld.name], h5py.Dataset):
                raise UserError(f"netlist {path}: node {name} ({type_name}): field {fld.name}: missing")
            data = g[fld.name]
            if data.dtype != np.dtype(fld.dtype):
                raise UserError(f"netlist {path}: node {name} ({type_name}): field {fld.name}: "
                                f"dtype {data.dtype}, expected {fld.dtype}")
            values[fld.name] = _safe_read(path, f"node {name} ({type_name}): field {fld.name}", data,
                                          _expected_shape(fld, values, declared))
    values = {fld.name: values[fld.name] for fld in cls.FIELDS if fld.name in values}
    extra = [k for k in list(g.keys()) + list(g.attrs.keys()) if k not in declared and k not in ("type", "float")]
    if extra:
        raise UserError(f"netlist {path}: node {name} ({type_name}): field {extra[0]}: not a field of this type")
    floats = {}
    if "float" in g:
        if not isinstance(g["float"], h5py.Group):
            raise UserError(f"netlist {path}: node {name}: float must be a group")
        _no_links(path, g["float"], f"/nodes/{name}/float")
        for key, data in g["float"].items():
            if not isinstance(data, h5py.Dataset) or data.dtype != np.float64:
                raise UserError(f"netlist {path}: node {name}: float/{key} must be a float64 dataset")
            floats[key] = _safe_read(path, f"node {name}: float/{key}", data)
    try:
        return cls(name, values, floats)
    except NodeError as exc:
        raise UserError(f"netlist {path}: {exc}") from None


def read_netlist(path) -> Netlist:
    """Read and validate a netlist; every problem is a one-line :class:`UserError`.

    The integrity header is checked here; the HDF5 parse runs in an isolated child process."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"netlist {path}: no such file")
    if path.is_dir():
        raise UserError(f"netlist {path}: is a directory")
    check_integrity(path)
    return run_isolated(_parse_netlist, path, what=f"netlist {path}", timeout_s=isolate.DEFAULT_TIMEOUT_S,
                        crash_hint="the file carries a valid digest yet is not what pspike writes (crafted?); "
                                   "export the checkpoint again")


def _parse_netlist(path: Path) -> Netlist:
    try:
        with h5py.File(path, "r") as f:
            meta = _read_meta(path, f)
            if "nodes" not in f or not isinstance(f["nodes"], h5py.Group):
                raise UserError(f"netlist {path}: no /nodes group")
            _no_links(path, f, "")
            _no_links(path, f["nodes"], "/nodes")
            nodes = {name: _read_node(path, name, g) for name, g in f["nodes"].items()}
            if "edges" not in f or not isinstance(f["edges"], h5py.Group):
                raise UserError(f"netlist {path}: no /edges group")
            _no_links(path, f["edges"], "/edges")
            columns = []
            for attr in EDGE_FIELDS:
                if attr not in f["edges"]:
                    raise UserError(f"netlist {path}: /edges is missing {attr}")
                data = _safe_read(path, f"/edges/{attr}", f["edges"][attr])
                if data.ndim != 1 or data.dtype.kind != "S":
                    raise UserError(f"netlist {path}: /edges/{attr} must be a 1-D string dataset")
                columns.append([_decode(v) for v in data])
            if len({len(c) for c in columns}) != 1:
                raise UserError(f"netlist {path}: /edges columns have different lengths")
            edges = [Edge(*row) for row in zip(*columns)]
    except UserError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise UserError(f"netlist {path}: unreadable or corrupt HDF5 file ({reason})") from None
    stored_digest = meta.pop("content_sha256", None)
    netlist = Netlist(meta=meta, nodes=nodes, edges=edges)
    try:
        netlist.validate()
    except NetlistError as exc:
        raise UserError(f"netlist {path}: {exc}") from None
    if stored_digest != netlist.content_sha256():
        raise UserError(f"netlist {path}: content checksum mismatch (the file was modified or corrupted "
                        "after it was written)")
    return netlist
