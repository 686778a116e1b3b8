"""Networks: discriminators return (K logits, features for matching); generators map noise to inputs."""

from ssgan.nets.conv import ConvDiscriminator, ConvGenerator
from ssgan.nets.layers import (
    GaussianNoise,
    WeightNormConv2d,
    WeightNormConvTranspose2d,
    WeightNormLinear,
    data_dependent_init,
)
from ssgan.nets.minibatch import MinibatchDiscrimination
from ssgan.nets.mlp import MLPDiscriminator, MLPGenerator
from ssgan.nets.normalization import VirtualBatchNorm

__all__ = [
    "ConvDiscriminator",
    "ConvGenerator",
    "GaussianNoise",
    "MLPDiscriminator",
    "MLPGenerator",
    "MinibatchDiscrimination",
    "VirtualBatchNorm",
    "WeightNormConv2d",
    "WeightNormConvTranspose2d",
    "WeightNormLinear",
    "data_dependent_init",
]
