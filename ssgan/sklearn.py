"""``SSGANClassifier``: the SSGAN (or its supervised baseline) as a scikit-learn estimator on tabular X.

Semi-supervised like ``sklearn.semi_supervised``: ``y == -1`` marks an unlabeled row. Underneath are the same
Lightning modules and data module as ``ssgan-train``, on an in-memory source, trained by a quiet CPU Trainer.

Estimator checks (``sklearn.utils.estimator_checks``): all pass except ``check_classifiers_classes``, which
uses -1 as an ordinary class label while here it marks unlabeled rows (as in ``sklearn.semi_supervised``).
The sample-weight checks do not run (``fit`` takes no ``sample_weight``), nor the pandas and array-API ones
where those libraries are absent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ssgan.build import build, compose
from ssgan.runtime.quiet import quiet_third_party
from ssgan.data.sources import InMemorySource

UNLABELED = -1
MODELS = ("ssgan", "supervised")


class SSGANClassifier(ClassifierMixin, BaseEstimator):
    """Semi-supervised GAN classifier (Salimans et al. 2016) with an MLP discriminator, for (n_samples, n_features) X.

    Parameters are plain values (no nested objects), so ``get_params``/``set_params``, ``clone`` and grid search
    work. ``model="supervised"`` trains the same discriminator on the labeled rows only (the baseline).
    ``generator_output`` is G's output non-linearity: ``identity`` for standardised features, ``sigmoid`` for
    features in [0, 1]. An epoch is one pass over all rows (the unlabeled pool) in batches of ``batch_size``.
    """

    def __init__(
        self,
        model: str = "ssgan",
        hidden_widths: Sequence[int] = (500, 250, 250),
        generator_widths: Sequence[int] = (500, 500),
        noise_dim: int = 100,
        input_noise: float = 0.3,
        hidden_noise: float = 0.5,
        generator_output: str = "identity",
        learning_rate: float = 0.003,
        beta1: float = 0.5,
        max_epochs: int = 50,
        batch_size: int = 100,
        unlabeled_weight: float = 1.0,
        use_ema: bool = True,
        ema_decay: float = 0.999,
        random_state: int = 0,
        accelerator: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.hidden_widths = hidden_widths
        self.generator_widths = generator_widths
        self.noise_dim = noise_dim
        self.input_noise = input_noise
        self.hidden_noise = hidden_noise
        self.generator_output = generator_output
        self.learning_rate = learning_rate
        self.beta1 = beta1
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.unlabeled_weight = unlabeled_weight
        self.use_ema = use_ema
        self.ema_decay = ema_decay
        self.random_state = random_state
        self.accelerator = accelerator
        self.verbose = verbose

    # ------------------------------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any) -> "SSGANClassifier":
        """Train on every row of X; rows whose label is -1 are unlabeled. Returns self."""
        X, y = validate_data(self, X, y, dtype=np.float32, ensure_min_samples=2)
        self._check_parameters()
        unlabeled = unlabeled_mask(y)
        if unlabeled.all():
            raise ValueError("y has no labeled rows (every label is -1); SSGANClassifier needs labeled examples")
        labeled_targets = y[~unlabeled]
        check_classification_targets(labeled_targets)
        self.classes_, encoded = np.unique(labeled_targets, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has a single class ({self.classes_[0]!r}) among its labeled rows; a classifier needs 2 or more"
            )
        labels = np.full(len(y), UNLABELED, dtype=np.int64)
        labels[~unlabeled] = encoded
        inputs, targets = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(labels)

        source = InMemorySource(inputs, targets, [str(c) for c in self.classes_])
        with quiet_third_party(None if self.verbose else logging.WARNING), preserved_global_rngs():
            datamodule, module, trainer = build(compose(self._overrides(n_samples=len(y))), source=source)
            trainer.fit(module, datamodule=datamodule)
        module.trainer = None  # a fitted estimator must pickle without its trainer
        self.module_ = module.cpu().double().eval()  # float64 inference: predictions independent of batching
        return self

    def _overrides(self, n_samples: int) -> list[str]:
        """The estimator's parameters as ``ssgan-train`` overrides: the same config, the same builder."""
        ema_decay = self.ema_decay if self.use_ema else None
        return [
            f"model={self.model}",
            "data.num_labeled=null",
            f"data.batch_size={min(int(self.batch_size), n_samples)}",
            f"seed={int(self.random_state)}",
            f"model.discriminator.hidden_widths={list(map(int, self.hidden_widths))}",
            f"model.discriminator.input_noise={float(self.input_noise)}",
            f"model.discriminator.hidden_noise={float(self.hidden_noise)}",
            "model.discriminator.noise_pool_size=0",  # fresh noise per pass: small inputs gain no speed from a pool
            f"model.optimizer.lr={float(self.learning_rate)}",
            f"model.optimizer.betas=[{float(self.beta1)},0.999]",
            f"model.ema_decay={'null' if ema_decay is None else float(ema_decay)}",
            f"model.init_examples={min(500, n_samples)}",
            f"gan.generator.hidden_widths={list(map(int, self.generator_widths))}",
            f"gan.generator.noise_dim={int(self.noise_dim)}",
            f"gan.generator.output_activation={self.generator_output}",
            f"gan.unlabeled_weight={float(self.unlabeled_weight)}",
            f"trainer.accelerator={self.accelerator}",
            f"trainer.max_epochs={int(self.max_epochs)}",
            f"trainer.enable_progress_bar={bool(self.verbose)}",
            "trainer.precision=32-true",
            "trainer.limit_val_batches=0",
            "+trainer.enable_checkpointing=false",
            "~callbacks",
            "~logger",
        ]

    def _check_parameters(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model={self.model!r} is not one of {MODELS}")
        for name in ("max_epochs", "batch_size", "noise_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive integer")

    # ------------------------------------------------------------------------------------------- predict
    def predict_proba(self, X: Any) -> np.ndarray:
        """(n_samples, n_classes) class probabilities, columns in the order of ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        with torch.no_grad():
            inputs = torch.from_numpy(np.ascontiguousarray(X))
            return torch.cat([self.module_.predict_proba(chunk) for chunk in inputs.split(4096)]).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class label of each row."""
        probabilities = self.predict_proba(X)
        return self.classes_[np.argmax(probabilities, axis=1)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


def unlabeled_mask(y: np.ndarray) -> np.ndarray:
    """True where a label is the unlabeled marker -1 (numeric labels; string labels have no unlabeled rows)."""
    if y.dtype.kind in "iuf":
        return y == UNLABELED
    return np.array([isinstance(v, (int, np.integer)) and v == UNLABELED for v in y], dtype=bool)


@contextlib.contextmanager
def preserved_global_rngs() -> Iterator[None]:
    """Seeding a run touches Python's, NumPy's and torch's global generators: give the caller's back after."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    seed_variable = os.environ.get("PL_GLOBAL_SEED")
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
            if seed_variable is None:
                os.environ.pop("PL_GLOBAL_SEED", None)
            else:
                os.environ["PL_GLOBAL_SEED"] = seed_variable
