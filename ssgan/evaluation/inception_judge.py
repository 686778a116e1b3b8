"""Inception-v3 as the judge, from a weights file on disk: the judge of published CIFAR-10 scores.

torch-fidelity provides the network that reproduces the TensorFlow Inception of the original Inception score
and FID; it is an optional extra (``pip install 'ssgan[inception]'``). Its weights are never downloaded here:
the user passes the file. Inception sees 299x299 RGB images, so grey images are repeated over three channels
and every image is resized; on 8x8 or 28x28 images of digits or clothes its ImageNet classes say little, which
is why :mod:`ssgan.evaluation.classifier_judge` is the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ssgan.data.sources.base import SourceData
from ssgan.errors import SSGANError
from ssgan.evaluation.judge import Judge, check_images

# the file torch-fidelity fetches for its Inception-v3 (the FID authors' TensorFlow weights, converted)
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WHERE_TO_SET = "ssgan-evaluate --inception-weights PATH, or judge.weights=PATH in a config"


def check_weights_file(weights: str | Path | None) -> Path:
    """The weights file must exist: say what to download and where to point, never fetch it."""
    if weights is None or str(weights) == "":
        raise SSGANError(
            f"the Inception judge needs Inception-v3 weights on disk, which are never downloaded here: fetch "
            f"torch-fidelity's {INCEPTION_WEIGHTS_FILE} and pass its path ({WHERE_TO_SET})"
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise SSGANError(
            f"Inception-v3 weights {path}: no such file; expected torch-fidelity's {INCEPTION_WEIGHTS_FILE} "
            f"({WHERE_TO_SET})"
        )
    return path


def feature_extractor_class() -> type:
    """torch-fidelity's Inception-v3, or one line saying how to install it."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise SSGANError(
            "the Inception judge needs the torch-fidelity package: pip install 'ssgan[inception]' "
            "(or pip install torch-fidelity)"
        ) from None
    return FeatureExtractorInceptionV3


def pixel_bounds(images: Tensor) -> tuple[float, float]:
    """The range the data's images live in, [0, 1] or [-1, 1] (a tanh generator's), read off the images."""
    low, high = float(images.min()), float(images.max())
    if low >= 0.0 and high <= 1.0:
        return 0.0, 1.0
    if low >= -1.0 and high <= 1.0:
        return -1.0, 1.0
    raise SSGANError(
        f"the Inception judge takes images with pixels in [0, 1] or [-1, 1]; the training images span "
        f"[{low:.3g}, {high:.3g}]"
    )


class InceptionJudge(Judge):
    """Images in ``bounds`` -> Inception-v3's 1008 unbiased logits (Inception score) and 2048 pool features (FID)."""

    name = "inception"
    num_features = 2048

    def __init__(self, network: torch.nn.Module, bounds: tuple[float, float], weights: Path) -> None:
        super().__init__()
        self.network = network
        self.bounds = bounds
        self.weights = weights

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        low, high = self.bounds
        unit = ((images.float() - low) / (high - low)).clamp(0.0, 1.0)
        if unit.shape[1] == 1:
            unit = unit.expand(-1, 3, -1, -1)
        features, logits = self.network((unit * 255).round().to(torch.uint8))  # torch-fidelity takes uint8
        return logits, features

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "test_accuracy": None, "weights": str(self.weights)}


class InceptionJudgeSpec:
    """``conf/judge/inception.yaml``: the weights file (checked at construction, with the package)."""

    name = "inception"

    def __init__(self, weights: str | None = None) -> None:
        self.weights = check_weights_file(weights)
        self.extractor_class = feature_extractor_class()

    def prepare(self, data: SourceData, cache_dir: str | None = None,
                device: str | torch.device = "cpu") -> InceptionJudge:
        check_images(data.input_shape, "the Inception judge")
        bounds = pixel_bounds(data.train.inputs)
        try:
            network = self.extractor_class("inception-v3-compat", ["2048", "logits_unbiased"],
                                           feature_extractor_weights_path=str(self.weights))
        except Exception as error:  # not a state dict of this network
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise SSGANError(f"Inception-v3 weights {self.weights} cannot be loaded ({reason}); expected "
                             f"torch-fidelity's {INCEPTION_WEIGHTS_FILE}") from None
        return InceptionJudge(network.to(device), bounds, self.weights)
