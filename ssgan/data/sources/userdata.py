"""What users' own sources share: label values -> class ids, the test-set choice, and feature scaling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ssgan.data.sources.base import UNLABELED, ArrayDataset, InputScaling, SourceData
from ssgan.errors import SSGANError

SCALINGS = ("none", "minmax", "standard")
RowName = Callable[[int], str]  # row index -> "file: line 7" (for messages)


def check_test_choice(test_path: str | Path | None, test_fraction: float | None) -> None:
    """A test set is either a separate file/folder (wins when given) or a seeded hold-out of labeled rows."""
    if test_path is None and test_fraction is None:
        raise SSGANError("data.source.test_path and data.source.test_fraction are both null; set one of them")
    if test_path is None and not 0.0 < float(test_fraction) < 1.0:  # type: ignore[arg-type]
        raise SSGANError(f"data.source.test_fraction={test_fraction} must be in (0, 1)")


def check_scaling(scaling: str) -> str:
    if scaling not in SCALINGS:
        raise SSGANError(f"data.source.scaling={scaling!r} is not one of {SCALINGS}")
    return scaling


def label_keys(raw: np.ndarray, row_name: RowName, column: str) -> tuple[np.ndarray, bool]:
    """Label texts -> canonical keys ('' = unlabeled: empty, -1 or nan) and whether the classes are numbers.

    Numeric labels must be whole numbers >= 0 ("2" and "2.0" are the same class; "2.5" is refused);
    if any label is not a number, every label is a class name.
    """
    text = np.char.strip(np.asarray(raw).astype(str))
    unlabeled = (text == "") | (np.char.lower(text) == "nan") | (np.char.lower(text) == "none")
    present = np.flatnonzero(~unlabeled)
    try:
        numbers = text[present].astype(np.float64)
    except ValueError:
        keys = text.astype(object)
        keys[unlabeled | (text == "-1")] = ""
        return keys, False
    keep = numbers != UNLABELED
    bad = keep & ((numbers != np.round(numbers)) | (numbers < 0) | ~np.isfinite(numbers))
    if bad.any():
        row = int(present[np.flatnonzero(bad)[0]])
        raise SSGANError(
            f"{row_name(row)}, column {column!r}: label {str(text[row])!r} is not a class; expected a whole number "
            f">= 0 or a class name (empty or -1 for unlabeled)"
        )
    keys = np.full(text.shape, "", dtype=object)
    keys[present[keep]] = numbers[keep].astype(np.int64).astype(str)
    return keys, True


def class_keys(keys: np.ndarray, numeric: bool) -> list[str]:
    """Sorted distinct classes: numerically for numbers, alphabetically for names."""
    distinct = {str(key) for key in np.unique(keys[keys != ""])}
    return sorted(distinct, key=int) if numeric else sorted(distinct)


def encode_labels(keys: np.ndarray, classes: list[str], row_name: RowName, column: str) -> Tensor:
    """Keys -> int64 class ids in [0, K) with -1 for unlabeled; a key unknown to ``classes`` is an error."""
    lookup = {key: index for index, key in enumerate(classes)}
    lookup[""] = UNLABELED
    distinct, inverse = np.unique(keys.astype(str), return_inverse=True)
    ids = np.array([lookup.get(str(key), -2) for key in distinct], dtype=np.int64)[inverse.reshape(-1)]
    unknown = np.flatnonzero(ids == -2)
    if unknown.size:
        row = int(unknown[0])
        raise SSGANError(
            f"{row_name(row)}, column {column!r}: label {str(keys[row])!r} is not one of the training classes {classes}"
        )
    return torch.from_numpy(ids)


def stratified_holdout(labels: Tensor, fraction: float, seed: int) -> Tensor:
    """Boolean mask of a seeded test set: ``fraction`` of each class's labeled rows (each keeps at least one)."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(labels.shape[0], dtype=torch.bool)
    for k in labels[labels >= 0].unique().tolist():
        members = (labels == k).nonzero().flatten()
        count = min(int(round(fraction * members.numel())), members.numel() - 1)
        mask[members[torch.randperm(members.numel(), generator=generator)[:count]]] = True
    if not bool(mask.any()):
        raise SSGANError(
            f"data.source.test_fraction={fraction} holds out no labeled rows "
            f"({int((labels >= 0).sum())} labeled); raise it or give data.source.test_path"
        )
    return mask


def fit_scaling(train_inputs: Tensor, scaling: str) -> InputScaling | None:
    """Per-feature scaling fitted on the training pool only (test rows never inform it); None for ``none``."""
    if check_scaling(scaling) == "none":
        return None
    flat = train_inputs.reshape(train_inputs.shape[0], -1)
    if scaling == "minmax":
        low, high = flat.min(dim=0).values, flat.max(dim=0).values
        shift, spread = low, torch.where(high > low, high - low, torch.ones_like(high))
    else:
        shift, spread = flat.mean(dim=0), flat.std(dim=0, unbiased=False)
        spread = torch.where(spread > 0, spread, torch.ones_like(spread))
    return InputScaling(shift.contiguous(), spread.contiguous())


def assemble(
    inputs: Tensor,
    labels: Tensor,
    class_names: list[str],
    test: ArrayDataset | None,
    test_fraction: float | None,
    split_seed: int,
    scaling: str = "none",
) -> SourceData:
    """Training pool + test set (given, or held out of the labeled rows), scaled by statistics of the pool."""
    if test is None:
        held_out = stratified_holdout(labels, float(test_fraction), split_seed)  # type: ignore[arg-type]
        test = ArrayDataset(inputs[held_out], labels[held_out])
        inputs, labels = inputs[~held_out], labels[~held_out]
    scale = fit_scaling(inputs, scaling)
    if scale is None:
        return SourceData(
            train=ArrayDataset(inputs.contiguous(), labels),
            test=ArrayDataset(test.inputs.contiguous(), test.labels),
            class_names=tuple(class_names),
        )
    return SourceData(
        train=ArrayDataset(scale(inputs).contiguous(), labels),
        test=ArrayDataset(scale(test.inputs).contiguous(), test.labels),
        class_names=tuple(class_names),
        input_scaling=scale,
    )


def require_labeled(labels: Tensor, row_name: RowName, column: str) -> None:
    """Every row of a separate test file needs a label."""
    missing = (labels == UNLABELED).nonzero().flatten()
    if missing.numel():
        raise SSGANError(f"{row_name(int(missing[0]))}, column {column!r}: test rows need a label; found none")
