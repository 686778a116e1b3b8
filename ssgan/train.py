"""Hydra entry point: data, model and trainer from config -> fit -> test -> metrics.json in the run directory.

    ssgan-train                                   # digits, 50 labels, SSGAN
    ssgan-train model=supervised seed=1           # the labeled-only baseline on the same split
    ssgan-train data.num_labeled=100 trainer.max_epochs=5
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import ssgan.config  # noqa: F401  (registers the config resolvers)
from ssgan.callbacks import TrainingThroughput
from ssgan.checkpointing import LAST_CHECKPOINT, resolve_checkpoint
from ssgan.divergence import TrainingDiverged
from ssgan.errors import SSGANError
from ssgan.health import GANHealth

log = logging.getLogger("ssgan")

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def build(config: Any, **kwargs: Any) -> Any:
    """``instantiate`` that lets a user-facing :class:`SSGANError` through instead of Hydra's wrapper."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, SSGANError):
            cause = cause.__cause__
        if isinstance(cause, SSGANError):
            raise cause from None
        raise


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one job and return its metrics; files go to ``cfg.paths.output_dir`` (rank 0 only)."""
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = resolve_checkpoint(cfg.get("ckpt_path"), output_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build(cfg.data)
    datamodule.setup("fit")  # bad data or budgets fail here, before anything is written
    model = build(
        cfg.model,
        input_shape=datamodule.input_shape,
        num_classes=datamodule.num_classes,
        class_names=list(datamodule.class_names),
    )
    callbacks = [build(callback) for callback in (cfg.get("callbacks") or {}).values() if callback]
    logger = build(cfg.logger) if cfg.get("logger") else False
    trainer: pl.Trainer = build(cfg.trainer, callbacks=callbacks, logger=logger)

    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        datamodule.save_split(output_dir / "split_indices.npz")

    started = time.perf_counter()
    try:
        # the run's own checkpoint: its hyperparameters hold network factories, which need full unpickling
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    except TrainingDiverged as error:
        record_divergence(output_dir, trainer, error)
        raise
    fit_seconds = time.perf_counter() - started
    trainer.test(model, datamodule=datamodule, verbose=False)

    throughput = find_callback(trainer, TrainingThroughput)
    metrics = summarise(cfg, model, datamodule, trainer, throughput, fit_seconds)
    health = find_callback(trainer, GANHealth)
    if health is not None and health.summary():
        metrics["health"] = health.summary()
    if trainer.is_global_zero:
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        log.info(
            "test accuracy %.4f (%d errors of %d) -> %s",
            metrics["test_acc"],
            metrics["test_errors"],
            metrics["num_test"],
            output_dir / "metrics.json",
        )
    return metrics


def find_callback(trainer: pl.Trainer, kind: type) -> Any:
    return next((c for c in trainer.callbacks if isinstance(c, kind)), None)


def record_divergence(output_dir: Path, trainer: pl.Trainer, error: TrainingDiverged) -> None:
    """metrics.json with ``status: diverged`` beside the last good checkpoint, and the hint in the message."""
    last = output_dir / "checkpoints" / LAST_CHECKPOINT
    if last.is_file():
        error.args = (f"{error}; last good checkpoint: {last}",)
    if not trainer.is_global_zero:
        return
    health = find_callback(trainer, GANHealth)
    metrics = {
        "status": "diverged",
        "error": str(error),
        "diverged": error.what,
        "step": error.step,
        "epochs": int(trainer.current_epoch),
        "last_checkpoint": str(last) if last.is_file() else None,
        "health": health.summary() if health is not None else {},
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def summarise(
    cfg: DictConfig,
    model: Any,
    datamodule: Any,
    trainer: pl.Trainer,
    throughput: TrainingThroughput | None,
    fit_seconds: float,
) -> dict[str, Any]:
    results = model.test_results
    confusion = results["test_confusion"]
    num_test = int(confusion.sum())
    test_acc = float(results["test_acc"])
    metrics: dict[str, Any] = {
        "status": "completed",
        "model": cfg.model._target_.rsplit(".", 1)[-1],
        "model_name": cfg.get("model_name") or cfg.model._target_.rsplit(".", 1)[-1],
        "dataset": cfg.data.source._target_.rsplit(".", 1)[-1],
        "num_labeled": int(datamodule.split.labeled.numel()),
        "seed": int(cfg.seed),
        "test_acc": test_acc,
        "test_acc_macro": float(results["test_acc_macro"]),
        "test_errors": num_test - int(confusion.diag().sum()),
        "num_test": num_test,
        "test_confusion": confusion.tolist(),
        "class_names": list(datamodule.class_names),
        "epochs": int(trainer.current_epoch),
        "train_seconds": throughput.train_seconds if throughput else fit_seconds,
        "samples_per_second": throughput.samples_per_second if throughput else None,
        "device": describe_device(trainer),
    }
    validation = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_") and v.ndim == 0}
    metrics.update(validation)
    return metrics


def describe_device(trainer: pl.Trainer) -> str:
    root = trainer.strategy.root_device
    if root.type == "cuda":
        return f"{torch.cuda.get_device_name(root)} x{trainer.world_size}"
    return f"cpu ({torch.get_num_threads()} threads) x{trainer.world_size}"


def record_failure(output_dir: Path, error: BaseException) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "error.txt").write_text(f"{type(error).__name__}: {error}\n")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Console entry ``ssgan-train``: a user error becomes one line (and error.txt); a sweep goes on."""
    try:
        return train(cfg)["test_acc"]
    except SSGANError as error:
        record_failure(Path(cfg.paths.output_dir), error)
        print(f"ssgan-train: error: {error}", file=sys.stderr)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return None
        sys.exit(2)


if __name__ == "__main__":
    main()
