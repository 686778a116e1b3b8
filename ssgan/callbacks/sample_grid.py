"""Image grids of generated samples as PNG (pillow only), for a quick look at what G has learnt."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ssgan.errors import SSGANError


def is_image_shape(shape: tuple[int, ...]) -> bool:
    """(H, W) or (C, H, W) with 1 or 3 channels can be drawn; flat feature vectors cannot."""
    return len(shape) == 2 or (len(shape) == 3 and shape[0] in (1, 3))


def image_grid(images: Tensor, columns: int | None = None, min_cell: int = 28, padding: int = 2) -> np.ndarray:
    """(N, C, H, W) or (N, H, W) -> one uint8 (rows*H', cols*W'[, 3]) array; values min-max scaled unless in [0, 1]."""
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise SSGANError(f"cannot draw samples of shape {tuple(images.shape[1:])}; expected (H, W) or (C, H, W), C=1 or 3")
    images = images.detach().float().cpu()
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        images = (images - low) / max(high - low, 1e-12)
    count, channels, height, width = images.shape
    scale = max(1, math.ceil(min_cell / max(height, width)))
    images = images.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    height, width = height * scale, width * scale
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = torch.ones(channels, rows * (height + padding) + padding, columns * (width + padding) + padding)
    for index in range(count):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[:, top : top + height, left : left + width] = images[index]
    array = (grid.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return array[0] if channels == 1 else array.transpose(1, 2, 0)


def save_image_grid(images: Tensor, path: str | Path, columns: int | None = None) -> Path:
    """Write :func:`image_grid` of ``images`` as a PNG (parent directories created)."""
    from PIL import Image

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(images, columns)).save(target)
    return target
