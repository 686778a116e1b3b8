"""SSGANClassifier behaves as a scikit-learn classifier and, on digits with 50 labels, gains from unlabeled data
as much as LabelSpreading does."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading
from sklearn.utils.estimator_checks import parametrize_with_checks

from ssgan import SSGANClassifier

# Small networks and few epochs keep each of the ~100 fits of the checks well under a second.
TINY = dict(hidden_widths=(32,), generator_widths=(16,), noise_dim=8, max_epochs=25, batch_size=32)


def expected_failed_checks(estimator: SSGANClassifier) -> dict[str, str]:
    """The one check a semi-supervised classifier cannot pass by design."""
    return {
        "check_classifiers_classes": "uses -1 as a class label, which marks unlabeled rows in semi-supervised y",
    }


@parametrize_with_checks(
    [SSGANClassifier(**TINY), SSGANClassifier(model="supervised", **TINY)],
    expected_failed_checks=expected_failed_checks,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def digits_with_labels(per_class: int, seed: int):
    """Digits scaled to [0, 1], the fixed 80/20 split, ``per_class`` labels per class in the training part."""
    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    rng = np.random.default_rng(seed)
    labeled = np.concatenate([rng.choice(np.flatnonzero(y_train == k), per_class, replace=False) for k in range(10)])
    y_partial = np.full_like(y_train, -1)
    y_partial[labeled] = y_train[labeled]
    return X_train, y_partial, X_test, y_test


def test_labels_of_any_type_unlabeled_rows_and_pipeline():
    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"], dtype=object)
    y_partial = names[y].copy()
    y_partial[100:] = -1
    model = make_pipeline(StandardScaler(), SSGANClassifier(**TINY)).fit(X, y_partial)
    classifier = model[-1]
    assert sorted(classifier.classes_) == sorted(names) and classifier.n_features_in_ == 64
    assert set(model.predict(X)) <= set(names)
    assert model.predict_proba(X).shape == (300, 10)
    scores = cross_val_score(make_pipeline(StandardScaler(), SSGANClassifier(**TINY)), X, y, cv=3)
    assert scores.shape == (3,) and (scores > 0.5).all()


def test_clear_errors_for_bad_labels():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="no labeled rows"):
        SSGANClassifier(**TINY).fit(X, np.full(20, -1))
    with pytest.raises(ValueError, match="single class"):
        SSGANClassifier(**TINY).fit(X, np.r_[np.zeros(5), -np.ones(15)])
    with pytest.raises(ValueError, match="model='gan' is not one of"):
        SSGANClassifier(model="gan").fit(X, np.arange(20) % 2)


def small_digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X[:200] / 16.0, y[:200]


NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


@pytest.mark.parametrize(
    ("marker", "dtype"),
    [("-1", str), ("-1", object), (None, object), (float("nan"), object), (-1, object)],
    ids=["string-array", "string-in-object-array", "None", "NaN", "int-in-object-array"],
)
def test_unlabeled_markers_of_string_labels_are_not_a_class(marker, dtype) -> None:
    X, y = small_digits()
    y_partial = NAMES[y].astype(dtype)
    y_partial[100:] = marker
    classifier = SSGANClassifier(**{**TINY, "max_epochs": 2}).fit(X, y_partial)
    assert sorted(classifier.classes_) == sorted(NAMES)
    assert set(classifier.predict(X)) <= set(NAMES)


def test_random_state_none_draws_the_seed_from_numpys_global_generator() -> None:
    X, y = small_digits()
    fitted = []
    for _ in range(2):
        np.random.seed(7)
        fitted.append(SSGANClassifier(**{**TINY, "max_epochs": 2}, random_state=None).fit(X, y).predict_proba(X))
    np.testing.assert_array_equal(fitted[0], fitted[1])


@pytest.mark.parametrize(
    ("parameter", "value", "message"),
    [
        ("learning_rate", -1.0, "learning_rate=-1.0 must be a number > 0"),
        ("batch_size", 1, "batch_size=1 must be an integer >= 2"),
        ("max_epochs", 0, "max_epochs=0 must be an integer >= 1"),
        ("hidden_widths", (), "hidden_widths=() must be a non-empty sequence of integers >= 1"),
        ("generator_widths", (16, -2), "generator_widths=(16, -2) must be a sequence of integers >= 1"),
        ("noise_dim", 2.5, "noise_dim=2.5 must be an integer >= 1"),
        ("input_noise", float("nan"), "input_noise=nan must be a number >= 0"),
        ("beta1", 1.0, "beta1=1.0 must be a number in [0, 1)"),
        ("ema_decay", 1.5, "ema_decay=1.5 must be a number in [0, 1)"),
        ("unlabeled_weight", -0.5, "unlabeled_weight=-0.5 must be a number >= 0"),
        ("use_ema", "yes", "use_ema='yes' must be True or False"),
        ("random_state", -3, "random_state=-3 must be None, an integer in [0, 4294967295] or a numpy RandomState"),
        ("generator_output", "relu", "generator_output='relu' is not one of"),
        ("accelerator", "tpu9", "accelerator='tpu9' is not one of"),
    ],
)
def test_a_bad_parameter_is_a_value_error_naming_it_at_fit(parameter: str, value, message: str) -> None:
    X, y = small_digits()
    with pytest.raises(ValueError) as raised:
        SSGANClassifier(**{**TINY, parameter: value}).fit(X, y)
    assert message in str(raised.value)


def test_labels_of_mixed_types_are_refused_in_one_line() -> None:
    X, y = small_digits()
    mixed = y.astype(object)
    mixed[:10] = "a"
    with pytest.raises(ValueError, match="y mixes labels of types|Unknown label type|Mix of label input types"):
        SSGANClassifier(**TINY).fit(X, mixed)


def test_unlabeled_data_lift_digits_with_50_labels_to_label_spreadings_level():
    """The same network trained on the 50 labels alone scores 85-89 % on label draws 0-3, the SSGAN 88-93 % and
    LabelSpreading 89-95 %: the SSGAN's gain over its own supervised network is large on every draw, while
    against LabelSpreading it wins some draws and loses others (draw 0 ties at 93.06 % on an AVX2 CPU)."""
    X_train, y_partial, X_test, y_test = digits_with_labels(per_class=5, seed=0)
    label_spreading = LabelSpreading(kernel="knn").fit(X_train, y_partial).score(X_test, y_test)
    networks = dict(hidden_widths=(256, 128), generator_widths=(256, 256), generator_output="sigmoid", max_epochs=150)
    ssgan = SSGANClassifier(**networks).fit(X_train, y_partial).score(X_test, y_test)
    supervised = SSGANClassifier(model="supervised", **networks).fit(X_train, y_partial).score(X_test, y_test)
    assert ssgan >= supervised + 0.03, (ssgan, supervised)
    assert ssgan >= label_spreading - 0.01, (ssgan, label_spreading)
