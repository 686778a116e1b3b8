"""Hydra entry point: data, model and trainer from config -> fit -> test -> metrics.json in the run directory.

    ssgan-train                                   # digits, 50 labels, SSGAN
    ssgan-train model=supervised seed=1           # the labeled-only baseline on the same split
    ssgan-train data.num_labeled=100 trainer.max_epochs=5
    ssgan-train -m data.num_labeled=20,50,100,200 model=ssgan,supervised seed=0,1,2   # a sweep (docs/sweeps.md)
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, NamedTuple

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from ssgan.build import CONFIG_DIR, Run, build
from ssgan.callbacks import GANHealth, GracefulInterrupt, LastCheckpoint, RunInterrupted, TrainingDiverged
from ssgan.callbacks import TrainingThroughput
from ssgan.callbacks.checkpointing import LAST_CHECKPOINT, read_checkpoint, resolve_checkpoint, write_atomically
from ssgan.callbacks.run_identity import check_resume_identity
from ssgan.cli.checks import check_config
from ssgan.cli.naming import override_values
from ssgan.cli.curves import CURVES_FILE, plot_run
from ssgan.cli.run_directory import check_restart, check_run_directory, claim, resumed_epoch, run_files
from ssgan.runtime.quiet import quiet_third_party
from ssgan.errors import SSGANError
from ssgan.runtime.allocator import keep_freed_memory
from ssgan.runtime.hardware import device_name

log = logging.getLogger("ssgan")

# exit statuses of a single run (a sweep goes on past a failed job and exits 0 at its end)
EXIT_BAD_INPUT = 2  # a value, file or directory the user can fix; one line on stderr
EXIT_DIVERGED = 3  # training went NaN/inf; metrics.json says "diverged"
# interrupted by a signal: 128 + its number, as a shell reports it (130 for SIGINT, 143 for SIGTERM)


class Prepared(NamedTuple):
    """A run that passed every check: what to train, and where a resume starts."""

    run: Run
    ckpt_path: str | None
    resume_epoch: int | None  # the first epoch a resume trains (its log rows from there on are dropped)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one job and return its metrics; files go to ``cfg.paths.output_dir`` (rank 0 only)."""
    with GracefulInterrupt(None) as interrupt:
        return execute(cfg, prepare(cfg, interrupt))


def prepare(cfg: DictConfig, interrupt: GracefulInterrupt) -> Prepared:
    """Every check, then data, model and trainer; nothing is written, so a refusal leaves the directory as it was."""
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = resolve_checkpoint(cfg.get("ckpt_path"), output_dir)
    restart = ckpt_path is None and str(cfg.get("ckpt_path")) == "auto"
    held = False
    if rank_zero_only.rank == 0:  # other DDP ranks start once rank 0 has claimed the directory
        if restart:
            held = check_restart(output_dir, cfg, directory_key())
        else:
            check_run_directory(output_dir, ckpt_path, directory_key())
    check_config(cfg)
    check_search(cfg)
    resume_epoch = 0 if held else None  # a start over drops the log rows of the start that went before
    if ckpt_path is not None:
        checkpoint = read_checkpoint(ckpt_path)
        check_resume_identity(checkpoint, cfg, ckpt_path)
        resume_epoch = resumed_epoch(checkpoint)
        del checkpoint
    run = build(cfg, extra_callbacks=[interrupt])
    check_process_launch(run.trainer)
    last = find_callback(run.trainer, LastCheckpoint)
    interrupt.checkpoint_path = last.path if last is not None else None
    return Prepared(run, ckpt_path, resume_epoch)


def execute(cfg: DictConfig, prepared: Prepared) -> dict[str, Any]:
    """Claim the directory, fit, test and write metrics.json; an interruption or divergence is recorded there."""
    datamodule, model, trainer = prepared.run
    output_dir = Path(cfg.paths.output_dir)
    if trainer.strategy.root_device.type == "cpu":
        keep_freed_memory()  # this command's own process: glibc keeps each step's freed memory for the next
    started = time.perf_counter()
    try:
        if trainer.is_global_zero:
            claim(output_dir, cfg, datamodule, prepared.resume_epoch, csv_metrics_file(trainer))
        # the run's own checkpoint: its hyperparameters hold network factories, which need full unpickling
        trainer.fit(model, datamodule=datamodule, ckpt_path=prepared.ckpt_path, weights_only=False)
        fit_seconds = time.perf_counter() - started
        validation = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_") and v.ndim == 0}
        tested = tested_weights(cfg, trainer)
        if cfg.get("run_test", True):
            trainer.test(model, datamodule=datamodule, verbose=False, ckpt_path=tested.get("checkpoint"),
                         weights_only=False)
            tested["epoch"] = model.loaded_epoch if tested.get("checkpoint") else int(trainer.current_epoch) - 1
    except TrainingDiverged as error:
        record_divergence(output_dir, trainer, error)
        raise
    except (RunInterrupted, SIGTERMException) as error:  # Lightning's own SIGTERM stop is a SystemExit(0)
        interrupted = error if isinstance(error, RunInterrupted) else RunInterrupted(signal.SIGTERM)
        record_interruption(output_dir, trainer, interrupted, str(cfg.get("ckpt_path")) == "auto")
        raise interrupted from None

    throughput = find_callback(trainer, TrainingThroughput)
    metrics = summarise(cfg, model, datamodule, trainer, throughput, fit_seconds) | validation
    if cfg.get("run_test", True):
        metrics["tested_weights"] = tested
    health = find_callback(trainer, GANHealth)
    if health is not None and health.summary():
        metrics["health"] = health.summary()
    if trainer.is_global_zero:
        write_atomically(output_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        (output_dir / "error.txt").unlink(missing_ok=True)  # a resumed job that failed before now succeeded
        write_curves(output_dir)
        if "test_acc" in metrics:
            log.info(
                "test accuracy %.4f (%d errors of %d) -> %s",
                metrics["test_acc"],
                metrics["test_errors"],
                metrics["num_test"],
                output_dir / "metrics.json",
            )
    return metrics


def tested_weights(cfg: DictConfig, trainer: pl.Trainer) -> dict[str, Any]:
    """Which weights the one test pass reads: the best validation epoch's checkpoint (``test_weights=best`` and a
    validation set: a choice made on validation, docs/protocol.md), else the final weights."""
    checkpoint = find_callback(trainer, ModelCheckpoint)
    best = getattr(checkpoint, "best_model_path", "") if checkpoint is not None and checkpoint.monitor else ""
    if cfg.get("test_weights", "best") == "best" and best and Path(best).is_file():
        score = checkpoint.best_model_score
        return {"weights": "best", "checkpoint": best, "val_acc": float(score) if score is not None else None}
    return {"weights": "final"}


def write_curves(output_dir: Path) -> None:
    """curves.png beside metrics.json: accuracy and GAN health per epoch (skipped without matplotlib)."""
    try:
        plot_run(output_dir)
    except SSGANError as error:
        log.info("no %s: %s", CURVES_FILE, error)


def csv_metrics_file(trainer: pl.Trainer) -> Path | None:
    """``metrics.csv`` of the trainer's CSV logger, if it has one."""
    logger = trainer.logger
    return Path(logger.log_dir) / "metrics.csv" if isinstance(logger, CSVLogger) else None


def directory_key() -> str:
    """The setting that picks another run directory: ``hydra.sweep.dir`` in a sweep, else ``hydra.run.dir``."""
    return "hydra.sweep.dir" if hydra_mode() == RunMode.MULTIRUN else "hydra.run.dir"


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
    write_atomically(output_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def record_interruption(output_dir: Path, trainer: pl.Trainer, error: RunInterrupted, auto: bool = False) -> None:
    """metrics.json with ``status: interrupted``, the epoch and training step reached and the checkpoint to resume."""
    last = output_dir / "checkpoints" / LAST_CHECKPOINT
    epoch, step = int(trainer.current_epoch), int(trainer.fit_loop.total_batch_idx + 1)
    how = "run the same command again (ckpt_path=auto)" if auto else "resume with ckpt_path=last"
    resume = f"{how} (last checkpoint: {last})" if last.is_file() else "no checkpoint was saved"
    error.args = (f"{error} at epoch {epoch}, training step {step}; {resume}",)
    if not trainer.is_global_zero:
        return
    throughput = find_callback(trainer, TrainingThroughput)
    metrics = {
        "status": "interrupted",
        "signal": signal.Signals(error.signum).name,
        "epochs": epoch,
        "step": step,
        "last_checkpoint": str(last) if last.is_file() else None,
        "train_seconds": throughput.state_dict()["train_seconds"] if throughput is not None else None,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(output_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def summarise(
    cfg: DictConfig,
    model: Any,
    datamodule: Any,
    trainer: pl.Trainer,
    throughput: TrainingThroughput | None,
    fit_seconds: float,
) -> dict[str, Any]:
    results = model.test_results
    tested = cfg.get("run_test", True)
    if tested and not results:
        raise SSGANError(
            "no test results reached this process: the trainer's strategy ran the test in spawned processes "
            f"({type(trainer.strategy).__name__}); use trainer=ddp, which keeps rank 0 in this process"
        )
    metrics: dict[str, Any] = {
        "status": "completed",
        "model": cfg.model._target_.rsplit(".", 1)[-1],
        "model_name": cfg.get("model_name") or cfg.model._target_.rsplit(".", 1)[-1],
        "dataset": cfg.data.source._target_.rsplit(".", 1)[-1],
        "num_labeled": int(datamodule.split.labeled.numel()),
        "seed": int(cfg.seed),
        **(test_summary(results) if tested else {}),
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


def test_summary(results: dict[str, Any]) -> dict[str, Any]:
    """Accuracy (micro and macro), errors and confusion matrix of the one test pass."""
    confusion = results["test_confusion"]
    num_test = int(confusion.sum())
    return {
        "test_acc": float(results["test_acc"]),
        "test_acc_macro": float(results["test_acc_macro"]),
        "test_errors": num_test - int(confusion.diag().sum()),
        "num_test": num_test,
        "test_confusion": confusion.tolist(),
    }


def objective(cfg: DictConfig, metrics: dict[str, Any]) -> float | None:
    """What a sweeper optimises: ``optimized_metric`` (validation accuracy in a search), else test accuracy."""
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name else metrics.get("test_acc")


def check_search(cfg: DictConfig) -> None:
    """A search optimises a validation metric: refuse it before any job trains when nothing is held out."""
    name = cfg.get("optimized_metric")
    if not name:
        return
    if not str(name).startswith("val_"):
        raise SSGANError(f"optimized_metric={name!r}: a search optimises a validation metric (val_acc, "
                         "val_acc_macro), never a test one (docs/protocol.md)")
    if not cfg.data.get("num_validation"):
        raise SSGANError(f"optimized_metric={name} needs a validation set: set data.num_validation to a positive "
                         "count of labeled examples to hold out")


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
            "hydra/launcher=slurm, which starts one task per device (docs/cluster.md)"
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


class CommandLine:
    """Whether Hydra got as far as a job: a failure before that is Hydra refusing the command line itself."""

    job_started = False


def main() -> None:
    """Console entry ``ssgan-train``: :func:`hydra_main`, where Hydra's own refusals of the command line (an unknown
    key or config group, a malformed override) exit with status 2 like every other bad input, not 1."""
    try:
        hydra_main()
    except SystemExit as stop:
        if stop.code == 1 and not CommandLine.job_started:
            sys.exit(EXIT_BAD_INPUT)
        raise


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """One job (each job of a sweep); the exit status says how the run ended (EXIT_* above).

    A failure at start-up writes nothing into a directory that holds a run, and only error.txt into one that
    does not; later failures are recorded in the job's error.txt or metrics.json. A user error (SSGANError) is
    one line on stderr; an unexpected one keeps its traceback (in error.txt in a sweep, on stderr in a single
    run). A sweep goes on to its next job after a failure, but stops at an interruption.
    """
    CommandLine.job_started = True
    multirun = hydra_mode() == RunMode.MULTIRUN
    output_dir = Path(cfg.paths.output_dir)
    try:
        check_search(cfg)
    except SSGANError as error:  # every trial of a search would fail alike: stop it before any trains
        print(f"ssgan-train: error: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    held = bool(run_files(output_dir))
    with quiet_third_party(), GracefulInterrupt(None) as interrupt:
        try:
            prepared = prepare(cfg, interrupt)
        except RunInterrupted as error:
            stop_interrupted(error)
        except Exception as error:
            return fail(output_dir, error, multirun, record=not held)
        try:
            return objective(cfg, execute(cfg, prepared))
        except RunInterrupted as error:
            stop_interrupted(error)
        except Exception as error:
            return fail(output_dir, error, multirun, record=True)


def fail(output_dir: Path, error: Exception, multirun: bool, record: bool) -> None:
    """Report a failed job: one line for a user error, the traceback otherwise; exit unless in a sweep."""
    user_error = isinstance(error, SSGANError)
    path = record_failure(output_dir, error, with_traceback=not user_error) if record else None
    if user_error:
        print(f"ssgan-train: error: {error}", file=sys.stderr)
    elif multirun:
        where = f" (traceback: {path})" if path is not None else ""
        print(f"ssgan-train: job failed: {type(error).__name__}: {error}{where}", file=sys.stderr)
    if multirun:
        return None
    if not user_error:
        raise error
    sys.exit(EXIT_DIVERGED if isinstance(error, TrainingDiverged) else EXIT_BAD_INPUT)


def stop_interrupted(error: RunInterrupted) -> None:
    """One line, and the shell's status for the signal; a sweep stops too (the signal was meant for it).

    A preemption signal of a job runner goes on to the runner's handler (submitit's launcher: checkpoint hook,
    requeue with the same overrides, exit); the requeued job resumes with ``ckpt_path=auto``.
    """
    print(f"ssgan-train: {error}", file=sys.stderr)
    if error.forward_to is not None:
        error.forward()
    sys.exit(128 + error.signum)


if __name__ == "__main__":
    main()
