"""Models: the SSGAN, its supervised and Mean Teacher baselines on one shared base, their losses, weight average and schedules."""

from ssgan.models.base import ClassifierModule
from ssgan.models.losses import SSGANObjective
from ssgan.models.mean_teacher import MeanTeacher
from ssgan.models.schedules import linear_decay
from ssgan.models.ssgan import SSGAN
from ssgan.models.supervised import SupervisedBaseline

__all__ = ["SSGAN", "ClassifierModule", "MeanTeacher", "SSGANObjective", "SupervisedBaseline", "linear_decay"]
