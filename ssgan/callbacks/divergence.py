"""Stop a run whose losses or weights went NaN/inf, before it writes a poisoned checkpoint, with a hint what to try."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from ssgan.errors import SSGANError


class TrainingDiverged(SSGANError):
    """Training produced a non-finite loss or weight; ``what`` names it and ``step`` is the 1-based batch."""

    def __init__(self, message: str, what: str, step: int | None) -> None:
        super().__init__(message)
        self.what = what
        self.step = step


class DivergenceGuard(pl.Callback):
    """Watches every ``loss*`` value a training step returns; checks on the host every ``check_every_n_steps``.

    Per step it only folds "first non-finite step per loss" into a device tensor (no sync). The host check
    also runs at each epoch end and before every checkpoint is written, so the last checkpoint is always good.
    """

    def __init__(self, check_every_n_steps: int = 20) -> None:
        if int(check_every_n_steps) < 1:
            raise SSGANError(f"callbacks.divergence.check_every_n_steps={check_every_n_steps} must be >= 1")
        self.check_every_n_steps = int(check_every_n_steps)
        self._names: list[str] | None = None
        self._first_bad_step: Tensor | None = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        losses = named_losses(outputs)
        if not losses:
            return
        if self._names is None or self._first_bad_step is None:
            self._names = sorted(losses)
            self._first_bad_step = torch.full((len(self._names),), -1, dtype=torch.int64, device=pl_module.device)
        values = torch.stack([losses[name].float().reshape(()) for name in self._names])
        step = trainer.fit_loop.total_batch_idx + 1
        newly_bad = ~torch.isfinite(values) & (self._first_bad_step < 0)
        self._first_bad_step = torch.where(newly_bad, step, self._first_bad_step)
        if step % self.check_every_n_steps == 0:
            self.check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer, pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self.check(trainer, pl_module)

    def check(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """One host sync: raise :class:`TrainingDiverged` naming the first bad loss (or weight) and its step."""
        if self._names is not None and self._first_bad_step is not None:
            first = self._first_bad_step
            if trainer.world_size > 1:  # every rank must stop together, or the others hang in the next collective
                never = torch.iinfo(torch.int64).max
                first = trainer.strategy.reduce(torch.where(first < 0, never, first), reduce_op="min")
                first = torch.where(first == never, -1, first)
            first = first.tolist()
            bad = sorted((step, name) for name, step in zip(self._names, first) if step >= 0)
            if bad:
                step, name = bad[0]
                raise TrainingDiverged(diverged_message(name, step, trainer), what=name, step=step)
        parameters = [(name, p) for name, p in pl_module.named_parameters()]
        if not parameters:
            return
        finite = torch.stack([torch.isfinite(p).all() for _, p in parameters]).tolist()
        if not all(finite):
            name = next(name for (name, _), ok in zip(parameters, finite) if not ok)
            step = trainer.fit_loop.total_batch_idx + 1
            raise TrainingDiverged(diverged_message(f"weight {name}", step, trainer), what=name, step=step)


def named_losses(outputs: Any) -> dict[str, Tensor]:
    """The scalar ``loss*`` tensors of a training step's output (a dict for manual optimisation)."""
    if isinstance(outputs, Tensor):
        return {"loss": outputs.detach()}
    if not isinstance(outputs, dict):
        return {}
    return {
        name: value.detach()
        for name, value in outputs.items()
        if name.startswith("loss") and isinstance(value, Tensor) and value.numel() == 1
    }


def diverged_message(what: str, step: int, trainer: pl.Trainer) -> str:
    """One line: what went non-finite, when, and the usual remedies with the current learning rate."""
    learning_rates = sorted({group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups})
    rate = ", ".join(f"{lr:g}" for lr in learning_rates) or "?"
    return (
        f"training diverged: {what} became NaN/inf at training step {step} (epoch {trainer.current_epoch}); "
        f"try a lower learning rate (model.optimizer.lr, now {rate}), a smaller gan.unlabeled_weight, "
        "or gradient clipping, then resume from the last good checkpoint with ckpt_path=last"
    )
