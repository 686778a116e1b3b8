"""The semi-supervised GAN: D is a K+1-class classifier, G is trained by feature matching (manual optimisation).

The other techniques of the paper's section 3 are switches, off by default: G's GAN objectives and one-sided
label smoothing in :class:`SSGANObjective`, historical averaging (:mod:`ssgan.models.history`), minibatch
discrimination in D and virtual batch norm in G (:mod:`ssgan.nets`). ``step_capture`` runs the whole step as
one CUDA graph replay (:mod:`ssgan.models.capture`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ssgan.errors import SSGANError
from ssgan.models.base import ClassifierModule, NetworkFactory
from ssgan.models.capture import (
    CapturedStep,
    capture_blockers,
    make_capturable,
    resolve_step_capture,
    restore_capturable,
    saved_as_configured,
    step_capture_mode,
)
from ssgan.models.history import HistoricalAverage
from ssgan.models.losses import SSGANObjective, real_probability
from ssgan.nets.layers import draw_fresh_noise


def gradient_norm(network: nn.Module) -> Tensor:
    """Global L2 norm of the network's current gradients (a 0-dim device tensor; 0 when none)."""
    gradients = [p.grad for p in network.parameters() if p.grad is not None]
    if not gradients:
        return torch.zeros((), device=next(network.parameters()).device)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(gradients)))


def class_counts(logits: Tensor, num_classes: int) -> Tensor:
    """How many rows of ``logits`` (B, K) have their argmax at each class (K,), int64: ``bincount`` without its
    host read of the largest index, so a CUDA graph can hold it."""
    predicted = logits.argmax(dim=1, keepdim=True)
    return (predicted == torch.arange(num_classes, device=logits.device)).sum(dim=0)


class SSGAN(ClassifierModule):
    """Per batch: one discriminator step on labeled + unlabeled + generated data, then one generator step.

    Batch: ``(x_labeled, y_labeled, x_unlabeled, x_unlabeled_fm)``; the second unlabeled batch is the
    real side of feature matching, as in the paper. G shares D's optimizer settings. D sees each source of a
    pass as its own group (``group_sizes``), so minibatch discrimination never compares across sources.

    ``step_capture`` (auto, on, off): whether a fit on a CUDA device runs the step as a CUDA graph replay
    (:mod:`ssgan.models.capture`); the eager step stays the reference, unchanged when capture is off.
    """

    def __init__(
        self,
        discriminator: NetworkFactory,
        generator: NetworkFactory,
        optimizer: Callable[..., torch.optim.Optimizer],
        input_shape: Sequence[int],
        num_classes: int,
        class_names: Sequence[str] | None = None,
        scheduler: Callable[..., Any] | None = None,
        ema_decay: float | None = 0.999,
        init_examples: int = 500,
        augmentation: Callable[[Tensor], Tensor] | None = None,
        input_encoder: Callable[[], nn.Module] | None = None,
        objective: SSGANObjective | None = None,
        step_capture: str = "off",
    ) -> None:
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
        self.automatic_optimization = False
        self.objective = objective if objective is not None else SSGANObjective()
        self.generator = generator(output_shape=self.input_shape)
        history_d, history_g = self.objective.discriminator_history_weight, self.objective.generator_history_weight
        self.discriminator_history = HistoricalAverage(self.discriminator, history_d) if history_d else None
        self.generator_history = HistoricalAverage(self.generator, history_g) if history_g else None
        output_activation = getattr(self.generator, "output_activation", "sigmoid")
        if self.input_encoder is not None and output_activation != "sigmoid":
            raise SSGANError(
                f"gan.generator.output_activation={output_activation!r}: with data.encoder it must be 'sigmoid', "
                "whose [0, 1] output is mapped onto each code's range"
            )
        self.step_capture = step_capture_mode(step_capture)
        self.captured_step: CapturedStep | None = None  # this fit's, when it captures
        self.capture_active = False  # whether the last fit captured its step
        self._capture_entered = False
        self._configured_capturable: list[list[bool]] = []

    def configure_optimizers(self) -> Any:
        optimizers = [
            self.optimizer_factory(self.trainable(self.discriminator)),
            self.optimizer_factory(self.trainable(self.generator)),
        ]
        schedulers = [s for s in map(self.make_scheduler, optimizers) if s is not None]
        return optimizers, schedulers

    # ------------------------------------------------------------------------------------------ sampling
    def generator_output(self, noise: Tensor) -> Tensor:
        """G's samples as D's inputs: with an input encoder, G's [0, 1] output is mapped onto the codes' range."""
        samples = self.generator(noise)
        return self.input_encoder.from_unit(samples) if self.input_encoder is not None else samples

    def generate(self, count: int) -> Tensor:
        return self.generator_output(self.generator.sample_noise(count, device=self.device))

    @torch.no_grad()
    def sample(self, count: int, seed: int) -> Tensor:
        """``count`` samples of G in eval mode from seeded noise; torch's global RNG and G's mode are untouched."""
        was_training = self.generator.training
        self.generator.eval()
        device = next(self.generator.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            samples = self.generator_output(self.generator.sample_noise(count, device=device))
        self.generator.train(was_training)
        return samples

    # ------------------------------------------------------------------------------------------ training
    def training_step(self, batch: tuple[Tensor, Tensor, Tensor, Tensor], batch_idx: int) -> dict[str, Any]:
        """One D step, one G step; returns the detached losses and health statistics (device tensors, no sync)."""
        self.ensure_initialised(batch[2])  # the unlabeled inputs
        if self.captured_step is None:
            losses, health = self.train_on_batch(self.optimizers(), batch)
        else:
            if not self._capture_entered:
                self.enter_capture_mode()
            losses, health = self.captured_step(batch, self.captured_settings())
        self.epoch_losses.add(losses)
        return {**losses, "health": health}

    def train_on_batch(
        self, optimizers: Sequence[Any], batch: Sequence[Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The step's device work: D's update, G's update, the health statistics; eager, or captured once."""
        labeled_inputs, targets, unlabeled_inputs, matching_inputs = batch
        discriminator_optimizer, generator_optimizer = optimizers
        losses, real_logits, fake_logits, grad_norm_d = self.discriminator_step(
            discriminator_optimizer, self.augment(labeled_inputs), targets, unlabeled_inputs
        )
        losses["loss_g"], grad_norm_g = self.generator_step(generator_optimizer, matching_inputs)
        health = self.health_statistics(real_logits, fake_logits, losses["loss_g"], grad_norm_d, grad_norm_g)
        return losses, health

    def discriminator_step(
        self, optimizer: Any, labeled_inputs: Tensor, targets: Tensor, unlabeled_inputs: Tensor
    ) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
        """L_D = L_lab + w_unl L_unl on labeled, unlabeled and generated examples, then update D's average.

        One pass over the concatenation: D has no batch norm and minibatch discrimination stays within each
        source's group, so this equals three separate passes. Historical averaging adds its penalty's gradient.
        """
        num_labeled, num_unlabeled = labeled_inputs.shape[0], unlabeled_inputs.shape[0]
        self.toggle_optimizer(optimizer)
        with torch.no_grad():
            generated = self.generate(num_unlabeled)
        sources = [num_labeled, num_unlabeled, num_unlabeled]
        logits, _ = self.discriminator(torch.cat([labeled_inputs, unlabeled_inputs, generated]), group_sizes=sources)
        labeled_logits, real_logits, fake_logits = logits.split(sources)
        loss_d, loss_labeled, loss_unlabeled = self.objective.discriminator(
            labeled_logits, targets, real_logits, fake_logits, self.current_epoch
        )
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        if self.discriminator_history is not None:
            loss_d = loss_d + self.discriminator_history.add_penalty_gradient(self.discriminator)
        grad_norm = gradient_norm(self.discriminator)
        optimizer.step()
        self.untoggle_optimizer(optimizer)
        self.weight_average.update(self.discriminator)
        losses = {"loss_d": loss_d.detach(), "loss_labeled": loss_labeled.detach(),
                  "loss_unlabeled": loss_unlabeled.detach()}
        return losses, real_logits.detach(), fake_logits.detach(), grad_norm

    def generator_step(self, optimizer: Any, matching_inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Feature matching: move G's mean features of D towards those of a second unlabeled batch; or, with a GAN
        objective, move D's verdict on G's samples towards "real". Historical averaging adds its penalty's gradient.
        """
        self.toggle_optimizer(optimizer)
        real_features = None
        if self.objective.matches_features:
            with torch.no_grad():
                _, real_features = self.discriminator(matching_inputs)
        fake_logits, fake_features = self.discriminator(self.generate(matching_inputs.shape[0]))
        loss_g = self.objective.generator(real_features, fake_features, fake_logits)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        if self.generator_history is not None:
            loss_g = loss_g + self.generator_history.add_penalty_gradient(self.generator)
        grad_norm = gradient_norm(self.generator)
        optimizer.step()
        self.untoggle_optimizer(optimizer)
        return loss_g.detach(), grad_norm

    def health_statistics(
        self, real_logits: Tensor, fake_logits: Tensor, loss_g: Tensor, grad_norm_d: Tensor, grad_norm_g: Tensor
    ) -> dict[str, Tensor]:
        """What the GAN-health callback accumulates: is D winning outright, does G cover the classes?"""
        return {
            "d_accuracy_real": (real_probability(real_logits) > 0.5).float().mean(),
            "d_accuracy_generated": (real_probability(fake_logits) < 0.5).float().mean(),
            "generator_loss": loss_g,  # under gan.generator_objective: feature matching by default
            "grad_norm_d": grad_norm_d,
            "grad_norm_g": grad_norm_g,
            "generated_class_counts": class_counts(fake_logits, self.num_classes),
        }

    # ------------------------------------------------------------------------------------------ step capture
    def on_fit_start(self) -> None:
        """Decide whether this fit captures its step, now that the device and the strategy are known; when it
        does, the data module keeps the training pool on the device (batches cut there, no copy per step)."""
        self.leave_capture_mode()
        optimizers = self.trainer.optimizers
        blockers = capture_blockers(
            world_size=self.trainer.world_size,
            precision=self.trainer.precision,
            historical_averaging=self.discriminator_history is not None or self.generator_history is not None,
            augmentation=type(self.augmentation) if self.augmentation is not None else None,
            optimizer=type(optimizers[0]) if optimizers else None,
        )
        self.capture_active = resolve_step_capture(self.step_capture, self.device, blockers)
        if self.capture_active:
            self.captured_step = CapturedStep(
                self.captured_body, after_step=self.count_optimizer_steps, before_capture=self.drop_gradients
            )
        datamodule = getattr(self.trainer, "datamodule", None)
        if hasattr(datamodule, "keep_training_data_on"):
            datamodule.keep_training_data_on(self.device if self.capture_active else None)

    def enter_capture_mode(self) -> None:
        """Make every step of this fit, warm-up included, graph-safe; at the first batch, after a checkpoint's
        optimizer state is restored: capturable optimizers, the weight average counted and D's noise drawn on
        the device (no pool offset from the host)."""
        self._configured_capturable = make_capturable(self.trainer.optimizers)
        self.weight_average.count_on_device(self.device)
        draw_fresh_noise(self.discriminator)
        self._capture_entered = True

    def leave_capture_mode(self) -> None:
        """Free the graph and give back the eager step's settings (after a fit, or one that stopped)."""
        if self.captured_step is not None:
            self.captured_step.release()
            self.captured_step = None
        if self._capture_entered:
            restore_capturable(self.trainer.optimizers, self._configured_capturable)
            self.weight_average.count_on_host()
            draw_fresh_noise(self.discriminator, False)
            self._configured_capturable, self._capture_entered = [], False

    def on_fit_end(self) -> None:
        self.leave_capture_mode()

    def captured_body(self, batch: Sequence[Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """:meth:`train_on_batch` with torch's own optimizers: Lightning's wrappers count steps on the host, which a
        replay would skip; :meth:`count_optimizer_steps` counts them after every step instead."""
        return self.train_on_batch([optimizer.optimizer for optimizer in self.optimizers()], batch)

    def count_optimizer_steps(self) -> None:
        """Lightning's count of this step's two optimizer steps (``global_step``), as ``optimizer.step()`` would."""
        for optimizer in self.optimizers():
            optimizer._on_before_step()
            optimizer._on_after_step()

    def drop_gradients(self) -> None:
        """Gradients from before a capture go, so the graph allocates its own in its memory pool."""
        self.zero_grad(set_to_none=True)

    def captured_settings(self) -> tuple[Any, ...]:
        """The host values a capture bakes in: each group's rate (a schedule changes it per epoch), the balance
        weight at this epoch, D's and G's train mode. A change captures the step again."""
        rates = tuple(group["lr"] for optimizer in self.trainer.optimizers for group in optimizer.param_groups)
        balance = self.objective.balance_weight_at(self.current_epoch)
        return rates, balance, self.discriminator.training, self.generator.training

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """As the base saves; a captured fit's optimizer states keep their configured ``capturable`` flags."""
        super().on_save_checkpoint(checkpoint)
        saved_as_configured(checkpoint.get("optimizer_states", []), self._configured_capturable)
