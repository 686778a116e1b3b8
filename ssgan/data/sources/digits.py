"""scikit-learn's embedded 8x8 digits: the source that needs no files, used by the default run and the tests."""

from __future__ import annotations

import torch

from ssgan.data.sources.base import ArrayDataset, SourceData
from ssgan.errors import SSGANError


class DigitsSource:
    """scikit-learn's embedded 8x8 digits (1797 images, 10 classes) with a fixed, seeded train/test split."""

    def __init__(self, test_fraction: float = 0.2, split_seed: int = 0) -> None:
        if not 0.0 < test_fraction < 1.0:
            raise SSGANError(f"data.source.test_fraction={test_fraction} must be in (0, 1)")
        self.test_fraction = test_fraction
        self.split_seed = split_seed

    def load(self) -> SourceData:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
        labels = torch.as_tensor(digits.target, dtype=torch.int64)
        train_index, test_index = train_test_split(
            range(len(labels)),
            test_size=self.test_fraction,
            random_state=self.split_seed,
            stratify=digits.target,
        )
        train_index_t, test_index_t = torch.as_tensor(train_index), torch.as_tensor(test_index)
        return SourceData(
            train=ArrayDataset(images[train_index_t], labels[train_index_t]),
            test=ArrayDataset(images[test_index_t], labels[test_index_t]),
            class_names=tuple(str(name) for name in digits.target_names),
        )
