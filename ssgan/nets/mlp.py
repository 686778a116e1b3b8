"""The paper's MNIST networks: a noisy weight-normalised MLP discriminator and a batch-norm MLP generator."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssgan.errors import SSGANError
from ssgan.nets.layers import GaussianNoise, WeightNormLinear, flat_size
from ssgan.nets.minibatch import MinibatchDiscrimination
from ssgan.nets.normalization import ReferenceBatch, check_normalization, generator_norm

OUTPUT_ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "identity": lambda x: x}


class MLPDiscriminator(nn.Module):
    """x (B, *input_shape) -> (logits (B, K), features (B, hidden_widths[feature_layer])).

    Noise N(0, input_noise^2) on the input and N(0, hidden_noise^2) after every hidden ReLU (training only);
    the features for matching are the chosen hidden layer's activations before its noise, as in the paper.
    ``noise_pool_size`` > 0 slices the noise from a block of Gaussians drawn once (see
    :func:`ssgan.nets.layers.pooled_standard_normal`), faster on CPU with image-sized inputs; the recipes use it
    (``conf/model/discriminator/mlp.yaml``). The class default, 0, draws fresh noise for every pass as the
    paper's code did; the scikit-learn estimator keeps it (docs/experiments.md, "D's noise").

    ``minibatch_kernels`` B > 0 adds minibatch discrimination (:mod:`ssgan.nets.minibatch`) after hidden layer
    ``minibatch_layer`` (its activations after noise): B closeness features join the next layer's input.
    ``forward``'s ``group_sizes`` then keeps the sources of one pass (labeled, unlabeled, generated) apart.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden_widths: Sequence[int] = (1000, 500, 250, 250, 250),
        input_noise: float = 0.3,
        hidden_noise: float = 0.5,
        feature_layer: int = -1,
        train_hidden_scale: bool = False,
        init_std: float = 0.1,
        noise_pool_size: int = 0,
        minibatch_kernels: int = 0,
        minibatch_kernel_dim: int = 5,
        minibatch_layer: int = -1,
        minibatch_init_distance: float = 1.0,
    ) -> None:
        super().__init__()
        if isinstance(noise_pool_size, bool) or not isinstance(noise_pool_size, int) or noise_pool_size < 0:
            raise SSGANError(
                f"model.discriminator.noise_pool_size={noise_pool_size!r} must be 0 (fresh noise every pass) or a "
                "positive number of pooled Gaussians"
            )
        if not hidden_widths:
            raise SSGANError("model.discriminator.hidden_widths is empty; expected at least one hidden layer")
        if not -len(hidden_widths) <= feature_layer < len(hidden_widths):
            raise SSGANError(
                f"model.discriminator.feature_layer={feature_layer} is out of range for "
                f"{len(hidden_widths)} hidden layers"
            )
        if not -len(hidden_widths) <= minibatch_layer < len(hidden_widths):
            raise SSGANError(
                f"gan.minibatch_discrimination.layer={minibatch_layer} is out of range for "
                f"{len(hidden_widths)} hidden layers"
            )
        if isinstance(minibatch_kernels, bool) or not isinstance(minibatch_kernels, int) or minibatch_kernels < 0:
            raise SSGANError(f"gan.minibatch_discrimination.kernels={minibatch_kernels!r} must be an integer >= 0")
        self.input_shape = tuple(input_shape)
        self.feature_layer = feature_layer % len(hidden_widths)
        self.input_noise = GaussianNoise(input_noise, noise_pool_size)
        self.minibatch_layer = minibatch_layer % len(hidden_widths) if minibatch_kernels else None
        inputs = [flat_size(self.input_shape), *hidden_widths]  # each layer's input width
        if self.minibatch_layer is not None:
            inputs[self.minibatch_layer + 1] += minibatch_kernels
        self.hidden = nn.ModuleList(
            WeightNormLinear(w_in, w_out, train_scale=train_hidden_scale, init_std=init_std)
            for w_in, w_out in zip(inputs[:-1], hidden_widths)
        )
        self.hidden_noise = GaussianNoise(hidden_noise, noise_pool_size)
        self.classifier = WeightNormLinear(inputs[-1], num_classes, train_scale=True, init_std=init_std)
        self.minibatch = None
        if self.minibatch_layer is not None:
            self.minibatch = MinibatchDiscrimination(
                hidden_widths[self.minibatch_layer], minibatch_kernels, minibatch_kernel_dim,
                init_distance=minibatch_init_distance,
            )

    @property
    def feature_size(self) -> int:
        return self.hidden[self.feature_layer].out_features

    def forward(self, x: Tensor, group_sizes: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
        """``group_sizes``: consecutive sources in ``x`` that minibatch discrimination compares only within
        (None: one group); without minibatch discrimination every example is independent and it is unused."""
        h = self.input_noise(x.flatten(1))
        features = h
        for index, layer in enumerate(self.hidden):
            h = F.relu(layer(h))
            if index == self.feature_layer:
                features = h
            h = self.hidden_noise(h)
            if index == self.minibatch_layer:
                h = self.minibatch(h, group_sizes)
        return self.classifier(h), features


class MLPGenerator(nn.Module):
    """z ~ U[0,1)^noise_dim -> (B, *output_shape): dense -> batch norm -> softplus per hidden layer, then a
    weight-normalised dense layer and the output non-linearity (sigmoid for inputs in [0, 1]).

    ``normalization="virtual"`` replaces batch norm by virtual batch norm against ``reference_batch_size``
    noise vectors drawn when G is built (:mod:`ssgan.nets.normalization`): each sample no longer depends on
    the rest of its batch, at the cost of running the reference batch with every batch.
    """

    def __init__(
        self,
        output_shape: Sequence[int],
        noise_dim: int = 100,
        hidden_widths: Sequence[int] = (500, 500),
        output_activation: str = "sigmoid",
        batch_norm_scale: bool = False,
        normalization: str = "batch",
        reference_batch_size: int = 100,
    ) -> None:
        super().__init__()
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise SSGANError(
                f"gan.generator.output_activation={output_activation!r} is not one of {sorted(OUTPUT_ACTIVATIONS)}"
            )
        check_normalization(normalization, reference_batch_size)
        self.output_shape = tuple(output_shape)
        self.noise_dim = noise_dim
        layers: list[nn.Module] = []
        width_in = noise_dim
        for width in hidden_widths:
            norm = generator_norm(width, normalization, batch_norm_scale, reference_batch_size)
            layers += [nn.Linear(width_in, width, bias=False), norm, nn.Softplus()]
            width_in = width
        self.body = nn.Sequential(*layers)
        self.output = WeightNormLinear(width_in, flat_size(self.output_shape), train_scale=True)
        self.output_activation = output_activation
        virtual = normalization == "virtual"
        self.reference = ReferenceBatch(self.sample_noise(reference_batch_size)) if virtual else None

    def sample_noise(self, count: int, device: torch.device | None = None) -> Tensor:
        return torch.rand(count, self.noise_dim, device=device)

    def forward(self, z: Tensor) -> Tensor:
        if self.reference is None:
            h = self.body(z)
        else:
            h = self.reference.drop(self.body(self.reference.prepend(z)))
        x = OUTPUT_ACTIVATIONS[self.output_activation](self.output(h))
        return x.view(z.shape[0], *self.output_shape)
