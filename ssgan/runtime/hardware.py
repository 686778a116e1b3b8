"""Facts about the machine that the configs' resolvers and the reports read: CPU, GPU, native bf16, a terminal."""

from __future__ import annotations

import platform
import sys
from functools import cache
from pathlib import Path

import torch


@cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        flags = Path(cpuinfo).read_text(errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@cache
def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's marketing name for benchmark reports; ``platform.processor()`` is empty on many Linux hosts."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: torch.device) -> str:
    """What runs the steps, as the reports name it: the GPU's name, or the CPU's model and torch's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} CPU threads"


def trains_on_gpu(accelerator: str = "auto") -> bool:
    """Whether ``trainer.accelerator`` puts training on a CUDA GPU ("auto" does where torch sees one)."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def training_device_type(accelerator: str = "auto") -> str:
    """``data.encoder_device``: fit learnt features on the device type training runs on ("cuda" or "cpu"),
    so a GPU run does not first spend minutes fitting them on the host's cores."""
    return "cuda" if trains_on_gpu(accelerator) else "cpu"


def stderr_is_terminal() -> bool:
    """``trainer.enable_progress_bar``: a live bar on a terminal, one line per epoch in a log file or pipe."""
    return sys.stderr.isatty()
