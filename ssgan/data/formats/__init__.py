"""Readers of the official dataset files and of users' own data, each yielding :class:`SourceData`."""

from ssgan.data.formats.cifar import CIFAR10Source
from ssgan.data.formats.idx import FashionMNISTSource, MNISTSource
from ssgan.data.formats.images import ImageFolderSource
from ssgan.data.formats.npz import NpzSource
from ssgan.data.formats.svhn import SVHNSource
from ssgan.data.formats.tables import TableSource

__all__ = [
    "CIFAR10Source",
    "FashionMNISTSource",
    "ImageFolderSource",
    "MNISTSource",
    "NpzSource",
    "SVHNSource",
    "TableSource",
]
