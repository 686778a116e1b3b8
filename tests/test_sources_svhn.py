"""SVHN reader on tiny .mat files written with scipy.io.savemat in the official layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from format_writers import write_svhn_mat
from ssgan.data.sources import SVHNSource
from ssgan.errors import SSGANError


def test_reads_official_layout_and_maps_ten_to_zero(tmp_path: Path) -> None:
    train = write_svhn_mat(tmp_path / "train_32x32.mat", 25)
    write_svhn_mat(tmp_path / "test_32x32.mat", 12, seed=1)
    data = SVHNSource(tmp_path).load()
    assert data.train.inputs.shape == (25, 3, 32, 32) and data.test.inputs.shape == (12, 3, 32, 32)
    assert data.train.labels[:11].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    from scipy.io import loadmat

    x = loadmat(train)["X"]
    assert np.allclose(data.train.inputs[3, 1].numpy(), x[:, :, 1, 3] / 255.0)  # (H, W, C, N) -> (N, C, H, W)


def test_extra_is_optional(tmp_path: Path) -> None:
    write_svhn_mat(tmp_path / "train_32x32.mat", 10)
    write_svhn_mat(tmp_path / "test_32x32.mat", 10)
    with pytest.raises(SSGANError, match="extra_32x32.mat"):
        SVHNSource(tmp_path, include_extra=True).load()
    write_svhn_mat(tmp_path / "extra_32x32.mat", 7)
    assert len(SVHNSource(tmp_path, include_extra=True).load().train) == 17


def test_label_outside_range(tmp_path: Path) -> None:
    write_svhn_mat(tmp_path / "train_32x32.mat", 10, y=np.array([[1]] * 9 + [[11]], dtype=np.uint8))
    write_svhn_mat(tmp_path / "test_32x32.mat", 10)
    with pytest.raises(SSGANError, match=r"train_32x32.mat: y\[9\] = 11 is outside 1..10"):
        SVHNSource(tmp_path).load()
