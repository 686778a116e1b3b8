"""A disk cache of fitted input encoders and the codes they produced.

Fitting a patch encoder on a full dataset takes minutes on a CPU, and a benchmark or a sweep fits the same one
again and again: the SSGAN, the supervised baseline and self-training on the codes of one seed share it, and
so do all label budgets of a seed (the unlabeled pool is every training example outside validation). An entry
is keyed by the transform's settings and the exact bytes of the training images, the rows it is fitted on and
the test images, so a changed image, split or setting can never reuse a stale fit. Runs that need one entry
at the same time (DDP ranks, benchmark or sweep jobs) take turns on a lock file beside it, so it is fitted
once; entries are written to a temporary file and renamed, so no run ever reads a half-written one. With a
size limit, saving an entry deletes the least recently used others until the folder fits (an entry's file
time is renewed each time a run loads it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ssgan.errors import SSGANError

log = logging.getLogger(__name__)

# bump when a transform's fitting changes its results, so entries written by older code are not reused
CACHE_VERSION = 1


GIGABYTE = 1024 ** 3


def check_size_limit(limit_gb: object) -> float | None:
    """``data.encoder_cache_limit_gb`` as a positive number of GiB, or None for no limit."""
    if limit_gb is None:
        return None
    if isinstance(limit_gb, bool) or not isinstance(limit_gb, (int, float)) or not limit_gb > 0:
        raise SSGANError(
            f"data.encoder_cache_limit_gb={limit_gb!r} must be a positive number of GiB, or null for no limit"
        )
    return float(limit_gb)


def fitting_device(name: str | torch.device) -> torch.device:
    """``data.encoder_device`` as a device: "cuda" alone means this process's GPU (``LOCAL_RANK`` under DDP)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise SSGANError(f"data.encoder_device={name!r} is not a device: expected cpu, cuda or cuda:N") from error
    if device.type not in ("cpu", "cuda"):
        raise SSGANError(f"data.encoder_device={name!r}: encoders are fitted on cpu or cuda only")
    if device.type == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SSGANError(f"data.encoder_device={name!r}, but torch sees no CUDA GPU here: set "
                         "data.encoder_device=cpu (or train with trainer.accelerator=cpu)")
    index = device.index if device.index is not None else int(os.environ.get("LOCAL_RANK", 0))
    if index >= torch.cuda.device_count():
        raise SSGANError(f"data.encoder_device={name!r} names GPU {index}, but torch sees "
                         f"{torch.cuda.device_count()} GPU(s)")
    return torch.device("cuda", index)


def cache_key(settings: dict[str, Any], train_inputs: Tensor, fit_rows: Tensor, test_inputs: Tensor) -> str:
    """SHA-256 over the settings and the bytes, dtype and shape of the images and the fitted rows."""
    digest = hashlib.sha256(json.dumps({"cache_version": CACHE_VERSION, **settings}, sort_keys=True).encode())
    for tensor in (train_inputs, fit_rows, test_inputs):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _load(path: Path, extractor: torch.nn.Module) -> tuple[Tensor, Tensor] | None:
    """The cached (train, test) features with ``extractor`` restored, or None if the entry is unusable."""
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        extractor.load_state_dict(entry["state"])
        return entry["train"], entry["test"]
    except Exception as error:  # a truncated or foreign file: fit again and overwrite it
        log.warning("ignoring the unreadable encoder cache entry %s (%s); fitting again", path, error)
        return None


def _save(path: Path, extractor: torch.nn.Module, train: Tensor, test: Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex}.tmp")  # the umask's permissions
    try:
        torch.save({"state": extractor.state_dict(), "train": train, "test": test}, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def evict_least_recently_used(folder: Path, limit_bytes: float, keep: Path) -> None:
    """Delete the entries used longest ago (never ``keep``) until the folder's entries fit in ``limit_bytes``.

    An entry another run holds the lock of (it is being fitted or loaded), or whose lock cannot be had, is
    skipped.
    """
    entries = []
    for path in folder.glob("*.pt"):
        with contextlib.suppress(OSError):
            status = path.stat()
            entries.append((status.st_mtime, status.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit_bytes:
            return
        if path == keep:
            continue
        with exclusive(path.with_suffix(".lock"), wait=False) as locked:
            if not locked:
                continue
            try:
                path.unlink()
            except OSError as error:
                log.warning("could not delete the encoder cache entry %s (%s)", path, error)
                continue
        total -= size
        log.info("deleted the least recently used encoder cache entry %s (%.0f MB) to keep the cache under "
                 "data.encoder_cache_limit_gb", path, size / 2 ** 20)
    if total > limit_bytes:
        log.warning("the encoder cache %s holds %.2f GiB, over data.encoder_cache_limit_gb=%.2f: the other "
                    "entries are in use", folder, total / GIGABYTE, limit_bytes / GIGABYTE)


@contextlib.contextmanager
def exclusive(lock_path: Path, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``lock_path`` (created if needed) while the block runs; yields whether it is held.

    Runs that need the same entry at once (DDP ranks, benchmark jobs or sweep jobs of one seed) then fit it once:
    the first fits and saves while the others wait, then load. Where no lock can be had (no ``fcntl``, or a
    filesystem without locks) the block runs unlocked and such runs each fit, as without a cache. With
    ``wait=False`` a lock another run holds is not waited for: the block runs at once and sees False.
    """
    try:
        import fcntl
    except ImportError:  # not a Unix system
        yield False
        return
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a")
    except OSError as error:
        if wait:
            log.warning("could not open the encoder cache lock %s (%s); fitting without it", lock_path, error)
        yield False
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if wait:
                log.warning("could not lock %s (%s); fitting without the lock", lock_path, error)
            yield False
            return
        yield True  # closing the handle releases the lock


def fitted_encoding(
    extractor: torch.nn.Module,
    train_inputs: Tensor,
    fit_rows: Tensor,
    test_inputs: Tensor,
    cache_dir: str | os.PathLike[str] | None = None,
    limit_gb: float | None = None,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor]:
    """Fit ``extractor`` on ``train_inputs[fit_rows]`` and encode the training and test inputs.

    The fit runs on ``device`` (a GPU fits far faster than a CPU); the features come
    back, and the extractor is left, on the CPU. An entry is shared whatever device fitted it.

    With ``cache_dir``, an earlier fit with the same settings and data is loaded instead (the extractor's
    fitted buffers included), and runs asking for the same entry at once fit it once; extractors without a
    ``settings()`` method are always fitted. With ``limit_gb``, a new entry makes room for itself by
    deleting the least recently used ones.
    """
    limit = check_size_limit(limit_gb)
    device = fitting_device(device)
    settings = getattr(extractor, "settings", None)
    if cache_dir is None or not callable(settings):
        return _fit(extractor, train_inputs, fit_rows, test_inputs, device)
    key = cache_key(settings(), train_inputs, fit_rows, test_inputs)
    path = Path(cache_dir).expanduser() / f"{type(extractor).__name__}-{key[:32]}.pt"
    with exclusive(path.with_suffix(".lock")):
        if path.exists() and (cached := _load(path, extractor)) is not None:
            log.info("loaded the fitted %s from %s", type(extractor).__name__, path)
            with contextlib.suppress(OSError):
                os.utime(path)  # marks it used: the size limit deletes the entries used longest ago first
            return cached
        train, test = _fit(extractor, train_inputs, fit_rows, test_inputs, device)
        try:
            _save(path, extractor, train, test)
            log.info("saved the fitted %s to %s", type(extractor).__name__, path)
        except OSError as error:  # a full or read-only disk must not stop the run
            log.warning("could not write the encoder cache entry %s (%s)", path, error)
            return train, test
    if limit is not None:
        evict_least_recently_used(path.parent, limit * GIGABYTE, keep=path)
    return train, test


def _fit(extractor: torch.nn.Module, train_inputs: Tensor, fit_rows: Tensor, test_inputs: Tensor,
         device: torch.device) -> tuple[Tensor, Tensor]:
    log.info("fitting %s on %d training images (%s)", type(extractor).__name__, fit_rows.numel(), device)
    extractor.to(device)
    try:
        train = extractor.fit_encode(train_inputs.to(device), fit_rows).cpu()
        test = extractor(test_inputs.to(device)).cpu()
    finally:
        extractor.cpu()
        if device.type == "cuda":
            torch.cuda.empty_cache()  # hand the fit's gigabytes of cached blocks back before training
    return train, test
