"""The labeled/unlabeled/validation split: balance, determinism, disjointness, errors, saving."""

import pytest
import torch

from ssgan.data.sources import DigitsSource
from ssgan.data.split import Split, make_split
from ssgan.errors import SSGANError


@pytest.fixture(scope="module")
def digits_labels() -> torch.Tensor:
    return DigitsSource().load().train.labels


def test_labeled_subset_is_balanced_per_class(digits_labels: torch.Tensor) -> None:
    split = make_split(digits_labels, 10, num_labeled=50, seed=3)
    counts = torch.bincount(digits_labels[split.labeled], minlength=10)
    assert counts.tolist() == [5] * 10


def test_remainder_is_spread_one_per_class(digits_labels: torch.Tensor) -> None:
    counts = torch.bincount(digits_labels[make_split(digits_labels, 10, num_labeled=23).labeled], minlength=10)
    assert counts.sum() == 23 and counts.max() - counts.min() == 1


def test_labeled_fraction_gives_the_matching_count(digits_labels: torch.Tensor) -> None:
    split = make_split(digits_labels, 10, labeled_fraction=0.1)
    assert split.labeled.numel() == round(0.1 * digits_labels.numel())


def test_same_seed_same_split_other_seed_other_split(digits_labels: torch.Tensor) -> None:
    first = make_split(digits_labels, 10, num_labeled=50, num_validation=100, seed=7)
    again = make_split(digits_labels, 10, num_labeled=50, num_validation=100, seed=7)
    other = make_split(digits_labels, 10, num_labeled=50, num_validation=100, seed=8)
    assert torch.equal(first.labeled, again.labeled) and torch.equal(first.validation, again.validation)
    assert not torch.equal(first.labeled, other.labeled)


def test_split_ignores_the_global_random_state(digits_labels: torch.Tensor) -> None:
    torch.manual_seed(1)
    first = make_split(digits_labels, 10, num_labeled=50, seed=0)
    torch.manual_seed(2)
    assert torch.equal(first.labeled, make_split(digits_labels, 10, num_labeled=50, seed=0).labeled)


def test_labeled_stay_in_the_unlabeled_pool_and_validation_is_in_neither(digits_labels: torch.Tensor) -> None:
    split = make_split(digits_labels, 10, num_labeled=50, num_validation=200, seed=0)
    labeled, unlabeled, validation = (set(t.tolist()) for t in (split.labeled, split.unlabeled, split.validation))
    assert labeled <= unlabeled
    assert not validation & unlabeled and not validation & labeled
    assert len(validation) == 200
    assert len(unlabeled) + len(validation) == digits_labels.numel()


def test_rows_without_labels_are_never_labeled() -> None:
    labels = torch.tensor([0, 1, -1, -1, 0, 1, -1, 1, 0])
    split = make_split(labels, 2)  # no budget: every labeled row
    assert set(split.labeled.tolist()) == {0, 1, 4, 5, 7, 8}
    assert split.unlabeled.numel() == labels.numel()


def test_split_saves_and_loads_indices(tmp_path, digits_labels: torch.Tensor) -> None:
    split = make_split(digits_labels, 10, num_labeled=30, num_validation=10, seed=1)
    split.save(tmp_path / "split.npz")
    loaded = Split.load(tmp_path / "split.npz")
    for name in ("labeled", "unlabeled", "validation"):
        assert torch.equal(getattr(loaded, name), getattr(split, name))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_labeled": 5000}, "data.num_labeled=5000 is larger than the 1437 labeled training examples"),
        ({"num_labeled": 9}, "data.num_labeled=9 is smaller than the number of classes \\(10\\)"),
        ({"num_labeled": 50, "labeled_fraction": 0.1}, "both set; set one of them"),
        ({"labeled_fraction": 1.5}, "data.labeled_fraction=1.5 must be in"),
        ({"num_validation": 5000}, "data.num_validation=5000 must be in"),
    ],
)
def test_bad_budgets_are_refused_with_the_value(digits_labels: torch.Tensor, kwargs, message) -> None:
    with pytest.raises(SSGANError, match=message):
        make_split(digits_labels, 10, **kwargs)


def test_a_class_that_cannot_fill_its_budget_is_named() -> None:
    labels = torch.tensor([0] * 10 + [1] * 2 + [2] * 10)
    with pytest.raises(SSGANError, match="needs 4 labeled examples of class 'cat' but the training pool has only 2"):
        make_split(labels, 3, num_labeled=12, class_names=("dog", "cat", "bird"))


def test_a_pool_size_keeps_a_balanced_subset_with_validation_and_labels_inside_the_rules(
    digits_labels: torch.Tensor,
) -> None:
    split = make_split(digits_labels, 10, num_labeled=20, num_validation=100, seed=5, num_train=400)
    assert split.unlabeled.numel() == 400
    assert torch.bincount(digits_labels[split.unlabeled], minlength=10).tolist() == [40] * 10
    assert set(split.labeled.tolist()) <= set(split.unlabeled.tolist())
    assert not set(split.validation.tolist()) & set(split.unlabeled.tolist())
    full = make_split(digits_labels, 10, num_labeled=20, num_validation=100, seed=5)
    assert torch.equal(split.validation, full.validation)  # the pool size leaves the validation set alone


def test_a_pool_size_on_partially_labeled_rows_is_a_uniform_draw() -> None:
    labels = torch.tensor([0, 1, -1, -1, 0, 1, -1, 0, 1, -1])
    split = make_split(labels, 2, num_labeled=2, seed=0, num_train=6)
    assert split.unlabeled.numel() == 6 and bool((labels[split.labeled] >= 0).all())


@pytest.mark.parametrize("num_train", [5, 2000])
def test_a_pool_size_out_of_range_is_refused_with_the_range(digits_labels: torch.Tensor, num_train: int) -> None:
    with pytest.raises(SSGANError, match=rf"data.num_train={num_train} must be in \[10, "):
        make_split(digits_labels, 10, num_labeled=20, num_train=num_train)
