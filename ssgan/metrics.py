"""One torchmetrics collection per stage: micro accuracy (the paper's error rate), macro accuracy, confusion."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """A fresh collection per stage; ``average`` is always explicit (the class default is macro)."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "acc_macro": MulticlassAccuracy(num_classes, average="macro"),
            "confusion": MulticlassConfusionMatrix(num_classes),
        },
        prefix=prefix,
        compute_groups=False,
    )
