"""Small layers of the paper's recipe: Gaussian noise and weight-normalised dense layers with data-dependent init."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


NOISE_POOL_SEED = 0x5EED
NOISE_POOL_MIN_RATIO = 16
_noise_pools: dict[tuple[torch.device, torch.dtype, int], Tensor] = {}


def pooled_standard_normal(like: Tensor, pool_size: int) -> Tensor:
    """N(0, 1) numbers shaped like ``like``: a slice, at an offset drawn from torch's seeded generator, of a
    block of ``pool_size`` numbers drawn once per process, device and dtype.

    Why: torch's CPU generator is a one-thread Mersenne twister, and the paper's MLP discriminator draws
    millions of Gaussians per training step; a slice costs one random integer. The block comes from its own fixed-seed generator, so whether it already exists does not
    change the run's random stream (two runs with one seed in one process stay equal), and the run's seed
    still decides every offset. A slice over 1/16 of the block falls back to fresh draws, so two slices of one
    step share few numbers.
    """
    count = like.numel()
    if pool_size < NOISE_POOL_MIN_RATIO * count:
        return torch.randn_like(like)
    key = (like.device, like.dtype, pool_size)
    pool = _noise_pools.get(key)
    if pool is None:
        generator = torch.Generator().manual_seed(NOISE_POOL_SEED)
        pool = torch.randn(pool_size, generator=generator).to(device=like.device, dtype=like.dtype)
        _noise_pools[key] = pool
    offset = int(torch.randint(pool_size - count + 1, ()))
    return pool[offset:offset + count].view(like.shape)


def clear_noise_pools() -> None:
    """Free the pooled blocks (they are drawn again on next use, with the same numbers)."""
    _noise_pools.clear()


class GaussianNoise(nn.Module):
    """Adds N(0, sigma^2) noise in training mode only: the paper's main regulariser of D.

    ``pool_size`` > 0 takes the noise from :func:`pooled_standard_normal` instead of fresh draws, unless
    ``fresh_draws`` is set (:func:`draw_fresh_noise`): a captured training step needs it, since a pool slice's
    offset is a host integer that a CUDA graph would replay unchanged.
    """

    def __init__(self, sigma: float, pool_size: int = 0) -> None:
        super().__init__()
        self.sigma = float(sigma)
        self.pool_size = int(pool_size)
        self.fresh_draws = False

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.sigma == 0.0:
            return x
        pooled = self.pool_size and not self.fresh_draws
        noise = pooled_standard_normal(x, self.pool_size) if pooled else torch.randn_like(x)
        return x.add(noise, alpha=self.sigma)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}" + (f", pool_size={self.pool_size}" if self.pool_size else "")


def draw_fresh_noise(network: nn.Module, fresh: bool = True) -> None:
    """Make every :class:`GaussianNoise` layer of ``network`` draw fresh device noise (``fresh``) or use its pool."""
    for module in network.modules():
        if isinstance(module, GaussianNoise):
            module.fresh_draws = fresh


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


def _as_matmul_operand(t: Tensor, dtype: torch.dtype | None) -> Tensor:
    """``t`` as autocast hands it to a matmul: in the autocast dtype, except float64, which autocast leaves."""
    if dtype is None or t.dtype in (dtype, torch.float64) or not t.is_floating_point():
        return t
    return t.to(dtype)


class _WeightNormLinearFunction(torch.autograd.Function):
    """y = (x @ v.T) * s + b with s = g / ||v||_row, its backward written out by hand.

    Autograd through ``v.norm`` makes several passes over v (its own division, product, zero-norm mask and the
    sum with the matmul's gradient); here the norm's share of v's gradient, -v_i * s_i / ||v_i||^2 *
    sum_n G_ni (x_n . v_i), joins the matmul's gradient in one pass. Under autocast the matmuls multiply the
    same low-precision operands as ``F.linear`` would, each cast once per pass (x and v in the forward, saved
    for the backward; the upstream gradient once for both of its matmuls), and the gradients are summed in
    each input's own dtype.
    """

    @staticmethod
    def forward(ctx, x: Tensor, v: Tensor, g: Tensor, b: Tensor) -> Tensor:  # type: ignore[override]
        norm = v.norm(dim=1)
        scale = g / norm
        dtype = _autocast_dtype(x.device.type)
        x_mm, v_mm = _as_matmul_operand(x, dtype), _as_matmul_operand(v, dtype)
        direction = F.linear(x_mm, v_mm)
        ctx.x_dtype = x.dtype
        ctx.save_for_backward(x_mm, v, v_mm, norm, scale, direction)
        return torch.addcmul(b, direction, scale)

    @staticmethod
    @once_differentiable  # no double backward: the saved norm and scale are not rebuilt as functions of v
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x_mm, v, v_mm, norm, scale, direction = ctx.saved_tensors
        needs_x, needs_v, needs_g, needs_b = ctx.needs_input_grad
        scaled = grad * scale
        scaled_mm = scaled.to(v_mm.dtype)  # cast once for both matmuls
        grad_x = grad_v = grad_g = None
        if needs_x:
            grad_x = (scaled_mm @ v_mm).to(ctx.x_dtype)
        if needs_v:
            grad_v = (scaled_mm.T @ x_mm).to(v.dtype)
        if needs_v or needs_g:
            along = (grad * direction).sum(0)  # sum_n G_ni (x_n . v_i)
            if needs_g:
                grad_g = along / norm
            if needs_v:
                grad_v.addcmul_(v, (-along * scale / norm.square()).unsqueeze(1))
        return grad_x, grad_v, grad_g, grad.sum(0) if needs_b else None


class WeightNormLinear(nn.Module):
    """y = (x @ v.T) * g / ||v||_row + b  (Salimans & Kingma 2016).

    ``train_scale=False`` keeps g fixed after initialisation, as the paper's hidden layers do (a ReLU follows,
    so the scale is redundant). With ``pending_init`` set, the next forward pass is the data-dependent
    initialisation: g and b are chosen so that every output unit has zero mean and standard deviation
    ``init_scale`` (1, or 0.1 for the conv recipe's output layer) on that batch.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        train_scale: bool = True,
        init_std: float = 0.05,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.v = nn.Parameter(torch.randn(out_features, in_features) * init_std)
        self.g = nn.Parameter(torch.ones(out_features), requires_grad=train_scale)
        self.b = nn.Parameter(torch.zeros(out_features))
        self.init_scale = float(init_scale)
        self.pending_init = False

    def forward(self, x: Tensor) -> Tensor:
        if self.pending_init:
            return self._initialise(x)
        return _WeightNormLinearFunction.apply(x, self.v, self.g, self.b)

    @torch.no_grad()
    def _initialise(self, x: Tensor) -> Tensor:
        self.pending_init = False
        direction = F.linear(x, self.v) / self.v.norm(dim=1)
        mean, std = direction.mean(dim=0), direction.std(dim=0, unbiased=False) + 1e-6
        self.g.copy_(self.init_scale / std)
        self.b.copy_(-mean * self.init_scale / std)
        return (direction - mean) * (self.init_scale / std)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, train_scale={self.g.requires_grad}"


class WeightNormConv2d(nn.Module):
    """Weight-normalised convolution: each output channel's filter v_c is scaled to norm g_c, plus bias b.

    Same ``pending_init`` protocol as :class:`WeightNormLinear`: the next forward pass sets g and b so every
    output channel has zero mean and standard deviation ``init_scale`` over batch and positions.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        train_scale: bool = False,
        init_std: float = 0.05,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.v = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) * init_std)
        self.g = nn.Parameter(torch.ones(out_channels), requires_grad=train_scale)
        self.b = nn.Parameter(torch.zeros(out_channels))
        self.init_scale = float(init_scale)
        self.pending_init = False

    def forward(self, x: Tensor) -> Tensor:
        if self.pending_init:
            return self._initialise(x)
        weight = self.v * (self.g / self.v.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
        return F.conv2d(x, weight, self.b, stride=self.stride, padding=self.padding)

    @torch.no_grad()
    def _initialise(self, x: Tensor) -> Tensor:
        self.pending_init = False
        unit = self.v / self.v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        direction = F.conv2d(x, unit, stride=self.stride, padding=self.padding)
        mean = direction.mean(dim=(0, 2, 3))
        std = direction.std(dim=(0, 2, 3), unbiased=False) + 1e-6
        self.g.copy_(self.init_scale / std)
        self.b.copy_(-mean * self.init_scale / std)
        return (direction - mean.view(1, -1, 1, 1)) * (self.init_scale / std).view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, train_scale={self.g.requires_grad}"
        )


class WeightNormConvTranspose2d(nn.Module):
    """Weight-normalised transposed convolution (x2 upsampling in the conv generator's output layer).

    The weight (in, out, k, k) is normalised per output channel over (in, k, k), then scaled by g_c.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 5,
        stride: int = 2,
        train_scale: bool = True,
        init_std: float = 0.05,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.padding, self.output_padding = (kernel_size - 1) // 2, stride - 1
        self.v = nn.Parameter(torch.randn(in_channels, out_channels, kernel_size, kernel_size) * init_std)
        self.g = nn.Parameter(torch.ones(out_channels), requires_grad=train_scale)
        self.b = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        norm = self.v.transpose(0, 1).flatten(1).norm(dim=1)
        weight = self.v * (self.g / norm).view(1, -1, 1, 1)
        return F.conv_transpose2d(
            x, weight, self.b, stride=self.stride, padding=self.padding, output_padding=self.output_padding
        )

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"


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
