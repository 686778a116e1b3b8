"""Data: sources that read real formats, the labeled/unlabeled split, input encoders and the data module."""

from ssgan.data.datamodule import SemiSupervisedDataModule
from ssgan.data.sources import ArrayDataset, DigitsSource, SourceData
from ssgan.data.split import Split, balanced_labeled_indices, make_split

__all__ = [
    "ArrayDataset",
    "DigitsSource",
    "SemiSupervisedDataModule",
    "SourceData",
    "Split",
    "balanced_labeled_indices",
    "make_split",
]
