"""``SSGANClassifier``: the SSGAN (or its supervised baseline) as a scikit-learn estimator on tabular X.

Semi-supervised like ``sklearn.semi_supervised``: ``y == -1`` marks an unlabeled row (among string or object
labels also ``"-1"``, None or NaN). Underneath are the same Lightning modules and data module as ``ssgan-train``,
on an in-memory source, trained by a quiet CPU Trainer.

Estimator checks (``sklearn.utils.estimator_checks``): all pass except ``check_classifiers_classes``, which
uses -1 as an ordinary class label while here it marks unlabeled rows (as in ``sklearn.semi_supervised``).
The sample-weight checks do not run (``fit`` takes no ``sample_weight``), nor the pandas and array-API ones
where those libraries are absent.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import os
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils import check_random_state
from sklearn.utils.validation import assert_all_finite, check_is_fitted, column_or_1d, validate_data

from ssgan.build import build, compose
from ssgan.runtime.quiet import quiet_third_party
from ssgan.data.sources import InMemorySource

UNLABELED = -1
MODELS = ("ssgan", "supervised")
GENERATOR_OUTPUTS = ("identity", "sigmoid", "tanh")
ACCELERATORS = ("cpu", "auto", "gpu", "cuda", "mps")
MAX_SEED = 2**32 - 1


class Allowed(NamedTuple):
    """A parameter's rule: the test and the words for it in the error message."""

    accepts: Callable[[Any], bool]
    description: str


def is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer_at_least(low: int) -> Allowed:
    return Allowed(lambda v: is_integer(v) and v >= low, f"an integer >= {low}")


def widths(allow_empty: bool) -> Allowed:
    def accepts(value: Any) -> bool:
        if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
            return False
        return (allow_empty or len(value) > 0) and all(is_integer(v) and v >= 1 for v in value)

    return Allowed(accepts, "a " + ("" if allow_empty else "non-empty ") + "sequence of integers >= 1")


PARAMETER_RULES: dict[str, Allowed] = {
    "hidden_widths": widths(allow_empty=False),
    "generator_widths": widths(allow_empty=True),
    "noise_dim": integer_at_least(1),
    "input_noise": Allowed(lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "hidden_noise": Allowed(lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "learning_rate": Allowed(lambda v: is_number(v) and v > 0, "a number > 0"),
    "beta1": Allowed(lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "max_epochs": integer_at_least(1),
    "batch_size": integer_at_least(2),
    "unlabeled_weight": Allowed(lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "use_ema": Allowed(lambda v: isinstance(v, (bool, np.bool_)), "True or False"),
    "ema_decay": Allowed(lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "verbose": Allowed(lambda v: isinstance(v, (bool, np.bool_)), "True or False"),
}


class SSGANClassifier(ClassifierMixin, BaseEstimator):
    """Semi-supervised GAN classifier (Salimans et al. 2016) with an MLP discriminator, for (n_samples, n_features) X.

    Parameters are plain values (no nested objects), so ``get_params``/``set_params``, ``clone`` and grid search
    work. ``model="supervised"`` trains the same discriminator on the labeled rows only (the baseline).
    ``generator_output`` is G's output non-linearity: ``identity`` for standardised features, ``sigmoid`` for
    features in [0, 1]. An epoch is one pass over all rows (the unlabeled pool) in batches of ``batch_size``.
    ``random_state`` None draws the seed from NumPy's global generator, as scikit-learn's estimators do.
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
        random_state: int | np.random.RandomState | None = 0,
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
    def fit(self, X: Any, y: Any) -> SSGANClassifier:
        """Train on every row of X; rows whose label marks them unlabeled (see :func:`unlabeled_mask`) take part
        without a label. Returns self."""
        self._check_parameters()
        seed = training_seed(self.random_state)
        X = validate_data(self, X, dtype=np.float32, ensure_min_samples=2)
        y = target_vector(y, len(X))
        unlabeled = unlabeled_mask(y)
        if unlabeled.all():
            raise ValueError("y has no labeled rows (every label marks an unlabeled row); SSGANClassifier needs labels")
        self.classes_, encoded = distinct_classes(y[~unlabeled])
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has a single class ({self.classes_[0]!r}) among its labeled rows; a classifier needs 2 or more"
            )
        labels = np.full(len(y), UNLABELED, dtype=np.int64)
        labels[~unlabeled] = encoded
        inputs, targets = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(labels)

        source = InMemorySource(inputs, targets, [str(c) for c in self.classes_])
        with quiet_third_party(None if self.verbose else logging.WARNING), preserved_global_rngs():
            datamodule, module, trainer = build(compose(self._overrides(len(y), seed)), source=source)
            trainer.fit(module, datamodule=datamodule)
        module.trainer = None  # a fitted estimator must pickle without its trainer
        self.module_ = module.cpu().double().eval()  # float64 inference: predictions independent of batching
        return self

    def _overrides(self, n_samples: int, seed: int) -> list[str]:
        """The estimator's parameters as ``ssgan-train`` overrides: the same config, the same builder."""
        ema_decay = self.ema_decay if self.use_ema else None
        return [
            f"model={self.model}",
            "data.num_labeled=null",
            f"data.batch_size={min(int(self.batch_size), n_samples)}",
            f"seed={seed}",
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
        """Every parameter, as scikit-learn checks its own at fit: a ValueError naming it, its value and what is
        allowed."""
        if self.model not in MODELS:
            raise ValueError(f"model={self.model!r} is not one of {MODELS}")
        if self.generator_output not in GENERATOR_OUTPUTS:
            raise ValueError(f"generator_output={self.generator_output!r} is not one of {GENERATOR_OUTPUTS}")
        if self.accelerator not in ACCELERATORS:
            raise ValueError(f"accelerator={self.accelerator!r} is not one of {ACCELERATORS}")
        if self.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
            raise ValueError(f"accelerator={self.accelerator!r} but no CUDA GPU is usable here; use 'cpu' or 'auto'")
        for name, allowed in PARAMETER_RULES.items():
            value = getattr(self, name)
            if not allowed.accepts(value):
                raise ValueError(f"{name}={value!r} must be {allowed.description}")

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


def target_vector(y: Any, num_rows: int) -> np.ndarray:
    """y as a 1-d array with one label per row of X; numeric labels must be finite (-1 marks unlabeled)."""
    y = column_or_1d(y, warn=True)
    if len(y) != num_rows:
        raise ValueError(f"y has {len(y)} labels but X has {num_rows} rows; expected one label (or -1) per row")
    if y.dtype.kind in "fc":
        assert_all_finite(y, input_name="y")
    return y


def is_unlabeled_value(value: Any) -> bool:
    """-1 (a number or the text "-1"), None or NaN: the unlabeled markers of an object array."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == "-1"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return value == UNLABELED or math.isnan(value)
    return False


def unlabeled_mask(y: np.ndarray) -> np.ndarray:
    """True where a row is unlabeled, as ``sklearn.semi_supervised`` marks it: -1 in numeric labels; -1, "-1",
    None or NaN in object or string labels (so ``y[rows] = -1`` works on an array of class names)."""
    if y.dtype.kind in "iuf":
        return y == UNLABELED
    if y.dtype.kind in "US":
        return np.char.strip(y.astype(str)) == "-1"
    return np.fromiter((is_unlabeled_value(v) for v in y), dtype=bool, count=len(y))


def distinct_classes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct labels and each row's index among them; labels of mixed types cannot be ordered."""
    try:
        check_classification_targets(labels)
        return np.unique(labels, return_inverse=True)
    except TypeError:
        kinds = sorted({type(value).__name__ for value in labels})
        raise ValueError(
            f"y mixes labels of types {kinds}; use one type for the classes (and -1 or None for unlabeled rows)"
        ) from None


def training_seed(random_state: Any) -> int:
    """The run's seed: an integer as given; None (NumPy's global generator) or a RandomState draws one."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if 0 <= random_state <= MAX_SEED:
            return int(random_state)
    elif random_state is None or isinstance(random_state, np.random.RandomState):
        return int(check_random_state(random_state).randint(0, MAX_SEED, dtype=np.int64))
    raise ValueError(
        f"random_state={random_state!r} must be None, an integer in [0, {MAX_SEED}] or a numpy RandomState"
    )


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
