"""What every source yields (tensors: inputs, labels with -1 = unlabeled, class names) and the checks every
source shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ssgan.errors import SSGANError

UNLABELED = -1


@dataclass(frozen=True)
class ArrayDataset:
    """Inputs (N, *shape) float32 and labels (N,) int64 where -1 marks an unlabeled example."""

    inputs: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.inputs.shape[0] != self.labels.shape[0]:
            raise SSGANError(
                f"inputs hold {self.inputs.shape[0]} examples but labels hold {self.labels.shape[0]}; "
                "expected one label (or -1) per example"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class InputScaling:
    """Per-feature ``(x - shift) / spread`` fitted on the training rows; checkpoints keep it, so prediction scales
    raw inputs exactly as training did."""

    shift: Tensor  # (F,) over the flattened features
    spread: Tensor  # (F,), never 0

    def __call__(self, inputs: Tensor) -> Tensor:
        flat = inputs.reshape(inputs.shape[0], -1)
        return ((flat - self.shift.to(flat.dtype)) / self.spread.to(flat.dtype)).reshape(inputs.shape)

    def state_dict(self) -> dict[str, Tensor]:
        return {"shift": self.shift, "spread": self.spread}

    @classmethod
    def from_state(cls, state: dict[str, Tensor] | None) -> InputScaling | None:
        return cls(torch.as_tensor(state["shift"]), torch.as_tensor(state["spread"])) if state else None


@dataclass(frozen=True)
class SourceData:
    """What every source yields: a training pool, a test set, the names of the K classes, and the scaling the
    source applied to raw inputs (None when it used them as stored)."""

    train: ArrayDataset
    test: ArrayDataset
    class_names: tuple[str, ...]
    input_scaling: InputScaling | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.inputs.shape[1:])


class Source(Protocol):
    """Anything with a ``load()`` returning :class:`SourceData` can feed a run."""

    def load(self) -> SourceData: ...


def check_labels(labels: Tensor, num_classes: int, where: str) -> None:
    """Refuse labels outside [0, K) (other than -1 for unlabeled) before they reach a loss."""
    bad = (labels != UNLABELED) & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        raise SSGANError(
            f"{where}: label {int(labels[index])} at row {index} is outside [0, {num_classes}) "
            f"(use {UNLABELED} for unlabeled)"
        )


def check_finite(inputs: Tensor, where: str) -> None:
    """Refuse NaN/inf features: one bad value poisons every gradient."""
    bad = ~torch.isfinite(inputs.reshape(inputs.shape[0], -1))
    if bool(bad.any()):
        row, column = (int(v) for v in bad.nonzero()[0])
        raise SSGANError(f"{where}: non-finite value {float(inputs.reshape(inputs.shape[0], -1)[row, column])} "
                         f"at row {row}, feature {column}; expected finite numbers")
