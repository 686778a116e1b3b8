"""One torchmetrics collection per stage: micro accuracy (the paper's error rate), macro accuracy, confusion;
and the training losses' epoch means."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
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


class EpochMeans:
    """Running sums of each step's named values (losses, health statistics), as device tensors: one fused add
    per step, no host sync; :meth:`pop` gives their means over the steps.

    The modules log the losses' means once per epoch instead of calling Lightning's ``self.log`` every step,
    which walks the logged metric's state at every call and is slow next to a GPU step.
    """

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.steps = 0
        self.epoch = -1  # the epoch the sums belong to

    def start_epoch(self, epoch: int) -> None:
        """Start ``epoch``'s sums (a cut epoch never leaks into the next)."""
        self.sums, self.steps, self.epoch = {}, 0, epoch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "steps": self.steps, "sums": {k: v.cpu() for k, v in self.sums.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The sums of a checkpoint saved inside an epoch: Lightning resumes that epoch without starting it again,
        so its logged means cover every step, as in a run never cut. A new epoch's start clears them."""
        self.sums, self.steps, self.epoch = dict(state["sums"]), int(state["steps"]), int(state["epoch"])

    def add(self, values: dict[str, Tensor]) -> None:
        if self.sums and next(iter(self.sums.values())).device != next(iter(values.values())).device:
            self.sums = {name: total.to(next(iter(values.values())).device) for name, total in self.sums.items()}
        if not self.sums:
            self.sums = {name: value.detach().float().clone() for name, value in values.items()}
        elif values.keys() != self.sums.keys():
            raise ValueError(f"losses {sorted(values)} differ from this epoch's {sorted(self.sums)}")
        else:
            torch._foreach_add_(list(self.sums.values()), [value.detach().float() for value in values.values()])
        self.steps += 1

    def pop(self) -> dict[str, Tensor]:
        """The means since the last pop (empty when no step was added), and start again."""
        means = {name: total / self.steps for name, total in self.sums.items()}
        self.sums, self.steps = {}, 0
        return means
