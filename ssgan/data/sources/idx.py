"""MNIST and Fashion-MNIST from their official idx files (``.gz`` or uncompressed), read with ``np.frombuffer``."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from ssgan.data.sources.download import RemoteFile, fetch, missing_files_error
from ssgan.data.sources.pixels import check_pixel_range, scale_pixels
from ssgan.data.sources.base import ArrayDataset, SourceData, check_labels
from ssgan.errors import SSGANError

# The third byte of the magic number names the element type; the fourth, the number of dimensions.
IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_file_bytes(path: Path) -> bytes:
    """Whole file, gunzipped when it ends in ``.gz``; a corrupt or truncated archive is a one-line error."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise SSGANError(f"{path}: cannot be read ({error}); expected an intact idx file or its .gz") from None


def read_idx(path: Path) -> np.ndarray:
    """Parse an idx file: magic 0x0000TTDD, DD big-endian uint32 sizes, then the elements (no copy per sample)."""
    raw = read_file_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        magic = int.from_bytes(raw[:4].ljust(4, b"\0"), "big")
        raise SSGANError(
            f"{path}: magic number 0x{magic:08x} is not an idx header "
            "(expected 0x00000801 for labels or 0x00000803 for images)"
        )
    dtype, ndim = IDX_TYPES[raw[2]], raw[3]
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise SSGANError(f"{path}: file ends inside its header ({len(raw)} bytes, header needs {header_bytes})")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header_bytes != expected:
        raise SSGANError(
            f"{path}: holds {len(raw) - header_bytes} bytes of data but its header {shape} promises {expected}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header_bytes).reshape(shape)


class IdxImageSource:
    """Images and labels from the four official idx files in ``root`` (each ``name`` or ``name.gz``)."""

    base_url = ""
    checksums: dict[str, str] = {}
    class_names: tuple[str, ...] = ()

    def __init__(self, root: str | Path, download: bool = False, pixel_range: str = "unit") -> None:
        self.root = Path(root).expanduser()
        self.download = download
        self.pixel_range = check_pixel_range(pixel_range)

    def locate(self, name: str) -> Path | None:
        """The compressed or uncompressed copy of ``name``, whichever exists."""
        for candidate in (self.root / f"{name}.gz", self.root / name):
            if candidate.is_file():
                return candidate
        return None

    def paths(self) -> dict[str, Path]:
        """Every file's path, downloading the missing ones when allowed."""
        found = {key: self.locate(name) for key, name in IDX_FILES.items()}
        missing = [IDX_FILES[key] for key, path in found.items() if path is None]
        if missing and not self.download:
            raise missing_files_error(self.root, [f"{name}[.gz]" for name in IDX_FILES.values()])
        for key, path in found.items():
            if path is None:
                name = IDX_FILES[key] + ".gz"
                found[key] = fetch(RemoteFile(name, self.base_url + name, self.checksums[name]), self.root)
        return {key: path for key, path in found.items() if path is not None}

    def read_pair(self, images_path: Path, labels_path: Path) -> ArrayDataset:
        """One split: (N, 28, 28) uint8 images and (N,) labels whose counts must agree."""
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3:
            raise SSGANError(f"{images_path}: has {images.ndim} dimensions {images.shape}; expected (N, rows, cols)")
        if labels.ndim != 1:
            raise SSGANError(f"{labels_path}: has {labels.ndim} dimensions {labels.shape}; expected (N,)")
        if images.shape[0] != labels.shape[0]:
            raise SSGANError(
                f"{images_path.name} holds {images.shape[0]} images but {labels_path.name} holds "
                f"{labels.shape[0]} labels (in {images_path.parent}); expected one label per image"
            )
        targets = torch.from_numpy(labels.astype(np.int64))
        check_labels(targets, len(self.class_names), str(labels_path))  # uint8: never -1
        return ArrayDataset(scale_pixels(images[:, None], self.pixel_range), targets)

    def load(self) -> SourceData:
        paths = self.paths()
        return SourceData(
            train=self.read_pair(paths["train_images"], paths["train_labels"]),
            test=self.read_pair(paths["test_images"], paths["test_labels"]),
            class_names=self.class_names,
        )


class MNISTSource(IdxImageSource):
    """MNIST handwritten digits: 60000 training and 10000 test images, 28x28 grayscale."""

    base_url = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    checksums = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    class_names = tuple(str(digit) for digit in range(10))


class FashionMNISTSource(IdxImageSource):
    """Fashion-MNIST (Zalando): MNIST's file layout and sizes, ten kinds of clothing."""

    base_url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    checksums = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    class_names = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )
