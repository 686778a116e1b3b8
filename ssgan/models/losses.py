"""The losses of Salimans et al. 2016, section 5, as pure functions of tensors.

D outputs K logits l(x); the "fake" class has logit 0, so with lse(x) = logsumexp_k l_k(x):
D(x) = P(real | x) = Z / (Z + 1), Z = exp(lse(x)), hence -log D(x) = softplus(lse) - lse and
-log(1 - D(x)) = softplus(lse).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ssgan.errors import SSGANError

FEATURE_DISTANCES = ("l2", "l1")


def supervised_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """L_lab = cross-entropy of the K real-class logits (B, K) against targets (B,)."""
    return F.cross_entropy(logits, targets)


def unlabeled_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """L_unl = 0.5 mean(-lse(real) + softplus(lse(real))) + 0.5 mean(softplus(lse(fake))); logits (B, K)."""
    real_lse = torch.logsumexp(real_logits, dim=1)
    fake_lse = torch.logsumexp(fake_logits, dim=1)
    return 0.5 * (F.softplus(real_lse) - real_lse).mean() + 0.5 * F.softplus(fake_lse).mean()


def class_imbalance(logits: Tensor) -> Tensor:
    """KL(p_mean || uniform) = log K - H(p_mean), p_mean the batch mean of softmax(l(x)) (B, K).

    0 when the batch's posteriors spread evenly over the K classes, log K when all go to one class.
    """
    log_mean = torch.logsumexp(F.log_softmax(logits, dim=1), dim=0) - math.log(logits.shape[0])
    return (log_mean.exp() * log_mean).sum() + math.log(logits.shape[1])


def discriminator_loss(
    labeled_logits: Tensor,
    targets: Tensor,
    real_logits: Tensor,
    fake_logits: Tensor,
    unlabeled_weight: float = 1.0,
    balance_weight: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """L_D = L_lab + w_unl * L_unl (+ w_bal * imbalance of the unlabeled posteriors); returns (L_D, L_lab, L_unl).

    With ``balance_weight`` 0 this is the paper's loss exactly. The balance term is CatGAN's marginal-entropy
    term (Springenberg 2016): it pulls the unlabeled batch's mean posterior towards equal class shares.
    """
    labeled = supervised_loss(labeled_logits, targets)
    unlabeled = unlabeled_loss(real_logits, fake_logits)
    total = labeled + unlabeled_weight * unlabeled
    if balance_weight:
        total = total + balance_weight * class_imbalance(real_logits)
    return total, labeled, unlabeled


def consistency_loss(logits: Tensor, target_logits: Tensor) -> Tensor:
    """Squared distance between two class posteriors (B, K) of the same inputs, summed over the K classes and
    averaged over the batch (Mean Teacher's consistency cost); no gradient flows into the target."""
    difference = torch.softmax(logits, dim=1) - torch.softmax(target_logits.detach(), dim=1)
    return difference.square().sum(dim=1).mean()


def sigmoid_rampup(progress: float) -> float:
    """exp(-5 (1 - t)^2) for t = ``progress`` clipped to [0, 1]: the ramp-up of Laine & Aila 2017 and Mean Teacher."""
    t = min(1.0, max(0.0, progress))
    return math.exp(-5.0 * (1.0 - t) ** 2)


def feature_matching_loss(real_features: Tensor, fake_features: Tensor, distance: str = "l2") -> Tensor:
    """Distance between batch means of D's features (B, F): mean squared (l2, the MNIST recipe) or absolute
    (l1, the CIFAR-10 recipe)."""
    difference = real_features.mean(dim=0) - fake_features.mean(dim=0)
    if distance == "l2":
        return difference.square().mean()
    if distance == "l1":
        return difference.abs().mean()
    raise SSGANError(f"gan.feature_matching_distance={distance!r} is not one of {FEATURE_DISTANCES}")


def real_probability(logits: Tensor) -> Tensor:
    """D(x) = Z / (Z + 1) = sigmoid(lse(x)): the probability D assigns to "real"."""
    return torch.sigmoid(torch.logsumexp(logits, dim=1))


@dataclass(frozen=True)
class SSGANObjective:
    """The settings of both players' losses, and the losses themselves, as the GAN's training step uses them.

    ``unlabeled_weight`` is w_unl (1 in the paper); ``feature_matching_distance`` is l2 or l1;
    ``balance_weight`` is w_bal (0: the paper's loss), applied before epoch ``balance_end_epoch`` only
    (None: every epoch).
    """

    unlabeled_weight: float = 1.0
    feature_matching_distance: str = "l2"
    balance_weight: float = 0.0
    balance_end_epoch: int | None = None

    def __post_init__(self) -> None:
        for name in ("unlabeled_weight", "balance_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise SSGANError(f"gan.{name}={value!r} must be a number >= 0")
        if self.feature_matching_distance not in FEATURE_DISTANCES:
            raise SSGANError(
                f"gan.feature_matching_distance={self.feature_matching_distance!r} is not one of {FEATURE_DISTANCES}"
            )
        end = self.balance_end_epoch
        if end is not None and (isinstance(end, bool) or not isinstance(end, int) or end < 0):
            raise SSGANError(f"gan.balance_end_epoch={end!r}: expected null (every epoch) or an epoch number >= 0")

    def balance_weight_at(self, epoch: int) -> float:
        """w_bal before ``balance_end_epoch``, 0 from it on."""
        end = self.balance_end_epoch
        return 0.0 if end is not None and epoch >= end else float(self.balance_weight)

    def discriminator(
        self, labeled_logits: Tensor, targets: Tensor, real_logits: Tensor, fake_logits: Tensor, epoch: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(L_D, L_lab, L_unl) of one step at ``epoch``."""
        return discriminator_loss(
            labeled_logits, targets, real_logits, fake_logits,
            unlabeled_weight=self.unlabeled_weight, balance_weight=self.balance_weight_at(epoch),
        )

    def generator(self, real_features: Tensor, fake_features: Tensor) -> Tensor:
        """L_G: feature matching between a real and a generated batch."""
        return feature_matching_loss(real_features, fake_features, self.feature_matching_distance)
