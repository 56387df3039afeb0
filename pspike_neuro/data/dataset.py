"""The two records every task produces: a split of labelled sequences, and a task with its metadata."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

INPUT_KINDS = ("real", "tokens")


@dataclass
class SeqDataset:
    """``n`` labelled sequences of padded length ``L``.

    ``x`` is float32 ``(n, L, d_input)`` for real-valued inputs or int64 ``(n, L)`` token ids;
    ``y`` is int64 ``(n,)``; ``lengths`` is int64 ``(n,)``, the valid steps of each sequence
    (``x[i, lengths[i]:]`` is padding; ``lengths == L`` when nothing is padded).
    """

    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        if self.x.dtype == torch.float32:
            if self.x.dim() != 3:
                raise ValueError(f"real-valued x must be (n, L, d_input), got {tuple(self.x.shape)}")
        elif self.x.dtype == torch.int64:
            if self.x.dim() != 2:
                raise ValueError(f"token x must be (n, L), got {tuple(self.x.shape)}")
        else:
            raise ValueError(f"x must be float32 or int64, got {self.x.dtype}")
        for field in ("y", "lengths"):
            value = getattr(self, field)
            if value.dtype != torch.int64 or tuple(value.shape) != (n,):
                raise ValueError(f"{field} must be int64 of shape ({n},), got {value.dtype} {tuple(value.shape)}")
        if n and (int(self.lengths.min()) < 1 or int(self.lengths.max()) > self.x.shape[1]):
            raise ValueError(f"lengths must lie in [1, {self.x.shape[1]}]")

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index):
        return self.x[index], self.y[index], self.lengths[index]

    def select(self, index: slice | torch.Tensor) -> "SeqDataset":
        """The sequences picked by a slice or index tensor, as a new dataset."""
        return SeqDataset(x=self.x[index], y=self.y[index], lengths=self.lengths[index])

    @classmethod
    def from_numpy(cls, x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> "SeqDataset":
        """Wrap arrays as tensors: float inputs become float32, integer inputs and labels int64.

        Without ``lengths`` every sequence is taken as unpadded (``lengths == L``).
        """
        x_tensor = torch.from_numpy(np.ascontiguousarray(x))
        x_tensor = x_tensor.to(torch.float32 if x_tensor.is_floating_point() else torch.int64)
        if lengths is None:
            lengths = np.full(len(y), x.shape[1])
        return cls(
            x=x_tensor,
            y=torch.from_numpy(np.asarray(y)).to(torch.int64),
            lengths=torch.from_numpy(np.asarray(lengths)).to(torch.int64),
        )


@dataclass
class TaskData:
    """A task: its train and test splits and what a model needs to know to read them."""

    name: str
    train: SeqDataset
    test: SeqDataset
    n_classes: int
    input_kind: str
    d_input: int
    seq_len: int
    description: str

    def __post_init__(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {self.input_kind!r}")
        for split in (self.train, self.test):
            if split.x.shape[1] != self.seq_len:
                raise ValueError(f"split length {split.x.shape[1]} != seq_len {self.seq_len}")
            if self.input_kind == "real" and split.x.shape[2] != self.d_input:
                raise ValueError(f"split has {split.x.shape[2]} features, d_input is {self.d_input}")
