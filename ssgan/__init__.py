"""ssgan: semi-supervised GAN classifiers (Salimans et al. 2016) trained from few labels."""

from ssgan.errors import SSGANError

__all__ = ["SSGANError"]
__version__ = "0.1.0"
