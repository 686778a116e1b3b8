"""Different noise on every DDP rank, from one seed."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class DistinctNoisePerRank(pl.Callback):
    """Under DDP, reseed each rank's torch generator at the start of training so ranks draw different noise.

    Every rank is seeded alike so the networks start identical; without this the generator's z and D's
    Gaussian noise would also be identical on every rank, and a global batch of W x B generated examples
    would hold only B distinct ones. Single-process runs are left untouched.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            torch.manual_seed((self.seed * 1_000_003 + trainer.global_rank) % (2**63))
