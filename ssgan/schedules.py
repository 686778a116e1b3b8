"""Learning-rate schedules built as ``model.scheduler`` partials (stepped once per epoch by the modules)."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR

from ssgan.errors import SSGANError


class LinearDecayFactor:
    """lr factor 1 until ``start_epoch``, then linear to 0 at ``end_epoch`` (a class, so checkpoints can save it)."""

    def __init__(self, start_epoch: int, end_epoch: int) -> None:
        self.start_epoch, self.end_epoch = int(start_epoch), int(end_epoch)

    def __call__(self, epoch: int) -> float:
        return min(1.0, max(0.0, (self.end_epoch - epoch) / (self.end_epoch - self.start_epoch)))


def linear_decay(optimizer: torch.optim.Optimizer, start_epoch: int, end_epoch: int) -> LambdaLR:
    """The paper's CIFAR/SVHN schedule: lr * min(1, (end - epoch) / (end - start)), e.g. constant to 800, 0 at 1200."""
    if not 0 <= start_epoch < end_epoch:
        raise SSGANError(
            f"model.scheduler: start_epoch={start_epoch} and end_epoch={end_epoch} must satisfy 0 <= start < end"
        )
    return LambdaLR(optimizer, LinearDecayFactor(start_epoch, end_epoch))
