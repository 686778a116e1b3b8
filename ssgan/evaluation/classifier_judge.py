"""The per-dataset judge: a small conv net trained once on every labeled training image, cached on disk.

This is the usual convention for "MNIST Inception score / FID": Inception-v3 knows ImageNet, not digits or
clothes, so a classifier of the data's own classes judges the samples instead. Its logits feed the Inception
score, its penultimate features feed FID. Training is seeded (initialisation and shuffling), so the same data
and settings give the same judge on one machine; the test accuracy is measured once and kept with the weights.

A cache entry is keyed by the settings and the exact bytes of the training and test images and labels (like
the input encoders' cache, :mod:`ssgan.data.encoders.cache`): a changed image, label or setting never reuses a
stale judge. Runs that need one entry at once take turns on a lock beside it; entries are written to a
temporary file and renamed, so no run reads a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssgan.data.encoders.cache import exclusive
from ssgan.data.sources.base import SourceData
from ssgan.errors import SSGANError
from ssgan.evaluation.judge import Judge, check_images

log = logging.getLogger("ssgan")

# bump when training changes its results, so entries written by older code are not reused
JUDGE_CACHE_VERSION = 1


class JudgeNetwork(nn.Module):
    """Three conv-BN-ReLU stages of stride 2 (``channels``, doubled at each stage), global average pooling, a
    dense ReLU layer of ``feature_dim`` units (FID's features), then K logits.

    Strided convolutions rather than pooling keep training to minutes on a CPU for 60000 images.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, channels: int, feature_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width_in = int(input_shape[0])
        for stage in range(3):
            width = channels * 2**stage
            layers += [nn.Conv2d(width_in, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU()]
            width_in = width
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(width_in, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_classes)
        self.num_features = feature_dim

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(N, C, H, W) -> (logits (N, K), features (N, feature_dim))."""
        features = self.body(images)
        return self.head(features), features


class ClassifierJudge(Judge):
    """A trained :class:`JudgeNetwork` with its test accuracy and the cache entry it came from."""

    name = "classifier"

    def __init__(self, network: JudgeNetwork, accuracy: float, settings: dict[str, Any], num_train: int,
                 num_test: int, cache_entry: Path | None) -> None:
        super().__init__()
        self.network = network.eval()
        self.accuracy = float(accuracy)
        self.settings = settings
        self.num_train = num_train
        self.num_test = num_test
        self.cache_entry = cache_entry
        self.num_features = network.num_features

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return self.network(images.float())

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "test_accuracy": self.accuracy,
            "num_train": self.num_train,
            "num_test": self.num_test,
            "settings": {k: v for k, v in self.settings.items() if k not in ("input_shape", "num_classes")},
            "cache_entry": str(self.cache_entry) if self.cache_entry is not None else None,
        }


def positive_integer(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SSGANError(f"judge.{name}={value!r} must be a positive integer")
    return value


class ClassifierJudgeSpec:
    """``conf/judge/classifier.yaml``: how the judge network is built and trained (values checked here)."""

    name = "classifier"

    def __init__(self, channels: int = 32, feature_dim: int = 128, epochs: int = 5, batch_size: int = 128,
                 learning_rate: float = 1e-3, seed: int = 0) -> None:
        for key, value in (("channels", channels), ("feature_dim", feature_dim), ("epochs", epochs),
                           ("batch_size", batch_size)):
            positive_integer(key, value)
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
            raise SSGANError(f"judge.learning_rate={learning_rate!r} must be a number > 0")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise SSGANError(f"judge.seed={seed!r} must be an integer")
        self.channels = channels
        self.feature_dim = feature_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = float(learning_rate)
        self.seed = seed

    def settings(self, input_shape: Sequence[int], num_classes: int) -> dict[str, Any]:
        """Everything the trained judge depends on besides the data (part of the cache key)."""
        return {
            "network": f"{JudgeNetwork.__module__}.{JudgeNetwork.__qualname__}",
            "input_shape": [int(size) for size in input_shape],
            "num_classes": int(num_classes),
            "channels": self.channels,
            "feature_dim": self.feature_dim,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
        }

    def prepare(self, data: SourceData, cache_dir: str | os.PathLike[str] | None,
                device: str | torch.device = "cpu") -> ClassifierJudge:
        """The judge of ``data`` on ``device``: loaded from ``cache_dir`` when an entry matches, else trained there
        (and saved)."""
        return self._prepare(data, cache_dir, torch.device(device)).to(device)

    def _prepare(self, data: SourceData, cache_dir: str | os.PathLike[str] | None,
                 device: torch.device) -> ClassifierJudge:
        check_images(data.input_shape, "the classifier judge")
        labeled = data.train.labels >= 0
        if int(labeled.sum()) < 2:
            raise SSGANError(f"the classifier judge trains on labeled training images; the data has "
                             f"{int(labeled.sum())} labeled")
        train_inputs, train_labels = data.train.inputs[labeled], data.train.labels[labeled]
        settings = self.settings(data.input_shape, data.num_classes)
        if cache_dir is None:
            return self._train(settings, train_inputs, train_labels, data, device, None)
        key = data_fingerprint(settings, (train_inputs, train_labels, data.test.inputs, data.test.labels))
        path = Path(cache_dir).expanduser() / f"ClassifierJudge-{key[:32]}.pt"
        with exclusive(path.with_suffix(".lock")):
            if path.exists() and (cached := load_entry(path, settings)) is not None:
                log.info("loaded the judge network from %s", path)
                return cached
            judge = self._train(settings, train_inputs, train_labels, data, device, path)
            try:
                save_entry(path, judge)
                log.info("saved the judge network to %s", path)
            except OSError as error:  # a full or read-only disk must not stop the evaluation
                log.warning("could not write the judge cache entry %s (%s)", path, error)
                judge.cache_entry = None
        return judge

    def _train(self, settings: dict[str, Any], inputs: Tensor, labels: Tensor, data: SourceData,
               device: torch.device, path: Path | None) -> ClassifierJudge:
        log.info("training the judge network on %d labeled training images (%d epochs, %s)", len(labels),
                 self.epochs, device)
        network = train_judge_network(settings, inputs, labels, device)
        accuracy = judge_accuracy(network, data.test.inputs, data.test.labels, self.batch_size, device)
        log.info("judge network: test accuracy %.4f on %d images", accuracy, len(data.test.labels))
        return ClassifierJudge(network.cpu(), accuracy, settings, len(labels), len(data.test.labels), path)


def train_judge_network(settings: dict[str, Any], inputs: Tensor, labels: Tensor,
                        device: torch.device) -> JudgeNetwork:
    """Adam on cross-entropy over seeded shuffles; torch's global RNG is left as it was."""
    device_list = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=device_list):
        torch.manual_seed(settings["seed"])
        network = JudgeNetwork(settings["input_shape"], settings["num_classes"], settings["channels"],
                               settings["feature_dim"]).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=settings["learning_rate"])
    generator = torch.Generator().manual_seed(settings["seed"])
    inputs, labels = inputs.float(), labels.long()
    network.train()
    for _ in range(settings["epochs"]):
        order = torch.randperm(len(labels), generator=generator)
        for rows in order.split(settings["batch_size"]):
            if len(rows) < 2:  # batch norm needs two examples per batch
                continue
            logits, _ = network(inputs[rows].to(device))
            loss = F.cross_entropy(logits, labels[rows].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return network.eval()


@torch.no_grad()
def judge_accuracy(network: JudgeNetwork, inputs: Tensor, labels: Tensor, batch_size: int,
                   device: torch.device) -> float:
    """Share of ``inputs`` the judge classifies correctly (how far its verdicts can be trusted)."""
    network.eval()
    correct = sum(int((network(chunk.float().to(device))[0].argmax(1).cpu() == target).sum())
                  for chunk, target in zip(inputs.split(batch_size), labels.split(batch_size)))
    return correct / max(len(labels), 1)


def data_fingerprint(settings: dict[str, Any], tensors: Sequence[Tensor]) -> str:
    """SHA-256 over the settings and the bytes, dtype and shape of each tensor."""
    digest = hashlib.sha256(json.dumps({"version": JUDGE_CACHE_VERSION, **settings}, sort_keys=True).encode())
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def save_entry(path: Path, judge: ClassifierJudge) -> None:
    """Weights, settings and test accuracy, written to a temporary file and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    entry = {"state": judge.network.state_dict(), "settings": judge.settings, "accuracy": judge.accuracy,
             "num_train": judge.num_train, "num_test": judge.num_test}
    try:
        torch.save(entry, temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def load_entry(path: Path, settings: dict[str, Any]) -> ClassifierJudge | None:
    """The cached judge, or None when the entry is unreadable or was written for other settings."""
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        if entry["settings"] != settings:
            raise ValueError("settings differ")
        network = JudgeNetwork(settings["input_shape"], settings["num_classes"], settings["channels"],
                               settings["feature_dim"])
        network.load_state_dict(entry["state"])
        return ClassifierJudge(network, entry["accuracy"], settings, int(entry["num_train"]),
                               int(entry["num_test"]), path)
    except Exception as error:  # a truncated or foreign file: train again and overwrite it
        log.warning("ignoring the unreadable judge cache entry %s (%s); training again", path, error)
        return None
