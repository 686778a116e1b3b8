"""CIFAR-10 reader on tiny python-pickle batches (byte keys, as the official files), folder and .tar.gz."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from format_writers import cifar_batch, cifar_files, write_cifar_archive, write_cifar_folder
from ssgan.data.sources import CIFAR10Source
from ssgan.errors import SSGANError


def test_reads_batches_folder(tmp_path: Path) -> None:
    files = cifar_files(per_batch=10)
    write_cifar_folder(tmp_path, files)
    data = CIFAR10Source(tmp_path).load()
    assert data.train.inputs.shape == (50, 3, 32, 32) and data.test.inputs.shape == (10, 3, 32, 32)
    assert data.class_names[:2] == ("airplane", "automobile")
    first = pickle.loads(files["data_batch_1"], encoding="bytes")[b"data"][0].reshape(3, 32, 32)
    assert np.allclose(data.train.inputs[0].numpy(), first / 255.0)
    assert data.train.labels[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_reads_official_archive_in_symmetric_range(tmp_path: Path) -> None:
    write_cifar_archive(tmp_path)
    data = CIFAR10Source(tmp_path, pixel_range="symmetric").load()
    assert len(data.train) == 50 and -1.0 <= float(data.train.inputs.min()) < -0.9


def test_refuses_pickled_code(tmp_path: Path) -> None:
    files = cifar_files()
    files["data_batch_3"] = pickle.dumps({b"data": print, b"labels": []})
    write_cifar_folder(tmp_path, files)
    with pytest.raises(SSGANError, match="data_batch_3: not a CIFAR-10 python batch"):
        CIFAR10Source(tmp_path).load()


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(SSGANError, match="cifar-10-python.tar.gz") as error:
        CIFAR10Source(tmp_path).load()
    assert str(tmp_path) in str(error.value)


def test_batch_with_wrong_data_shape(tmp_path: Path) -> None:
    files = cifar_files()
    batch = cifar_batch(10)
    batch[b"data"] = np.zeros((10, 100), dtype=np.uint8)
    files["test_batch"] = pickle.dumps(batch, protocol=2)
    write_cifar_folder(tmp_path, files)
    with pytest.raises(SSGANError, match=r"test_batch: b'data' is uint8 \(10, 100\)"):
        CIFAR10Source(tmp_path).load()
