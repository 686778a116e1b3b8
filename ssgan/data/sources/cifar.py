"""CIFAR-10 from the official python-pickle batches: the ``cifar-10-batches-py`` folder or the ``.tar.gz``."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssgan.data.sources.download import RemoteFile, fetch, missing_files_error
from ssgan.data.sources.pixels import check_pixel_range, scale_pixels
from ssgan.data.sources.base import ArrayDataset, SourceData, check_labels
from ssgan.errors import SSGANError

FOLDER = "cifar-10-batches-py"
ARCHIVE = RemoteFile(
    "cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"
)
TRAIN_BATCHES = tuple(f"data_batch_{index}" for index in range(1, 6))
TEST_BATCH, META = "test_batch", "batches.meta"
EXPECTED = (*TRAIN_BATCHES, TEST_BATCH, META)

# The batches hold plain containers and numpy arrays; nothing else may be constructed while unpickling.
# (_codecs.encode is how protocol-2 pickles written by Python 3 spell a bytes object.)
ALLOWED_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch, refusing any global other than numpy's array reconstruction."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def unpickle_batch(raw: bytes, where: str) -> dict[bytes, Any]:
    """Bytes of one batch -> its dict with byte keys, as the official files (pickled by Python 2) have."""
    try:
        batch = BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as error:  # a damaged pickle can raise almost anything; the boundary names the file
        raise SSGANError(f"{where}: not a CIFAR-10 python batch ({error})") from None
    if not isinstance(batch, dict):
        raise SSGANError(f"{where}: holds a {type(batch).__name__}; expected a dict with b'data' and b'labels'")
    return batch


def batch_field(batch: dict[bytes, Any], key: bytes, where: str) -> Any:
    """One key of a batch dict, or an error listing the keys the file does have."""
    if key not in batch:
        found = ", ".join(repr(k) for k in batch) or "none"
        raise SSGANError(f"{where}: key {key!r} missing (found {found}); expected an official CIFAR-10 batch")
    return batch[key]


def decode_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch -> uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    batch = unpickle_batch(raw, where)
    data = np.asarray(batch_field(batch, b"data", where))
    labels = np.asarray(batch_field(batch, b"labels", where))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise SSGANError(f"{where}: b'data' is {data.dtype} {data.shape}; expected uint8 (N, 3072)")
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise SSGANError(
            f"{where}: b'labels' is {labels.dtype} {labels.shape} for {data.shape[0]} images; expected N integers"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


class CIFAR10Source:
    """CIFAR-10: 50000 training and 10000 test colour images 32x32 in 10 classes."""

    def __init__(self, root: str | Path, download: bool = False, pixel_range: str = "unit") -> None:
        self.root = Path(root).expanduser()
        self.download = download
        self.pixel_range = check_pixel_range(pixel_range)

    def read_members(self) -> dict[str, tuple[bytes, str]]:
        """Raw bytes of every batch (and where it came from), from the folder if present, else the archive."""
        for folder in (self.root / FOLDER, self.root):
            if (folder / TRAIN_BATCHES[0]).is_file():
                missing = [name for name in EXPECTED if not (folder / name).is_file()]
                if missing:
                    raise missing_files_error(folder, EXPECTED, f" (missing {', '.join(missing)})")
                return {name: ((folder / name).read_bytes(), str(folder / name)) for name in EXPECTED}
        archive = self.root / ARCHIVE.name
        if not archive.is_file():
            if not self.download:
                raise missing_files_error(self.root, [f"{FOLDER}/{{{','.join(EXPECTED)}}}", ARCHIVE.name])
            archive = fetch(ARCHIVE, self.root)
        return self.read_archive(archive)

    @staticmethod
    def read_archive(archive: Path) -> dict[str, tuple[bytes, str]]:
        """Batches straight from the ``.tar.gz`` (nothing extracted to disk)."""
        members: dict[str, tuple[bytes, str]] = {}
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for name in EXPECTED:
                    try:
                        stream = tar.extractfile(f"{FOLDER}/{name}")
                    except KeyError:
                        stream = None
                    if stream is None:
                        raise SSGANError(f"{archive}: has no member {FOLDER}/{name}; expected the official archive")
                    members[name] = (stream.read(), f"{archive}:{FOLDER}/{name}")
        except (tarfile.TarError, OSError, EOFError) as error:
            raise SSGANError(f"{archive}: cannot be read as a .tar.gz ({error})") from None
        return members

    def load(self) -> SourceData:
        members = self.read_members()
        meta = unpickle_batch(*members[META])
        class_names = tuple(
            name.decode() if isinstance(name, bytes) else str(name)
            for name in batch_field(meta, b"label_names", members[META][1])
        )
        splits = []
        for names in (TRAIN_BATCHES, (TEST_BATCH,)):
            decoded = [decode_batch(*members[name]) for name in names]
            images = np.concatenate([images for images, _ in decoded])
            labels = torch.from_numpy(np.concatenate([labels for _, labels in decoded]))
            where = members[names[0]][1] if len(names) == 1 else f"{members[names[0]][1]}..{names[-1]}"
            check_labels(labels, len(class_names), where)
            splits.append(ArrayDataset(scale_pixels(images, self.pixel_range), labels))
        return SourceData(train=splits[0], test=splits[1], class_names=class_names)
