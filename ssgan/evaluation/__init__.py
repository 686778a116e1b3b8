"""Judging G's samples: Inception score and FID under a judge network, never the SSGAN's own D.

A judge maps images to class logits (for the Inception score) and a feature vector (for FID). Two kinds:
a small classifier trained once on every training label of the run's data (:class:`ClassifierJudgeSpec`,
cached on disk), and Inception-v3 from a weights file on disk (:class:`InceptionJudgeSpec`).
"""

from ssgan.evaluation.classifier_judge import ClassifierJudge, ClassifierJudgeSpec, JudgeNetwork
from ssgan.evaluation.inception_judge import INCEPTION_WEIGHTS_FILE, InceptionJudge, InceptionJudgeSpec
from ssgan.evaluation.judge import Judge, JudgeSpec
from ssgan.evaluation.records import append_entry, read_entries
from ssgan.evaluation.scores import SampleScores, sample_quality

__all__ = [
    "INCEPTION_WEIGHTS_FILE",
    "ClassifierJudge",
    "ClassifierJudgeSpec",
    "InceptionJudge",
    "InceptionJudgeSpec",
    "Judge",
    "JudgeNetwork",
    "JudgeSpec",
    "SampleScores",
    "append_entry",
    "read_entries",
    "sample_quality",
]
