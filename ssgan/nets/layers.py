"""Small layers of the paper's recipe: Gaussian noise and weight-normalised dense layers with data-dependent init."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GaussianNoise(nn.Module):
    """Adds N(0, sigma^2) noise in training mode only: the paper's main regulariser of D."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = float(sigma)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.sigma == 0.0:
            return x
        return x + self.sigma * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class WeightNormLinear(nn.Module):
    """y = (x @ v.T) * g / ||v||_row + b  (Salimans & Kingma 2016).

    ``train_scale=False`` keeps g fixed after initialisation, as the paper's hidden layers do (a ReLU follows,
    so the scale is redundant). With ``pending_init`` set, the next forward pass is the data-dependent
    initialisation: g and b are chosen so that every output unit has zero mean and unit variance on that batch.
    """

    def __init__(self, in_features: int, out_features: int, train_scale: bool = True, init_std: float = 0.05) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.v = nn.Parameter(torch.randn(out_features, in_features) * init_std)
        self.g = nn.Parameter(torch.ones(out_features), requires_grad=train_scale)
        self.b = nn.Parameter(torch.zeros(out_features))
        self.pending_init = False

    def forward(self, x: Tensor) -> Tensor:
        if self.pending_init:
            return self._initialise(x)
        return torch.addcmul(self.b, F.linear(x, self.v), self.g / self.v.norm(dim=1))

    @torch.no_grad()
    def _initialise(self, x: Tensor) -> Tensor:
        self.pending_init = False
        direction = F.linear(x, self.v) / self.v.norm(dim=1)
        mean, std = direction.mean(dim=0), direction.std(dim=0, unbiased=False) + 1e-6
        self.g.copy_(1.0 / std)
        self.b.copy_(-mean / std)
        return (direction - mean) / std

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, train_scale={self.g.requires_grad}"


@torch.no_grad()
def data_dependent_init(network: nn.Module, inputs: Tensor) -> None:
    """Run one forward pass that initialises every :class:`WeightNormLinear` (and conv twin) layer by layer."""
    layers = [m for m in network.modules() if hasattr(m, "pending_init")]
    for layer in layers:
        layer.pending_init = True
    was_training = network.training
    network.train()
    network(inputs)
    network.train(was_training)
    for layer in layers:
        layer.pending_init = False


def flat_size(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape))
