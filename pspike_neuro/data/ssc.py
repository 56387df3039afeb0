"""``ssc``: the Spiking Speech Commands (Cramer et al., IEEE TNNLS 2022) from local files.

``ssc_train.h5`` and ``ssc_test.h5`` (``ssc_valid.h5`` with ``eval_on_valid=1``; each may be
gzipped) in ``data_dir``, in SHD's layout: ``/spikes/times`` (ragged, seconds), ``/spikes/units``
(ragged, cochlea channel 0..699), ``/labels`` (35 classes). Binned as the SiLIF repository bins them
(its ``dataloaders/spiking_datasets.py`` with the SSC configs), so its trained networks see the
inputs they were trained on:

* time: edges ``linspace(0, max_time, n_steps)`` (300 edges over 1.2 s, 4.01 ms apart); an event at
  ``t`` goes to step ``digitize(t, edges)``: ``k`` for ``edges[k-1] <= t < edges[k]``, so step 0
  takes only ``t < 0`` and is always empty, and an event at or after ``max_time`` (index
  ``n_steps``) is dropped, as the authors' sparse-to-dense conversion drops it;
* counts: events of one step and channel are summed, not clipped;
* channels: 700 channels summed in groups of ``spatial_bin`` (5: 140 inputs).

The inputs are therefore event counts (0, 1, 2, ...), not binary spikes: a network trained on them
takes counts (``SNNConfig.input_counts``, deployed through ``CountInput``). Memory: the train split
(75,466 samples) binned at the defaults holds 12.7 GB of float32; ``limit_train`` / ``limit_test``
keep the first N samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import TaskData
from .options import require_int
from .spikes import SHD_CHANNELS, check_event_options, read_event_file, read_event_splits

SSC_CLASSES = 35
SSC_FILE_NAMES = ("ssc_train.h5", "ssc_test.h5", "ssc_valid.h5")
SSC_DESCRIPTION = ("Spiking Speech Commands from local HDF5 files, binned as the SiLIF repository does (default 300 "
                   "steps over 1.2 s x 140 channels, event counts)")


def bin_counts(times, units, n_steps: int, max_time: float, spatial_bin: int) -> np.ndarray:
    """One sample's events -> (n_steps, 700 / spatial_bin) event counts, as the module docstring says."""
    times = np.asarray(times, np.float64)
    units = np.asarray(units, np.int64)
    steps = np.digitize(times, np.linspace(0.0, max_time, n_steps))
    keep = steps < n_steps
    out = np.zeros((n_steps, SHD_CHANNELS // spatial_bin), np.float32)
    np.add.at(out, (steps[keep], units[keep] // spatial_bin), 1.0)
    return out


def read_ssc_file(path: Path, n_steps: int, max_time: float, spatial_bin: int, limit: int | None = None):
    """(x, y) of one SSC file; a file not in SHD's layout is refused with the reason."""
    return read_event_file(path, "SSC", "Spiking Speech Commands (SHD)", SSC_CLASSES, n_steps, spatial_bin,
                           lambda t, u: bin_counts(t, u, n_steps, max_time, spatial_bin), limit)


def load_ssc(data_dir, *, n_steps: int = 300, max_time: float = 1.2, spatial_bin: int = 5,
             limit_train: int | None = None, limit_test: int | None = None, eval_on_valid: int = 0) -> TaskData:
    data_dir = check_event_options("ssc", data_dir, n_steps, 2, max_time, spatial_bin, limit_train, limit_test)
    require_int("ssc", "eval_on_valid", eval_on_valid, 0, 1)
    evaluated = "ssc_valid.h5" if eval_on_valid else "ssc_test.h5"
    train, test = read_event_splits(data_dir, "SSC", read_ssc_file, (("ssc_train.h5", limit_train),
                                                                     (evaluated, limit_test)),
                                    n_steps, max_time, spatial_bin)
    return TaskData(name="ssc", train=train, test=test, n_classes=SSC_CLASSES, input_kind="real",
                    d_input=SHD_CHANNELS // spatial_bin, seq_len=n_steps, description=SSC_DESCRIPTION)
