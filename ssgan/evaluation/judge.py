"""What every judge is: images in the data's own range -> class logits (N, K) and features (N, F).

The SSGAN's own D is never a judge: feature matching trains G to match exactly D's features, so D's view of the
samples measures how well G fooled D, not how good the samples are.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ssgan.data.sources.base import SourceData
from ssgan.errors import SSGANError


class Judge(nn.Module, ABC):
    """Scores images with a network independent of the run: ``forward`` returns (logits, features).

    ``name`` says which kind of judge it is; :meth:`describe` is what evaluation.json records about it.
    """

    name: str = "judge"
    num_features: int

    @abstractmethod
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(logits, features) of a batch of images; each judge defines its own."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    @torch.no_grad()
    def outputs(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``forward`` in eval mode, remembered for the last batch: the Inception score and FID each run their
        feature network on the same generated batch, and the judge then runs once per batch, not twice."""
        last = getattr(self, "_last", None)
        if last is not None and last[0] is images:
            return last[1]
        was_training = self.training
        self.eval()
        result = self(images)
        self.train(was_training)
        self._last = (images, result)  # holding the batch keeps its identity from being reused
        return result

    def forget(self) -> None:
        """Drop the remembered batch (it holds a batch of images and their outputs)."""
        self._last = None


class JudgeSpec(Protocol):
    """A judge's settings, instantiated from ``conf/judge/``: checked at construction, prepared for one run's data."""

    name: str

    def prepare(self, data: SourceData, cache_dir: str | None, device: str | torch.device = "cpu") -> Judge: ...


def check_images(shape: tuple[int, ...], where: str) -> None:
    """Judges see images (C, H, W) with 1 or 3 channels; flat feature vectors or codes cannot be judged."""
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise SSGANError(
            f"{where}: examples of shape {shape} are not images (channels, height, width) with 1 or 3 channels; "
            "the Inception score and FID judge images"
        )
