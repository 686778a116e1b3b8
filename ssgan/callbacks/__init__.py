"""Callbacks: throughput, checkpoint IO, the divergence guard, GAN health with sample grids, progress lines."""

from ssgan.callbacks.checkpointing import AtomicCheckpointIO, LastCheckpoint
from ssgan.callbacks.divergence import DivergenceGuard, TrainingDiverged
from ssgan.callbacks.health import GANHealth
from ssgan.callbacks.progress import EpochProgress
from ssgan.callbacks.rank_noise import DistinctNoisePerRank
from ssgan.callbacks.throughput import TrainingThroughput

__all__ = [
    "AtomicCheckpointIO",
    "DistinctNoisePerRank",
    "DivergenceGuard",
    "EpochProgress",
    "GANHealth",
    "LastCheckpoint",
    "TrainingDiverged",
    "TrainingThroughput",
]
