"""The weight average the paper evaluates: its warm-up, the direction of each update, and that evaluation uses it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssgan.errors import SSGANError
from ssgan.models.ema import WeightAverage


def constant_network(value: float) -> nn.Linear:
    network = nn.Linear(3, 2)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.fill_(value)
    return network


def test_each_update_moves_the_average_toward_the_live_weights_by_the_warmed_up_rate() -> None:
    live = constant_network(0.0)
    average = WeightAverage(live, decay=0.999)
    with torch.no_grad():
        for parameter in live.parameters():
            parameter.fill_(1.0)
    expected = 0.0
    for t in range(5):
        decay = min(0.999, (1 + t) / (10 + t))  # the warm-up: early updates follow the live weights closely
        expected = decay * expected + (1 - decay) * 1.0
        average.update(live)
        for parameter in average.average.parameters():
            assert torch.allclose(parameter, torch.full_like(parameter, expected)), t
    assert 0.0 < expected < 1.0 and average.num_updates == 5


def test_the_decay_reaches_its_configured_value_after_the_warm_up() -> None:
    live = constant_network(1.0)
    average = WeightAverage(constant_network(0.0), decay=0.5)
    average.num_updates = 100  # past the warm-up, min(0.5, 101/110) = 0.5
    average.update(live)
    assert all(torch.allclose(p, torch.full_like(p, 0.5)) for p in average.average.parameters())


def test_reset_copies_the_live_weights_and_restarts_the_warm_up() -> None:
    average = WeightAverage(constant_network(0.0), decay=0.9)
    average.num_updates = 7
    average.reset(constant_network(2.0))
    assert average.num_updates == 0
    assert all(torch.equal(p, torch.full_like(p, 2.0)) for p in average.average.parameters())
    assert not any(p.requires_grad for p in average.average.parameters())


def test_the_update_count_travels_in_the_state_dict() -> None:
    average = WeightAverage(constant_network(0.0), decay=0.9)
    average.update(constant_network(1.0))
    restored = WeightAverage(constant_network(0.0), decay=0.9)
    restored.load_state_dict(average.state_dict())
    assert restored.num_updates == 1


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_a_decay_outside_0_1_is_refused(decay: float) -> None:
    with pytest.raises(SSGANError, match=f"model.ema_decay={decay} must be in"):
        WeightAverage(constant_network(0.0), decay=decay)


@pytest.mark.parametrize("ema_decay", [0.9, None])
def test_evaluation_uses_the_average_unless_ema_decay_is_null(make_config, ema_decay) -> None:
    from ssgan.build import build

    overrides = ["model=supervised", f"model.ema_decay={'null' if ema_decay is None else ema_decay}"]
    _, model, _ = build(make_config("run", *overrides))
    model.eval()
    with torch.no_grad():
        for parameter in model.weight_average.average.parameters():
            parameter.add_(1.0)  # the average now differs from the live weights
    inputs = torch.rand(4, *model.input_shape)
    expected_network = model.weight_average.average if ema_decay is not None else model.discriminator
    assert model.evaluation_network is expected_network
    with torch.no_grad():
        assert torch.equal(model(inputs), expected_network(inputs)[0])
        other = model.discriminator if ema_decay is not None else model.weight_average.average
        assert not torch.equal(model(inputs), other(inputs)[0])
