"""Spike-train tasks: ``sdigits-spikes`` (embedded) and the Spiking Heidelberg Digits from local files.

``sdigits-spikes``: the 8x8 digits of ``sdigits`` (same split) as binary spike trains. Rows are
time: row ``r`` occupies steps ``4r .. 4r + 3``. Channel ``4c + k`` (column ``c``, level ``k`` of
4) fires once, at step ``4r + k``, when pixel ``(r, c)`` is at least ``SPIKE_LEVELS[k]`` (of 16): a
thermometer code whose spike count is the pixel's intensity level and whose timing carries the
level too. 32 steps, 32 channels, at most one spike per channel per row. A network must remember
earlier rows to classify, which is what the neurons' state is for.

``shd`` (Cramer et al., IEEE TNNLS 2022): ``shd_train.h5`` and ``shd_test.h5`` (each may be gzipped)
in ``data_dir``, in the published layout: ``/spikes/times`` (ragged float, seconds),
``/spikes/units`` (ragged int, channel 0..699), ``/labels`` (int, 20 classes). As in the SiLIF
code: channels summed in groups of ``spatial_bin`` (700 / 5 = 140 inputs), spike times counted in
``n_steps`` bins over ``max_time`` seconds (events at or after ``max_time`` are dropped); counts are
clipped to 1, so the inputs stay binary spikes.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..isolate import run_isolated
from .dataset import SeqDataset, TaskData
from .digits import load_sdigits
from .options import require_int, require_real

SPIKE_LEVELS = (1, 5, 9, 13)  # pixel thresholds (of 16) of the four levels
SPIKE_REPEAT = len(SPIKE_LEVELS)
SDIGITS_SPIKES_DESCRIPTION = "8x8 digits as spike trains: rows as time, 4-level thermometer code, 32 steps x 32 channels"

SHD_CHANNELS = 700
SHD_CLASSES = 20
SHD_FILE_NAMES = ("shd_train.h5", "shd_test.h5")
SHD_MAX_STEPS = 10_000      # 0.1 ms bins over 1 s: finer than any published use
SHD_MAX_BYTES = 16 << 30    # binned float32 spikes of one split held in memory
SHD_DESCRIPTION = "Spiking Heidelberg Digits from local HDF5 files, binned (default 100 steps x 140 channels)"


def encode_digit_spikes(pixels: np.ndarray) -> np.ndarray:
    """(n, 64) pixel values 0..16 -> (n, 32, 32) float32 spikes, as the module docstring says."""
    images = np.asarray(pixels).reshape(-1, 8, 8)
    n = images.shape[0]
    out = np.zeros((n, 8, SPIKE_REPEAT, 8, SPIKE_REPEAT), np.float32)  # (n, row, sub-step, col, level)
    for k, level in enumerate(SPIKE_LEVELS):
        out[:, :, k, :, k] = images >= level
    return out.reshape(n, 8 * SPIKE_REPEAT, 8 * SPIKE_REPEAT)


def load_sdigits_spikes() -> TaskData:
    base = load_sdigits()

    def split(data: SeqDataset) -> SeqDataset:
        pixels = np.rint(data.x[:, :, 0].numpy() * 16).astype(np.int64)
        return SeqDataset.from_numpy(encode_digit_spikes(pixels), data.y.numpy())

    return TaskData(name="sdigits-spikes", train=split(base.train), test=split(base.test), n_classes=10,
                    input_kind="real", d_input=8 * SPIKE_REPEAT, seq_len=8 * SPIKE_REPEAT,
                    description=SDIGITS_SPIKES_DESCRIPTION)


def _open_h5(path: Path):
    import h5py

    if path.suffix == ".gz":
        tmp = tempfile.NamedTemporaryFile(suffix=".h5", delete=False)
        with gzip.open(path, "rb") as src, tmp:
            shutil.copyfileobj(src, tmp)
        return h5py.File(tmp.name, "r"), Path(tmp.name)
    return h5py.File(path, "r"), None


def bin_spikes(times, units, n_steps: int, max_time: float, spatial_bin: int) -> np.ndarray:
    """One sample's events -> (n_steps, 700 / spatial_bin) binary spikes."""
    times = np.asarray(times, np.float64)
    units = np.asarray(units, np.int64)
    keep = (times >= 0) & (times < max_time)
    steps = np.floor(times[keep] / max_time * n_steps).astype(np.int64)
    out = np.zeros((n_steps, SHD_CHANNELS // spatial_bin), np.float32)
    np.add.at(out, (steps, units[keep] // spatial_bin), 1.0)
    return np.minimum(out, 1.0)


def read_shd_file(path: Path, n_steps: int, max_time: float, spatial_bin: int, limit: int | None = None):
    """(x, y) of one SHD file; a file not in SHD's layout is refused with the reason."""
    return read_event_file(path, "SHD", "the Spiking Heidelberg Digits", SHD_CLASSES, n_steps, spatial_bin,
                           lambda t, u: bin_spikes(t, u, n_steps, max_time, spatial_bin), limit)


def read_event_file(path: Path, dataset: str, layout: str, n_classes: int, n_steps: int, spatial_bin: int,
                    bin_sample, limit: int | None = None):
    """(x, y) of one file in the SHD layout (SHD, SSC): ``bin_sample(times, units)`` turns each
    sample's events into its (n_steps, 700 / spatial_bin) row block; anything else is refused with
    the reason, naming ``dataset``."""
    try:
        f, tmp = _open_h5(path)
    except OSError as exc:
        raise UserError(f"{dataset} file {path}: not readable as HDF5 ({str(exc).splitlines()[0][:120]})") from None
    try:
        for key in ("spikes/times", "spikes/units", "labels"):
            if key not in f:
                raise UserError(f"{dataset} file {path}: missing /{key} (not the {layout} layout)")
        times, units, labels = f["spikes/times"], f["spikes/units"], f["labels"][...]
        n = len(labels) if limit is None else min(limit, len(labels))
        if len(times) != len(labels) or len(units) != len(labels):
            raise UserError(f"{dataset} file {path}: {len(times)} spike-time lists, {len(units)} unit lists and "
                            f"{len(labels)} labels; they must be equal")
        channels = SHD_CHANNELS // spatial_bin
        if 4 * n * n_steps * channels > SHD_MAX_BYTES:
            raise UserError(f"{dataset} file {path}: {n} samples x {n_steps} steps x {channels} channels need "
                            f"{4 * n * n_steps * channels / 2**30:.1f} GiB (limit {SHD_MAX_BYTES >> 30}); use fewer "
                            "steps, a larger spatial_bin or limit_train/limit_test")
        x = np.zeros((n, n_steps, channels), np.float32)
        for i in range(n):
            t_i, u_i = np.asarray(times[i]), np.asarray(units[i])
            if t_i.shape != u_i.shape:
                raise UserError(f"{dataset} file {path}: sample {i} has {t_i.size} times but {u_i.size} units")
            if u_i.size and (u_i.min() < 0 or u_i.max() >= SHD_CHANNELS):
                raise UserError(f"{dataset} file {path}: sample {i} has units outside 0..{SHD_CHANNELS - 1}")
            if t_i.size and not np.all(np.isfinite(t_i)):
                raise UserError(f"{dataset} file {path}: sample {i} has NaN or infinite spike times")
            x[i] = bin_sample(t_i, u_i)
        y = np.asarray(labels[:n]).astype(np.int64)
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise UserError(f"{dataset} file {path}: labels outside 0..{n_classes - 1}")
        return x, y
    finally:
        f.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _find(data_dir: Path, name: str) -> Path:
    for candidate in (data_dir / name, data_dir / (name + ".gz")):
        if candidate.exists():
            return candidate
    raise UserError(f"data_dir {data_dir}: no {name} (or {name}.gz)")


def check_event_options(task: str, data_dir, n_steps, min_steps: int, max_time, spatial_bin, limit_train,
                        limit_test) -> Path:
    """The folder and binning options of an event dataset in SHD's layout (SHD, SSC), refused in one line."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"data_dir {data_dir}: not a folder")
    require_int(task, "n_steps", n_steps, min_steps, SHD_MAX_STEPS)
    require_real(task, "max_time", max_time, 0.0, 1e4)
    require_int(task, "spatial_bin", spatial_bin, 1, SHD_CHANNELS)
    if SHD_CHANNELS % spatial_bin:
        raise UserError(f"{task}: option spatial_bin must divide {SHD_CHANNELS} (1, 2, 4, 5, 7, 10, 14, 20, 25, 28, "
                        f"35, 50, 70, 100, 140, 175, 350, 700), got {spatial_bin}")
    for option, limit in (("limit_train", limit_train), ("limit_test", limit_test)):
        if limit is not None:
            require_int(task, option, limit, 1)
    return data_dir


def read_event_splits(data_dir: Path, label: str, reader, files, n_steps, max_time, spatial_bin) -> list:
    """The (train, test) datasets of an event dataset: ``reader`` on each ``(file name, limit)`` of
    ``files``. libhdf5 parses a third-party file: in a child process, so a damaged file cannot crash
    the command."""
    splits = []
    for name, limit in files:
        path = _find(data_dir, name)
        x, y = run_isolated(reader, path, n_steps, max_time, spatial_bin, limit, what=f"{label} file {path}",
                            timeout_s=3600)
        splits.append(SeqDataset.from_numpy(x, y))
    return splits


def load_shd(data_dir, *, n_steps: int = 100, max_time: float = 1.0, spatial_bin: int = 5,
             limit_train: int | None = None, limit_test: int | None = None) -> TaskData:
    data_dir = check_event_options("shd", data_dir, n_steps, 1, max_time, spatial_bin, limit_train, limit_test)
    train, test = read_event_splits(data_dir, "SHD", read_shd_file, zip(SHD_FILE_NAMES, (limit_train, limit_test)),
                                    n_steps, max_time, spatial_bin)
    return TaskData(name="shd", train=train, test=test, n_classes=SHD_CLASSES, input_kind="real",
                    d_input=SHD_CHANNELS // spatial_bin, seq_len=n_steps, description=SHD_DESCRIPTION)
