"""Checkpoints a run can trust: atomic writes, mid-epoch "last" checkpoints, RNG state, and ``ckpt_path`` resolution."""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from pathlib import Path
from collections.abc import Iterator
from typing import Any, BinaryIO

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import Checkpoint

from ssgan.errors import SSGANError

LAST_CHECKPOINT = "last.ckpt"


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file in the same folder, ``os.replace``d onto ``path`` when the block ends
    without error: readers see the old file or the new one, never half of one."""
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomically(path: str | Path, content: str | bytes) -> None:
    """Write a whole file through :func:`atomic_file`."""
    with atomic_file(path) as handle:
        handle.write(content.encode() if isinstance(content, str) else content)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's dictionary, memory-mapped (its tensors are read only when used); one line if unreadable.

    Checkpoints hold network factories, so they are unpickled in full: load only checkpoints you trust.
    """
    try:
        mappable = zipfile.is_zipfile(path)  # torch.save's format; older pickles cannot be mapped
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=mappable)
    except Exception as error:  # a truncated or foreign file: say which and why, in one line
        reason = str(error).splitlines()[0] if str(error) else ""
        raise SSGANError(f"checkpoint {path} cannot be read ({type(error).__name__}: {reason})") from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "hyper_parameters"} <= checkpoint.keys():
        raise SSGANError(f"{path} is not an ssgan checkpoint (no state_dict / hyper_parameters)")
    return checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the target directory, then ``os.replace``s it into place.

    A process killed during a save leaves the previous file intact (and at worst a stray ``.tmp``), never a
    truncated checkpoint under the real name.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (got {storage_options!r})")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as handle:
            torch.save(checkpoint, handle)


class LastCheckpoint(Checkpoint):
    """Saves ``<dirpath>/last.ckpt`` every ``every_n_train_batches`` training batches (0: never) and when fit ends.

    Lightning's ModelCheckpoint saves at (every n-th) epoch end; this one bounds the work lost when a run is
    killed mid-epoch, and leaves the final weights for ``ssgan-predict``/``ssgan-sample`` whatever the epoch
    count. With the resumable data stream and the saved RNG state, resuming from it is exact. A
    :class:`Checkpoint` subclass, so Lightning runs it after the other callbacks of a batch.
    """

    def __init__(self, dirpath: str | Path, every_n_train_batches: int = 0, save_on_train_end: bool = True) -> None:
        if int(every_n_train_batches) < 0:
            raise SSGANError(
                f"callbacks.last_checkpoint.every_n_train_batches={every_n_train_batches} must be >= 0 (0: off)"
            )
        self.path = Path(dirpath) / LAST_CHECKPOINT
        self.every_n_train_batches = int(every_n_train_batches)
        self.save_on_train_end = save_on_train_end

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.every_n_train_batches == 0 or trainer.sanity_checking or trainer.fast_dev_run:
            return
        if (trainer.fit_loop.total_batch_idx + 1) % self.every_n_train_batches == 0:
            trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.save_on_train_end and not trainer.fast_dev_run:
            trainer.save_checkpoint(self.path, weights_only=False)


def resolve_checkpoint(ckpt_path: str | Path | None, output_dir: str | Path) -> str | None:
    """``null`` -> None; ``last`` -> ``<output_dir>/checkpoints/last.ckpt``, which must exist; ``auto`` -> that file
    when it exists, else None (start); a path -> itself, which must exist."""
    if ckpt_path is None:
        return None
    if str(ckpt_path) in ("last", "auto"):
        path = Path(output_dir) / "checkpoints" / LAST_CHECKPOINT
        if path.is_file():
            return str(path)
        if str(ckpt_path) == "auto":
            return None
        raise SSGANError(
            f"ckpt_path=last but {path} does not exist; resume in the run's own directory "
            "(hydra.run.dir=<run dir>), pass ckpt_path=<path to a .ckpt>, or ckpt_path=auto to start when none exists"
        )
    path = Path(ckpt_path)
    if not path.is_file():
        raise SSGANError(f"ckpt_path={ckpt_path} does not exist; expected a .ckpt file, 'last' or 'auto'")
    return str(path)


def capture_rng_state() -> dict[str, Any]:
    """Torch's global CPU (and, if initialised, CUDA) generator states: they draw D's input noise and G's z."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng_state` saved; CUDA states only when the device count matches."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
