"""ssgan-report on hand-made job directories: grouping over seeds, columns, statistics, failures, files."""

from __future__ import annotations

import csv
import json
import os
import statistics
import time
from pathlib import Path

import pytest

from ssgan.cli.report import main, report
from ssgan.cli.results import collect, group


def write_job(root: Path, name: str, model: str, labels: int, seed: int, acc: float, epochs: int = 5) -> Path:
    """A job directory as ssgan-train leaves it: metrics.json with the unresolved config."""
    directory = root / name
    directory.mkdir(parents=True)
    target = {"SSGAN": "ssgan.models.ssgan.SSGAN", "SupervisedBaseline": "ssgan.models.supervised.SupervisedBaseline"}[model]
    config = {
        "seed": seed,
        "paths": {"output_dir": "${hydra:runtime.output_dir}"},
        "data": {"num_labeled": labels, "split_seed": "${seed}", "batch_size": 100},
        "model": {"_target_": target, "discriminator": {"hidden_widths": [64, 32]}},
        "trainer": {"max_epochs": epochs},
    }
    if model == "SSGAN":
        config["model"]["generator"] = {"noise_dim": 100}
    metrics = {
        "status": "completed",
        "model_name": model,
        "dataset": "DigitsSource",
        "num_labeled": labels,
        "seed": seed,
        "test_acc": acc,
        "test_acc_macro": acc - 0.01,
        "test_errors": round((1 - acc) * 360),
        "train_seconds": 2.0,
        "config": config,
    }
    (directory / "metrics.json").write_text(json.dumps(metrics))
    return directory


def write_sweep(root: Path) -> dict[tuple[str, int], list[float]]:
    accuracies = {
        ("SSGAN", 20): [0.80, 0.84, 0.88],
        ("SSGAN", 100): [0.93, 0.95],
        ("SupervisedBaseline", 20): [0.60, 0.70, 0.65],
        ("SupervisedBaseline", 100): [0.90, 0.92],
    }
    for (model, labels), values in accuracies.items():
        for seed, acc in enumerate(values):
            write_job(root, f"model={model},num_labeled={labels},seed={seed}", model, labels, seed, acc)
    return accuracies


def test_cells_pool_seeds_and_keep_only_the_columns_that_matter(tmp_path: Path) -> None:
    accuracies = write_sweep(tmp_path)
    results, failures = collect([tmp_path])
    columns, cells = group(results)
    assert columns == ["model", "num_labeled"]  # the generator and _target_ follow from the model
    assert [(c.settings["model"], c.settings["num_labeled"]) for c in cells] == list(accuracies)  # 20 before 100
    for cell in cells:
        values = accuracies[(cell.settings["model"], cell.settings["num_labeled"])]
        assert cell.n == len(values)
        assert cell.mean("test_acc") == pytest.approx(statistics.fmean(values))
        assert cell.std("test_acc") == pytest.approx(statistics.stdev(values))
    assert failures == []


def test_another_varying_setting_becomes_a_column(tmp_path: Path) -> None:
    write_job(tmp_path / "a", "job", "SSGAN", 20, 0, 0.8, epochs=5)
    write_job(tmp_path / "b", "job", "SSGAN", 20, 0, 0.9, epochs=50)
    columns, cells = group(collect([tmp_path / "a", tmp_path / "b"])[0])
    assert columns == ["model", "num_labeled", "trainer.max_epochs"]
    assert [cell.settings["trainer.max_epochs"] for cell in cells] == [5, 50]
    pooled_columns, pooled = group(collect([tmp_path])[0], ignore=["trainer.max_epochs"])
    assert pooled_columns == ["model", "num_labeled"] and pooled[0].n == 2


def test_report_files(tmp_path: Path) -> None:
    write_sweep(tmp_path)
    failed = tmp_path / "model=SSGAN,num_labeled=200,seed=0"
    failed.mkdir()
    (failed / "error.txt").write_text("RuntimeError: out of memory\n\nTraceback ...\n")
    paths = report([tmp_path])

    with paths["csv"].open() as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["model"], r["num_labeled"], r["n"], r["seeds"]) for r in rows] == [
        ("SSGAN", "20", "3", "0 1 2"),
        ("SSGAN", "100", "2", "0 1"),
        ("SupervisedBaseline", "20", "3", "0 1 2"),
        ("SupervisedBaseline", "100", "2", "0 1"),
    ]
    assert float(rows[0]["test_acc_mean"]) == pytest.approx(0.84)
    assert float(rows[0]["test_acc_std"]) == pytest.approx(0.04)

    table = paths["md"].read_text()
    assert "| model | num_labeled | n | test acc % (mean ± std) |" in table
    assert "| SSGAN | 20 | 3 | 84.00 ± 4.00 | 83.00 ± 4.00 |" in table
    assert "| SupervisedBaseline | 100 | 2 | 91.00 ± 1.41 |" in table
    assert "Jobs: 10 completed, 1 failed" in table
    assert "- `model=SSGAN,num_labeled=200,seed=0`: RuntimeError: out of memory" in table
    assert paths["png"].read_bytes().startswith(b"\x89PNG")


def test_a_newer_result_supersedes_an_old_error_and_vice_versa(tmp_path: Path) -> None:
    resumed = write_job(tmp_path, "resumed", "SSGAN", 20, 0, 0.8)
    (resumed / "error.txt").write_text("RuntimeError: killed\n")
    os.utime(resumed / "error.txt", (time.time() - 60, time.time() - 60))
    rerun = write_job(tmp_path, "rerun", "SSGAN", 20, 1, 0.8)
    os.utime(rerun / "metrics.json", (time.time() - 60, time.time() - 60))
    (rerun / "error.txt").write_text("SSGANError: bad value\n")
    results, failures = collect([tmp_path])
    assert [job.directory.name for job in results] == ["resumed"]
    assert [(failure.directory.name, failure.message) for failure in failures] == [("rerun", "SSGANError: bad value")]


def test_output_option_and_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_sweep(tmp_path / "sweep")
    assert main([str(tmp_path / "sweep"), "--output", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.csv", "report.md", "report.png"]

    assert main([str(tmp_path / "missing")]) == 2
    assert "ssgan-report: error: sweep directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no metrics.json or error.txt" in capsys.readouterr().err
