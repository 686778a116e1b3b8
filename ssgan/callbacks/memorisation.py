"""Does D memorise its unlabeled pool? Its real-ness on pool images against held-out images, once per epoch.

D's real-ness of x is lse(x) = logsumexp_k l_k(x) (D(x) = sigmoid(lse(x)), docs/configuration.md). On a small
pool, D can learn the pool's own images rather than what real images look like: lse then rises on the pool and
not on held-out images of the same distribution. The gap, with the size of D's trainable weight-norm scales (the
logits' scale), is what to watch when accuracy drops late in training.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from ssgan.data.streams import epoch_generator
from ssgan.models.losses import real_probability

PROBE_SEED_EPOCH = -2  # the pool sample is drawn once, with the stream seed, apart from the training order


@torch.no_grad()
def realness(network: nn.Module, inputs: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """Per example: lse(x) and whether D calls x real (D(x) > 0.5), in eval mode (no noise), in batches."""
    lse, accepted = [], []
    for start in range(0, inputs.shape[0], batch_size):
        logits = network(inputs[start : start + batch_size])[0].float()
        lse.append(torch.logsumexp(logits, dim=1))
        accepted.append((real_probability(logits) > 0.5).float())
    return torch.cat(lse), torch.cat(accepted)


def largest_trainable_scale(network: nn.Module) -> Tensor | None:
    """The largest |g| among D's trainable weight-norm scales (the output layer's: the logits' scale)."""
    scales = [module.g.detach().abs().max() for module in network.modules()
              if isinstance(getattr(module, "g", None), nn.Parameter) and module.g.requires_grad]
    return torch.stack(scales).max() if scales else None


def memorisation_statistics(network: nn.Module, pool: Tensor, held_out: Tensor, batch_size: int = 500) -> dict[str, Tensor]:
    """lse and D's acceptance on pool and held-out images; ``lse_gap`` = mean lse(pool) − mean lse(held out)."""
    was_training = network.training
    network.eval()
    try:
        pool_lse, pool_accepted = realness(network, pool, batch_size)
        held_lse, held_accepted = realness(network, held_out, batch_size)
    finally:
        network.train(was_training)
    statistics = {
        "lse_pool": pool_lse.mean(),
        "lse_held_out": held_lse.mean(),
        "lse_gap": pool_lse.mean() - held_lse.mean(),
        "d_accepts_pool": pool_accepted.mean(),
        "d_accepts_held_out": held_accepted.mean(),
    }
    scale = largest_trainable_scale(network)
    if scale is not None:
        statistics["d_scale_max"] = scale
    return statistics


class MemorisationProbe(pl.Callback):
    """At each validation epoch end, logs ``probe_*``: D's lse and acceptance on a fixed sample of the unlabeled
    pool against the held-out validation images (``data.num_validation`` > 0), and its largest trainable scale.

    The sample is ``num_examples`` pool images (at most as many as there are validation images), drawn once.
    Only the SSGAN has a real-ness; other modules and runs without validation are left alone. Every rank computes
    the same figures on the same images, so nothing is gathered.
    """

    def __init__(self, num_examples: int = 1000) -> None:
        if num_examples < 1:
            raise ValueError(f"num_examples={num_examples} must be >= 1")
        self.num_examples = int(num_examples)
        self._inputs: tuple[Tensor, Tensor] | None = None

    def _probe_inputs(self, trainer: pl.Trainer, device: torch.device) -> tuple[Tensor, Tensor] | None:
        datamodule: Any = trainer.datamodule
        split = getattr(datamodule, "split", None)
        if split is None or split.validation.numel() == 0:
            return None
        if self._inputs is None:
            inputs = datamodule.data.train.inputs
            count = min(self.num_examples, split.validation.numel(), split.unlabeled.numel())
            generator = epoch_generator(datamodule.stream_seed, epoch=PROBE_SEED_EPOCH)
            pool = split.unlabeled[torch.randperm(split.unlabeled.numel(), generator=generator)[:count]]
            held_out = split.validation[torch.randperm(split.validation.numel(), generator=generator)[:count]]
            self._inputs = (inputs[pool].to(device), inputs[held_out].to(device))
        return self._inputs

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or getattr(pl_module, "generator", None) is None:
            return
        inputs = self._probe_inputs(trainer, pl_module.device)
        if inputs is None:
            return
        statistics = memorisation_statistics(pl_module.discriminator, *inputs)
        for name, value in statistics.items():
            pl_module.log(f"probe_{name}", value, on_epoch=True, sync_dist=False, rank_zero_only=True)
