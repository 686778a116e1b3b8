"""Every recipe in conf/experiment/ composes, builds and runs end to end (fast_dev_run, tiny networks and data).

The experiments are found by a glob at collection time, so a new recipe is covered without editing this file.
Only behaviour is asserted (the run completes, files and metrics make sense, the built objects are the ones
the config names), never a recipe's tuned values: those belong to the recipes and docs/experiments.md.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from format_writers import (
    cifar_batch,
    cifar_files,
    write_cifar_folder,
    write_mnist,
    write_svhn_mat,
)
from hydra.utils import get_class
from omegaconf import DictConfig

import ssgan.cli.train
from ssgan.build import CONFIG_DIR, Run, build, build_datamodule, build_model, compose

EXPERIMENTS = sorted(path.stem for path in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))

TRAIN_IMAGES = 200  # at least this many training images, ten classes cycling, so every class is present
TEST_IMAGES = 50

COMMON = [
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "model.init_examples=50",
    "data.batch_size=20",
    "data.eval_batch_size=100",  # the whole tiny test set in the one test batch fast_dev_run evaluates
]


def write_idx_files(root: Path, train: int) -> int:
    write_mnist(root, train=train, test=TEST_IMAGES)
    return TEST_IMAGES


def write_cifar_files(root: Path, train: int) -> int:
    files = cifar_files(per_batch=-(-train // 50) * 10)  # five batches, each a whole number of class cycles
    files["test_batch"] = pickle.dumps(cifar_batch(TEST_IMAGES, seed=9), protocol=2)
    write_cifar_folder(root, files)
    return TEST_IMAGES


def write_svhn_files(root: Path, train: int) -> int:
    write_svhn_mat(root / "train_32x32.mat", train)
    write_svhn_mat(root / "test_32x32.mat", TEST_IMAGES, seed=1)
    return TEST_IMAGES


# data.source class -> writer of tiny files in its official layout (returns the number of test images);
# sources absent here (scikit-learn's digits) need no files
WRITERS: dict[str, Callable[[Path, int], int]] = {
    "MNISTSource": write_idx_files,
    "FashionMNISTSource": write_idx_files,
    "CIFAR10Source": write_cifar_files,
    "SVHNSource": write_svhn_files,
}
NO_FILES = {"DigitsSource"}


@pytest.fixture(scope="module")
def data_dirs() -> dict:
    """Tiny files are written once per (source, size) and shared: the tests only read them."""
    return {}


def tiny_data(
    cfg: DictConfig, data_dirs: dict, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[str], int | None]:
    """The recipe's source needs its official files: point data.root at tiny ones (returns the test size)."""
    source = cfg.data.source._target_.rsplit(".", 1)[-1]
    if source in NO_FILES:
        return [], None
    if source not in WRITERS:
        pytest.fail(f"no tiny-file writer for data.source {source}: add one to WRITERS in {Path(__file__).name}")
    budget = cfg.data.get("num_labeled") or 0  # the recipe's label budget must fit: every class gets its share
    train = max(TRAIN_IMAGES, -(-budget // 10) * 10)
    key = (source, train)
    if key not in data_dirs:
        root = tmp_path_factory.mktemp(f"{source}_{train}")
        data_dirs[key] = (root, WRITERS[source](root, train))
    root, num_test = data_dirs[key]
    return [f"data.root={root}"], num_test


def shrink(cfg: DictConfig) -> list[str]:
    """Tiny networks and encoder keep each run to seconds; only keys the recipe has, so new recipes fit too."""
    overrides = []
    disc = cfg.model.discriminator
    if "hidden_widths" in disc:
        overrides.append("model.discriminator.hidden_widths=[32,16]")
    if "widths" in disc:
        overrides.append("model.discriminator.widths=[" + ",".join(str(8 << i) for i in range(len(disc.widths))) + "]")
    if "top_width" in disc:
        overrides.append("model.discriminator.top_width=16")
    gen = cfg.gan.generator
    overrides.append("gan.generator.noise_dim=8")
    if "hidden_widths" in gen:
        overrides.append("gan.generator.hidden_widths=[32]")
    if "widths" in gen:  # as many upsampling stages as the recipe: the image size must come out the same
        overrides.append("gan.generator.widths=[" + ",".join("16" for _ in gen.widths) + "]")
    if cfg.data.get("encoder") is not None:
        overrides += ["data.encoder.num_patches=2000", "data.encoder.num_centroids=16",
                      "data.encoder.output_dim=32", "data.encoder.kmeans_iterations=2"]
    return overrides


def compose_tiny(
    experiment: str,
    output_dir: Path,
    data_dirs: dict,
    tmp_path_factory: pytest.TempPathFactory,
    *extra: str,
) -> tuple[DictConfig, int | None]:
    """Composed as ssgan-train would, first plain (to read its groups), then with the tiny overrides added."""
    overrides = [f"experiment={experiment}", *extra]
    recipe = compose(overrides, output_dir=output_dir)
    data, num_test = tiny_data(recipe, data_dirs, tmp_path_factory)
    return compose([*overrides, *COMMON, *shrink(recipe), *data], output_dir=output_dir), num_test


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_trains_and_tests_end_to_end(
    experiment: str,
    tmp_path: Path,
    data_dirs: dict,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broken recipe (bad key, missing group, data/encoder/network shape mismatch) fails here, not in a real run."""
    cfg, num_test = compose_tiny(experiment, tmp_path, data_dirs, tmp_path_factory, "trainer.fast_dev_run=true")
    built: list[Run] = []

    def keep(cfg: DictConfig, source=None, **options) -> Run:  # the one builder, its objects kept for checks
        built.append(build(cfg, source, **options))
        return built[-1]

    monkeypatch.setattr(ssgan.cli.train, "build", keep)
    returned = ssgan.cli.train.train(cfg)

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert 0.0 <= metrics["test_acc"] <= 1.0 and metrics["test_acc"] == returned["test_acc"]
    assert sum(map(sum, metrics["test_confusion"])) == metrics["num_test"]
    if num_test is not None:  # the tiny files under data.root were read, not some other copy
        assert metrics["num_test"] == num_test
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "split_indices.npz").is_file()

    (datamodule, model, trainer), = built
    assert type(model) is get_class(cfg.model._target_)
    assert model.num_classes == datamodule.num_classes  # sized by the data, not by the recipe
    assert type(model.discriminator) is get_class(cfg.model.discriminator._target_)
    if "generator" in cfg.model:
        assert type(model.generator) is get_class(cfg.model.generator._target_)
    assert (model.input_encoder is None) == (cfg.data.get("encoder") is None)
    assert model.initialised  # D's data-dependent initialisation ran before the first step
    assert trainer.state.finished and not trainer.interrupted


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_builds_the_supervised_baseline(
    experiment: str, tmp_path: Path, data_dirs: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every recipe also serves the labeled-only baseline (model=supervised, gan group unread); built, not trained."""
    cfg, _ = compose_tiny(experiment, tmp_path, data_dirs, tmp_path_factory, "model=supervised")
    assert "generator" not in cfg.model and "objective" not in cfg.model

    model = build_model(cfg, build_datamodule(cfg))
    assert type(model) is get_class(cfg.model._target_) and type(model).__name__ == "SupervisedBaseline"
    assert type(model.discriminator) is get_class(cfg.model.discriminator._target_)
    assert not hasattr(model, "generator")
    assert (model.input_encoder is None) == (cfg.data.get("encoder") is None)


@pytest.mark.parametrize("max_epochs", [1, 2])
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_shortened_to_any_length_runs_with_its_schedule_scaled(
    experiment: str,
    max_epochs: int,
    tmp_path: Path,
    data_dirs: dict,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``trainer.max_epochs=N`` shortens a recipe whole: schedules are fractions of training, not fixed epochs."""
    cfg, _ = compose_tiny(experiment, tmp_path, data_dirs, tmp_path_factory,
                          f"trainer.max_epochs={max_epochs}", "trainer.limit_train_batches=1")
    metrics = ssgan.cli.train.train(cfg)
    assert metrics["status"] == "completed" and metrics["epochs"] == max_epochs
