"""Hydra entry point: data, model and trainer from config -> fit -> test -> metrics.json in the run directory.

    ssgan-train                                   # digits, 50 labels, SSGAN
    ssgan-train model=supervised seed=1           # the labeled-only baseline on the same split
    ssgan-train data.num_labeled=100 trainer.max_epochs=5
    ssgan-train -m data.num_labeled=20,50,100,200 model=ssgan,supervised seed=0,1,2   # a sweep (docs/sweeps.md)
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from ssgan.build import CONFIG_DIR, build
from ssgan.callbacks import GANHealth, TrainingDiverged, TrainingThroughput
from ssgan.callbacks.checkpointing import LAST_CHECKPOINT, resolve_checkpoint
from ssgan.cli.naming import override_values
from ssgan.runtime.quiet import quiet_third_party
from ssgan.errors import SSGANError
from ssgan.runtime.allocator import keep_freed_memory
from ssgan.runtime.hardware import device_name

log = logging.getLogger("ssgan")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one job and return its metrics; files go to ``cfg.paths.output_dir`` (rank 0 only)."""
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = resolve_checkpoint(cfg.get("ckpt_path"), output_dir)
    datamodule, model, trainer = build(cfg)
    check_process_launch(trainer)
    if trainer.strategy.root_device.type == "cpu":
        keep_freed_memory()  # this command's own process: glibc keeps each step's freed memory for the next

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
    validation = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_") and v.ndim == 0}
    trainer.test(model, datamodule=datamodule, verbose=False)

    throughput = find_callback(trainer, TrainingThroughput)
    metrics = summarise(cfg, model, datamodule, trainer, throughput, fit_seconds) | validation
    health = find_callback(trainer, GANHealth)
    if health is not None and health.summary():
        metrics["health"] = health.summary()
    if trainer.is_global_zero:
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (output_dir / "error.txt").unlink(missing_ok=True)  # a resumed job that failed before now succeeded
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
    if not results:
        raise SSGANError(
            "no test results reached this process: the trainer's strategy ran the test in spawned processes "
            f"({type(trainer.strategy).__name__}); use trainer=ddp, which keeps rank 0 in this process"
        )
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
        "world_size": int(trainer.world_size),
        "overrides": job_overrides(),
        "config": OmegaConf.to_container(cfg, resolve=False),
    }
    return metrics


def describe_device(trainer: pl.Trainer) -> str:
    return f"{device_name(trainer.strategy.root_device)} x{trainer.world_size}"


def hydra_mode() -> RunMode | None:
    """RUN or MULTIRUN when called through Hydra, None when ``train`` is called directly."""
    return HydraConfig.get().mode if HydraConfig.initialized() else None


def job_overrides() -> dict[str, str]:
    """This job's command-line overrides (the swept values of a sweep job), as the report groups them."""
    if not HydraConfig.initialized():
        return {}
    return override_values(list(HydraConfig.get().overrides.task))


def check_process_launch(trainer: pl.Trainer) -> None:
    """Refuse DDP that would start its processes from inside a local multirun.

    Lightning's ``ddp`` re-runs the command line once per extra rank; inside ``-m`` that command line is
    the whole sweep, so the children would run other jobs and the ranks would hang. Cluster launchers that
    start one process per rank themselves (SLURM tasks, torchrun) are fine.
    """
    environment = getattr(trainer.strategy, "cluster_environment", None)
    launches_itself = environment is not None and not environment.creates_processes_externally
    if trainer.world_size > 1 and launches_itself and hydra_mode() == RunMode.MULTIRUN:
        raise SSGANError(
            f"trainer.devices={trainer.num_devices} (DDP) cannot run inside a local multirun (-m): Lightning would "
            "re-launch the whole sweep once per rank. Run each multi-GPU job as a single run, or sweep with "
            "hydra/launcher=slurm, which starts one task per device (docs/sweeps.md)"
        )


def record_failure(output_dir: Path, error: BaseException, with_traceback: bool = False) -> Path:
    """Write what went wrong into the job's directory (rank 0: error.txt, rank r: error.rank<r>.txt)."""
    rank = rank_zero_only.rank
    path = output_dir / ("error.txt" if rank == 0 else f"error.rank{rank}.txt")
    output_dir.mkdir(parents=True, exist_ok=True)
    text = f"{type(error).__name__}: {error}\n"
    if with_traceback:
        text += "\n" + "".join(traceback.format_exception(error))
    path.write_text(text)
    return path


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Console entry ``ssgan-train``: any failure is recorded in the job's error.txt; in a sweep the next job runs.

    A user error (SSGANError) is one line on stderr; an unexpected one keeps its traceback (in error.txt in
    a sweep, on stderr in a single run).
    """
    multirun = hydra_mode() == RunMode.MULTIRUN
    output_dir = Path(cfg.paths.output_dir)
    try:
        with quiet_third_party():
            return train(cfg)["test_acc"]
    except SSGANError as error:
        record_failure(output_dir, error)
        print(f"ssgan-train: error: {error}", file=sys.stderr)
        if multirun:
            return None
        sys.exit(2)
    except Exception as error:
        path = record_failure(output_dir, error, with_traceback=True)
        if not multirun:
            raise
        print(f"ssgan-train: job failed: {type(error).__name__}: {error} (traceback: {path})", file=sys.stderr)
        return None


if __name__ == "__main__":
    main()
