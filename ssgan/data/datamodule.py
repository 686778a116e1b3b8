"""LightningDataModule: source -> tensors -> seeded split -> labeled/unlabeled training stream and eval loaders."""

from __future__ import annotations

import logging
from pathlib import Path
from collections.abc import Callable
from functools import partial
from typing import Any, BinaryIO

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ssgan.data.sources.base import ArrayDataset, Source, SourceData, check_finite, check_labels
from ssgan.data.split import Split, make_split, resolve_labeled_count
from ssgan.data.streams import EvaluationStream, SemiSupervisedStream, epoch_generator
from ssgan.errors import SSGANError
from ssgan.data.encoders.cache import check_size_limit, fitted_encoding, fitting_device

log = logging.getLogger(__name__)


def require_integer(name: str, value: object, optional: bool) -> None:
    """Refuse a non-integer setting at the boundary (``data.num_labeled=lots``) with the value and the field."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        allowed = "an integer or null" if optional else "an integer"
        raise SSGANError(f"data.{name}={value!r} must be {allowed}")


def private_loader(stream: Any) -> DataLoader:
    """A loader over a batch-yielding stream with its own generator: creating its iterator then draws nothing
    from torch's global RNG, so the training noise is the same whether or not a run was resumed."""
    return DataLoader(stream, batch_size=None, generator=torch.Generator())


class SemiSupervisedDataModule(pl.LightningDataModule):
    """Feeds every training step ``batch_size`` labeled + ``batch_size`` unlabeled examples (per device).

    ``root`` is the data folder of file-based sources (their config reads it as ``${data.root}``).
    ``num_labeled`` is the total labeled budget (balanced per class, as in the paper); ``labeled_fraction``
    is the alternative; with neither, every labeled example of the source is used. ``num_train`` keeps a
    seeded, class-balanced subset of the training examples as the pool (null: all). ``split_seed`` fixes
    which examples are labeled, independently of the training seed.

    ``encoder`` (a partial of an input encoder such as
    :class:`~ssgan.data.encoders.PatchKMeansEncoder`) is fitted on the unlabeled pool once and replaces every
    example by its code, so the networks train on codes and the checkpoint carries the fitted encoder for
    prediction. ``encoder_cache_dir`` keeps fits for later runs on the same data (see
    :mod:`ssgan.data.encoders.cache`), bounded by ``encoder_cache_limit_gb``; ``encoder_device`` is where the
    fit runs.
    """

    def __init__(
        self,
        source: Source,
        num_labeled: int | None = 50,
        labeled_fraction: float | None = None,
        num_validation: int = 0,
        num_train: int | None = None,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        split_seed: int = 0,
        stream_seed: int = 0,
        root: str | None = None,
        encoder: Callable[..., Any] | None = None,
        encoder_cache_dir: str | None = None,
        encoder_cache_limit_gb: float | None = None,
        encoder_device: str = "cpu",
    ) -> None:
        super().__init__()
        for name, value, optional in (
            ("num_labeled", num_labeled, True),
            ("num_validation", num_validation, False),
            ("num_train", num_train, True),
            ("batch_size", batch_size, False),
            ("eval_batch_size", eval_batch_size, False),
            ("split_seed", split_seed, False),
            ("stream_seed", stream_seed, False),
        ):
            require_integer(name, value, optional)
        if labeled_fraction is not None and not isinstance(labeled_fraction, (int, float)):
            raise SSGANError(f"data.labeled_fraction={labeled_fraction!r} must be a number in (0, 1] or null")
        if num_labeled is not None and labeled_fraction is not None:
            resolve_labeled_count(1 << 62, 1, num_labeled, labeled_fraction)  # raises the one-line error
        if batch_size < 2:  # G's batch norm and the batch means of feature matching need two examples
            raise SSGANError(f"data.batch_size={batch_size} must be an integer >= 2 (examples per step and device)")
        if eval_batch_size < 1:
            raise SSGANError(f"data.eval_batch_size={eval_batch_size} must be a positive integer")
        if root is not None and not hasattr(source, "root"):
            raise SSGANError(f"data.root={root!r} is set but {type(source).__name__} reads no files; drop data.root")
        self.source = source
        self.root = root  # the data folder: file sources read it through ${data.root}
        self.num_labeled = num_labeled
        self.labeled_fraction = labeled_fraction
        self.num_validation = num_validation
        self.num_train = num_train
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.split_seed = split_seed
        self.stream_seed = stream_seed
        self.encoder_factory = encoder
        self.encoder_cache_dir = encoder_cache_dir
        if encoder is not None:
            fitting_device(encoder_device)  # a bad device fails here, not minutes later when the fit starts
        self.encoder_device = encoder_device
        self.encoder_cache_limit_gb = check_size_limit(encoder_cache_limit_gb)
        self.encoder: Any = None  # the fitted encoder module, once set up
        self.raw_input_shape: tuple[int, ...] | None = None
        self.data: SourceData | None = None
        self.split: Split | None = None
        self._train_stream: SemiSupervisedStream | None = None
        self.training_device: torch.device | None = None  # where training batches are cut (None: the host)

    # ----------------------------------------------------------------------------------------------- set-up
    def setup(self, stage: str | None = None) -> None:
        """Load and split once (idempotent): every rank draws the same split from its own seeded generator."""
        if self.split is not None:
            return
        data = self.source.load()
        if data.num_classes < 2:
            raise SSGANError(f"the data has {data.num_classes} class(es); a classifier needs at least 2")
        check_labels(data.train.labels, data.num_classes, "training labels")
        check_labels(data.test.labels, data.num_classes, "test labels")
        check_finite(data.train.inputs, "training inputs")
        check_finite(data.test.inputs, "test inputs")
        if bool((data.test.labels < 0).any()):
            raise SSGANError("the test set has unlabeled rows (-1); every test example needs a label")
        self.split = make_split(
            data.train.labels,
            data.num_classes,
            num_labeled=self.num_labeled,
            labeled_fraction=self.labeled_fraction,
            num_validation=self.num_validation,
            seed=self.split_seed,
            num_train=self.num_train,
            class_names=data.class_names,
        )
        if self.split.unlabeled.numel() < self.batch_size:
            raise SSGANError(
                f"data.batch_size={self.batch_size} is larger than the unlabeled pool "
                f"({self.split.unlabeled.numel()} examples)"
            )
        self.raw_input_shape = data.input_shape
        self.data = self._encoded(data) if self.encoder_factory is not None else data

    def _encoded(self, data: SourceData) -> SourceData:
        """Fit the encoder on the unlabeled pool's images (labels unused, validation excluded), map all."""
        assert self.split is not None
        extractor = self.encoder_factory(input_shape=data.input_shape)
        train_features, test_features = fitted_encoding(
            extractor, data.train.inputs, self.split.unlabeled, data.test.inputs, self.encoder_cache_dir,
            self.encoder_cache_limit_gb, self.encoder_device,
        )
        self.encoder = extractor
        return SourceData(
            train=ArrayDataset(train_features, data.train.labels),
            test=ArrayDataset(test_features, data.test.labels),
            class_names=data.class_names,
            input_scaling=data.input_scaling,
        )

    def encoder_arguments(self) -> dict[str, Any]:
        """What a classifier module needs to rebuild the fitted encoder: nothing without one."""
        self._loaded  # noqa: B018  (sets up)
        if self.encoder_factory is None:
            return {}
        return {"input_encoder": partial(self.encoder_factory, input_shape=self.raw_input_shape)}

    @property
    def num_classes(self) -> int:
        return self._loaded.num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._loaded.input_shape

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._loaded.class_names

    @property
    def _loaded(self) -> SourceData:
        if self.data is None:
            self.setup()
        assert self.data is not None
        return self.data

    def save_split(self, path: str | Path | BinaryIO) -> None:
        assert self.split is not None, "setup() first"
        self.split.save(path)

    def initialization_inputs(self, count: int = 500, labeled_only: bool = False) -> torch.Tensor:
        """A seeded sample of the unlabeled pool (or of the labeled subset) for data-dependent init.

        The same on every rank, so DDP starts from identical weights.
        """
        data, split = self._loaded, self.split
        assert split is not None
        pool = split.labeled if labeled_only else split.unlabeled
        generator = epoch_generator(self.stream_seed, epoch=-1)
        chosen = pool[torch.randperm(pool.numel(), generator=generator)[:count]]
        return data.train.inputs[chosen]

    def keep_training_data_on(self, device: torch.device | None) -> None:
        """Hold the training pool on ``device`` and cut batches there (None: on the host, the default).

        A batch from the host is copied to the GPU every step, and that copy waits for the GPU to finish its
        queued work: a host sync per step. The captured training step asks for this to avoid it.
        """
        self.training_device = device

    # ----------------------------------------------------------------------------------------------- loaders
    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def train_dataloader(self) -> DataLoader:
        data, split = self._loaded, self.split
        assert split is not None
        rank, world = self._rank_and_world()
        if split.unlabeled.numel() // world < self.batch_size:
            raise SSGANError(
                f"data.batch_size={self.batch_size} per device is larger than each of the {world} ranks' "
                f"share of the unlabeled pool ({split.unlabeled.numel() // world})"
            )
        device = self.training_device

        def placed(values: torch.Tensor) -> torch.Tensor:
            return values.to(device) if device is not None else values

        self._train_stream = SemiSupervisedStream(
            labeled_inputs=placed(data.train.inputs[split.labeled]),
            labeled_targets=placed(data.train.labels[split.labeled]),
            unlabeled_inputs=placed(data.train.inputs[split.unlabeled]),
            batch_size=self.batch_size,
            seed=self.stream_seed,
            rank=rank,
            world_size=world,
        )
        if self._resume_state:
            self._train_stream.epoch = self._resume_state["epoch"]
            self._train_stream.start_step = self._resume_state.get("step", 0)
            self._resume_state = None
        return private_loader(self._train_stream)

    def _evaluation_loader(self, inputs: torch.Tensor, targets: torch.Tensor) -> DataLoader:
        rank, world = self._rank_and_world()
        return private_loader(EvaluationStream(inputs, targets, self.eval_batch_size, rank, world))

    def val_dataloader(self) -> DataLoader | list:
        data, split = self._loaded, self.split
        assert split is not None
        if split.validation.numel() == 0:
            return []
        return self._evaluation_loader(data.train.inputs[split.validation], data.train.labels[split.validation])

    def test_dataloader(self) -> DataLoader:
        data = self._loaded
        return self._evaluation_loader(data.test.inputs, data.test.labels)

    # ----------------------------------------------------------------------------------------------- resume
    _resume_state: dict[str, int] | None = None

    def state_dict(self) -> dict[str, Any]:
        """Where the training stream stands, and the source's input scaling when it had one (for prediction)."""
        state = self.stream_position()
        if self.data is not None and self.data.input_scaling is not None:
            state["input_scaling"] = self.data.input_scaling.state_dict()
        return state

    def stream_position(self) -> dict[str, int]:
        """The epoch and the number of its steps already trained on.

        The step count comes from the trainer's progress, not from the stream, because Lightning fetches one
        batch ahead; a finished epoch is stored as the start of the next one.
        """
        stream = self._train_stream
        if stream is None:
            return {"epoch": 0, "step": 0}
        if stream.current_epoch is None:
            return {"epoch": stream.epoch, "step": stream.start_step}
        trainer = self.trainer
        step = trainer.fit_loop.epoch_loop.batch_progress.current.processed if trainer is not None else len(stream)
        epoch_length = min(len(stream), trainer.num_training_batches) if trainer is not None else len(stream)
        if step >= epoch_length:
            return {"epoch": stream.current_epoch + 1, "step": 0}
        return {"epoch": stream.current_epoch, "step": int(step)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_state = dict(state_dict)
