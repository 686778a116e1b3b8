"""Networks: discriminators return (K logits, features for matching); generators map noise to inputs."""

from ssgan.nets.layers import GaussianNoise, WeightNormLinear, data_dependent_init
from ssgan.nets.mlp import MLPDiscriminator, MLPGenerator

__all__ = ["GaussianNoise", "MLPDiscriminator", "MLPGenerator", "WeightNormLinear", "data_dependent_init"]
