"""Writers of tiny files in exactly the official layouts (idx, CIFAR pickles, SVHN .mat) for the reader tests."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Magic 0x0000TTDD, the sizes as big-endian uint32, then the elements."""
    header = bytes([0, 0, type_code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(">u1").tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    raw = idx_bytes(array)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def write_mnist(root: Path, train: int = 30, test: int = 20, compress: bool = True, seed: int = 0) -> dict[str, Path]:
    """Four idx files of random 28x28 images and labels cycling through 0..9."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(test) % 10).astype(np.uint8),
    }
    return {key: write_idx(root / IDX_NAMES[key], arrays[key], compress) for key in IDX_NAMES}


def cifar_batch(count: int, seed: int = 0) -> dict[bytes, object]:
    """A batch dict as the official files hold it: byte keys, uint8 data (N, 3072), labels a list of ints."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch",
        b"labels": [int(v) for v in np.arange(count) % 10],
        b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        b"filenames": [f"image_{i}.png".encode() for i in range(count)],
    }


CIFAR_CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def cifar_files(per_batch: int = 10) -> dict[str, bytes]:
    files = {f"data_batch_{i}": pickle.dumps(cifar_batch(per_batch, seed=i), protocol=2) for i in range(1, 6)}
    files["test_batch"] = pickle.dumps(cifar_batch(per_batch, seed=9), protocol=2)
    files["batches.meta"] = pickle.dumps(
        {b"num_cases_per_batch": per_batch, b"label_names": CIFAR_CLASSES, b"num_vis": 3072}, protocol=2
    )
    return files


def write_cifar_folder(root: Path, files: dict[str, bytes] | None = None) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in (files or cifar_files()).items():
        (folder / name).write_bytes(raw)
    return folder


def write_cifar_archive(root: Path, files: dict[str, bytes] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, raw in (files or cifar_files()).items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return archive


def write_svhn_mat(path: Path, count: int, seed: int = 0, **override: np.ndarray) -> Path:
    """X (32, 32, 3, N) uint8 and y (N, 1) with 10 standing for digit 0, as in the official files."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    content = {
        "X": rng.integers(0, 256, (32, 32, 3, count), dtype=np.uint8),
        "y": (np.arange(count) % 10 + 1).astype(np.uint8).reshape(-1, 1),
    }
    content.update(override)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, content)
    return path
