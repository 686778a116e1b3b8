"""Batches cut from in-memory tensors by index, so no per-example Python runs in the training loop."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import IterableDataset


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A generator private to (seed, epoch, stream): resumable, identical on every rank, independent of torch's."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 101 + stream)


def tiled_permutation(n: int, length: int, generator: torch.Generator) -> Tensor:
    """Concatenate fresh permutations of range(n) until ``length`` indices: every example once per cycle."""
    cycles = -(-length // n)
    return torch.cat([torch.randperm(n, generator=generator) for _ in range(cycles)])[:length]


class SemiSupervisedStream(IterableDataset):
    """One epoch = one pass over this rank's shard of the unlabeled pool, in steps of ``batch_size``.

    Each step yields ``(x_labeled, y_labeled, x_unlabeled, x_unlabeled_fm)``: ``batch_size`` labeled examples
    (the labeled set tiled and reshuffled every cycle, as in the paper), ``batch_size`` unlabeled examples for
    the discriminator and a second, independently shuffled unlabeled batch for feature matching.

    Under DDP the unlabeled permutation is the same on every rank and rank r takes positions r, r+W, ...,
    so ranks see disjoint unlabeled examples; the labeled stream is replicated (every rank cycles the whole
    labeled set) with a rank-specific order, so a global step sees W different labeled batches.

    Tensors on a GPU are indexed there: the epoch's indices are drawn on the host as always and copied over
    once per epoch, so the batches are the same and no step copies from the host.
    """

    def __init__(
        self,
        labeled_inputs: Tensor,
        labeled_targets: Tensor,
        unlabeled_inputs: Tensor,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        self.labeled_inputs = labeled_inputs
        self.labeled_targets = labeled_targets
        self.unlabeled_inputs = unlabeled_inputs
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0  # the epoch the next iteration yields
        self.start_step = 0  # the step it starts at (non-zero only when resuming mid-epoch)
        self.current_epoch: int | None = None  # the epoch being iterated now

    def __len__(self) -> int:
        return (self.unlabeled_inputs.shape[0] // self.world_size) // self.batch_size

    def epoch_indices(self, epoch: int) -> tuple[Tensor, Tensor, Tensor]:
        """(labeled, unlabeled, feature-matching) indices of this rank for one epoch, each (steps * batch_size,)."""
        steps, size = len(self), self.batch_size
        shared = epoch_generator(self.seed, epoch)
        num_unlabeled = self.unlabeled_inputs.shape[0]
        unlabeled = torch.randperm(num_unlabeled, generator=shared)[self.rank :: self.world_size][: steps * size]
        matching = torch.randperm(num_unlabeled, generator=shared)[self.rank :: self.world_size][: steps * size]
        own = epoch_generator(self.seed, epoch, stream=1 + self.rank)
        labeled = tiled_permutation(self.labeled_targets.shape[0], steps * size, own)
        return labeled, unlabeled, matching

    def __iter__(self):
        epoch, start = self.epoch, self.start_step
        self.epoch, self.start_step, self.current_epoch = epoch + 1, 0, epoch
        labeled, unlabeled, matching = self.epoch_indices(epoch)
        device = self.unlabeled_inputs.device
        if device.type != "cpu":
            labeled, unlabeled, matching = (indices.to(device) for indices in (labeled, unlabeled, matching))
        size = self.batch_size
        for step in range(start, len(self)):
            window = slice(step * size, (step + 1) * size)
            lab = labeled[window]
            yield (
                self.labeled_inputs[lab],
                self.labeled_targets[lab],
                self.unlabeled_inputs[unlabeled[window]],
                self.unlabeled_inputs[matching[window]],
            )


class EvaluationStream(IterableDataset):
    """Sequential batches of a labeled set; under DDP rank r takes rows r, r+W, ... (no padding, no duplicates)."""

    def __init__(self, inputs: Tensor, targets: Tensor, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        self.inputs = inputs[rank::world_size]
        self.targets = targets[rank::world_size]
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-self.targets.shape[0] // self.batch_size)

    def __iter__(self):
        for start in range(0, self.targets.shape[0], self.batch_size):
            yield self.inputs[start : start + self.batch_size], self.targets[start : start + self.batch_size]
