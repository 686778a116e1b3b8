"""Input encoders: transforms fitted on the unlabeled pool once, so the networks train on codes, not pixels."""

from ssgan.data.encoders.patch_kmeans import PatchKMeansEncoder

__all__ = ["PatchKMeansEncoder"]
