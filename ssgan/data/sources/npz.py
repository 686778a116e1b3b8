"""A user's ``.npz`` with arrays ``x`` (N, ...) and ``y`` (N,) where -1 marks an unlabeled row."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ssgan.data.sources.userdata import (
    assemble,
    check_scaling,
    check_test_choice,
    class_keys,
    encode_labels,
    label_keys,
    require_labeled,
)
from ssgan.data.sources.base import ArrayDataset, SourceData
from ssgan.errors import SSGANError


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as float32 and ``y`` as given, with shapes and dtypes checked (no pickles are loaded)."""
    if not path.is_file():
        raise SSGANError(f"{path}: no such file; expected an .npz with arrays x and y")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in ("x", "y") if name not in archive.files]
            if missing:
                raise SSGANError(
                    f"{path}: has no array {missing[0]!r} (arrays: {', '.join(archive.files) or 'none'}); "
                    "expected x (N, ...) and y (N,) with -1 for unlabeled"
                )
            x, y = archive["x"], archive["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise SSGANError(f"{path}: cannot be read as .npz ({error})") from None
    if not (np.issubdtype(x.dtype, np.number) and x.ndim >= 2):
        raise SSGANError(f"{path}: x is {x.dtype} {x.shape}; expected numbers shaped (N, features...)")
    if not np.issubdtype(y.dtype, np.number) or y.shape != (x.shape[0],):
        raise SSGANError(f"{path}: y is {y.dtype} {y.shape}; expected {x.shape[0]} numbers (one per row of x)")
    bad = ~np.isfinite(x.reshape(x.shape[0], -1))
    if bad.any():
        row, column = (int(v) for v in np.argwhere(bad)[0])
        raise SSGANError(f"{path}: x row {row}, feature {column} is {x.reshape(x.shape[0], -1)[row, column]}; "
                         "expected finite numbers")
    return x.astype(np.float32), y


class NpzSource:
    """Rows of ``x``/``y`` in an ``.npz``; classes are the distinct non-negative values of ``y``, sorted.

    ``x`` is used as stored unless ``scaling`` is ``minmax`` or ``standard`` (fitted on the training rows).
    """

    def __init__(
        self,
        path: str | Path,
        test_path: str | Path | None = None,
        test_fraction: float | None = 0.2,
        scaling: str = "none",
        split_seed: int = 0,
    ) -> None:
        check_test_choice(test_path, test_fraction)
        self.path = Path(path).expanduser()
        self.test_path = Path(test_path).expanduser() if test_path is not None else None
        self.test_fraction = test_fraction
        self.scaling = check_scaling(scaling)
        self.split_seed = split_seed

    def load(self) -> SourceData:
        x, y = read_npz(self.path)
        keys, _ = label_keys(y.astype(str), lambda row: f"{self.path}: y[{row}]", "y")
        classes = class_keys(keys, numeric=True)
        labels = encode_labels(keys, classes, lambda row: f"{self.path}: y[{row}]", "y")
        test = None
        if self.test_path is not None:
            test_x, test_y = read_npz(self.test_path)
            if test_x.shape[1:] != x.shape[1:]:
                raise SSGANError(f"{self.test_path}: x rows are {test_x.shape[1:]} but training rows are {x.shape[1:]}")
            row_name = lambda row: f"{self.test_path}: y[{row}]"  # noqa: E731
            test_keys, _ = label_keys(test_y.astype(str), row_name, "y")
            test_labels = encode_labels(test_keys, classes, row_name, "y")
            require_labeled(test_labels, row_name, "y")
            test = ArrayDataset(torch.from_numpy(test_x), test_labels)
        return assemble(torch.from_numpy(x), labels, classes, test, self.test_fraction, self.split_seed, self.scaling)
