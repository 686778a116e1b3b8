"""ssgan: semi-supervised GAN classifiers (Salimans et al. 2016) trained from few labels.

    from ssgan import SSGANClassifier          # scikit-learn estimator, y == -1 marks unlabeled rows
    from ssgan import compose, build           # a Hydra config -> (datamodule, model, trainer)
"""

from ssgan.build import build, compose  # also registers the config resolvers (launcher workers import ssgan)
from ssgan.errors import SSGANError
from ssgan.models import SSGAN, SSGANObjective, SupervisedBaseline

__all__ = ["SSGAN", "SSGANClassifier", "SSGANError", "SSGANObjective", "SupervisedBaseline", "build", "compose"]
__version__ = "0.2.0"


def __getattr__(name: str):
    """Import the estimator (and scikit-learn) only when it is asked for."""
    if name == "SSGANClassifier":
        from ssgan.sklearn import SSGANClassifier

        return SSGANClassifier
    raise AttributeError(f"module 'ssgan' has no attribute {name!r}")
