"""Training curves: the epoch log read back per column, one run's figure, a sweep's figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssgan.cli.curves import epoch_series, final_test_accuracy, plot_run, plot_runs
from ssgan.cli.report import report

HEADER = "epoch,health_d_accuracy_generated,health_generated_class_entropy,health_generated_class_entropy_max,step,val_acc"


def fake_run(directory: Path, rows: list[str], test_acc: float | None = 0.5, epochs: int = 3) -> Path:
    (directory / "logs").mkdir(parents=True)
    (directory / "logs" / "metrics.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    metrics = {"status": "completed", "epochs": epochs, "seed": 0, "model_name": "SSGAN", "num_labeled": 50}
    if test_acc is not None:
        metrics["test_acc"] = test_acc
    (directory / "metrics.json").write_text(json.dumps(metrics))
    return directory


ROWS = [  # validation and health rows of one epoch are logged apart, as Lightning's CSV logger does
    "0,,,,9,0.6", "0,0.9,2.0,2.5,9,",
    "1,,,,19,0.7", "1,0.95,1.5,2.5,19,",
    "2,,,,29,0.65", "2,1.0,0.5,2.5,29,",
]


def test_the_epoch_log_is_read_per_column_with_the_entropy_as_a_share(tmp_path: Path) -> None:
    series = epoch_series(fake_run(tmp_path, ROWS))
    assert series["val_acc"] == [(0, 0.6), (1, 0.7), (2, 0.65)]
    assert series["health_d_accuracy_generated"] == [(0, 0.9), (1, 0.95), (2, 1.0)]
    assert series["generated_class_entropy_ratio"] == [(0, 0.8), (1, 0.6), (2, 0.2)]
    assert final_test_accuracy(tmp_path) == (2, 0.5)  # one marker at the last epoch


def test_the_test_marker_sits_at_the_epoch_whose_weights_were_tested(tmp_path: Path) -> None:
    run = fake_run(tmp_path, ROWS)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["tested_weights"] = {"weights": "best", "epoch": 1, "val_acc": 0.7, "checkpoint": "best.ckpt"}
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert final_test_accuracy(run) == (1, 0.5)


def test_an_older_logs_generator_loss_column_is_read_under_its_current_name(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "metrics.csv").write_text("epoch,health_feature_matching_loss,step\n0,3.5,9\n1,4.0,19\n")
    assert epoch_series(tmp_path) == {"health_generator_loss": [(0, 3.5), (1, 4.0)]}


def test_a_run_gets_a_figure_and_a_run_without_a_log_gets_none(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = plot_run(fake_run(tmp_path / "run", ROWS))
    assert path == tmp_path / "run" / "curves.png" and path.read_bytes().startswith(b"\x89PNG")
    (tmp_path / "empty").mkdir()
    assert plot_run(tmp_path / "empty") is None
    assert final_test_accuracy(tmp_path / "empty") is None


def test_the_report_draws_every_jobs_curves(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    sweep = tmp_path / "sweep"
    fake_run(sweep / "seed=0", ROWS, test_acc=0.6)
    fake_run(sweep / "seed=1", ROWS, test_acc=0.7)
    paths = report([sweep])
    assert paths["curves"] == sweep / "curves.png" and paths["curves"].read_bytes().startswith(b"\x89PNG")
    assert plot_runs([sweep / "seed=0"], tmp_path / "one.png") == tmp_path / "one.png"
