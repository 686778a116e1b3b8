"""The generator's normalisation: batch norm (the paper's semi-supervised recipe) or virtual batch norm
(Salimans et al. 2016, section 3.5), which makes each sample independent of the others in its batch."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ssgan.errors import SSGANError

NORMALIZATIONS = ("batch", "virtual")


def check_normalization(normalization: str, reference_batch_size: int) -> None:
    """Refuse an unknown normalisation or a reference batch too small to have statistics, naming the key."""
    if normalization not in NORMALIZATIONS:
        raise SSGANError(f"gan.generator.normalization={normalization!r} is not one of {NORMALIZATIONS}")
    size = reference_batch_size
    if normalization == "virtual" and (isinstance(size, bool) or not isinstance(size, int) or size < 2):
        raise SSGANError(f"gan.generator.reference_batch_size={size!r} must be an integer >= 2")


class VirtualBatchNorm(nn.Module):
    """Normalises every example with the statistics of a fixed reference batch and of the example itself.

    Input (R + N, F) or (R + N, F, H, W), the reference batch in the first R rows. The reference rows are
    normalised with their own statistics (over examples and positions). Another example x, with its own
    mean m_x and variance s_x over positions (m_x = x and s_x = 0 for dense layers), uses
        mu = (R mu_ref + m_x) / (R + 1)
        var = (R (var_ref + (mu_ref - mu)^2) + s_x + (m_x - mu)^2) / (R + 1)
    i.e. the moments of the reference batch weighted R/(R+1) and x weighted 1/(R+1). Output:
    (x - mu) / sqrt(var + eps) * gamma + beta per feature; gamma is fixed at 1 unless ``learn_scale``.
    """

    def __init__(self, num_features: int, reference_size: int, learn_scale: bool = False, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features, self.reference_size, self.eps = num_features, reference_size, eps
        self.weight = nn.Parameter(torch.ones(num_features), requires_grad=learn_scale)
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, h: Tensor) -> Tensor:
        positions = tuple(range(2, h.dim()))
        reference, examples = h[: self.reference_size], h[self.reference_size :]
        reference_mean = reference.mean(dim=(0, *positions), keepdim=True)
        reference_var = reference.var(dim=(0, *positions), correction=0, keepdim=True)
        if positions:
            own_mean = examples.mean(dim=positions, keepdim=True)
            own_var = examples.var(dim=positions, correction=0, keepdim=True)
        else:
            own_mean, own_var = examples, torch.zeros_like(examples)
        share = 1.0 / (self.reference_size + 1)  # the example's weight; the reference batch has the rest
        mean = torch.lerp(reference_mean, own_mean, share)
        var = torch.lerp(reference_var + (reference_mean - mean).square(), own_var + (own_mean - mean).square(), share)
        normalised = torch.cat([
            (reference - reference_mean) * torch.rsqrt(reference_var + self.eps),
            (examples - mean) * torch.rsqrt(var + self.eps),
        ])
        shape = (1, -1) + (1,) * len(positions)
        return torch.addcmul(self.bias.view(shape), normalised, self.weight.view(shape))

    def extra_repr(self) -> str:
        return f"{self.num_features}, reference_size={self.reference_size}, learn_scale={self.weight.requires_grad}"


class ReferenceBatch(nn.Module):
    """The reference batch's noise, drawn once when G is built and kept in checkpoints (a buffer), so resumed
    runs and samples see the same reference statistics."""

    def __init__(self, noise: Tensor) -> None:
        super().__init__()
        self.register_buffer("noise", noise)

    @property
    def size(self) -> int:
        return self.noise.shape[0]

    def prepend(self, z: Tensor) -> Tensor:
        """(N, noise_dim) -> (R + N, noise_dim): the reference noise first, as :class:`VirtualBatchNorm` expects."""
        return torch.cat([self.noise.to(z.dtype), z])

    def drop(self, h: Tensor) -> Tensor:
        """The rows of the real examples, once no normalisation layer follows."""
        return h[self.size :]


def generator_norm(
    num_features: int, normalization: str, learn_scale: bool, reference_size: int, image: bool = False
) -> nn.Module:
    """G's normalisation layer: batch norm (per batch; running statistics in evaluation) or virtual batch norm.

    The paper's generator batch norm learns a shift only; ``learn_scale`` also trains the scale.
    """
    if normalization == "virtual":
        return VirtualBatchNorm(num_features, reference_size, learn_scale)
    norm = nn.BatchNorm2d(num_features) if image else nn.BatchNorm1d(num_features)
    if not learn_scale:
        norm.weight.requires_grad_(False)
    return norm
