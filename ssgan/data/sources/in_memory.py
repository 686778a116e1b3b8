"""A source over arrays already in memory (the scikit-learn estimator's X and y)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ssgan.data.sources.base import ArrayDataset, SourceData
from ssgan.errors import SSGANError


class InMemorySource:
    """Inputs (N, *shape) and labels (N,) with -1 for unlabeled; the labeled rows double as the (unused) test set."""

    def __init__(self, inputs: Tensor, labels: Tensor, class_names: Sequence[str]) -> None:
        if not bool((labels >= 0).any()):
            raise SSGANError("no labeled examples: every label is -1")
        self.inputs = inputs.float()
        self.labels = labels.long()
        self.class_names = tuple(class_names)

    def load(self) -> SourceData:
        labeled = self.labels >= 0
        return SourceData(
            train=ArrayDataset(self.inputs, self.labels),
            test=ArrayDataset(self.inputs[labeled], self.labels[labeled]),
            class_names=self.class_names,
        )
