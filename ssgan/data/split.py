"""Choose which training examples keep their labels: balanced per class, seeded, reproducible, saved with the run.

The paper's protocol: a class-balanced labeled subset of ``num_labeled`` examples is drawn from the training
pool, and *every* training example (labeled ones included) stays in the unlabeled pool. An optional validation
set is held out first; it is in neither stream. An optional pool size keeps a seeded, class-balanced subset of
the remaining examples as the training pool, to study how a method behaves with few unlabeled images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch import Tensor

from ssgan.errors import SSGANError


@dataclass(frozen=True)
class Split:
    """Indices into the training pool: the labeled subset, the unlabeled pool and the held-out validation set."""

    labeled: Tensor
    unlabeled: Tensor
    validation: Tensor

    def save(self, path: str | Path | BinaryIO) -> None:
        """Write the indices as ``.npz`` so a run's exact labeled subset can be reused or audited."""
        np.savez(
            path,
            labeled=self.labeled.numpy(),
            unlabeled=self.unlabeled.numpy(),
            validation=self.validation.numpy(),
        )

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        with np.load(path) as saved:
            return cls(*(torch.as_tensor(saved[key]) for key in ("labeled", "unlabeled", "validation")))


def resolve_labeled_count(
    num_available: int, num_classes: int, num_labeled: int | None, labeled_fraction: float | None
) -> int | None:
    """Turn ``num_labeled`` / ``labeled_fraction`` into a count, or None for "every labeled example"."""
    if num_labeled is not None and labeled_fraction is not None:
        raise SSGANError(
            f"data.num_labeled={num_labeled} and data.labeled_fraction={labeled_fraction} are both set; "
            "set one of them (the other to null)"
        )
    if labeled_fraction is not None:
        if not 0.0 < labeled_fraction <= 1.0:
            raise SSGANError(f"data.labeled_fraction={labeled_fraction} must be in (0, 1]")
        num_labeled = max(num_classes, int(round(labeled_fraction * num_available)))
    if num_labeled is None:
        return None
    if num_labeled > num_available:
        raise SSGANError(
            f"data.num_labeled={num_labeled} is larger than the {num_available} labeled training examples available"
        )
    if num_labeled < num_classes:
        raise SSGANError(
            f"data.num_labeled={num_labeled} is smaller than the number of classes ({num_classes}); "
            "need at least one labeled example per class"
        )
    return num_labeled


def balanced_labeled_indices(
    labels: Tensor,
    num_classes: int,
    num_labeled: int,
    generator: torch.Generator,
    class_names: tuple[str, ...] | None = None,
) -> Tensor:
    """Draw ``num_labeled`` indices with ``num_labeled // K`` per class; the remainder goes to random classes.

    ``labels`` is (N,) int64 with -1 for examples that carry no label (they are never drawn).
    """
    per_class = torch.full((num_classes,), num_labeled // num_classes, dtype=torch.int64)
    remainder = num_labeled % num_classes
    if remainder:
        per_class[torch.randperm(num_classes, generator=generator)[:remainder]] += 1
    chosen = []
    for k in range(num_classes):
        members = (labels == k).nonzero().flatten()
        need = int(per_class[k])
        if members.numel() < need:
            name = class_names[k] if class_names else str(k)
            raise SSGANError(
                f"data.num_labeled={num_labeled} needs {need} labeled examples of class {name!r} "
                f"but the training pool has only {members.numel()}"
            )
        chosen.append(members[torch.randperm(members.numel(), generator=generator)[:need]])
    return torch.sort(torch.cat(chosen)).values


def holdout_indices(labels: Tensor, num_validation: int, generator: torch.Generator) -> Tensor:
    """Draw a random validation set among the labeled examples (sorted indices)."""
    candidates = (labels >= 0).nonzero().flatten()
    if num_validation < 0 or num_validation >= candidates.numel():
        raise SSGANError(
            f"data.num_validation={num_validation} must be in [0, {candidates.numel()}) "
            f"(the number of labeled training examples)"
        )
    return torch.sort(candidates[torch.randperm(candidates.numel(), generator=generator)[:num_validation]]).values


def pool_indices(labels: Tensor, num_classes: int, num_train: int, generator: torch.Generator) -> Tensor:
    """A seeded training pool of ``num_train`` among the examples of ``labels`` (N,) not marked -2 (held out).

    Balanced per class when every candidate carries a label; otherwise a uniform draw, since unlabeled rows
    (-1) have no class to balance.
    """
    candidates = (labels > -2).nonzero().flatten()
    if num_train < num_classes or num_train > candidates.numel():
        raise SSGANError(
            f"data.num_train={num_train} must be in [{num_classes}, {candidates.numel()}] "
            "(the training examples left after the validation set), or null for all of them"
        )
    if bool((labels[candidates] >= 0).all()):
        return balanced_labeled_indices(labels.clamp(min=-1), num_classes, num_train, generator)
    return torch.sort(candidates[torch.randperm(candidates.numel(), generator=generator)[:num_train]]).values


def make_split(
    labels: Tensor,
    num_classes: int,
    num_labeled: int | None = None,
    labeled_fraction: float | None = None,
    num_validation: int = 0,
    seed: int = 0,
    class_names: tuple[str, ...] | None = None,
    num_train: int | None = None,
) -> Split:
    """Validation first, then a balanced labeled subset of the rest; every non-validation example is unlabeled pool.

    ``num_train`` (None: every remaining example) shrinks the pool to a seeded subset before the labels are
    drawn; the validation set and the test set stay as they are.

    With neither ``num_labeled`` nor ``labeled_fraction`` set, every example that carries a label is labeled
    (the natural choice for a user's own partially labeled data). The generator is private and seeded, so
    every DDP rank and every rerun draws the same indices.
    """
    generator = torch.Generator().manual_seed(seed)
    validation = holdout_indices(labels, num_validation, generator) if num_validation else torch.empty(0, dtype=torch.int64)
    in_pool = torch.ones(labels.shape[0], dtype=torch.bool)
    in_pool[validation] = False
    if num_train is not None:
        kept = pool_indices(torch.where(in_pool, labels, torch.full_like(labels, -2)), num_classes, num_train, generator)
        in_pool = torch.zeros_like(in_pool)
        in_pool[kept] = True
    pool_labels = torch.where(in_pool, labels, torch.full_like(labels, -1))
    count = resolve_labeled_count(int((pool_labels >= 0).sum()), num_classes, num_labeled, labeled_fraction)
    if count is None:
        labeled = (pool_labels >= 0).nonzero().flatten()
    else:
        labeled = balanced_labeled_indices(pool_labels, num_classes, count, generator, class_names)
    return Split(labeled=labeled, unlabeled=in_pool.nonzero().flatten(), validation=validation)
