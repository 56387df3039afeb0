"""Reader for IDX files (the MNIST format), plain or gzipped.

Layout, all integers big-endian: two zero bytes, a data-type byte (0x08 = unsigned byte, the only
type read here), a byte ``ndim``, then ``ndim`` uint32 dimension sizes, then ``prod(sizes)`` data
bytes in C order. So the magic number of an image file (3 dims) is 0x00000803, of a label file 0x00000801.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import UserError

IDX_UBYTE = 0x08


def idx_magic(ndim: int) -> int:
    """The magic number of an unsigned-byte IDX file with ``ndim`` dimensions."""
    return IDX_UBYTE << 8 | ndim


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as error:
        # gzip.BadGzipFile is an OSError; a cut-off gzip stream raises EOFError.
        raise UserError(f"{path}: cannot read: {error}") from None


def read_idx(path: str | Path, expected_ndim: int | None = None) -> np.ndarray:
    """The uint8 array stored in an IDX file (gzipped when the name ends in ``.gz``).

    Raises UserError naming the file when the magic number is not that of an unsigned-byte file
    (with ``expected_ndim`` dimensions, when given), or when the data are shorter or longer than
    the dimension sizes in the header say.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise UserError(f"{path}: truncated: {len(raw)} bytes, too short for the 4-byte IDX magic number")
    magic = int.from_bytes(raw[:4], "big")
    ndim = raw[3]
    if expected_ndim is not None:
        if magic != idx_magic(expected_ndim):
            raise UserError(
                f"{path}: bad magic number 0x{magic:08x}, expected 0x{idx_magic(expected_ndim):08x} "
                f"(unsigned-byte IDX, {expected_ndim} dimension(s))"
            )
    elif ndim == 0 or magic != idx_magic(ndim):
        raise UserError(f"{path}: bad magic number 0x{magic:08x}, expected 0x000008NN (unsigned-byte IDX)")

    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise UserError(f"{path}: truncated: {len(raw)} bytes, the header of a {ndim}-dimensional IDX file has {header_size}")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected_size = math.prod(shape)
    data_size = len(raw) - header_size
    if data_size < expected_size:
        raise UserError(
            f"{path}: truncated: header declares shape {shape} ({expected_size} data bytes), file has {data_size}"
        )
    if data_size > expected_size:
        raise UserError(
            f"{path}: wrong item count: header declares shape {shape} ({expected_size} data bytes), "
            f"file has {data_size}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape).copy()
