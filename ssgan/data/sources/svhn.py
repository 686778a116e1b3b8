"""SVHN (cropped digits) from the official MATLAB files ``train_32x32.mat``, ``test_32x32.mat`` (+ ``extra``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssgan.data.sources.download import RemoteFile, fetch, missing_files_error
from ssgan.data.sources.pixels import check_pixel_range, scale_pixels
from ssgan.data.sources.base import ArrayDataset, SourceData
from ssgan.errors import SSGANError

BASE_URL = "http://ufldl.stanford.edu/housenumbers/"
FILES = {
    "train": RemoteFile("train_32x32.mat", BASE_URL + "train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test": RemoteFile("test_32x32.mat", BASE_URL + "test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
    "extra": RemoteFile("extra_32x32.mat", BASE_URL + "extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7"),
}


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One ``.mat`` -> uint8 images (N, 3, 32, 32) and labels (N,) in [0, 10) (the file's 10 means digit 0)."""
    from scipy.io import loadmat

    try:
        content = loadmat(path, variable_names=("X", "y"))
    except Exception as error:  # scipy raises many types on a damaged file; the boundary names the file
        raise SSGANError(f"{path}: cannot be read as a MATLAB .mat file ({error})") from None
    for name in ("X", "y"):
        if name not in content:
            raise SSGANError(f"{path}: has no variable {name!r}; expected X (32, 32, 3, N) uint8 and y (N, 1)")
    images, labels = content["X"], content["y"].reshape(-1)
    if images.ndim != 4 or images.shape[2] != 3 or images.dtype != np.uint8:
        raise SSGANError(f"{path}: X is {images.dtype} {images.shape}; expected uint8 (32, 32, 3, N)")
    if images.shape[3] != labels.shape[0]:
        raise SSGANError(f"{path}: X holds {images.shape[3]} images but y holds {labels.shape[0]} labels")
    bad = (labels < 1) | (labels > 10) | (labels != np.round(labels))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SSGANError(f"{path}: y[{row}] = {labels[row]} is outside 1..10 (10 stands for digit 0)")
    return images.transpose(3, 2, 0, 1), labels.astype(np.int64) % 10


class SVHNSource:
    """SVHN: 73257 training and 26032 test colour 32x32 digits; ``include_extra`` adds 531131 easier ones."""

    def __init__(
        self, root: str | Path, download: bool = False, include_extra: bool = False, pixel_range: str = "unit"
    ) -> None:
        self.root = Path(root).expanduser()
        self.download = download
        self.include_extra = include_extra
        self.pixel_range = check_pixel_range(pixel_range)

    def paths(self) -> dict[str, Path]:
        wanted = ["train", "test", "extra"] if self.include_extra else ["train", "test"]
        missing = [key for key in wanted if not (self.root / FILES[key].name).is_file()]
        if missing and not self.download:
            raise missing_files_error(self.root, [FILES[key].name for key in wanted])
        for key in missing:
            fetch(FILES[key], self.root)
        return {key: self.root / FILES[key].name for key in wanted}

    def load(self) -> SourceData:
        paths = self.paths()
        train_parts = [read_mat(paths[key]) for key in paths if key != "test"]
        test_images, test_labels = read_mat(paths["test"])
        train_images = np.concatenate([images for images, _ in train_parts])
        train_labels = np.concatenate([labels for _, labels in train_parts])
        return SourceData(
            train=ArrayDataset(scale_pixels(train_images, self.pixel_range), torch.from_numpy(train_labels)),
            test=ArrayDataset(scale_pixels(test_images, self.pixel_range), torch.from_numpy(test_labels)),
            class_names=tuple(str(digit) for digit in range(10)),
        )
