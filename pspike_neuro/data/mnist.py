"""Sequential and permuted MNIST (sMNIST, psMNIST) from the IDX files in a local folder.

Each 28x28 image becomes a 784-step sequence in row-major order with one feature per step,
``pixel / 255``. psMNIST reorders the steps by the bit-reversal permutation, as the state-spaces/S4
code base (and so P-SpikeSSM) does: step ``t`` holds pixel ``bitreversal_permutation(784)[t]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from .dataset import SeqDataset, TaskData
from .idx import read_idx
from .options import require_int

MNIST_SIDE = 28
MNIST_SEQ_LEN = MNIST_SIDE * MNIST_SIDE
MNIST_PIXEL_MAX = 255.0
MNIST_N_CLASSES = 10
MNIST_SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_FILE_NAMES: tuple[str, ...] = tuple(name for pair in MNIST_SPLIT_FILES.values() for name in pair)

SMNIST_DESCRIPTION = "sequential MNIST from local IDX files, 784 steps, 10 classes"
PSMNIST_DESCRIPTION = "permuted sequential MNIST (bit-reversal permutation) from local IDX files, 784 steps, 10 classes"


def bitreversal_permutation(n: int) -> np.ndarray:
    """Indices ``0..2**m - 1`` (``2**m >= n`` the next power of two) with their m bits reversed,
    keeping only those below ``n``. ``bitreversal_permutation(8)`` is ``[0, 4, 2, 6, 1, 5, 3, 7]``.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    n_bits = (n - 1).bit_length()
    index = np.arange(1 << n_bits)
    reversed_index = np.zeros_like(index)
    for bit in range(n_bits):
        reversed_index |= ((index >> bit) & 1) << (n_bits - 1 - bit)
    return reversed_index[reversed_index < n]


def _find_file(data_dir: Path, name: str) -> Path:
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise UserError(f"MNIST file {name} (or {name}.gz) not found in {data_dir}")


def _read_split(data_dir: Path, split: str, limit: int | None, permutation: np.ndarray | None) -> SeqDataset:
    images_path, labels_path = (_find_file(data_dir, name) for name in MNIST_SPLIT_FILES[split])
    images = read_idx(images_path, expected_ndim=3)
    labels = read_idx(labels_path, expected_ndim=1)
    if images.shape[1:] != (MNIST_SIDE, MNIST_SIDE):
        raise UserError(
            f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, MNIST needs {MNIST_SIDE}x{MNIST_SIDE}"
        )
    if len(images) != len(labels):
        raise UserError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if len(labels) and labels.max() >= MNIST_N_CLASSES:
        raise UserError(f"{labels_path}: label {labels.max()} is outside 0..{MNIST_N_CLASSES - 1}")
    images, labels = images[:limit], labels[:limit]
    steps = images.reshape(len(images), MNIST_SEQ_LEN).astype(np.float32) / MNIST_PIXEL_MAX
    if permutation is not None:
        steps = steps[:, permutation]
    return SeqDataset.from_numpy(steps[:, :, None], labels)


def _mnist_task(
    name: str,
    description: str,
    data_dir: str | Path,
    limit_train: int | None,
    limit_test: int | None,
    permutation: np.ndarray | None,
) -> TaskData:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"{name}: data_dir {data_dir} is not a folder")
    for option, limit in (("limit_train", limit_train), ("limit_test", limit_test)):
        if limit is not None:
            require_int(name, option, limit, 1)
    return TaskData(
        name=name,
        train=_read_split(data_dir, "train", limit_train, permutation),
        test=_read_split(data_dir, "test", limit_test, permutation),
        n_classes=MNIST_N_CLASSES,
        input_kind="real",
        d_input=1,
        seq_len=MNIST_SEQ_LEN,
        description=description,
    )


def load_smnist(data_dir: str | Path, *, limit_train: int | None = None, limit_test: int | None = None) -> TaskData:
    """MNIST as 784-step pixel sequences; ``limit_*`` keeps only the first k examples of a split."""
    return _mnist_task("smnist", SMNIST_DESCRIPTION, data_dir, limit_train, limit_test, None)


def load_psmnist(data_dir: str | Path, *, limit_train: int | None = None, limit_test: int | None = None) -> TaskData:
    """MNIST with the steps reordered by ``bitreversal_permutation(784)``."""
    return _mnist_task(
        "psmnist", PSMNIST_DESCRIPTION, data_dir, limit_train, limit_test, bitreversal_permutation(MNIST_SEQ_LEN)
    )
