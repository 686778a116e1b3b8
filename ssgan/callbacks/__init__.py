"""Callbacks: throughput, checkpoint IO, run identity, interrupts, the divergence guard, GAN health with sample
grids, D's memorisation of its pool, progress lines, the CSV logger a resume continues, and the opt-in sample-quality evaluation."""

from ssgan.callbacks.checkpointing import AtomicCheckpointIO, LastCheckpoint
from ssgan.callbacks.divergence import DivergenceGuard, TrainingDiverged
from ssgan.callbacks.health import GANHealth
from ssgan.callbacks.interrupt import GracefulInterrupt, RunInterrupted
from ssgan.callbacks.logs import AppendingCSVLogger
from ssgan.callbacks.memorisation import MemorisationProbe
from ssgan.callbacks.progress import EpochProgress
from ssgan.callbacks.rank_noise import DistinctNoisePerRank
from ssgan.callbacks.sample_quality import SampleQuality
from ssgan.callbacks.run_identity import RunIdentity, run_identity
from ssgan.callbacks.throughput import TrainingThroughput

__all__ = [
    "AppendingCSVLogger",
    "AtomicCheckpointIO",
    "DistinctNoisePerRank",
    "DivergenceGuard",
    "EpochProgress",
    "GANHealth",
    "GracefulInterrupt",
    "LastCheckpoint",
    "MemorisationProbe",
    "RunIdentity",
    "RunInterrupted",
    "SampleQuality",
    "TrainingDiverged",
    "TrainingThroughput",
    "run_identity",
]
