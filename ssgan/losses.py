"""The losses of Salimans et al. 2016, section 5, as pure functions of tensors.

D outputs K logits l(x); the "fake" class has logit 0, so with lse(x) = logsumexp_k l_k(x):
D(x) = P(real | x) = Z / (Z + 1), Z = exp(lse(x)), hence -log D(x) = softplus(lse) - lse and
-log(1 - D(x)) = softplus(lse).
"""

from __future__ import annotations

import math

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


def class_entropy(logits: Tensor) -> Tensor:
    """Mean entropy of the K-class posterior softmax(l(x)) (B, K): low when D is sure which real class x is."""
    log_probabilities = F.log_softmax(logits, dim=1)
    return -(log_probabilities.exp() * log_probabilities).sum(dim=1).mean()


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
    entropy_weight: float = 0.0,
    balance_weight: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """L_D = L_lab + w_unl * L_unl (+ optional terms on unlabeled data); returns (L_D, L_lab, L_unl).

    Neither optional term is in the paper; with both weights 0 this is the paper's loss exactly.
    ``entropy_weight`` adds the mean class entropy, pushing unlabeled examples away from class boundaries, as
    in entropy minimisation (Grandvalet & Bengio 2005) and "Good Semi-supervised Learning that Requires a Bad
    GAN" (Dai et al. 2017). ``balance_weight`` adds :func:`class_imbalance`, pulling the unlabeled batch's
    mean posterior towards equal class shares (the marginal-entropy term of CatGAN, Springenberg 2016): for
    data whose classes are about equally frequent, where D otherwise over-predicts some of them.
    """
    labeled = supervised_loss(labeled_logits, targets)
    unlabeled = unlabeled_loss(real_logits, fake_logits)
    total = labeled + unlabeled_weight * unlabeled
    if entropy_weight:
        total = total + entropy_weight * class_entropy(real_logits)
    if balance_weight:
        total = total + balance_weight * class_imbalance(real_logits)
    return total, labeled, unlabeled


def consistency_loss(logits: Tensor, target_logits: Tensor) -> Tensor:
    """Squared distance between two class posteriors of the same inputs under independent noise, summed over
    the K classes and averaged over the batch (the Pi-model of Laine & Aila 2017); the target is not
    differentiated through."""
    difference = torch.softmax(logits, dim=1) - torch.softmax(target_logits.detach(), dim=1)
    return difference.square().sum(dim=1).mean()


def feature_matching_loss(real_features: Tensor, fake_features: Tensor, distance: str = "l2") -> Tensor:
    """Distance between batch means of D's features (B, F): mean squared (l2, MNIST) or absolute (l1, CIFAR)."""
    difference = real_features.mean(dim=0) - fake_features.mean(dim=0)
    if distance == "l2":
        return difference.square().mean()
    if distance == "l1":
        return difference.abs().mean()
    raise SSGANError(f"model.feature_matching_distance={distance!r} is not one of {FEATURE_DISTANCES}")


def real_probability(logits: Tensor) -> Tensor:
    """D(x) = Z / (Z + 1) = sigmoid(lse(x)): the probability D assigns to "real"."""
    return torch.sigmoid(torch.logsumexp(logits, dim=1))
