"""Training throughput: unlabeled examples per second over the whole fit, timed on the host."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl


class TrainingThroughput(pl.Callback):
    """Times ``fit`` and counts the unlabeled examples consumed, on the host only (no device sync per step).

    ``samples_per_second`` counts unlabeled examples (the stream that defines an epoch) across all ranks;
    each step also consumes as many labeled and generated examples. Both figures travel in checkpoints, so a
    resumed run reports the whole run (up to its checkpoint, plus the resumed part).
    """

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self.samples = 0
        self._start: float | None = None

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.train_seconds if self.train_seconds > 0 else 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        unlabeled = batch[2] if len(batch) > 2 else batch[0]
        self.samples += int(unlabeled.shape[0]) * trainer.world_size

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is not None:
            self.train_seconds += time.perf_counter() - self._start
            self._start = None

    def state_dict(self) -> dict[str, Any]:
        running = time.perf_counter() - self._start if self._start is not None else 0.0
        return {"train_seconds": self.train_seconds + running, "samples": self.samples}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_seconds = float(state_dict["train_seconds"])
        self.samples = int(state_dict["samples"])
