"""Minibatch discrimination (Salimans et al. 2016, section 3.2): D sees how close each example is to the others
of its own batch, so a generator that collapses onto a few points is easy to tell from real data."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from ssgan.errors import SSGANError


def group_sizes_of(count: int, group_sizes: Sequence[int] | None) -> list[int]:
    """The batch's groups as host integers: ``None`` is one group of all ``count`` examples."""
    if group_sizes is None:
        return [count]
    sizes = [int(size) for size in group_sizes]
    if sum(sizes) != count or any(size < 1 for size in sizes):
        raise ValueError(f"group_sizes={sizes} must be positive and add up to the batch of {count} examples")
    return sizes


def within_group_closeness(projected: Tensor, group_sizes: Sequence[int]) -> Tensor:
    """o(x_i)_b = sum_{j != i, j in i's group} exp(-||M_{i,b} - M_{j,b}||_1): projected M (N, B, C) -> o (N, B).

    Groups are padded to the largest one and compared as one batched ``cdist`` per kernel; padded and
    self pairs are masked out, so examples of different groups never meet.
    """
    count, kernels, dim = projected.shape
    sizes = group_sizes_of(count, group_sizes)
    largest = max(sizes)
    padded = pad_sequence(list(projected.split(sizes)), batch_first=True)  # (G, n, B, C)
    per_kernel = padded.permute(0, 2, 1, 3).reshape(len(sizes) * kernels, largest, dim)
    distance = torch.cdist(per_kernel, per_kernel, p=1).view(len(sizes), kernels, largest, largest)
    positions = torch.arange(largest, device=projected.device)
    present = pad_sequence(  # (G, n); built on the device from host sizes, so no copy or sync per step
        [torch.ones(size, dtype=torch.bool, device=projected.device) for size in sizes], batch_first=True
    )
    others = present[:, None, None, :] & (positions.unsqueeze(1) != positions.unsqueeze(0))  # (G, 1, n, n)
    closeness = (torch.exp(-distance) * others).sum(dim=-1).transpose(1, 2)  # (G, n, B)
    return torch.cat([rows[:size] for rows, size in zip(closeness, sizes)])


class MinibatchDiscrimination(nn.Module):
    """f (N, A) -> [f, o(f)] (N, A + B): M_i = f_i T with T (A, B, C), o as in :func:`within_group_closeness`.

    The sum leaves out j = i: its term is always exp(0) = 1 and says nothing about the batch. ``group_sizes``
    splits the batch into sources (labeled, unlabeled, generated) that are never compared with each other;
    ``None`` is one group, so in evaluation o depends on which examples share the batch. With
    ``pending_init`` set, the next pass rescales each kernel of T so the mean L1 distance from an example to
    its nearest neighbour in that batch is ``init_distance`` (the exponentials then start in their sensitive
    range whatever the features' scale).
    """

    def __init__(
        self, in_features: int, kernels: int, kernel_dim: int, init_std: float = 0.05, init_distance: float = 1.0
    ) -> None:
        super().__init__()
        for name, value in (("kernels", kernels), ("kernel_dim", kernel_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SSGANError(f"gan.minibatch_discrimination.{name}={value!r} must be an integer >= 1")
        if isinstance(init_distance, bool) or not isinstance(init_distance, (int, float)) or not init_distance > 0:
            raise SSGANError(f"gan.minibatch_discrimination.init_distance={init_distance!r} must be a number > 0")
        self.in_features, self.kernels, self.kernel_dim = in_features, kernels, kernel_dim
        self.weight = nn.Parameter(torch.randn(in_features, kernels, kernel_dim) * init_std)  # T
        self.init_distance = float(init_distance)
        self.pending_init = False

    @property
    def out_features(self) -> int:
        return self.in_features + self.kernels

    def forward(self, features: Tensor, group_sizes: Sequence[int] | None = None) -> Tensor:
        if self.pending_init:
            self._initialise(features)
        projected = (features @ self.weight.flatten(1)).view(-1, self.kernels, self.kernel_dim)
        return torch.cat([features, within_group_closeness(projected, group_sizes_of(len(features), group_sizes))], 1)

    @torch.no_grad()
    def _initialise(self, features: Tensor) -> None:
        self.pending_init = False
        if features.shape[0] < 2:  # no neighbours to measure
            return
        projected = (features @ self.weight.flatten(1)).view(-1, self.kernels, self.kernel_dim).transpose(0, 1)
        distance = torch.cdist(projected, projected, p=1)  # (B, N, N)
        distance.diagonal(dim1=1, dim2=2).fill_(float("inf"))
        nearest = distance.min(dim=2).values.mean(dim=1).clamp_min(1e-12)  # (B,)
        self.weight.mul_((self.init_distance / nearest).view(1, -1, 1))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, kernels={self.kernels}, kernel_dim={self.kernel_dim}"
