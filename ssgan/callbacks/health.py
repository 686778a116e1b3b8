"""GAN health per epoch: is D winning outright, has G collapsed onto few classes? Accumulated on device."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from ssgan.errors import SSGANError
from ssgan.callbacks.sample_grid import is_image_shape, save_image_grid
from ssgan.models.metrics import EpochMeans

log = logging.getLogger("ssgan")

SAMPLE_SEED = 1234  # fixed noise for sample grids: every grid shows the same z, drawn outside the training RNG


@torch.no_grad()
def class_share_entropy(counts: Tensor) -> float:
    """Entropy (nats) of the class shares ``counts / counts.sum()``; log K when generated samples are balanced."""
    shares = counts.double() / counts.sum().clamp(min=1)
    return float(-(shares[shares > 0] * shares[shares > 0].log()).sum())


def health_warnings(
    history: list[dict[str, Any]], collapse_entropy_ratio: float, d_won_accuracy: float, patience: int
) -> list[str]:
    """Warnings for the latest epoch of ``history``: collapse (low class-share entropy), D won (G's loss rising)."""
    latest = history[-1]
    warnings = []
    maximum = latest["generated_class_entropy_max"]
    if latest["generated_class_entropy"] < collapse_entropy_ratio * maximum:
        dominant = max(range(len(latest["generated_class_share"])), key=latest["generated_class_share"].__getitem__)
        warnings.append(
            f"generator collapse suspected at epoch {latest['epoch']}: class-share entropy "
            f"{latest['generated_class_entropy']:.2f} < {collapse_entropy_ratio:g} x log K ({maximum:.2f}); "
            f"{latest['generated_class_share'][dominant]:.0%} of samples go to class {dominant}"
        )
    recent = [record["generator_loss"] for record in history[-(patience + 1) :]]
    rising = len(recent) == patience + 1 and all(later > earlier for earlier, later in zip(recent, recent[1:]))
    if latest["d_accuracy_generated"] >= d_won_accuracy and rising:
        warnings.append(
            f"discriminator winning outright at epoch {latest['epoch']}: it rejects "
            f"{latest['d_accuracy_generated']:.1%} of generated samples and G's loss rose for "
            f"{patience} epochs ({recent[0]:.3g} -> {recent[-1]:.3g})"
        )
    return warnings


class GANHealth(pl.Callback):
    """Sums the per-step ``health`` statistics a GAN training step returns; reports them at each epoch end.

    Logged as ``health_*`` per epoch; :meth:`summary` goes into metrics.json. Every ``sample_every_n_epochs``
    (and at the last epoch) a grid of ``num_samples`` generated samples is written to ``samples_dir``.
    Modules whose steps return no ``health`` (the supervised baseline) are left alone.
    """

    def __init__(
        self,
        samples_dir: str | Path | None = None,
        sample_every_n_epochs: int = 10,
        num_samples: int = 100,
        collapse_entropy_ratio: float = 0.5,
        d_won_accuracy: float = 0.99,
        patience: int = 3,
    ) -> None:
        if sample_every_n_epochs < 0 or num_samples < 1 or patience < 1:
            raise SSGANError(
                f"callbacks.health: sample_every_n_epochs={sample_every_n_epochs} (>= 0), "
                f"num_samples={num_samples} (>= 1) and patience={patience} (>= 1) are out of range"
            )
        self.samples_dir = Path(samples_dir) if samples_dir is not None else None
        self.sample_every_n_epochs = sample_every_n_epochs
        self.num_samples = num_samples
        self.collapse_entropy_ratio = collapse_entropy_ratio
        self.d_won_accuracy = d_won_accuracy
        self.patience = patience
        self.history: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self._means = EpochMeans()  # this epoch's per-step health statistics

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._means.start_epoch(trainer.current_epoch)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        health = outputs.get("health") if isinstance(outputs, dict) else None
        if not health:
            return
        self._means.add(health)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._means.steps == 0:
            return
        record = self.epoch_record(trainer.current_epoch)
        self.history.append(record)
        scalars = {k: v for k, v in record.items() if isinstance(v, float)}
        pl_module.log_dict({f"health_{k}": v for k, v in scalars.items()}, on_step=False, on_epoch=True)
        for warning in health_warnings(self.history, self.collapse_entropy_ratio, self.d_won_accuracy, self.patience):
            log.warning(warning)
            self.warnings.append(warning)
        last_epoch = trainer.current_epoch + 1 >= (trainer.max_epochs or 0) > 0
        due = self.sample_every_n_epochs and (trainer.current_epoch + 1) % self.sample_every_n_epochs == 0
        if self.samples_dir is not None and trainer.is_global_zero and (due or last_epoch):
            self.save_samples(pl_module, self.samples_dir / f"epoch_{trainer.current_epoch:03d}.png")

    def epoch_record(self, epoch: int) -> dict[str, Any]:
        """Means over the epoch's steps (one host transfer) plus the generated class shares and their entropy."""
        means = {name: value.cpu() for name, value in self._means.pop().items()}
        record: dict[str, Any] = {"epoch": epoch}
        for name, value in means.items():
            if name != "generated_class_counts":
                record[name] = float(value)
        counts = means["generated_class_counts"]  # mean counts per step: the shares are the same
        record["generated_class_share"] = (counts.double() / counts.sum().clamp(min=1)).tolist()
        record["generated_class_entropy"] = class_share_entropy(counts)
        record["generated_class_entropy_max"] = math.log(counts.numel())
        return record

    def save_samples(self, pl_module: pl.LightningModule, path: Path) -> Path | None:
        """A grid from fixed noise, G in eval mode, without touching the training RNG or G's batch-norm stats."""
        if getattr(pl_module, "generator", None) is None or not is_image_shape(tuple(pl_module.input_shape)):
            return None
        return save_image_grid(pl_module.sample(self.num_samples, SAMPLE_SEED), path)

    def summary(self) -> dict[str, Any]:
        """For metrics.json: the last epoch's figures, their per-epoch history (scalars) and every warning."""
        if not self.history:
            return {}
        scalar_history = [
            {k: v for k, v in record.items() if not isinstance(v, list)} for record in self.history
        ]
        return {"last": self.history[-1], "history": scalar_history, "warnings": list(self.warnings)}

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "warnings": self.warnings, "epoch_means": self._means.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.warnings = list(state_dict.get("warnings", []))
        if "epoch_means" in state_dict:
            self._means.load_state_dict(state_dict["epoch_means"])
