"""One line per epoch when the output is not a terminal, instead of a progress bar's carriage returns."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import pytorch_lightning as pl

log = logging.getLogger("ssgan")

SHOWN = ("train_loss_d", "train_loss_g", "train_loss_labeled", "train_loss_consistency", "val_acc")


class EpochProgress(pl.Callback):
    """Logs ``epoch E/N: loss_d ... loss_g ... val_acc ..., R samples/s`` when no progress bar is shown.

    ``max_lines`` bounds a run's log: longer runs print every n-th epoch (and the last) so a run writes at
    most that many lines.
    """

    def __init__(self, max_lines: int = 50) -> None:
        if isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 1:
            raise ValueError(f"callbacks.progress.max_lines={max_lines!r} must be a positive integer")
        self.max_lines = max_lines
        self._pending: int | None = None  # the finished epoch whose line waits for its logged losses
        self._started = self._seconds = 0.0
        self._samples = 0

    def active(self, trainer: pl.Trainer) -> bool:
        return trainer.is_global_zero and trainer.progress_bar_callback is None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.flush(trainer)
        self._started, self._samples = time.perf_counter(), 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        unlabeled = batch[2] if len(batch) > 2 else batch[0]
        self._samples += int(unlabeled.shape[0]) * trainer.world_size

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the module logs the epoch's losses after the callbacks' hook: print at the next epoch or at the end
        self._pending = trainer.current_epoch
        self._seconds = time.perf_counter() - self._started

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.flush(trainer, last=True)

    def flush(self, trainer: pl.Trainer, last: bool = False) -> None:
        epoch, self._pending = self._pending, None
        if epoch is None or not self.active(trainer):
            return
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 0
        every = max(1, math.ceil(total / self.max_lines)) if total else 1
        if not last and (epoch + 1) % every:
            return
        metrics = trainer.callback_metrics
        values = " ".join(
            f"{name.removeprefix('train_')} {float(metrics[name]):.4g}" for name in SHOWN if name in metrics
        )
        rate = self._samples / self._seconds if self._seconds > 0 else 0.0
        log.info("epoch %d/%s: %s, %.0f samples/s", epoch + 1, total or "?", values, rate)
