"""Callbacks that simulate failures in end-to-end tests (a kill mid-run, a signal, a weight gone NaN)."""

from __future__ import annotations

import os
from typing import Any

import pytorch_lightning as pl
import torch


class SimulatedKill(RuntimeError):
    """Stands for SIGKILL: nothing after it runs, no checkpoint is written on the way out."""


class KillAtBatch(pl.Callback):
    """Raise :class:`SimulatedKill` once ``batch`` training batches (1-based, whole run) have finished."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.fit_loop.total_batch_idx + 1 == self.batch:
            raise SimulatedKill(f"killed after batch {self.batch}")


class PoisonAtBatch(pl.Callback):
    """Set one discriminator weight to NaN just before training batch ``batch`` (1-based) runs."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.fit_loop.total_batch_idx + 1 == self.batch:
            with torch.no_grad():
                next(pl_module.discriminator.parameters()).view(-1)[0] = float("nan")


class RecordLearningRates(pl.Callback):
    """Append (epoch, each optimiser's rate) at every training epoch's start to the class-level ``seen`` list."""

    seen: list[tuple[int, list[float]]] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        rates = [group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups]
        RecordLearningRates.seen.append((trainer.current_epoch, rates))


class SignalAtBatch(pl.Callback):
    """Send this process ``signum`` as training batch ``batch`` (1-based, whole run) starts, as ``kill`` would."""

    def __init__(self, batch: int, signum: int) -> None:
        self.batch = batch
        self.signum = signum

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.fit_loop.total_batch_idx + 1 == self.batch:
            os.kill(os.getpid(), self.signum)

class DumpRankState(pl.Callback):
    """Each DDP rank writes ``rank<r>.pt`` into ``folder``: its generator state after its first training batch
    of this fit (ranks that share noise share it) and its final parameters (G's batch-norm statistics stay
    per rank, as in single-device training, so buffers are left out)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.first_batch_rng: torch.Tensor | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.first_batch_rng is None:
            self.first_batch_rng = torch.get_rng_state()

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        parameters = {name: value.detach().cpu() for name, value in pl_module.named_parameters()}
        state = {"rng": self.first_batch_rng, "parameters": parameters}
        os.makedirs(self.folder, exist_ok=True)
        torch.save(state, os.path.join(self.folder, f"rank{trainer.global_rank}.pt"))
