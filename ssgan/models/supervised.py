"""The honest comparison: the same discriminator network trained with cross-entropy on the labeled examples only."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ssgan.models.base import ClassifierModule
from ssgan.models.losses import supervised_loss


class SupervisedBaseline(ClassifierModule):
    """Same network, same noise, same weight average and schedule as the SSGAN; no unlabeled data, no G.

    Its data-dependent initialisation also uses labeled examples only, so nothing unlabeled leaks in.
    """

    def initialisation_inputs(self, datamodule: Any) -> Tensor:
        return datamodule.initialization_inputs(self.init_examples, labeled_only=True)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        labeled_inputs, targets = self.augment(batch[0]), batch[1]
        self.ensure_initialised(labeled_inputs)
        logits, _ = self.discriminator(labeled_inputs)
        loss = supervised_loss(logits, targets)
        self.epoch_losses.add({"loss_labeled": loss})
        return loss
