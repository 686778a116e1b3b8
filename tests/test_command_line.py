"""Bad and awkward inputs through the real commands: the exit status, one line without a traceback, and the run
directory's files before and after (a directory holds one run; nothing is lost or mixed)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

REPO = Path(__file__).resolve().parent.parent
QUICK = ["trainer.limit_train_batches=2", "callbacks.health.sample_every_n_epochs=0",
         "callbacks.checkpoint.every_n_epochs=1"]


def environment() -> dict[str, str]:
    """This checkout and the tests' helpers on the path; one thread per process (tests run side by side)."""
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "OMP_NUM_THREADS": "1"}


def ssgan_train_command(run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "ssgan.cli.train", f"hydra.run.dir={run_dir}", *TINY, *overrides]


def ssgan_train(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(ssgan_train_command(run_dir, *overrides), cwd=run_dir.parent, env=environment(),
                          capture_output=True, text=True, timeout=240)


def ssgan_predict(cwd: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ssgan.cli.predict", *arguments], cwd=cwd, env=environment(),
                          capture_output=True, text=True, timeout=120)


def one_line(result: subprocess.CompletedProcess, prefix: str) -> str:
    """The command's only message line (it starts with ``prefix``); there is no traceback."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def logged_epochs(run_dir: Path) -> list[int]:
    """The epoch of each row with training losses in logs/metrics.csv (one row per trained epoch)."""
    with (run_dir / "logs" / "metrics.csv").open(newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle) if row.get("train_loss_labeled")]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-epoch run, trained once; tests work on copies of it."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    result = ssgan_train(run_dir, "trainer.max_epochs=2", *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


# ------------------------------------------------------------------------------------------ run directories
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], ("already holds a run (metrics.json, config.yaml, split_indices.npz, checkpoints, logs, samples); "
              "resume it with ckpt_path=last (or auto), or start a new run elsewhere with hydra.run.dir=<new dir>")),
        (["model.optimizer.lr=-1"], "already holds a run"),  # a start-up failure rewrites nothing either
        (["ckpt_path=last", "model.optimizer.lr=-1"], "model.optimizer.lr=-1 must be a number > 0"),
        (["ckpt_path=last", "model=supervised"], ("model._target_='ssgan.models.SSGAN' (now "
                                                  "'ssgan.models.SupervisedBaseline'); model.generator (now absent)")),
        (["ckpt_path=last", "seed=1"], "seed=0 (now 1)"),
        (["ckpt_path=last", "data.num_labeled=20"], "data.num_labeled=50 (now 20)"),
        (["ckpt_path=last", "data=npz", "data.source.path=other.npz"], "data.source._target_="),
    ],
    ids=["new-run", "bad-value", "bad-value-on-resume", "other-model", "other-seed", "other-split", "other-data"],
)
def test_a_run_directory_is_never_overwritten_or_mixed(run_copy: Path, overrides: list[str], expected: str) -> None:
    before = snapshot(run_copy)
    result = ssgan_train(run_copy, *QUICK, *overrides)
    assert result.returncode == 2
    assert expected in one_line(result, "ssgan-train: error:")
    assert snapshot(run_copy) == before


def test_a_checkpoint_from_another_run_or_an_unreadable_one_is_refused(run_copy: Path, finished_run: Path) -> None:
    before = snapshot(run_copy)
    foreign = finished_run / "checkpoints" / "last.ckpt"
    result = ssgan_train(run_copy, *QUICK, f"ckpt_path={foreign}")
    assert result.returncode == 2
    assert f"ckpt_path={foreign} is not one of its checkpoints" in one_line(result, "ssgan-train: error:")
    assert snapshot(run_copy) == before

    (run_copy / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    before = snapshot(run_copy)
    result = ssgan_train(run_copy, *QUICK, "ckpt_path=last")
    assert result.returncode == 2
    assert "last.ckpt cannot be read" in one_line(result, "ssgan-train: error:")
    assert snapshot(run_copy) == before


def test_a_resumed_run_logs_every_epoch_once_and_accumulates_its_time(run_copy: Path) -> None:
    finished = json.loads((run_copy / "metrics.json").read_text())
    assert logged_epochs(run_copy) == [0, 1]
    result = ssgan_train(run_copy, *QUICK, "trainer.max_epochs=4", "ckpt_path=last")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_copy / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 4
    assert logged_epochs(run_copy) == [0, 1, 2, 3]
    with (run_copy / "logs" / "metrics.csv").open(newline="") as handle:
        assert sum(1 for row in csv.DictReader(handle) if row.get("test_acc")) == 1  # the finished run's is gone
    assert metrics["train_seconds"] > finished["train_seconds"]


# ------------------------------------------------------------------------------------------ exit statuses
def start_and_signal(run_dir: Path, signum: int) -> tuple[subprocess.Popen, str]:
    """Start a long run, send ``signum`` once its first checkpoint exists, wait; (process, its stderr)."""
    process = subprocess.Popen(
        ssgan_train_command(run_dir, "trainer.max_epochs=10000", *QUICK), cwd=run_dir.parent,
        env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "last.ckpt").is_file():
        assert process.poll() is None and time.monotonic() < deadline, "the run did not reach its first checkpoint"
        time.sleep(0.2)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    return process, stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_run_exits_non_zero_says_so_and_resumes(tmp_path: Path, signum: int) -> None:
    run_dir = tmp_path / "run"
    process, stderr = start_and_signal(run_dir, signum)
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum
    result = subprocess.CompletedProcess(process.args, process.returncode, "", stderr)
    assert one_line(result, "ssgan-train: interrupted").startswith(f"ssgan-train: interrupted by {name} at epoch")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["signal"] == name and metrics["step"] >= 1
    assert metrics["last_checkpoint"] == str(run_dir / "checkpoints" / "last.ckpt")
    if signum != signal.SIGTERM:
        return
    finish = metrics["epochs"] + 2
    resumed = ssgan_train(run_dir, *QUICK, f"trainer.max_epochs={finish}", "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    assert logged_epochs(run_dir) == list(range(finish))


def test_a_diverged_run_exits_with_its_own_status(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    poison = "+callbacks.poison={_target_: helpers.PoisonAtBatch, batch: 2}"
    result = ssgan_train(run_dir, "trainer.max_epochs=2", *QUICK, poison, "callbacks.divergence.check_every_n_steps=1")
    assert result.returncode == 3
    assert "training diverged" in one_line(result, "ssgan-train: error:")
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "diverged"


# ------------------------------------------------------------------------------------------ values
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("seed=-1", "seed=-1 must be an integer in [0, 4294967295]"),
        ("model.optimizer.lr=-1", "model.optimizer.lr=-1 must be a number > 0"),
        ("data.batch_size=1", "data.batch_size=1 must be an integer >= 2"),
        ("data=table", "data.source.path is required but not set"),
        ("trainer.max_epochs=-5", "trainer.max_epochs=-5 must be an integer >= -1 or null"),
        ("gan.generator.hidden_widths=[-3]", "gan.generator.hidden_widths=[-3] must be a list of integers >= 1"),
        ("callbacks.checkpoint.every_n_epochs=-1", "callbacks.checkpoint: Invalid value for every_n_epochs=-1"),
        ("test_weights=latest", "test_weights='latest' must be one of best, final"),
    ],
)
def test_a_bad_value_is_one_line_and_only_error_txt(tmp_path: Path, override: str, expected: str) -> None:
    run_dir = tmp_path / "run"
    result = ssgan_train(run_dir, override)
    assert result.returncode == 2
    assert expected in one_line(result, "ssgan-train: error:")
    assert sorted(path.name for path in run_dir.iterdir()) == ["error.txt"]


def test_a_labeled_fraction_replaces_the_configs_default_count(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = ssgan_train(run_dir, "data.labeled_fraction=0.1", "trainer.fast_dev_run=true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["num_labeled"] == 144  # 10 % of 1437 digits


# ------------------------------------------------------------------------------------------ tested weights
def validation_log(run_dir: Path) -> list[tuple[int, float]]:
    with (run_dir / "logs" / "metrics.csv").open() as handle:
        return [(int(row["epoch"]), float(row["val_acc"])) for row in csv.DictReader(handle) if row.get("val_acc")]


def test_the_test_reads_the_best_validation_epochs_weights(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = ssgan_train(run_dir, "data.num_validation=100", "trainer.max_epochs=4", "trainer.limit_train_batches=3",
                         "callbacks.health.sample_every_n_epochs=0")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    log = validation_log(run_dir)
    best_epoch, best_val = max(log, key=lambda pair: pair[1])  # the first of equal scores, as the checkpoint keeps
    tested = metrics["tested_weights"]
    assert (tested["weights"], tested["epoch"]) == ("best", best_epoch)
    assert tested["val_acc"] == pytest.approx(best_val)
    assert metrics["val_acc"] == pytest.approx(log[-1][1])  # the final epoch's validation accuracy stays reported
    with (run_dir / "logs" / "metrics.csv").open() as handle:  # with validation, D's memorisation probe per epoch
        probes = [row for row in csv.DictReader(handle) if row.get("probe_lse_gap")]
    assert [int(row["epoch"]) for row in probes] == [epoch for epoch, _ in log]
    for row in probes:
        gap = float(row["probe_lse_pool"]) - float(row["probe_lse_held_out"])
        assert float(row["probe_lse_gap"]) == pytest.approx(gap, abs=1e-5)
    # the test accuracy is the best checkpoint's: the same figure from ssgan-predict on best.ckpt
    predicted = ssgan_predict(tmp_path, str(run_dir / "checkpoints" / "best.ckpt"), "--data", "digits",
                              "--split", "test", "-o", str(tmp_path / "p.csv"))
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert f"accuracy {metrics['test_acc']:.4f}" in predicted.stdout + predicted.stderr


@pytest.mark.parametrize("overrides", [["test_weights=final", "data.num_validation=100"], []])
def test_the_final_weights_are_tested_when_asked_or_without_validation(tmp_path: Path, overrides: list[str]) -> None:
    run_dir = tmp_path / "run"
    result = ssgan_train(run_dir, "trainer.max_epochs=2", "trainer.limit_train_batches=2",
                         "callbacks.health.sample_every_n_epochs=0", *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["tested_weights"] == {"weights": "final", "epoch": 1}
    if not overrides:  # without validation there is no held-out set to probe D's memorisation with
        assert "probe_lse_gap" not in (run_dir / "logs" / "metrics.csv").read_text()


# ------------------------------------------------------------------------------------------ ssgan-predict
def test_predict_refuses_an_output_in_a_missing_folder(finished_run: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 64), np.float32))
    output = tmp_path / "missing" / "predictions.csv"
    result = ssgan_predict(tmp_path, str(finished_run / "checkpoints" / "last.ckpt"), "x.npz", "-o", str(output))
    assert result.returncode == 2
    assert f"the folder {output.parent} does not exist" in one_line(result, "ssgan-predict: error:")
    assert not output.parent.exists()


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (np.array(["a", "b", "c"]), "y[0]='a' is not one of the checkpoint's classes"),
        (np.array([1, 12, 3]), "y[1]=12 is not a class of the checkpoint; expected whole numbers in [0, 10)"),
        (np.array([1.5, 2, 3]), "y[0]=1.5 is not a class of the checkpoint"),
        (np.array([1, 2]), "y has shape (2,); expected (3,)"),
    ],
    ids=["strings", "unknown-class", "fraction", "length"],
)
def test_predict_checks_y_before_it_touches_the_output(finished_run: Path, tmp_path: Path, labels, expected) -> None:
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 64), np.float32), y=labels)
    output = tmp_path / "predictions.csv"
    output.write_text("earlier predictions\n")
    result = ssgan_predict(tmp_path, str(finished_run / "checkpoints" / "last.ckpt"), "x.npz", "-o", str(output))
    assert result.returncode == 2
    assert expected in one_line(result, "ssgan-predict: error:")
    assert output.read_text() == "earlier predictions\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["predictions.csv", "x.npz"]  # no temporary left


def table_rows(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classes on features of very different ranges, so a model without its scaling would be lost."""
    labels = rng.integers(0, 2, count)
    features = np.stack([1000 + 400 * labels + rng.normal(0, 50, count), rng.normal(0, 0.01, count) - labels * 0.02],
                        axis=1)
    return features, labels


def write_table(path: Path, features: np.ndarray, labels: np.ndarray) -> None:
    rows = "".join(f"{a:.4f},{b:.6f},{label}\n" for (a, b), label in zip(features, labels))
    path.write_text("x1,x2,label\n" + rows)


def test_predict_applies_the_training_scaling_of_a_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train_x, train_y = table_rows(rng, 300)
    test_x, test_y = table_rows(rng, 60)
    write_table(tmp_path / "train.csv", train_x, train_y)
    write_table(tmp_path / "test.csv", test_x, test_y)
    run_dir = tmp_path / "run"
    table = [f"data.source.path={tmp_path / 'train.csv'}", f"data.source.test_path={tmp_path / 'test.csv'}"]
    result = ssgan_train(run_dir, "trainer.max_epochs=2", *QUICK, "data=table", *table, "data.batch_size=50")
    assert result.returncode == 0, result.stderr[-3000:]
    test_acc = json.loads((run_dir / "metrics.json").read_text())["test_acc"]

    stored = np.loadtxt(tmp_path / "test.csv", delimiter=",", skiprows=1)  # the features as stored, unscaled
    np.savez(tmp_path / "raw.npz", x=stored[:, :2].astype(np.float32), y=stored[:, 2].astype(np.int64))
    output = tmp_path / "predictions.csv"
    result = ssgan_predict(tmp_path, str(run_dir / "checkpoints" / "last.ckpt"), "raw.npz", "-o", str(output))
    assert result.returncode == 0, result.stderr[-3000:]
    assert one_line(result, "wrote ") == f"wrote {output}; accuracy {test_acc:.4f}"
    with output.open(newline="") as handle:
        probabilities = np.array([[float(row["p_0"]), float(row["p_1"])] for row in csv.DictReader(handle)])
    assert ((probabilities > 0.001) & (probabilities < 0.999)).any()  # not the hard 0/1 of unscaled inputs
