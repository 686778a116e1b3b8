"""End-to-end runs of the real configs composed through Hydra, and the user-facing errors of ssgan-train."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssgan.errors import SSGANError
from ssgan.cli.train import train
from tests.conftest import compose_config

REPO = Path(__file__).resolve().parent.parent
SHORT = ["trainer.max_epochs=2", "trainer.limit_train_batches=4"]


@pytest.mark.parametrize("model", ["ssgan", "supervised"])
def test_fast_dev_run_of_the_real_configs(tmp_path: Path, model: str) -> None:
    cfg = compose_config(tmp_path, [f"model={model}", "trainer.fast_dev_run=true"])
    metrics = train(cfg)
    assert 0.0 <= metrics["test_acc"] <= 1.0
    assert metrics["num_test"] == 360 and metrics["num_labeled"] == 50
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("test_acc", "test_acc_macro", "test_errors", "num_labeled", "seed", "model", "train_seconds",
                "samples_per_second"):
        assert key in saved
    assert saved["model"] == {"ssgan": "SSGAN", "supervised": "SupervisedBaseline"}[model]
    assert (tmp_path / "config.yaml").exists() and (tmp_path / "split_indices.npz").exists()


def test_a_short_run_writes_checkpoints_and_consistent_metrics(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, [*SHORT, "callbacks.checkpoint.every_n_epochs=1", "data.num_validation=50"])
    metrics = train(cfg)
    assert (tmp_path / "checkpoints" / "last.ckpt").exists() and (tmp_path / "checkpoints" / "best.ckpt").exists()
    assert (tmp_path / "curves.png").is_file()  # accuracy and GAN health against epochs
    assert metrics["test_errors"] == round((1 - metrics["test_acc"]) * metrics["num_test"])
    assert sum(map(sum, metrics["test_confusion"])) == 360
    assert "val_acc" in metrics and metrics["samples_per_second"] > 0


def test_same_seed_gives_identical_metrics(tmp_path: Path) -> None:
    def run(name: str, seed: int) -> dict:
        return train(compose_config(tmp_path / name, [*SHORT, f"seed={seed}", "callbacks.checkpoint=null"]))

    first, second, other = run("a", 3), run("b", 3), run("c", 4)
    for key in ("test_acc", "test_acc_macro", "test_errors", "test_confusion"):
        assert first[key] == second[key]
    assert first["test_confusion"] != other["test_confusion"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.num_labeled=5000"], "data.num_labeled=5000 is larger than the 1437 labeled training examples"),
        (["data.num_labeled=5"], "data.num_labeled=5 is smaller than the number of classes (10)"),
        (["data.num_labeled=50", "data.labeled_fraction=0.5"], "data.num_labeled=50 and data.labeled_fraction=0.5"),
        (["data.num_labeled=1430"], "needs 143 labeled examples of class"),
        (["data.num_labeled=lots"], "data.num_labeled='lots' must be an integer or null"),
        (["data.batch_size=0"], "data.batch_size=0 must be an integer >= 2"),
        (["data.batch_size=1"], "data.batch_size=1 must be an integer >= 2"),
    ],
)
def test_bad_budgets_stop_before_training_with_the_value(tmp_path: Path, overrides, message) -> None:
    with pytest.raises(SSGANError) as raised:
        train(compose_config(tmp_path, list(overrides)))
    assert message in str(raised.value)
    assert not (tmp_path / "metrics.json").exists()


def run_cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "ssgan.cli.train", f"hydra.run.dir={tmp_path}", *overrides],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )


def test_cli_reports_a_bad_budget_in_one_line_and_error_file(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "data.num_labeled=3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "ssgan-train: error: data.num_labeled=3 is smaller than the number of classes (10); "
        "need at least one labeled example per class"
    )
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["error.txt"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.no_such_option=1", "Could not override 'data.no_such_option'"),
        ("model=no_such_model", "Could not find 'model/no_such_model'"),
    ],
)
def test_cli_rejects_an_unknown_config_option_without_traceback(tmp_path: Path, override: str, expected: str) -> None:
    result = run_cli(tmp_path, override)
    assert result.returncode == 2  # Hydra's own refusal is bad input too
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("end", ["-1", "2.5", "true"])
def test_a_bad_balance_end_epoch_names_the_field(end: str) -> None:
    from hydra.utils import instantiate

    cfg = compose_config(Path("."), ["gan.balance_weight=0.1", f"gan.balance_end_epoch={end}"])
    with pytest.raises(Exception, match="gan.balance_end_epoch"):
        instantiate(cfg.model, input_shape=(1, 8, 8), num_classes=10)


def test_a_balance_term_ended_at_epoch_0_trains_exactly_like_no_term(tmp_path: Path) -> None:
    import torch

    def final_weights(name: str, *overrides: str) -> dict:
        run_dir = tmp_path / name
        train(compose_config(run_dir, [*SHORT, "trainer.deterministic=true", *overrides]))
        state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        return {name: value for name, value in state.items() if isinstance(value, torch.Tensor)}

    without = final_weights("without", "gan.balance_weight=0")
    ended = final_weights("ended", "gan.balance_weight=1", "gan.balance_end_epoch=0")
    after_one = final_weights("after_one", "gan.balance_weight=1", "gan.balance_end_epoch=1")
    assert without and ended.keys() == without.keys()
    assert all(torch.equal(ended[name], value) for name, value in without.items())
    assert not all(torch.equal(after_one[name], value) for name, value in without.items())


@pytest.mark.parametrize("model", ["ssgan", "supervised"])
def test_recipe_options_train_end_to_end(tmp_path: Path, model: str) -> None:
    """Augmentation and the balance term together: a short run trains and evaluates."""
    cfg = compose_config(tmp_path, [*SHORT, "experiment=digits_50", f"model={model}", "gan.balance_weight=1"])
    assert cfg.model.augmentation.max_shift == 1
    metrics = train(cfg)
    assert 0.0 <= metrics["test_acc"] <= 1.0 and metrics["num_labeled"] == 50


@pytest.mark.parametrize(("model", "losses"), [("ssgan", ["loss_d", "loss_g", "loss_labeled", "loss_unlabeled"]),
                                               ("supervised", ["loss_labeled"])])
def test_training_losses_are_logged_once_per_epoch(tmp_path: Path, model: str, losses: list[str]) -> None:
    train(compose_config(tmp_path, [*SHORT, f"model={model}", "callbacks.checkpoint=null"]))
    rows = list(csv.DictReader(open(tmp_path / "logs" / "metrics.csv")))
    logged = [row for row in rows if row.get(f"train_{losses[0]}")]
    assert [int(row["epoch"]) for row in logged] == [0, 1]
    for row in logged:
        assert all(math.isfinite(float(row[f"train_{name}"])) for name in losses)
