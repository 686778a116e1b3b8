"""MNIST/Fashion-MNIST idx reader on tiny files in the official layout, gzipped and not."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from format_writers import write_mnist
from ssgan.data.sources import FashionMNISTSource, MNISTSource
from ssgan.data.sources.idx import read_idx
from ssgan.errors import SSGANError


@pytest.mark.parametrize("compress", [True, False])
def test_reads_official_layout(tmp_path: Path, compress: bool) -> None:
    paths = write_mnist(tmp_path, train=30, test=20, compress=compress)
    data = MNISTSource(tmp_path).load()
    assert data.train.inputs.shape == (30, 1, 28, 28) and data.test.inputs.shape == (20, 1, 28, 28)
    assert data.train.inputs.dtype == torch.float32
    assert 0.0 <= float(data.train.inputs.min()) and float(data.train.inputs.max()) <= 1.0
    raw = read_idx(paths["train_images"])
    assert torch.allclose(data.train.inputs[:, 0], torch.from_numpy(raw.astype(np.float32)) / 255)
    assert data.train.labels.tolist() == [i % 10 for i in range(30)]
    assert data.class_names == tuple(str(d) for d in range(10))


def test_symmetric_range_and_fashion_names(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    data = FashionMNISTSource(tmp_path, pixel_range="symmetric").load()
    assert float(data.train.inputs.min()) >= -1.0 and float(data.train.inputs.min()) < -0.9
    assert data.class_names[0] == "T-shirt/top" and data.num_classes == 10


def test_missing_files_lists_names_and_root(tmp_path: Path) -> None:
    with pytest.raises(SSGANError) as error:
        MNISTSource(tmp_path / "nowhere").load()
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in message
    assert "download=true" in message


def test_uncompressed_copy_is_found_next_to_gz(tmp_path: Path) -> None:
    paths = write_mnist(tmp_path, compress=True)
    plain = paths["test_labels"].with_suffix("")
    plain.write_bytes(gzip.decompress(paths["test_labels"].read_bytes()))
    paths["test_labels"].unlink()
    assert len(MNISTSource(tmp_path).load().test) == 20


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="real Fashion-MNIST not installed")
def test_real_fashion_mnist_files() -> None:
    data = FashionMNISTSource("/usr/share/datasets/fashion-mnist").load()
    assert data.train.inputs.shape == (60000, 1, 28, 28) and len(data.test) == 10000
    assert torch.bincount(data.train.labels).tolist() == [6000] * 10
