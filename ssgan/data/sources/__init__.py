"""Sources: readers of the official dataset files and of users' own data, each yielding :class:`SourceData`."""

from ssgan.data.sources.base import UNLABELED, ArrayDataset, Source, SourceData
from ssgan.data.sources.cifar import CIFAR10Source
from ssgan.data.sources.digits import DigitsSource
from ssgan.data.sources.idx import FashionMNISTSource, MNISTSource
from ssgan.data.sources.images import ImageFolderSource
from ssgan.data.sources.in_memory import InMemorySource
from ssgan.data.sources.npz import NpzSource
from ssgan.data.sources.svhn import SVHNSource
from ssgan.data.sources.tables import TableSource

__all__ = [
    "UNLABELED",
    "ArrayDataset",
    "CIFAR10Source",
    "DigitsSource",
    "FashionMNISTSource",
    "ImageFolderSource",
    "InMemorySource",
    "MNISTSource",
    "NpzSource",
    "SVHNSource",
    "Source",
    "SourceData",
    "TableSource",
]
