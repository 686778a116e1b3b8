"""ssgan: semi-supervised GAN classifiers (Salimans et al. 2016) trained from few labels."""

import ssgan.config  # noqa: F401  (config resolvers, also in launcher workers that unpickle a job)
from ssgan.errors import SSGANError

__all__ = ["SSGANClassifier", "SSGANError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """Import the estimator (torch, Lightning, scikit-learn) only when it is asked for."""
    if name == "SSGANClassifier":
        from ssgan.estimator import SSGANClassifier

        return SSGANClassifier
    raise AttributeError(f"module 'ssgan' has no attribute {name!r}")
