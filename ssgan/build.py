"""Compose a config and build a run from it: the one place that turns configs into data, model and trainer.

    from ssgan import build, compose
    cfg = compose(["data.num_labeled=100", "trainer.max_epochs=5"], output_dir="runs/quick")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)

``ssgan-train``, ``ssgan-predict``, :class:`ssgan.SSGANClassifier` and the scripts all go through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytorch_lightning as pl
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import HydraException, InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from ssgan.cli.checks import check_config
from ssgan.cli.naming import job_dirname
from ssgan.errors import SSGANError
from ssgan.runtime.hardware import stderr_is_terminal, training_device_type

PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The configs: ``ssgan/conf`` inside an installed wheel, else the checkout's top-level ``conf/``."""
    installed = PACKAGE_DIR / "conf"
    return installed if (installed / "train.yaml").is_file() else PACKAGE_DIR.parent / "conf"


CONFIG_DIR = str(config_dir())


# ----------------------------------------------------------------------------------------------- resolvers
def validation_monitor(num_validation: int | None) -> str | None:
    """Checkpoint on validation accuracy when a validation set is held out, otherwise keep the latest."""
    return "val_acc" if num_validation else None


def epochs_between_checkpoints(num_validation: int | None) -> int:
    """``callbacks.checkpoint.every_n_epochs``: every epoch with a validation set, so ``best.ckpt`` is the best
    epoch's (and the test can read it, ``test_weights=best``); every 10 epochs otherwise."""
    return 1 if num_validation else 10


def sweep_job_dirname(overrides: Sequence[str], exclude_keys: Sequence[str] | None = None) -> str:
    """``hydra.sweep.subdir``: a job directory named by its overrides with short keys (see ssgan.cli.naming)."""
    return job_dirname([str(item) for item in overrides], [str(key) for key in exclude_keys or ()])


def epoch_at(fraction: float, max_epochs: int) -> int:
    """``${epoch_at:0.667,${trainer.max_epochs}}``: the epoch a fraction of the way through training, so a
    recipe's schedule scales with ``trainer.max_epochs``; always before the last epoch, for any length >= 1."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
        raise SSGANError(f"epoch_at: fraction={fraction!r} must be a number in [0, 1]")
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
        raise SSGANError(f"trainer.max_epochs={max_epochs!r}: a schedule in fractions of training needs >= 1 epoch")
    return min(int(fraction * max_epochs), max_epochs - 1)


def labeled_default(count: int | None, labeled_fraction: float | None) -> int | None:
    """``data.num_labeled``'s default in the data configs: it gives way when ``data.labeled_fraction`` is set."""
    return None if labeled_fraction is not None else count


def register_resolvers() -> None:
    """The ``${name:...}`` functions the configs call; idempotent, also run in launcher workers on import."""
    for name, resolver in (
        ("validation_monitor", validation_monitor),
        ("epochs_between_checkpoints", epochs_between_checkpoints),
        ("job_dirname", sweep_job_dirname),
        ("epoch_at", epoch_at),
        ("labeled_default", labeled_default),
        ("training_device_type", training_device_type),
        ("stderr_is_terminal", stderr_is_terminal),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


register_resolvers()


# ----------------------------------------------------------------------------------------------- compose
def compose(overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> DictConfig:
    """The ``train`` config with command-line style overrides, as ``ssgan-train`` would compose it.

    Outside a Hydra run there is no ``hydra.runtime.output_dir``, so ``output_dir`` names the run directory.
    """
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = hydra_compose(config_name="train", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        raise SSGANError(f"config: {error}") from None
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir) if output_dir is not None else None
    return cfg


def instantiate_group(config: Any, key: str, **kwargs: Any) -> Any:
    """:func:`instantiate_config` for a group whose class validates its own arguments (the trainer, callbacks,
    the logger): its refusal, or a missing optional package, becomes one line that names the group."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    try:
        return instantiate_config(config, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, (ValueError, TypeError, ImportError, MisconfigurationException)):
            reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
            raise SSGANError(f"{key}: {reason}") from None
        raise


def instantiate_config(config: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that lets a user-facing :class:`SSGANError` through instead of Hydra's wrapper."""
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, SSGANError):
            cause = cause.__cause__
        if isinstance(cause, SSGANError):
            raise cause from None
        raise


# ----------------------------------------------------------------------------------------------- build
class Run(NamedTuple):
    datamodule: Any
    model: Any
    trainer: pl.Trainer


def build_datamodule(cfg: DictConfig, **overrides: Any) -> Any:
    """The data module, set up: bad data or label budgets fail here, before anything is written."""
    datamodule = instantiate_config(cfg.data, **overrides)
    datamodule.setup("fit")
    return datamodule


def build_model(cfg: DictConfig, datamodule: Any) -> Any:
    """The model sized by the data; a fitted input encoder's state is copied in, so checkpoints carry it."""
    model = instantiate_config(
        cfg.model,
        input_shape=datamodule.input_shape,
        num_classes=datamodule.num_classes,
        class_names=list(datamodule.class_names),
        **datamodule.encoder_arguments(),
    )
    if datamodule.encoder is not None:
        model.input_encoder.load_state_dict(datamodule.encoder.state_dict())
    return model


def build_trainer(cfg: DictConfig, extra_callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    """The trainer with the config's callbacks and logger (either group may be null)."""
    from ssgan.callbacks import DistinctNoisePerRank, RunIdentity, run_identity

    configured = (cfg.get("callbacks") or {}).items()
    callbacks = [instantiate_group(c, f"callbacks.{name}") for name, c in configured if c]
    callbacks.append(DistinctNoisePerRank(cfg.seed))  # correctness under DDP, not a choice: always on
    callbacks.append(RunIdentity(run_identity(cfg)))  # checkpoints name their run, so a resume can be checked
    callbacks.extend(extra_callbacks)
    logger = instantiate_group(cfg.logger, "logger") if cfg.get("logger") else False
    return instantiate_group(cfg.trainer, "trainer", callbacks=callbacks, logger=logger, **cluster_plugins(cfg))


def cluster_plugins(cfg: DictConfig) -> dict[str, Any]:
    """Inside a SLURM job, the trainer's plugins plus Lightning's SLURM environment without its own requeue on
    SIGUSR1: the job runner's hook (submitit's, see :mod:`ssgan.callbacks.interrupt`) requeues, and
    ``ckpt_path=auto`` resumes; one mechanism, not two. Elsewhere nothing changes."""
    from lightning_fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment

    if not SLURMEnvironment.detect():
        return {}
    configured = cfg.trainer.get("plugins") or []
    plugins = [instantiate_group(p, "trainer.plugins") if isinstance(p, DictConfig) else p for p in configured]
    if any(isinstance(p, ClusterEnvironment) for p in plugins):
        return {}
    return {"plugins": [*plugins, SLURMEnvironment(auto_requeue=False)]}


def build(cfg: DictConfig, source: Any = None, extra_callbacks: Sequence[pl.Callback] = ()) -> Run:
    """Data module, model and trainer of one run. ``source`` replaces ``data.source`` (e.g. arrays in memory).

    Every value is checked first (:func:`ssgan.cli.checks.check_config`), so a bad one fails before data loads.
    """
    if source is not None:  # the object replaces the configured source whole, never merged into it
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.data.source = None
    check_config(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg, **({"source": source} if source is not None else {}))
    model = build_model(cfg, datamodule)
    return Run(datamodule, model, build_trainer(cfg, extra_callbacks))
