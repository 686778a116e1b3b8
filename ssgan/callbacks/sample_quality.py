"""Inception score and FID of G's samples every k epochs during training, added to the run's evaluation.json.

Opt-in (``ssgan-train callbacks/evaluation=classifier``): it reads the test images, which a tuning run keeps
unread, and it costs a judge pass over the samples and the test images at each evaluation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from ssgan.errors import SSGANError
from ssgan.evaluation.judge import Judge, JudgeSpec, check_images
from ssgan.evaluation.records import CALLBACK_SOURCE, append_entry, evaluation_entry, read_entries, write_entries
from ssgan.evaluation.scores import sample_quality

log = logging.getLogger("ssgan")


class SampleQuality(pl.Callback):
    """Every ``every_n_epochs`` (and at the last epoch; 0: only then) rank 0 draws ``num_samples`` samples of G
    from noise seeded by ``seed``, scores them with the ``judge`` against the test images, and appends the
    entry to ``path``. The judge is prepared once, at the start of training (trained or loaded from
    ``cache_dir``); the training RNG is never touched. A resume drops the entries of the epochs it trains again.
    """

    def __init__(
        self,
        judge: JudgeSpec,
        path: str | Path,
        every_n_epochs: int = 10,
        num_samples: int = 1000,
        seed: int = 0,
        splits: int = 10,
        batch_size: int = 500,
        cache_dir: str | None = None,
        run_test: bool = True,
    ) -> None:
        for name, value, low in (("every_n_epochs", every_n_epochs, 0), ("num_samples", num_samples, 2),
                                 ("splits", splits, 1), ("batch_size", batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SSGANError(f"callbacks.evaluation.{name}={value!r} must be an integer >= {low}")
        if splits > num_samples:
            raise SSGANError(f"callbacks.evaluation.splits={splits} must not exceed num_samples={num_samples}")
        if not run_test:
            raise SSGANError("callbacks.evaluation compares samples with the test images, but run_test=false keeps "
                             "the test set unread (docs/protocol.md); leave callbacks/evaluation out of this run")
        self.judge_spec = judge
        self.path = Path(path)
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples
        self.seed = seed
        self.splits = splits
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.judge: Judge | None = None
        self.real: Any = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Refuse a run whose G makes no images; on rank 0 drop the entries a resume trains again, prepare the judge."""
        if not hasattr(pl_module, "sample"):
            raise SSGANError(f"callbacks.evaluation judges G's samples, but {type(pl_module).__name__} has no "
                             "generator; use it with model=ssgan")
        datamodule = trainer.datamodule
        if getattr(datamodule, "encoder", None) is not None:
            raise SSGANError("callbacks.evaluation judges images, but with data.encoder G makes patch codes, which "
                             "cannot be turned back into images")
        data = datamodule.data
        check_images(tuple(data.input_shape), "callbacks.evaluation")
        if not trainer.is_global_zero:  # every rank refuses alike; rank 0 alone judges and writes
            return
        entries = read_entries(self.path)
        trained = trainer.current_epoch  # epochs already trained (a resume's first epoch)
        kept = [entry for entry in entries
                if entry.get("source") != CALLBACK_SOURCE or int(entry.get("epochs_trained", 0)) <= trained]
        if len(kept) < len(entries):
            write_entries(self.path, kept)
        self.judge = self.judge_spec.prepare(data, self.cache_dir, pl_module.device)
        self.real = data.test.inputs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or self.judge is None:
            return
        epoch = trainer.current_epoch
        last_epoch = epoch + 1 >= (trainer.max_epochs or 0) > 0
        due = self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0
        if due or last_epoch:
            self.evaluate(trainer, pl_module)

    def evaluate(self, trainer: pl.Trainer, pl_module: Any) -> dict[str, Any]:
        """Score ``num_samples`` samples now and append the entry."""
        assert self.judge is not None
        samples = pl_module.sample(self.num_samples, self.seed)
        scores = sample_quality(self.judge, samples, self.real, self.splits, self.seed, self.batch_size)
        entry = evaluation_entry(CALLBACK_SOURCE, self.judge, scores, self.seed, trainer.current_epoch + 1,
                                 trainer.global_step)
        append_entry(self.path, entry)
        log.info("epoch %d/%d: Inception score %.3f, FID %.3f (%s judge, %d samples) -> %s",
                 entry["epochs_trained"], trainer.max_epochs, scores.inception_score_mean, scores.fid,
                 self.judge.name, scores.num_samples, self.path)
        return entry
