"""The losses against values computed by hand from the paper's formulas."""

import math
import re

import pytest
import torch

from ssgan.errors import SSGANError
from ssgan.models.losses import (
    class_imbalance,
    discriminator_loss,
    feature_matching_loss,
    SSGANObjective,
    real_probability,
    supervised_loss,
    unlabeled_loss,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_supervised_loss_is_cross_entropy_by_hand() -> None:
    logits = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    targets = torch.tensor([0, 0])
    expected = 0.5 * ((math.log(math.e + 1) - 1.0) + (math.log(1 + math.e**2) - 0.0))
    assert supervised_loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_unlabeled_loss_by_hand() -> None:
    # real: lse([0, 0]) = log 2 ; lse([log 3, 0]) = log 4 ; fake: lse([-1, -1]) = log(2/e)
    real = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    fake = torch.tensor([[-1.0, -1.0]])
    lse_real = [math.log(2.0), math.log(4.0)]
    lse_fake = math.log(2.0 / math.e)
    expected_real = sum(-v + softplus(v) for v in lse_real) / 2
    expected = 0.5 * expected_real + 0.5 * softplus(lse_fake)
    assert unlabeled_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)


def test_unlabeled_loss_is_minus_log_d_real_and_minus_log_one_minus_d_fake() -> None:
    # D(x) = Z / (Z + 1): with Z = 3 on real data and Z = 1/3 on generated data.
    real = torch.tensor([[math.log(2.0), math.log(1.0)]])  # Z = 3
    fake = torch.tensor([[math.log(1 / 3), -1e9]])  # Z = 1/3
    expected = 0.5 * -math.log(3 / 4) + 0.5 * -math.log(1 - (1 / 3) / (4 / 3))
    assert unlabeled_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    assert real_probability(real).item() == pytest.approx(0.75, rel=1e-6)


def test_discriminator_loss_weights_the_unlabeled_part() -> None:
    labeled = torch.tensor([[2.0, 0.0, 0.0]])
    targets = torch.tensor([0])
    real = torch.tensor([[0.5, -0.5, 0.0]])
    fake = torch.tensor([[-2.0, -1.0, -3.0]])
    total, lab, unl = discriminator_loss(labeled, targets, real, fake, unlabeled_weight=0.25)
    assert lab.item() == pytest.approx(-2.0 + math.log(math.exp(2) + 2), rel=1e-6)
    assert total.item() == pytest.approx(lab.item() + 0.25 * unl.item(), rel=1e-6)


def test_feature_matching_l2_and_l1_by_hand() -> None:
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean [2, 3]
    fake = torch.tensor([[0.0, 0.0], [2.0, 0.0]])  # mean [1, 0]
    assert feature_matching_loss(real, fake, "l2").item() == pytest.approx((1.0 + 9.0) / 2)
    assert feature_matching_loss(real, fake, "l1").item() == pytest.approx((1.0 + 3.0) / 2)
    with pytest.raises(SSGANError, match="feature_matching_distance='cosine'"):
        feature_matching_loss(real, fake, "cosine")


def test_unlabeled_loss_is_stable_for_large_logits() -> None:
    real = torch.tensor([[500.0, 0.0]])
    fake = torch.tensor([[-500.0, -500.0]])
    value = unlabeled_loss(real, fake)
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(0.0, abs=1e-6)


def test_class_imbalance_is_the_kl_of_the_mean_posterior_from_equal_shares() -> None:
    # posteriors (1/2, 1/2) and (3/4, 1/4): mean (5/8, 3/8); KL from (1/2, 1/2) = sum p log(2p)
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    expected = 0.625 * math.log(1.25) + 0.375 * math.log(0.75)
    assert class_imbalance(logits).item() == pytest.approx(expected, rel=1e-5)
    balanced = torch.tensor([[200.0, 0.0, 0.0], [0.0, 200.0, 0.0], [0.0, 0.0, 200.0]])
    assert class_imbalance(balanced).item() == pytest.approx(0.0, abs=1e-6)
    one_class = torch.tensor([[200.0, 0.0, 0.0], [300.0, 0.0, 0.0]])
    assert class_imbalance(one_class).item() == pytest.approx(math.log(3.0), rel=1e-6)


def test_balance_weight_adds_the_unlabeled_class_imbalance() -> None:
    labeled, targets = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    real, fake = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]]), torch.tensor([[-1.0, -1.0]])
    paper, lab, unl = discriminator_loss(labeled, targets, real, fake, 1.0, 0.0)
    balanced, lab2, unl2 = discriminator_loss(labeled, targets, real, fake, 1.0, 2.0)
    assert (lab2.item(), unl2.item()) == (lab.item(), unl.item())
    assert balanced.item() == pytest.approx(paper.item() + 2.0 * class_imbalance(real).item(), rel=1e-6)
    # its gradient moves the over-predicted class's logits down
    real = real.clone().requires_grad_(True)
    class_imbalance(real).backward()
    assert real.grad[:, 0].sum() > 0 > real.grad[:, 1].sum()


def test_objective_applies_its_weights_and_ends_the_balance_term_on_time() -> None:
    labeled, targets = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    real, fake = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]]), torch.tensor([[-1.0, -1.0]])
    objective = SSGANObjective(unlabeled_weight=0.5, balance_weight=2.0, balance_end_epoch=3)
    total, lab, unl = objective.discriminator(labeled, targets, real, fake, epoch=2)
    assert total.item() == pytest.approx(lab.item() + 0.5 * unl.item() + 2.0 * class_imbalance(real).item(), rel=1e-6)
    ended, lab3, unl3 = objective.discriminator(labeled, targets, real, fake, epoch=3)
    assert ended.item() == pytest.approx(lab3.item() + 0.5 * unl3.item(), rel=1e-6)
    assert SSGANObjective(balance_weight=0.1).balance_weight_at(10_000) == pytest.approx(0.1)
    real_features, fake_features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    assert SSGANObjective(feature_matching_distance="l1").generator(real_features, fake_features).item() == 2.0


@pytest.mark.parametrize("settings,field", [
    ({"unlabeled_weight": -1.0}, "gan.unlabeled_weight=-1.0"),
    ({"balance_weight": "lots"}, "gan.balance_weight='lots'"),
    ({"feature_matching_distance": "cosine"}, "gan.feature_matching_distance='cosine'"),
    ({"balance_end_epoch": -2}, "gan.balance_end_epoch=-2"),
    ({"balance_end_epoch": 1.5}, "gan.balance_end_epoch=1.5"),
])
def test_objective_refuses_bad_settings_by_name(settings: dict, field: str) -> None:
    with pytest.raises(SSGANError, match=re.escape(field)):
        SSGANObjective(**settings)


def test_epoch_means_average_each_loss_over_the_steps_and_start_again() -> None:
    from ssgan.models.metrics import EpochMeans

    means = EpochMeans()
    assert means.pop() == {}
    means.add({"loss_d": torch.tensor(1.0), "loss_g": torch.tensor(4.0)})
    means.add({"loss_d": torch.tensor(3.0), "loss_g": torch.tensor(5.0, requires_grad=True)})
    result = means.pop()
    assert result["loss_d"].item() == 2.0 and result["loss_g"].item() == 4.5
    assert not result["loss_g"].requires_grad  # no graph kept across steps
    assert means.pop() == {}
    means.add({"loss_d": torch.tensor(7.0)})
    with pytest.raises(ValueError, match="differ"):
        means.add({"loss_g": torch.tensor(1.0)})
    assert means.pop()["loss_d"].item() == 7.0
