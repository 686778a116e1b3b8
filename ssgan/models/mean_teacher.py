"""Mean Teacher (Tarvainen & Valpola 2017): a non-GAN semi-supervised baseline on the same network and streams."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ssgan.errors import SSGANError
from ssgan.models.base import ClassifierModule, NetworkFactory
from ssgan.models.losses import consistency_loss, sigmoid_rampup, supervised_loss


class MeanTeacher(ClassifierModule):
    """The student D learns from the labels and from agreeing with its teacher on unlabeled data.

    The teacher is the exponential moving average of the student's weights (the weight average every model
    here evaluates), run with its own noise. The consistency term's weight ramps up as exp(-5 (1 - t)^2) over
    ``rampup_epochs``. Batches are the SSGAN's: ``(x_labeled, y_labeled, x_unlabeled, _)``.
    """

    def __init__(
        self,
        discriminator: NetworkFactory,
        optimizer: Callable[..., torch.optim.Optimizer],
        input_shape: Sequence[int],
        num_classes: int,
        class_names: Sequence[str] | None = None,
        scheduler: Callable[..., Any] | None = None,
        ema_decay: float | None = 0.999,
        init_examples: int = 500,
        augmentation: Callable[[Tensor], Tensor] | None = None,
        input_encoder: Callable[[], nn.Module] | None = None,
        consistency_weight: float = 10.0,
        rampup_epochs: float = 5.0,
    ) -> None:
        if ema_decay is None:
            raise SSGANError("model.ema_decay=null: the mean teacher is the weight average; give a decay in [0, 1)")
        for name, value in (("consistency_weight", consistency_weight), ("rampup_epochs", rampup_epochs)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise SSGANError(f"model.{name}={value!r} must be a number >= 0")
        super().__init__(
            discriminator=discriminator,
            optimizer=optimizer,
            input_shape=input_shape,
            num_classes=num_classes,
            class_names=class_names,
            scheduler=scheduler,
            ema_decay=ema_decay,
            init_examples=init_examples,
            augmentation=augmentation,
            input_encoder=input_encoder,
        )
        self.consistency_weight = float(consistency_weight)
        self.rampup_epochs = float(rampup_epochs)

    @property
    def teacher(self) -> nn.Module:
        return self.weight_average.average

    def consistency_ramp(self, step: int) -> float:
        """w_cons * exp(-5 (1 - t)^2), t the share of the ramp-up's steps done at ``step`` (a host number)."""
        if self.rampup_epochs == 0:
            return self.consistency_weight
        batches = self.trainer.num_training_batches if self._trainer is not None else float("inf")
        if not batches or batches == float("inf"):
            return self.consistency_weight * sigmoid_rampup(self.current_epoch / self.rampup_epochs)
        return self.consistency_weight * sigmoid_rampup(step / (self.rampup_epochs * batches))

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        labeled_inputs, targets, unlabeled_inputs = self.augment(batch[0]), batch[1], batch[2]
        self.ensure_initialised(unlabeled_inputs)
        sources = [labeled_inputs.shape[0], unlabeled_inputs.shape[0]]
        logits, _ = self.discriminator(torch.cat([labeled_inputs, unlabeled_inputs]), group_sizes=sources)
        labeled_logits, student_logits = logits.split(sources)
        with torch.no_grad():  # the teacher in training mode: its noise is drawn independently of the student's
            teacher_logits, _ = self.teacher(unlabeled_inputs)
        loss_labeled = supervised_loss(labeled_logits, targets)
        loss_consistency = consistency_loss(student_logits, teacher_logits)
        loss = loss_labeled + self.consistency_ramp(self.global_step) * loss_consistency
        self.epoch_losses.add({"loss": loss.detach(), "loss_labeled": loss_labeled.detach(),
                               "loss_consistency": loss_consistency.detach()})
        return loss
