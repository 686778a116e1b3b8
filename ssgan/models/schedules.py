"""Learning-rate schedules built as ``model.scheduler`` partials (stepped once per epoch by the modules)."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from ssgan.errors import SSGANError


class LinearDecayFactor:
    """lr factor 1 until ``start_epoch``, then linear to 0 at ``end_epoch`` (a class, so checkpoints can save it)."""

    def __init__(self, start_epoch: int, end_epoch: int) -> None:
        self.start_epoch, self.end_epoch = int(start_epoch), int(end_epoch)

    def __call__(self, epoch: int) -> float:
        return min(1.0, max(0.0, (self.end_epoch - epoch) / (self.end_epoch - self.start_epoch)))


class ConfiguredLambdaLR(LambdaLR):
    """A LambdaLR whose factor is the run's configured one even after a checkpoint is restored.

    torch's LambdaLR writes its factor's fields over the new one's on loading. A finished run continued with a
    larger ``trainer.max_epochs`` (the recipes' ``end_epoch: ${trainer.max_epochs}``) would then keep the old
    end and train every added epoch at rate 0. This one restores the epoch count and base rates only, and sets
    the current rate from the configured factor; with an unchanged config that is the saved rate exactly.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        LRScheduler.load_state_dict(self, {key: value for key, value in state_dict.items() if key != "lr_lambdas"})
        rates = [base * factor(self.last_epoch) for base, factor in zip(self.base_lrs, self.lr_lambdas)]
        for group, rate in zip(self.optimizer.param_groups, rates):
            group["lr"] = rate
        self._last_lr = rates


def linear_decay(optimizer: torch.optim.Optimizer, start_epoch: int, end_epoch: int) -> LambdaLR:
    """The paper's CIFAR/SVHN schedule: lr * min(1, (end - epoch) / (end - start)), e.g. constant to 800, 0 at 1200."""
    if not 0 <= start_epoch < end_epoch:
        raise SSGANError(
            f"model.scheduler: start_epoch={start_epoch} and end_epoch={end_epoch} must satisfy 0 <= start < end"
        )
    return ConfiguredLambdaLR(optimizer, LinearDecayFactor(start_epoch, end_epoch))
