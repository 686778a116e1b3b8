"""D's memorisation probe: lse and acceptance on pool against held-out images, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from ssgan.callbacks.memorisation import MemorisationProbe, largest_trainable_scale, memorisation_statistics
from ssgan.nets.layers import WeightNormLinear


class LogitsAreInputs(nn.Module):
    """A 'D' whose class logits are its inputs, with one weight-norm layer whose scales are set by hand."""

    def __init__(self, scales: list[float]) -> None:
        super().__init__()
        self.layer = WeightNormLinear(2, 2)
        with torch.no_grad():
            self.layer.g.copy_(torch.tensor(scales))
        self.modes: list[bool] = []

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.modes.append(self.training)
        return x, x


def test_statistics_match_hand_computed_values_in_eval_mode() -> None:
    network = LogitsAreInputs([1.0, -3.0])
    pool = torch.tensor([[0.0, 0.0], [math.log(3.0), math.log(3.0)]])  # lse = log 2, log 6: both accepted
    held_out = torch.tensor([[-2.0, -2.0], [0.0, 0.0]])  # lse = log 2 - 2 (rejected), log 2 (accepted)
    statistics = memorisation_statistics(network, pool, held_out, batch_size=1)
    assert statistics["lse_pool"].item() == pytest.approx((math.log(2) + math.log(6)) / 2)
    assert statistics["lse_held_out"].item() == pytest.approx((math.log(2) - 2 + math.log(2)) / 2)
    assert statistics["lse_gap"].item() == pytest.approx((math.log(6) - math.log(2) + 2) / 2)
    assert statistics["d_accepts_pool"].item() == 1.0 and statistics["d_accepts_held_out"].item() == 0.5
    assert statistics["d_scale_max"].item() == 3.0
    assert network.modes == [False] * 4 and network.training  # eval mode (no noise) for the probe, then back


def test_frozen_scales_do_not_count_and_a_network_without_any_reports_none() -> None:
    frozen = WeightNormLinear(2, 2, train_scale=False)
    assert largest_trainable_scale(nn.Sequential(frozen)) is None
    assert largest_trainable_scale(nn.Linear(2, 2)) is None


def test_the_probe_needs_at_least_one_example() -> None:
    with pytest.raises(ValueError, match="num_examples=0 must be >= 1"):
        MemorisationProbe(num_examples=0)
