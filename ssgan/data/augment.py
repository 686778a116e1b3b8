"""Label-preserving image augmentation on whole batches: with ten labels per class, every shifted or mirrored
copy of a labeled image is a new labeled example for D. Vectorised gathers on the batch's device, no loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ssgan.errors import SSGANError


class RandomShiftFlip:
    """Shift each image by a random whole number of pixels in [-max_shift, max_shift] along both axes (zero
    fill at the borders) and, with ``horizontal_flip``, mirror it left-right with probability 1/2.

    Draws from torch's global RNG, so a seeded run (and a resumed one) sees the same augmentations.
    ``graph_safe``: every draw and index is a tensor on the batch's device, so a captured step can hold it.
    """

    graph_safe = True

    def __init__(self, max_shift: int = 2, horizontal_flip: bool = False) -> None:
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise SSGANError(f"model.augmentation.max_shift={max_shift!r} must be a non-negative integer")
        self.max_shift = max_shift
        self.horizontal_flip = bool(horizontal_flip)

    def __call__(self, images: Tensor) -> Tensor:
        if images.ndim != 4:
            raise SSGANError(
                f"model.augmentation needs image batches (B, C, H, W); got inputs of shape {tuple(images.shape)}"
                " (set model.augmentation=null for tabular data)"
            )
        batch, _, height, width = images.shape
        shift, device = self.max_shift, images.device
        padded = F.pad(images, (shift, shift, shift, shift))
        row_offset = torch.randint(0, 2 * shift + 1, (batch, 1), device=device)
        column_offset = torch.randint(0, 2 * shift + 1, (batch, 1), device=device)
        rows = torch.arange(height, device=device) + row_offset  # (B, H) rows of the padded image
        columns = torch.arange(width, device=device).expand(batch, width)
        if self.horizontal_flip:
            mirrored = torch.rand(batch, 1, device=device) < 0.5
            columns = torch.where(mirrored, width - 1 - columns, columns)
        columns = columns + column_offset  # (B, W)
        batch_index = torch.arange(batch, device=device).view(batch, 1, 1)
        gathered = padded[batch_index, :, rows.unsqueeze(2), columns.unsqueeze(1)]  # (B, H, W, C)
        return gathered.permute(0, 3, 1, 2).contiguous()

    def __repr__(self) -> str:
        return f"RandomShiftFlip(max_shift={self.max_shift}, horizontal_flip={self.horizontal_flip})"
