"""Patch features learnt from the unlabeled images, fitted once before training (Coates, Lee & Ng 2011).

The paper's discriminator is an MLP on raw pixels, which has no notion of local image structure. This
single-layer feature learner gives it some without a convolutional network's cost per step: it learns
``num_centroids`` prototypes of contrast-normalised, whitened ``patch_size`` x ``patch_size`` patches by
k-means over the training images (labels unused), encodes every patch of an image by the "triangle"
activation ``max(0, mean_k(d) - d_k)`` of its distances to them, averages each encoding over a
``pool_grid`` x ``pool_grid`` grid of image regions, standardises the pooled features and projects them on
their ``output_dim`` principal directions. The fitted transform is deterministic, so the data module applies
it to every image once and training runs on the feature vectors; the buffers travel in checkpoints so that
prediction applies the same transform to raw images.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssgan.errors import SSGANError


def require_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SSGANError(f"data.encoder.{name}={value!r} must be a positive integer")
    return value


@contextlib.contextmanager
def seeded_global_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Seed the global generator of ``device`` for the block and restore its state after, touching no other."""
    if device.type == "cuda":
        with torch.random.fork_rng(devices=[device]), torch.cuda.device(device):
            torch.cuda.manual_seed(seed)
            yield
    else:
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            yield


def region_averages(positions: tuple[int, int], grid: int) -> Tensor:
    """(grid^2, rows * cols) matrix averaging a rows x cols map over the grid of adaptive-pooling regions."""
    rows, cols = positions
    eye = torch.eye(rows * cols).reshape(rows * cols, 1, rows, cols)
    return F.adaptive_avg_pool2d(eye, grid).reshape(rows * cols, grid * grid).T.contiguous()


class PatchKMeansEncoder(nn.Module):
    """Images (N, C, H, W) -> (N, output_dim) features; call :meth:`fit` on training images first.

    ``contrast_eps`` and ``whitening_eps`` regularise the per-patch contrast normalisation and the ZCA
    whitening (in units of the pixel scale of data in [0, 1]); ``output_scale`` sets the overall standard
    deviation of the output, 0.35 by default so that D's noise levels tuned on pixels in [0, 1] (std about
    0.35 on Fashion-MNIST) keep their meaning.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_centroids: int = 200,
        patch_size: int = 5,
        pool_grid: int = 4,
        output_dim: int = 256,
        kmeans_iterations: int = 20,
        num_patches: int = 300_000,
        contrast_eps: float = 0.1,
        whitening_eps: float = 0.01,
        output_scale: float = 0.35,
        batch_size: int = 250,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise SSGANError(
                f"data.encoder needs images (channels, height, width); the data's examples have shape "
                f"{tuple(input_shape)}"
            )
        for name, value in (("num_centroids", num_centroids), ("patch_size", patch_size),
                            ("pool_grid", pool_grid), ("output_dim", output_dim),
                            ("kmeans_iterations", kmeans_iterations), ("num_patches", num_patches),
                            ("batch_size", batch_size)):
            require_positive(name, value)
        channels, height, width = (int(size) for size in input_shape)
        if patch_size > min(height, width):
            raise SSGANError(f"data.encoder.patch_size={patch_size} is larger than the {height}x{width} images")
        positions = (height - patch_size + 1, width - patch_size + 1)
        if pool_grid > min(positions):
            raise SSGANError(
                f"data.encoder.pool_grid={pool_grid} asks for more regions than the {positions[0]}x{positions[1]} "
                f"patch positions of {height}x{width} images with patch_size={patch_size}"
            )
        pooled = num_centroids * pool_grid * pool_grid
        if output_dim > pooled:
            raise SSGANError(
                f"data.encoder.output_dim={output_dim} exceeds the {pooled} pooled features "
                f"(num_centroids x pool_grid^2)"
            )
        self.input_shape = (channels, height, width)
        self.num_centroids = num_centroids
        self.patch_size = patch_size
        self.pool_grid = pool_grid
        self.output_dim = output_dim
        self.kmeans_iterations = kmeans_iterations
        self.num_patches = num_patches
        self.contrast_eps = float(contrast_eps)
        self.whitening_eps = float(whitening_eps)
        self.output_scale = float(output_scale)
        self.batch_size = batch_size
        self.seed = seed
        patch_dim = channels * patch_size * patch_size
        self.register_buffer("patch_mean", torch.zeros(patch_dim))
        self.register_buffer("whitening", torch.eye(patch_dim))
        self.register_buffer("centroids", torch.zeros(num_centroids, patch_dim))
        self.register_buffer("pooled_mean", torch.zeros(pooled))
        self.register_buffer("pooled_scale", torch.ones(pooled))
        self.register_buffer("projection", torch.zeros(pooled, output_dim))
        self.register_buffer("output_low", torch.zeros(output_dim))  # per-feature range of the fitted images
        self.register_buffer("output_high", torch.ones(output_dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.register_buffer("pooling", region_averages(positions, pool_grid), persistent=False)

    def settings(self) -> dict[str, object]:
        """Everything the fitted transform depends on besides the images (the feature cache's key).

        ``batch_size`` is left out: it bounds memory and changes the features by rounding at most.
        """
        return {
            "transform": f"{type(self).__module__}.{type(self).__qualname__}",
            "input_shape": list(self.input_shape),
            "num_centroids": self.num_centroids,
            "patch_size": self.patch_size,
            "pool_grid": self.pool_grid,
            "output_dim": self.output_dim,
            "kmeans_iterations": self.kmeans_iterations,
            "num_patches": self.num_patches,
            "contrast_eps": self.contrast_eps,
            "whitening_eps": self.whitening_eps,
            "output_scale": self.output_scale,
            "seed": self.seed,
        }

    @property
    def output_shape(self) -> tuple[int]:
        return (self.output_dim,)

    # ------------------------------------------------------------------------------------------ encoding
    def _patches(self, images: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, positions, C * p * p), each patch contrast-normalised."""
        patches = F.unfold(images, self.patch_size).transpose(1, 2)
        patches = patches - patches.mean(-1, keepdim=True)
        return patches / torch.sqrt(patches.var(-1, keepdim=True) + self.contrast_eps)

    def _pooled(self, images: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, pool_grid^2 * num_centroids) triangle activations averaged per region.

        In-place element-wise steps and pooling as one matmul keep this at a few passes over the
        (N, positions, num_centroids) activations, the only large tensor.
        """
        whitened = (self._patches(images) - self.patch_mean) @ self.whitening
        centroid_norms = (self.centroids * self.centroids).sum(1)
        distances = torch.baddbmm((whitened * whitened).sum(-1, keepdim=True) + centroid_norms, whitened,
                                  self.centroids.T.expand(len(images), -1, -1), alpha=-2)
        distances.clamp_(min=0).sqrt_()
        mean_distance = distances.mean(-1, keepdim=True)
        activations = distances.neg_().add_(mean_distance).relu_()  # the triangle code: max(0, mean(d) - d)
        return (self.pooling @ activations).flatten(1)

    def _check_images(self, images: Tensor, where: str) -> None:
        if tuple(images.shape[1:]) != self.input_shape:
            raise SSGANError(
                f"{where}: the patch features were built for images of shape {self.input_shape}, "
                f"got {tuple(images.shape[1:])}"
            )

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        if not bool(self.fitted):
            raise SSGANError("the patch features are not fitted yet: call fit() on training images first")
        self._check_images(images, "features")
        outputs = [self._project(self._pooled(images[start:start + self.batch_size].float()))
                   for start in range(0, len(images), self.batch_size)]
        return torch.cat(outputs) if outputs else images.new_zeros(0, self.output_dim)

    def from_unit(self, unit: Tensor) -> Tensor:
        """Map values in [0, 1] to each feature's range over the fitted images, as pixels span [0, 1].

        A generator with a sigmoid output then makes features as bounded as it makes pixels; a linear output
        can run away from the data and blow up the feature-matching loss.
        """
        return torch.addcmul(self.output_low, unit, self.output_high - self.output_low)

    def _project(self, pooled: Tensor) -> Tensor:
        """Standardise and project in chunks: no temporary as large as ``pooled`` (gigabytes for 70k images)."""
        return torch.cat([((chunk - self.pooled_mean) / self.pooled_scale) @ self.projection
                          for chunk in pooled.split(4096)])

    def _pooled_in_batches(self, images: Tensor) -> Tensor:
        """Filled in place: concatenating per-batch results would hold the pooled features twice."""
        pooled = images.new_empty(len(images), self.num_centroids * self.pool_grid ** 2, dtype=torch.float32)
        for start in range(0, len(images), self.batch_size):
            pooled[start:start + self.batch_size] = self._pooled(images[start:start + self.batch_size].float())
        return pooled

    # ------------------------------------------------------------------------------------------- fitting
    @torch.no_grad()
    def fit(self, images: Tensor) -> PatchKMeansEncoder:
        """Learn whitening, centroids, pooled-feature scaling and projection from ``images`` (labels unused)."""
        self.fit_encode(images, torch.arange(len(images)))
        return self

    @torch.no_grad()
    def fit_encode(self, images: Tensor, fit_rows: Tensor) -> Tensor:
        """Fit on ``images[fit_rows]`` and return all of ``images`` encoded, pooling each image only once."""
        self._fit_prototypes(images[fit_rows])
        pooled = self._pooled_in_batches(images)
        self._fit_projection(pooled[fit_rows])  # indexing copies: the projection fit may overwrite it
        encoded = self._project(pooled)
        self._fit_range(encoded[fit_rows])
        return encoded

    def _fit_prototypes(self, images: Tensor) -> None:
        """Patch whitening and the k-means prototypes, from a seeded sample of ``images``' patches."""
        self._check_images(images, "fit")
        if len(images) < 2:
            raise SSGANError(f"fitting the patch features needs at least 2 images, got {len(images)}")
        generator = torch.Generator().manual_seed(self.seed)
        images = images.float()
        positions = (self.input_shape[1] - self.patch_size + 1) * (self.input_shape[2] - self.patch_size + 1)
        image_count = min(len(images), max(1, math.ceil(2 * self.num_patches / positions)))
        sample = images[torch.randperm(len(images), generator=generator)[:image_count]]
        patches = torch.cat([self._patches(sample[i:i + self.batch_size]).flatten(0, 1)
                             for i in range(0, len(sample), self.batch_size)])
        patches = patches[torch.randperm(len(patches), generator=generator)[: self.num_patches]]
        if len(patches) < self.num_centroids:
            raise SSGANError(
                f"data.encoder.num_centroids={self.num_centroids} exceeds the {len(patches)} patches sampled"
            )
        self.patch_mean.copy_(patches.mean(0))
        centred = patches - self.patch_mean
        eigenvalues, eigenvectors = torch.linalg.eigh(centred.T @ centred / (len(centred) - 1))
        self.whitening.copy_(eigenvectors @ torch.diag((eigenvalues.clamp(min=0) + self.whitening_eps).rsqrt())
                             @ eigenvectors.T)
        self.centroids.copy_(self._kmeans(centred @ self.whitening, generator))

    def _fit_projection(self, pooled: Tensor) -> None:
        """Standardisation and principal directions of the pooled features, scaled to ``output_scale``.

        Standardises ``pooled`` in place (callers pass a copy they no longer need) to halve peak memory.
        """
        self.pooled_mean.copy_(pooled.mean(0))
        self.pooled_scale.copy_(pooled.std(0) + 1e-3)
        standardised = pooled.sub_(self.pooled_mean).div_(self.pooled_scale)
        with seeded_global_rng(standardised.device, self.seed):  # pca_lowrank draws from the global RNG
            _, _, directions = torch.pca_lowrank(standardised, q=self.output_dim, center=False, niter=4)
        scale = (standardised @ directions).std().clamp(min=1e-12)
        self.projection.copy_(directions * (self.output_scale / scale))

    def _fit_range(self, encoded: Tensor) -> None:
        """Each feature's minimum and maximum over the fitted images: the range :meth:`from_unit` spans."""
        self.output_low.copy_(encoded.amin(0))
        self.output_high.copy_(encoded.amax(0))
        self.fitted.fill_(True)

    def _kmeans(self, points: Tensor, generator: torch.Generator) -> Tensor:
        """Lloyd's k-means from randomly chosen points; an emptied cluster keeps its previous centroid."""
        centroids = points[torch.randperm(len(points), generator=generator)[: self.num_centroids]].clone()
        for _ in range(self.kmeans_iterations):
            half_norms = -0.5 * (centroids * centroids).sum(1)  # nearest = argmax of p.c - |c|^2 / 2
            nearest = torch.cat([torch.addmm(half_norms, chunk, centroids.T).argmax(1)
                                 for chunk in points.split(16384)])
            counts = torch.bincount(nearest, minlength=self.num_centroids).to(points.dtype)
            sums = torch.zeros_like(centroids).index_add_(0, nearest, points)
            centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
        return centroids

    def extra_repr(self) -> str:
        return (f"input_shape={self.input_shape}, num_centroids={self.num_centroids}, patch_size={self.patch_size}, "
                f"pool_grid={self.pool_grid}, output_dim={self.output_dim}")
