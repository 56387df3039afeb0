"""Sequential and permuted 8x8 digits: a miniature of sMNIST / psMNIST that ships with scikit-learn.

Each 8x8 image (pixel values 0..16) becomes a 64-step sequence in row-major order with one feature
per step, ``pixel / 16`` in [0, 1]. The split is fixed: stratified, 20 % test, ``random_state=0``,
which gives 1437 train and 360 test sequences.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from .dataset import SeqDataset, TaskData

DIGITS_SEQ_LEN = 64
DIGITS_PIXEL_MAX = 16.0
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
PSDIGITS_PERMUTATION_SEED = 20250417

PSDIGITS_PERMUTATION: np.ndarray = np.random.default_rng(PSDIGITS_PERMUTATION_SEED).permutation(DIGITS_SEQ_LEN)
"""Step ``t`` of a psdigits sequence is pixel ``PSDIGITS_PERMUTATION[t]`` of the row-major image."""

SDIGITS_DESCRIPTION = "sequential 8x8 digits (scikit-learn), 64 steps, 10 classes"
PSDIGITS_DESCRIPTION = "permuted sequential 8x8 digits (fixed random permutation), 64 steps, 10 classes"


def _digits_task(name: str, description: str, permutation: np.ndarray | None) -> TaskData:
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data,
        digits.target,
        test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED,
        stratify=digits.target,
    )

    def to_split(x: np.ndarray, y: np.ndarray) -> SeqDataset:
        steps = x / DIGITS_PIXEL_MAX
        if permutation is not None:
            steps = steps[:, permutation]
        return SeqDataset.from_numpy(steps[:, :, None], y)

    return TaskData(
        name=name,
        train=to_split(x_train, y_train),
        test=to_split(x_test, y_test),
        n_classes=10,
        input_kind="real",
        d_input=1,
        seq_len=DIGITS_SEQ_LEN,
        description=description,
    )


def load_sdigits() -> TaskData:
    """The 8x8 digits as 64-step pixel sequences, row-major."""
    return _digits_task("sdigits", SDIGITS_DESCRIPTION, None)


def load_psdigits() -> TaskData:
    """The 8x8 digits with the time steps reordered by ``PSDIGITS_PERMUTATION``."""
    return _digits_task("psdigits", PSDIGITS_DESCRIPTION, PSDIGITS_PERMUTATION)
