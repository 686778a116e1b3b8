"""Hyper-parameter search with the Optuna sweeper: trials score on validation, never read the test set, and a
search without a validation set refuses to start."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

TINY = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "model.discriminator.hidden_widths=[32,16]",
        "gan.generator.hidden_widths=[32]", "gan.generator.noise_dim=8", "model.init_examples=100"]


def ssgan_train(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ssgan.cli.train", *overrides]
    environment = {**os.environ, "SSGAN_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=environment)


def test_a_two_trial_search_on_digits_tunes_on_validation_and_summarises_its_trials(tmp_path: Path) -> None:
    sweep = tmp_path / "search"
    result = ssgan_train(tmp_path, "-m", "hparams_search=digits_optuna", "hydra.sweeper.n_trials=2",
                         f"hydra.sweep.dir={sweep}", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"model.optimizer.lr", "model.discriminator.input_noise",
                                        "model.discriminator.hidden_noise", "gan.unlabeled_weight"}
    trials = [json.loads(path.read_text()) for path in sweep.rglob("metrics.json")]
    assert len(trials) == 2
    for metrics in trials:
        assert 0.0 <= metrics["val_acc"] <= 1.0
        assert "test_acc" not in metrics and "test_confusion" not in metrics  # the test set stayed unread
    assert best["best_value"] == pytest.approx(max(metrics["val_acc"] for metrics in trials))
    rows = list(csv.DictReader(open(sweep / "trials.csv")))
    assert [row["trial"] for row in rows] == ["0", "1"] and all(row["status"] == "completed" for row in rows)


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.num_validation=0"], "optimized_metric=val_acc needs a validation set: set data.num_validation"),
    (["optimized_metric=test_acc"], "optimized_metric='test_acc': a search optimises a validation metric"),
])
def test_a_search_that_would_tune_on_test_or_nothing_refuses_to_start(tmp_path: Path, overrides: list[str],
                                                                      message: str) -> None:
    sweep = tmp_path / "search"
    result = ssgan_train(tmp_path, "-m", "hparams_search=digits_optuna", "hydra.sweeper.n_trials=2",
                         f"hydra.sweep.dir={sweep}", *TINY, *overrides)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not list(sweep.rglob("metrics.json")) and not list(sweep.rglob("*.ckpt"))  # nothing trained
