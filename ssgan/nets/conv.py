"""The paper's CIFAR-10/SVHN networks: a weight-normalised conv discriminator and a DCGAN-style generator."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssgan.errors import SSGANError
from ssgan.nets.layers import GaussianNoise, WeightNormConv2d, WeightNormConvTranspose2d, WeightNormLinear
from ssgan.nets.minibatch import MinibatchDiscrimination
from ssgan.nets.mlp import OUTPUT_ACTIVATIONS
from ssgan.nets.normalization import ReferenceBatch, check_normalization, generator_norm


class ConvDiscriminator(nn.Module):
    """x (B, C, H, W) -> (logits (B, K), features (B, top_width)).

    Per width w in ``widths``: two 3x3 convs and a stride-2 3x3 conv (w channels each), then dropout
    ``block_dropout``; then a valid 3x3 conv, two 1x1 (NIN) convs of ``top_width`` channels, global average
    pooling (the features for matching) and a weight-normalised dense layer to K logits. Every conv is
    weight-normalised with leaky ReLU; the input gets dropout ``input_dropout`` and optional Gaussian noise.

    ``minibatch_kernels`` B > 0 adds minibatch discrimination on the pooled features, before the dense layer
    (as the paper's CIFAR-10 code); ``minibatch_layer`` must be -1, the only dense position here.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        widths: Sequence[int] = (96, 192),
        top_width: int = 192,
        input_dropout: float = 0.2,
        input_noise: float = 0.0,
        block_dropout: float = 0.5,
        leaky_slope: float = 0.2,
        train_hidden_scale: bool = False,
        init_std: float = 0.05,
        output_init_scale: float = 0.1,
        minibatch_kernels: int = 0,
        minibatch_kernel_dim: int = 5,
        minibatch_layer: int = -1,
        minibatch_init_distance: float = 1.0,
    ) -> None:
        super().__init__()
        if minibatch_layer != -1:
            raise SSGANError(
                f"gan.minibatch_discrimination.layer={minibatch_layer!r}: the conv discriminator takes -1 only "
                "(after global pooling)"
            )
        if isinstance(minibatch_kernels, bool) or not isinstance(minibatch_kernels, int) or minibatch_kernels < 0:
            raise SSGANError(f"gan.minibatch_discrimination.kernels={minibatch_kernels!r} must be an integer >= 0")
        self.input_shape = tuple(input_shape)
        if len(self.input_shape) != 3:
            raise SSGANError(
                f"model.discriminator: the conv discriminator needs images (C, H, W) but the data is "
                f"{self.input_shape}; use model/discriminator=mlp for tables and flat inputs"
            )
        if not widths:
            raise SSGANError("model.discriminator.widths is empty; expected at least one block width")
        channels, height, width = self.input_shape
        smallest = min(height, width)
        for _ in widths:
            smallest = (smallest + 1) // 2
        if smallest < 3:
            raise SSGANError(
                f"model.discriminator: {height}x{width} inputs shrink to {smallest}x{smallest} after "
                f"{len(widths)} stride-2 blocks; the valid 3x3 conv needs at least 3x3 (use fewer widths)"
            )
        self.leaky_slope = leaky_slope
        self.input_noise = GaussianNoise(input_noise)
        self.input_dropout = nn.Dropout(input_dropout)

        def conv(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0) -> WeightNormConv2d:
            return WeightNormConv2d(c_in, c_out, kernel, stride, padding, train_scale=train_hidden_scale, init_std=init_std)

        layers: list[nn.Module] = []
        c_in = channels
        for c_out in widths:
            layers += [conv(c_in, c_out, 3, 1, 1), conv(c_out, c_out, 3, 1, 1), conv(c_out, c_out, 3, 2, 1)]
            layers.append(nn.Dropout(block_dropout))
            c_in = c_out
        layers += [conv(c_in, top_width, 3), conv(top_width, top_width, 1), conv(top_width, top_width, 1)]
        self.body = nn.ModuleList(layers)
        self.feature_size = top_width
        self.minibatch = None
        if minibatch_kernels:
            self.minibatch = MinibatchDiscrimination(
                top_width, minibatch_kernels, minibatch_kernel_dim, init_distance=minibatch_init_distance
            )
        self.classifier = WeightNormLinear(
            top_width + minibatch_kernels, num_classes, train_scale=True, init_std=init_std,
            init_scale=output_init_scale,
        )
        # Channels-last filters and activations let oneDNN/cuDNN pick their fastest kernels; the maths is unchanged.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor, group_sizes: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
        """``group_sizes``: consecutive sources in ``x`` that minibatch discrimination compares only within
        (None: one group); unused without minibatch discrimination."""
        h = self.input_dropout(self.input_noise(x.contiguous(memory_format=torch.channels_last)))
        for layer in self.body:
            h = layer(h) if isinstance(layer, nn.Dropout) else F.leaky_relu(layer(h), self.leaky_slope)
        features = h.mean(dim=(2, 3))
        top = self.minibatch(features, group_sizes) if self.minibatch is not None else features
        return self.classifier(top), features


class ConvGenerator(nn.Module):
    """z ~ U[0,1)^noise_dim -> (B, C, H, W): dense to (widths[0], H/2^n, W/2^n) with batch norm and ReLU, then
    5x5 stride-2 transposed convs with batch norm + ReLU, the last one weight-normalised with ``tanh`` (data in
    [-1, 1]) or ``sigmoid`` (data in [0, 1]). n = len(widths); the paper's 32x32 net is widths [512, 256, 128].

    ``normalization="virtual"`` uses virtual batch norm against a fixed reference batch instead (see
    :class:`ssgan.nets.mlp.MLPGenerator`)."""

    def __init__(
        self,
        output_shape: Sequence[int],
        noise_dim: int = 100,
        widths: Sequence[int] = (512, 256, 128),
        output_activation: str = "tanh",
        batch_norm_scale: bool = False,
        init_std: float = 0.05,
        normalization: str = "batch",
        reference_batch_size: int = 100,
    ) -> None:
        super().__init__()
        self.output_shape = tuple(output_shape)
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise SSGANError(
                f"gan.generator.output_activation={output_activation!r} is not one of {sorted(OUTPUT_ACTIVATIONS)}"
            )
        check_normalization(normalization, reference_batch_size)
        if len(self.output_shape) != 3 or not widths:
            raise SSGANError(
                f"gan.generator: the conv generator makes images (C, H, W) but the data is {self.output_shape}; "
                "use gan/generator=mlp for tables and flat inputs"
            )
        channels, height, width = self.output_shape
        factor = 2 ** len(widths)
        if height % factor or width % factor:
            raise SSGANError(
                f"gan.generator: {height}x{width} is not divisible by 2^{len(widths)} (one x2 upsampling per "
                f"entry of gan.generator.widths={list(widths)})"
            )
        self.noise_dim = noise_dim
        self.base = (widths[0], height // factor, width // factor)
        self.project = nn.Linear(noise_dim, widths[0] * self.base[1] * self.base[2], bias=False)
        self.project_norm = generator_norm(
            self.project.out_features, normalization, batch_norm_scale, reference_batch_size
        )
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            deconv = nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1, bias=False)
            nn.init.normal_(deconv.weight, std=init_std)
            norm = generator_norm(c_out, normalization, batch_norm_scale, reference_batch_size, image=True)
            layers += [deconv, norm, nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.output = WeightNormConvTranspose2d(widths[-1], channels, 5, stride=2, init_std=init_std)
        self.output_activation = output_activation
        nn.init.normal_(self.project.weight, std=init_std)
        virtual = normalization == "virtual"
        self.reference = ReferenceBatch(self.sample_noise(reference_batch_size)) if virtual else None

    def sample_noise(self, count: int, device: torch.device | None = None) -> Tensor:
        return torch.rand(count, self.noise_dim, device=device)

    def forward(self, z: Tensor) -> Tensor:
        if self.reference is not None:
            z = self.reference.prepend(z)
        h = self.body(F.relu(self.project_norm(self.project(z))).view(z.shape[0], *self.base))
        if self.reference is not None:
            h = self.reference.drop(h)
        return OUTPUT_ACTIVATIONS[self.output_activation](self.output(h))
