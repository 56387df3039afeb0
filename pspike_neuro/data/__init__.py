"""Datasets as labelled sequences: embedded sets and generators, and loaders for local files.

Embedded (no files, no network): ``sdigits``, ``psdigits`` (scikit-learn's 8x8 digits) and the
``listops`` generator, ``sdigits-spikes`` (the digits as spike trains). From a local folder:
``smnist``, ``psmnist`` (MNIST IDX files), ``shd`` (Spiking Heidelberg Digits HDF5 files), ``ssc``
(Spiking Speech Commands, binned as the SiLIF repository bins it).
"""

from .dataset import SeqDataset, TaskData
from .digits import PSDIGITS_PERMUTATION
from .idx import read_idx
from .listops import decode_listops, evaluate_listops, generate_listops, tokenize_listops
from .mnist import bitreversal_permutation
from .options import parse_task_options
from .tasks import TASKS, load_recorded_task, load_task

__all__ = [
    "PSDIGITS_PERMUTATION",
    "TASKS",
    "SeqDataset",
    "TaskData",
    "bitreversal_permutation",
    "decode_listops",
    "evaluate_listops",
    "generate_listops",
    "load_recorded_task",
    "load_task",
    "parse_task_options",
    "read_idx",
    "tokenize_listops",
]
