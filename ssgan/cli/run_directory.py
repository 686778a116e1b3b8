"""A run directory belongs to one run: a new run needs a directory without another run's files, a resume
continues the run whose checkpoint it names, and nothing is written until every check has passed."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ssgan.callbacks.checkpointing import write_atomically
from ssgan.callbacks.logs import keep_epochs_before
from ssgan.callbacks.run_identity import identity_differences, run_identity
from ssgan.errors import SSGANError

# what a run leaves in its directory (error.txt alone is a start that failed: the directory stays free)
RUN_FILES = ("metrics.json", "config.yaml", "split_indices.npz", "checkpoints", "logs", "samples", "tensorboard")


def run_files(directory: Path) -> list[str]:
    """The names of the run files ``directory`` holds (empty: no run has used it)."""
    if not directory.is_dir():
        return []
    return [name for name in RUN_FILES if (directory / name).exists()]


def is_inside(path: Path, folder: Path) -> bool:
    return path.resolve().parent == folder.resolve()


def check_run_directory(directory: Path, ckpt_path: str | None, directory_key: str) -> None:
    """Refuse to start a run in a directory that holds another run's files.

    Without ``ckpt_path`` the directory must hold no run; with one, a directory that holds a run must be the
    checkpoint's own (the checkpoint lies in its ``checkpoints/``). ``directory_key`` is the setting that
    chooses another directory (``hydra.run.dir``, or ``hydra.sweep.dir`` in a sweep).
    """
    found = run_files(directory)
    if not found:
        return
    held = f"{directory} already holds a run ({', '.join(found)})"
    if ckpt_path is None:
        raise SSGANError(
            f"{held}; resume it with ckpt_path=last (or auto), or start a new run elsewhere with {directory_key}=<new dir>"
        )
    if not is_inside(Path(ckpt_path), directory / "checkpoints"):
        raise SSGANError(
            f"{held} and ckpt_path={ckpt_path} is not one of its checkpoints; resume it with ckpt_path=last, "
            f"or continue the checkpoint's run in a new directory with {directory_key}=<new dir>"
        )


def check_restart(directory: Path, cfg: DictConfig, directory_key: str) -> bool:
    """``ckpt_path=auto`` found no checkpoint: may this run start (again) in ``directory``? True: files are held.

    A start that stopped before its first checkpoint (a job requeued early) leaves its config, split and logs;
    the same run may start over on them. Another run's files, or a run that ended, are refused as without
    ``ckpt_path``.
    """
    found = run_files(directory)
    if not found:
        return False
    held = f"{directory} already holds a run ({', '.join(found)}) but no checkpoints/last.ckpt"
    status = read_status(directory / "metrics.json")
    if status not in (None, "interrupted"):
        raise SSGANError(f"{held}, and it ended ({status}); start a new run elsewhere with {directory_key}=<new dir>")
    config_file = directory / "config.yaml"
    if config_file.is_file():
        saved = OmegaConf.load(config_file)
        current = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        differences = identity_differences(run_identity(saved), run_identity(current))
        if differences:
            raise SSGANError(
                f"{held}, started with other settings: {'; '.join(differences[:4])}; start this run elsewhere "
                f"with {directory_key}=<new dir>"
            )
    return True


def read_status(path: Path) -> str | None:
    """How a run ended, from its metrics.json (``completed`` when it has no status); None without the file."""
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text()).get("status", "completed"))
    except (OSError, ValueError, AttributeError):
        return "unreadable metrics.json"


def resumed_epoch(checkpoint: dict[str, Any]) -> int:
    """The epoch a resume from ``checkpoint`` trains first: finished epochs count, one cut short does not."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    return int(progress.get("processed", checkpoint.get("epoch", 0)))


def claim(
    directory: Path, cfg: DictConfig, datamodule: Any, resume_epoch: int | None, metrics_file: Path | None
) -> None:
    """Write the run's config and split; on a resume, drop the log rows of the epochs it trains again."""
    directory.mkdir(parents=True, exist_ok=True)
    write_atomically(directory / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    split = io.BytesIO()
    datamodule.save_split(split)
    write_atomically(directory / "split_indices.npz", split.getvalue())
    if resume_epoch is not None and metrics_file is not None:
        keep_epochs_before(metrics_file, resume_epoch)
