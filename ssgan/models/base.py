"""The shared base of every model here: D as a K-class classifier, its weight average, data-dependent
initialisation, evaluation metrics, checkpoint state and prediction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from ssgan.callbacks.checkpointing import capture_rng_state, restore_rng_state
from ssgan.models.ema import WeightAverage
from ssgan.models.metrics import EpochMeans, classification_metrics
from ssgan.nets.layers import data_dependent_init

NetworkFactory = Callable[..., nn.Module]


class ClassifierModule(pl.LightningModule):
    """Builds D from a factory sized by the data, evaluates argmax over its K logits with the averaged weights."""

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
    ) -> None:
        """``ema_decay`` None evaluates D's live weights; ``input_encoder`` rebuilds the data's fitted encoder
        (its buffers come from the checkpoint), so prediction can take raw examples."""
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.class_names = tuple(class_names) if class_names is not None else tuple(str(k) for k in range(num_classes))
        self.discriminator = discriminator(input_shape=self.input_shape, num_classes=num_classes)
        self.use_ema = ema_decay is not None
        self.weight_average = WeightAverage(self.discriminator, ema_decay if ema_decay is not None else 0.0)
        self.input_encoder = input_encoder() if input_encoder is not None else None
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.init_examples = init_examples
        self.augmentation = augmentation
        self.val_metrics = classification_metrics(num_classes, prefix="val_")
        self.test_metrics = classification_metrics(num_classes, prefix="test_")
        self.epoch_losses = EpochMeans()  # logged as train_<name> at each epoch's end
        self.test_results: dict[str, Any] = {}
        self.initialised = False  # saved with the weights through get_extra_state
        self._pending_rng_state: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------------ initialisation
    def initialisation_inputs(self, datamodule: Any) -> Tensor:
        """Inputs for D's data-dependent init: a seeded sample of the unlabeled pool (same on every rank)."""
        return datamodule.initialization_inputs(self.init_examples)

    def setup(self, stage: str) -> None:
        """Data-dependent init before DDP wraps the model, so every rank starts from identical weights."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and not self.initialised and hasattr(datamodule, "initialization_inputs"):
            self.initialise(self.initialisation_inputs(datamodule))

    def initialise(self, inputs: Tensor) -> None:
        device = next(self.discriminator.parameters()).device  # setup runs before Lightning moves the model
        data_dependent_init(self.discriminator, inputs.to(device))
        self.weight_average.reset(self.discriminator)
        self.initialised = True

    def ensure_initialised(self, inputs: Tensor) -> None:
        """Fallback when no data module provides an init sample: use the first training batch."""
        if not self.initialised:
            self.initialise(inputs)

    def get_extra_state(self) -> dict[str, Any]:
        return {"initialised": self.initialised}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.initialised = bool(state["initialised"])

    # ------------------------------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the module class (so a checkpoint can be loaded without knowing it) and the RNG state.

        Under DDP every rank draws its own noise, so every rank's generator state is gathered (rank 0 writes).
        """
        rng_state = capture_rng_state()
        if self._trainer is not None and self.trainer.world_size > 1:
            rng_state["per_rank"] = self.gather_rng_states()
        checkpoint["ssgan"] = {
            "module_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "rng_state": rng_state,
            "epoch_losses": self.epoch_losses.state_dict(),
        }

    def gather_rng_states(self) -> list[dict[str, Tensor]]:
        """Each rank's torch (and current CUDA device's) generator state, in rank order (a collective call)."""
        names = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            names["cuda"] = torch.cuda.get_rng_state(self.device)
        gathered = {key: self.all_gather(value.to(self.device)).cpu() for key, value in names.items()}
        return [{key: value[rank].clone() for key, value in gathered.items()} for rank in range(self.trainer.world_size)]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Defer the RNG state to the first resumed batch, so set-up work before it cannot shift the draws."""
        self._pending_rng_state = checkpoint.get("ssgan", {}).get("rng_state")
        self.loaded_epoch = int(checkpoint.get("epoch", -1))  # which epoch's weights a test read (test_weights)
        if "epoch_losses" in checkpoint.get("ssgan", {}):
            self.epoch_losses.load_state_dict(checkpoint["ssgan"]["epoch_losses"])

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._pending_rng_state is not None:
            restore_rng_state(self._pending_rng_state)
            if self.trainer.world_size > 1:
                self.restore_rank_rng_state(self._pending_rng_state.get("per_rank"))
            self._pending_rng_state = None

    def restore_rank_rng_state(self, per_rank: list[dict[str, Tensor]] | None) -> None:
        """This rank's own saved generator state; from a checkpoint of another world size (or of one process),
        a rank-specific stream derived from the restored one, so ranks never share their noise."""
        rank, world_size = self.trainer.global_rank, self.trainer.world_size
        if per_rank is not None and len(per_rank) == world_size:
            torch.set_rng_state(per_rank[rank]["torch"])
            if "cuda" in per_rank[rank] and self.device.type == "cuda":
                torch.cuda.set_rng_state(per_rank[rank]["cuda"], self.device)
            return
        base = int(torch.randint(2**62, (1,)))
        torch.manual_seed((base + 1_000_003 * rank) % 2**63)

    # ------------------------------------------------------------------------------------------ optimisation
    def augment(self, inputs: Tensor) -> Tensor:
        """Training inputs through ``augmentation`` (identity when none is configured)."""
        return self.augmentation(inputs) if self.augmentation is not None else inputs

    def trainable(self, network: nn.Module) -> list[nn.Parameter]:
        return [p for p in network.parameters() if p.requires_grad]

    def configure_optimizers(self) -> Any:
        """One optimizer for D (the baselines); the SSGAN adds G's."""
        optimizer = self.optimizer_factory(self.trainable(self.discriminator))
        scheduler = self.make_scheduler(optimizer)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """With automatic optimisation D has just stepped: move its average (the SSGAN does so in its D step)."""
        if self.automatic_optimization:
            self.weight_average.update(self.discriminator)

    def make_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        return self.scheduler_factory(optimizer) if self.scheduler_factory is not None else None

    # ------------------------------------------------------------------------------------------ evaluation
    @property
    def evaluation_network(self) -> nn.Module:
        return self.weight_average.average if self.use_ema else self.discriminator

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (B, K) of the evaluation network (averaged weights when ``use_ema``)."""
        return self.evaluation_network(x)[0]

    def predict_proba(self, x: Tensor) -> Tensor:
        return torch.softmax(self(x), dim=1)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        self.val_metrics.update(self(inputs), targets)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        self.test_metrics.update(self(inputs), targets)

    @property
    def raw_input_shape(self) -> tuple[int, ...]:
        """The shape of one example as the data holds it (before any feature transform)."""
        return self.input_encoder.input_shape if self.input_encoder is not None else self.input_shape

    def encode(self, raw_inputs: Tensor) -> Tensor:
        """Raw examples -> the networks' inputs (the fitted feature transform, when the run had one)."""
        return self.input_encoder(raw_inputs) if self.input_encoder is not None else raw_inputs

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.predict_proba(inputs)

    def _log_collection(self, metrics: Any) -> dict[str, Any]:
        """Compute (synchronised across ranks by torchmetrics), log the scalars, reset; return everything.

        The values are already global, so ``sync_dist`` averages identical numbers: it only tells Lightning so.
        """
        results = metrics.compute()
        metrics.reset()
        for name, value in results.items():
            if value.ndim == 0:
                self.log(name, value, prog_bar=name.endswith("_acc"), sync_dist=True)
        return results

    def on_validation_epoch_end(self) -> None:
        self._log_collection(self.val_metrics)

    def on_test_epoch_end(self) -> None:
        results = self._log_collection(self.test_metrics)
        self.test_results = {name: value.detach().cpu() for name, value in results.items()}

    def on_train_epoch_start(self) -> None:
        self.epoch_losses.start_epoch(self.current_epoch)

    def on_train_epoch_end(self) -> None:
        """Log the epoch's mean training losses (under DDP: the mean over ranks, not rank 0's share); step the
        schedulers, which manual optimisation does not step for us."""
        means = self.epoch_losses.pop()
        if means:
            self.log_dict({f"train_{name}": value for name, value in means.items()}, sync_dist=True)
        if self.automatic_optimization:
            return
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()
