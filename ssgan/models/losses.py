"""The losses of Salimans et al. 2016, section 5, as pure functions of tensors.

D outputs K logits l(x); the "fake" class has logit 0, so with lse(x) = logsumexp_k l_k(x):
D(x) = P(real | x) = Z / (Z + 1), Z = exp(lse(x)), hence -log D(x) = softplus(lse) - lse and
-log(1 - D(x)) = softplus(lse).

Switches of section 3 of the paper, all off by default: one-sided label smoothing (``real_target``) and the
generator's GAN objectives (``minimax``, ``non_saturating``) live here; historical averaging is
:mod:`ssgan.models.history`, minibatch discrimination and virtual batch norm are layers in :mod:`ssgan.nets`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ssgan.errors import SSGANError

FEATURE_DISTANCES = ("l2", "l1")
GENERATOR_OBJECTIVES = ("feature_matching", "minimax", "non_saturating")


def supervised_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """L_lab = cross-entropy of the K real-class logits (B, K) against targets (B,)."""
    return F.cross_entropy(logits, targets)


def unlabeled_loss(real_logits: Tensor, fake_logits: Tensor, real_target: float = 1.0) -> Tensor:
    """L_unl = 0.5 mean(-lse(real) + softplus(lse(real))) + 0.5 mean(softplus(lse(fake))); logits (B, K).

    One-sided label smoothing (section 3.4) with target a = ``real_target`` for real data:
    -[a log D(x) + (1 - a) log(1 - D(x))] = softplus(lse(x)) - a lse(x); samples keep target 0. a = 1: the paper.
    """
    real_lse = torch.logsumexp(real_logits, dim=1)
    fake_lse = torch.logsumexp(fake_logits, dim=1)
    smoothed = real_lse if real_target == 1.0 else real_target * real_lse
    return 0.5 * (F.softplus(real_lse) - smoothed).mean() + 0.5 * F.softplus(fake_lse).mean()


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
    real_target: float = 1.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """L_D = L_lab + w_unl * L_unl (+ w_bal * imbalance of the unlabeled posteriors); returns (L_D, L_lab, L_unl).

    With ``balance_weight`` 0 this is the paper's loss exactly. The balance term is CatGAN's marginal-entropy
    term (Springenberg 2016): it pulls the unlabeled batch's mean posterior towards equal class shares.
    ``real_target`` < 1 smooths the real side of L_unl (:func:`unlabeled_loss`).
    """
    labeled = supervised_loss(labeled_logits, targets)
    unlabeled = unlabeled_loss(real_logits, fake_logits, real_target)
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


def minimax_generator_loss(fake_logits: Tensor) -> Tensor:
    """mean log(1 - D(G(z))) = -mean softplus(lse(G(z))), logits (B, K): G ascends D's loss on its samples, as
    in the published code of the paper's minibatch-discrimination models. Its gradient fades as D(G(z)) -> 0."""
    return -F.softplus(torch.logsumexp(fake_logits, dim=1)).mean()


def non_saturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """-mean log D(G(z)) = mean(softplus(lse) - lse) of G's samples, logits (B, K): the usual GAN heuristic,
    whose gradient stays large while D rejects the samples."""
    fake_lse = torch.logsumexp(fake_logits, dim=1)
    return (F.softplus(fake_lse) - fake_lse).mean()


def real_probability(logits: Tensor) -> Tensor:
    """D(x) = Z / (Z + 1) = sigmoid(lse(x)): the probability D assigns to "real"."""
    return torch.sigmoid(torch.logsumexp(logits, dim=1))


@dataclass(frozen=True)
class SSGANObjective:
    """The settings of both players' losses, and the losses themselves, as the GAN's training step uses them.

    ``unlabeled_weight`` is w_unl (1 in the paper); ``feature_matching_distance`` is l2 or l1;
    ``balance_weight`` is w_bal (0: the paper's loss), applied before epoch ``balance_end_epoch`` only
    (None: every epoch). ``generator_objective`` is G's loss: ``feature_matching`` (the paper's
    semi-supervised recipe), ``minimax`` or ``non_saturating`` (D's verdict on G's samples, for the
    sample-quality model). ``real_target`` is the one-sided label smoothing target (1: off). The two
    ``*_history_weight`` are the historical-averaging lambdas of D and G (0: off; :mod:`ssgan.models.history`).
    """

    unlabeled_weight: float = 1.0
    feature_matching_distance: str = "l2"
    balance_weight: float = 0.0
    balance_end_epoch: int | None = None
    generator_objective: str = "feature_matching"
    real_target: float = 1.0
    discriminator_history_weight: float = 0.0
    generator_history_weight: float = 0.0

    def __post_init__(self) -> None:
        for name, key in (
            ("unlabeled_weight", "unlabeled_weight"),
            ("balance_weight", "balance_weight"),
            ("discriminator_history_weight", "historical_averaging.discriminator_weight"),
            ("generator_history_weight", "historical_averaging.generator_weight"),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise SSGANError(f"gan.{key}={value!r} must be a number >= 0")
        target = self.real_target
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target <= 1:
            raise SSGANError(f"gan.real_target={target!r} must be a number in (0, 1]; 1 turns label smoothing off")
        if self.generator_objective not in GENERATOR_OBJECTIVES:
            raise SSGANError(
                f"gan.generator_objective={self.generator_objective!r} is not one of {GENERATOR_OBJECTIVES}"
            )
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
            real_target=self.real_target,
        )

    @property
    def matches_features(self) -> bool:
        """Whether G's loss needs D's features of a real batch (feature matching) or only D's logits of G's."""
        return self.generator_objective == "feature_matching"

    def generator(
        self, real_features: Tensor | None, fake_features: Tensor, fake_logits: Tensor | None = None
    ) -> Tensor:
        """L_G: feature matching between a real and a generated batch, or D's verdict on the generated one."""
        if self.generator_objective == "minimax":
            return minimax_generator_loss(fake_logits)
        if self.generator_objective == "non_saturating":
            return non_saturating_generator_loss(fake_logits)
        return feature_matching_loss(real_features, fake_features, self.feature_matching_distance)
