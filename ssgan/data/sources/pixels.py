"""uint8 pixels -> float32 tensors in the range the generator's output non-linearity produces."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ssgan.errors import SSGANError

PIXEL_RANGES = ("unit", "symmetric")


def check_pixel_range(pixel_range: str) -> str:
    """Refuse an unknown range at construction, before any file is read."""
    if pixel_range not in PIXEL_RANGES:
        raise SSGANError(f"data.source.pixel_range={pixel_range!r} is not one of {PIXEL_RANGES}")
    return pixel_range


def scale_pixels(pixels: np.ndarray, pixel_range: str) -> Tensor:
    """uint8 (N, C, H, W) -> float32: [0, 1] for a sigmoid generator ("unit"), [-1, 1] for tanh ("symmetric")."""
    images = torch.from_numpy(pixels.astype(np.float32))  # a writable copy (file buffers are read-only)
    if check_pixel_range(pixel_range) == "unit":
        return images.div_(255.0)
    return images.div_(127.5).sub_(1.0)
