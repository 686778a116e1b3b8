"""glibc malloc settings that stop CPU training from page-faulting its own memory back in every step.

Every training step allocates and frees the same megabyte-sized tensors. By default glibc serves such blocks
with fresh ``mmap`` calls and trims freed heap back to the kernel, so the next step faults the same pages in
again and the kernel zeroes them, a visible share of a CPU step. Raising the mmap and trim thresholds keeps freed
blocks in the process for reuse (the same effect as a caching allocator, without an extra library). The cost
is that up to ``TRIM_THRESHOLD`` bytes of freed memory stay with the process instead of going back to the
system. It changes the whole process, so only the ``ssgan-*`` commands and the scripts call it, never the
library on import or the estimator. Set ``SSGAN_MALLOC_TUNING=0`` to leave the C library's settings alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # the largest value glibc accepts on 64-bit systems
TRIM_THRESHOLD = 64 << 20
OPT_OUT_VARIABLE = "SSGAN_MALLOC_TUNING"

_applied: bool | None = None  # once per process: None = not tried yet


def glibc() -> ctypes.CDLL | None:
    """The running process's C library when it is glibc (which has ``mallopt``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (only glibc defines it)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True if they are raised (now or before).

    A no-op returning False on other C libraries and platforms, or when ``SSGAN_MALLOC_TUNING=0``.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(OPT_OUT_VARIABLE, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    libc = glibc()
    if libc is None:
        return False
    _applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    log.debug("glibc mmap/trim thresholds raised to %d/%d bytes: %s", MMAP_THRESHOLD, TRIM_THRESHOLD, _applied)
    return _applied
