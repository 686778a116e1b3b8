"""ssgan: semi-supervised GAN classifiers (Salimans et al. 2016) trained from few labels."""

import ssgan.config  # noqa: F401  (config resolvers, also in launcher workers that unpickle a job)
from ssgan.errors import SSGANError

__all__ = ["SSGANError"]
__version__ = "0.1.0"
