"""Inception score and FID of generated images under a judge, with torchmetrics' own implementations.

torchmetrics runs a custom feature network given as an ``nn.Module``: :class:`InceptionScore` wants class
logits (it applies the softmax itself), :class:`FrechetInceptionDistance` a feature vector and its length
(``num_features``). With a custom network, ``InceptionScore(normalize=True)`` would turn float images into
bytes first, so it gets ``normalize=False`` and the judge takes the images as they are; FID passes a custom
network's input through untouched either way. Neither needs torch-fidelity unless Inception-v3 is the judge.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ssgan.errors import SSGANError
from ssgan.evaluation.judge import Judge


class JudgeOutput(nn.Module):
    """One of a judge's two outputs as the feature network torchmetrics expects: (N, D) for an (N, C, H, W) batch."""

    def __init__(self, judge: Judge, logits: bool) -> None:
        super().__init__()
        self.judge = judge
        self.logits = logits
        if not logits:
            self.num_features = judge.num_features  # FID sizes its state by it instead of a trial forward pass

    def forward(self, images: Tensor) -> Tensor:
        logits, features = self.judge.outputs(images)
        return logits if self.logits else features


class SampleScores(NamedTuple):
    """Inception score (mean and std over ``splits`` disjoint parts of the samples) and FID against the real images."""

    inception_score_mean: float
    inception_score_std: float | None  # None with a single split: no spread to estimate
    fid: float
    splits: int
    num_samples: int
    num_real: int


def finite_or_none(value: Tensor) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


@torch.no_grad()
def sample_quality(judge: Judge, generated: Tensor, real: Tensor, splits: int = 10, seed: int = 0,
                   batch_size: int = 500) -> SampleScores:
    """IS of ``generated`` and FID of ``generated`` against ``real`` (both (N, C, H, W) in the data's range).

    The Inception score shuffles the samples into ``splits`` parts; ``seed`` fixes that shuffle, and torch's
    global RNG is left as it was. Runs on the judge's device; nothing is synchronised across processes, so
    one DDP rank may call it alone.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore

    if len(generated) < 2 or len(real) < 2:
        raise SSGANError(f"the Inception score and FID need at least 2 generated and 2 real images; got "
                         f"{len(generated)} and {len(real)}")
    if tuple(generated.shape[1:]) != tuple(real.shape[1:]):
        raise SSGANError(f"generated images of shape {tuple(generated.shape[1:])} cannot be compared with real "
                         f"images of shape {tuple(real.shape[1:])}")
    if not 1 <= splits <= len(generated):
        raise SSGANError(f"splits={splits} must be between 1 and the number of samples ({len(generated)})")
    device = next(judge.parameters()).device
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns that IS keeps every feature: a few MB here
        inception_score = InceptionScore(feature=JudgeOutput(judge, logits=True), splits=splits, normalize=False,
                                         sync_on_compute=False).to(device)
        frechet = FrechetInceptionDistance(feature=JudgeOutput(judge, logits=False), normalize=True,
                                           sync_on_compute=False).to(device)
    try:
        for batch in real.split(batch_size):
            frechet.update(batch.to(device), real=True)
        for batch in generated.split(batch_size):
            batch = batch.to(device)
            inception_score.update(batch)
            frechet.update(batch, real=False)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"std\(\): degrees of freedom")  # one split: no spread
            torch.manual_seed(seed)
            score_mean, score_std = inception_score.compute()
        distance = frechet.compute()
    finally:
        judge.forget()
    fid = finite_or_none(distance)
    if fid is None:
        raise SSGANError("FID is not a finite number: the judge's features of the samples are not finite")
    return SampleScores(float(score_mean), finite_or_none(score_std) if splits > 1 else None, max(fid, 0.0),
                        splits, len(generated), len(real))
