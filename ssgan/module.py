"""The semi-supervised GAN: D is a K+1-class classifier, G is trained by feature matching (manual optimisation)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ssgan.classifier import ClassifierModule, NetworkFactory
from ssgan.errors import SSGANError
from ssgan.health import gradient_norm
from ssgan.losses import (
    FEATURE_DISTANCES,
    consistency_loss,
    discriminator_loss,
    feature_matching_loss,
    real_probability,
)


class SSGAN(ClassifierModule):
    """Per batch: one discriminator step on labeled + unlabeled + generated data, then one generator step.

    Batch: ``(x_labeled, y_labeled, x_unlabeled, x_unlabeled_fm)``; the second unlabeled batch is the
    real side of feature matching, as in the paper.
    """

    def __init__(
        self,
        discriminator: NetworkFactory,
        generator: NetworkFactory,
        optimizer: Callable[..., torch.optim.Optimizer],
        input_shape: Sequence[int],
        num_classes: int,
        class_names: Sequence[str] | None = None,
        generator_optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        unlabeled_weight: float = 1.0,
        feature_matching_distance: str = "l2",
        use_ema: bool = True,
        ema_decay: float = 0.999,
        init_examples: int = 500,
        augmentation: Callable[[Tensor], Tensor] | None = None,
        augment_unlabeled: bool = False,
        entropy_weight: float = 0.0,
        balance_weight: float = 0.0,
        balance_end_epoch: int | None = None,
        consistency_weight: float = 0.0,
        consistency_rampup_epochs: float = 5.0,
        input_features: NetworkFactory | None = None,
        raw_input_shape: Sequence[int] | None = None,
    ) -> None:
        if balance_end_epoch is not None and (isinstance(balance_end_epoch, bool) or
                                              not isinstance(balance_end_epoch, int) or balance_end_epoch < 0):
            raise SSGANError(
                f"model.balance_end_epoch={balance_end_epoch!r}: expected null (every epoch) or an epoch number >= 0"
            )
        if feature_matching_distance not in FEATURE_DISTANCES:
            raise SSGANError(
                f"model.feature_matching_distance={feature_matching_distance!r} is not one of {FEATURE_DISTANCES}"
            )
        super().__init__(
            discriminator=discriminator,
            optimizer=optimizer,
            input_shape=input_shape,
            num_classes=num_classes,
            class_names=class_names,
            scheduler=scheduler,
            use_ema=use_ema,
            ema_decay=ema_decay,
            init_examples=init_examples,
            augmentation=augmentation,
            input_features=input_features,
            raw_input_shape=raw_input_shape,
        )
        self.automatic_optimization = False
        self.generator = generator(output_shape=self.input_shape)
        output_activation = getattr(self.generator, "output_activation", "sigmoid")
        if input_features is not None and output_activation != "sigmoid":
            raise SSGANError(
                f"model.generator.output_activation={output_activation!r}: with data.features it must be 'sigmoid', "
                "whose [0, 1] output is mapped onto each feature's range"
            )
        self.generator_optimizer_factory = generator_optimizer
        self.unlabeled_weight = unlabeled_weight
        self.feature_matching_distance = feature_matching_distance
        self.augment_unlabeled = augment_unlabeled
        self.entropy_weight = entropy_weight
        self.balance_weight = balance_weight
        self.balance_end_epoch = balance_end_epoch
        self.consistency_weight = consistency_weight
        self.consistency_rampup_epochs = consistency_rampup_epochs

    def configure_optimizers(self) -> Any:
        make_generator_optimizer = self.generator_optimizer_factory or self.optimizer_factory
        optimizers = [
            self.optimizer_factory(self.trainable(self.discriminator)),
            make_generator_optimizer(self.trainable(self.generator)),
        ]
        schedulers = [s for s in map(self.make_scheduler, optimizers) if s is not None]
        return optimizers, schedulers

    def consistency_ramp(self, batch_idx: int) -> float:
        """w_cons * exp(-5 (1 - t)^2), t the fraction of the ramp-up epochs done (Laine & Aila's ramp-up)."""
        batches = self.trainer.num_training_batches if self._trainer is not None else 0
        epochs_done = self.current_epoch + (batch_idx / batches if batches and batches != float("inf") else 0.0)
        rampup = self.consistency_rampup_epochs
        progress = min(1.0, epochs_done / rampup) if rampup > 0 else 1.0
        return self.consistency_weight * math.exp(-5.0 * (1.0 - progress) ** 2)

    def current_balance_weight(self) -> float:
        """w_bal before ``balance_end_epoch`` and 0 from it on: the term speeds up learning at the full rate, but
        kept through the rate's decay it cancels what the decay adds (docs/benchmarks.md)."""
        end = self.balance_end_epoch
        if end is not None and self.current_epoch >= end:
            return 0.0
        return self.balance_weight

    def generator_output(self, noise: Tensor) -> Tensor:
        """G's samples as D's inputs: with input features, G's output in [0, 1] is mapped to the features' range."""
        samples = self.generator(noise)
        return self.input_features.from_unit(samples) if self.input_features is not None else samples

    def generate(self, count: int) -> Tensor:
        return self.generator_output(self.generator.sample_noise(count, device=self.device))

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor, Tensor], batch_idx: int) -> dict[str, Any]:
        """Returns the detached losses and this step's health statistics (device tensors, no host sync)."""
        labeled_inputs, targets, unlabeled_inputs, matching_inputs = batch
        self.ensure_initialised(unlabeled_inputs)
        labeled_inputs = self.augment(labeled_inputs)
        if self.augment_unlabeled:
            unlabeled_inputs = self.augment(unlabeled_inputs)
        discriminator_optimizer, generator_optimizer = self.optimizers()
        num_labeled, num_unlabeled = labeled_inputs.shape[0], unlabeled_inputs.shape[0]

        # With consistency on, one no-grad noisy pass over the unlabeled batch before D's update gives both
        # the consistency target and the real side of feature matching (the paper: a second batch after it).
        target_logits = real_features = None
        if self.consistency_weight:
            with torch.no_grad():
                target_logits, real_features = self.discriminator(unlabeled_inputs)

        # Discriminator step: one pass over labeled, unlabeled and generated examples (no batch norm in D,
        # so concatenating is exactly three separate passes).
        self.toggle_optimizer(discriminator_optimizer)
        with torch.no_grad():
            generated = self.generate(num_unlabeled)
        logits, _ = self.discriminator(torch.cat([labeled_inputs, unlabeled_inputs, generated]))
        labeled_logits, real_logits, fake_logits = logits.split([num_labeled, num_unlabeled, num_unlabeled])
        loss_d, loss_labeled, loss_unlabeled = discriminator_loss(
            labeled_logits, targets, real_logits, fake_logits, self.unlabeled_weight,
            entropy_weight=self.entropy_weight, balance_weight=self.current_balance_weight(),
        )
        if target_logits is not None:
            loss_d = loss_d + self.consistency_ramp(batch_idx) * consistency_loss(real_logits, target_logits)
        discriminator_optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        discriminator_grad_norm = gradient_norm(self.discriminator)
        discriminator_optimizer.step()
        self.untoggle_optimizer(discriminator_optimizer)
        self.weight_average.update(self.discriminator)

        # Generator step: match the mean features of a second unlabeled batch (no gradient needed on that side).
        self.toggle_optimizer(generator_optimizer)
        if real_features is None:
            with torch.no_grad():
                _, real_features = self.discriminator(matching_inputs)
        _, fake_features = self.discriminator(self.generate(num_unlabeled))
        loss_g = feature_matching_loss(real_features, fake_features, self.feature_matching_distance)
        generator_optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        generator_grad_norm = gradient_norm(self.generator)
        generator_optimizer.step()
        self.untoggle_optimizer(generator_optimizer)

        losses = {
            "loss_d": loss_d.detach(),
            "loss_labeled": loss_labeled.detach(),
            "loss_unlabeled": loss_unlabeled.detach(),
            "loss_g": loss_g.detach(),
        }
        self.epoch_losses.add(losses)
        real_logits, fake_logits = real_logits.detach(), fake_logits.detach()
        health = {
            "d_accuracy_real": (real_probability(real_logits) > 0.5).float().mean(),
            "d_accuracy_generated": (real_probability(fake_logits) < 0.5).float().mean(),
            "feature_matching_loss": losses["loss_g"],
            "grad_norm_d": discriminator_grad_norm,
            "grad_norm_g": generator_grad_norm,
            "generated_class_counts": torch.bincount(fake_logits.argmax(dim=1), minlength=self.num_classes),
        }
        return {**losses, "health": health}
