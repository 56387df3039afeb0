"""``--inputs FILE.npz``: a user's own input trains for any model, besides the tasks.

The archive (``numpy.savez``) holds

* ``x``: the inputs, (samples, steps, channels) numbers (spikes as 0/1, counts, currents), or
  (samples, steps) integer token ids for a token model;
* ``labels`` (optional): (samples,) integer classes; without them there is no accuracy;
* ``lengths`` (optional): (samples,) unpadded steps of each sample (default: all steps).

It is read with ``allow_pickle=False`` in an isolated child process (zip and zlib are C code), and
every array is checked before use; a problem is one line naming the file and the array.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..isolate import run_isolated

#: no input archive may hold more numbers than this (4 GiB of float32)
MAX_VALUES = 1 << 30


@dataclass
class InputSet:
    name: str
    x: np.ndarray
    labels: np.ndarray | None
    lengths: np.ndarray | None


def _read(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            out = {}
            for key in archive.files:
                out[key] = archive[key]
            return out
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise UserError(f"inputs {path}: holds pickled objects, which are never loaded; save plain arrays with "
                            "numpy.savez") from None
        raise UserError(f"inputs {path}: not a NumPy .npz archive ({exc})") from None
    except (OSError, EOFError, KeyError) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise UserError(f"inputs {path}: not a NumPy .npz archive ({reason})") from None


def load_inputs_file(path) -> InputSet:
    """The arrays of an inputs archive, checked; one line naming the problem otherwise."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"inputs {path}: no such file")
    if path.is_dir():
        raise UserError(f"inputs {path}: is a directory")
    arrays = run_isolated(_read, path, what=f"inputs {path}", timeout_s=600)
    if "x" not in arrays:
        raise UserError(f"inputs {path}: no array 'x' (found {', '.join(sorted(arrays)) or 'none'})")
    unknown = sorted(set(arrays) - {"x", "labels", "lengths"})
    if unknown:
        raise UserError(f"inputs {path}: unknown array(s) {', '.join(unknown)}; an inputs archive holds x, labels, "
                        "lengths")
    x = arrays["x"]
    if x.dtype.kind not in "biuf":
        raise UserError(f"inputs {path}: x has dtype {x.dtype}; it must hold numbers")
    if x.ndim not in (2, 3) or x.shape[0] == 0 or x.shape[1] == 0 or (x.ndim == 3 and x.shape[2] == 0):
        raise UserError(f"inputs {path}: x has shape {x.shape}; expected (samples, steps, channels), or (samples, "
                        "steps) token ids")
    if x.ndim == 2 and x.dtype.kind not in "iu":
        raise UserError(f"inputs {path}: a 2-D x holds token ids and must be integers, got {x.dtype}")
    if x.size > MAX_VALUES:
        raise UserError(f"inputs {path}: x holds {x.size} values (limit {MAX_VALUES})")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise UserError(f"inputs {path}: x has {int(np.count_nonzero(~np.isfinite(x)))} NaN or infinite value(s)")
    x = x.astype(np.float32) if x.dtype.kind in "bf" else x.astype(np.int64)
    labels = _vector(path, arrays, "labels", x.shape[0])
    lengths = _vector(path, arrays, "lengths", x.shape[0])
    if labels is not None and labels.min() < 0:
        raise UserError(f"inputs {path}: labels must be non-negative classes, got {int(labels.min())}")
    if lengths is not None and (lengths.min() < 1 or lengths.max() > x.shape[1]):
        raise UserError(f"inputs {path}: lengths must lie in [1, {x.shape[1]}]")
    if lengths is not None and bool((lengths == x.shape[1]).all()):
        lengths = None
    return InputSet(name=path.name, x=x, labels=labels, lengths=lengths)


def _vector(path: Path, arrays: dict, key: str, n: int) -> np.ndarray | None:
    if key not in arrays:
        return None
    value = arrays[key]
    if value.shape != (n,) or value.dtype.kind not in "iu":
        raise UserError(f"inputs {path}: {key} must be {n} integers (one per sample), got {value.dtype} {value.shape}")
    return value.astype(np.int64)
