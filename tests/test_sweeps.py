"""Sweeps: job directory names, failures recorded per job, launcher configs, and a real multirun + report."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class

import ssgan.cli.train
from ssgan.cli.naming import job_dirname, override_values, short_keys
from ssgan.build import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "model.discriminator.hidden_widths=[64,32]",
    "trainer.enable_progress_bar=False",
]
# the tiny settings are the same for every job: keep them out of the job directory names
EXCLUDE_TINY = "hydra.job.config.override_dirname.exclude_keys=[" + ",".join(o.split("=")[0] for o in TINY) + "]"


def compose_with_hydra(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def test_short_keys_keep_just_enough_of_the_path() -> None:
    keys = ["data.num_labeled", "model", "model.discriminator.hidden_widths", "gan.generator.hidden_widths"]
    assert short_keys(keys) == {
        "data.num_labeled": "num_labeled",
        "model": "model",
        "model.discriminator.hidden_widths": "discriminator.hidden_widths",
        "gan.generator.hidden_widths": "generator.hidden_widths",
    }
    assert short_keys(["model/discriminator"]) == {"model/discriminator": "discriminator"}


def test_job_dirname_sorts_short_overrides_and_drops_excluded_keys() -> None:
    overrides = ["seed=1", "data.num_labeled=50", "model=ssgan", "trainer.max_epochs=5", "~logger", "+x.path=/a/b"]
    assert job_dirname(overrides, ["trainer.max_epochs"]) == "+path=_a_b,model=ssgan,num_labeled=50,seed=1,~logger"
    assert job_dirname([]) == "defaults"
    assert override_values(["data.num_labeled=50", "ckpt_path=last"], ["ckpt_path"]) == {"data.num_labeled": "50"}


def test_sweep_subdir_is_resolved_from_the_job_overrides() -> None:
    cfg = compose_with_hydra(["data.num_labeled=50", "model=supervised", "seed=1", "ckpt_path=last"])
    assert cfg.hydra.sweep.subdir == "model=supervised,num_labeled=50,seed=1"  # ckpt_path is excluded


def test_experiment_label_budget_sweep_defines_the_sweep() -> None:
    cfg = compose_with_hydra(["experiment=label_budget_sweep"])
    assert dict(cfg.hydra.sweeper.params) == {
        "data.num_labeled": "20,50,100,200",
        "model": "ssgan,supervised",
        "seed": "0,1,2",
    }
    assert cfg.hydra.sweep.dir.startswith("multirun/label_budget_sweep/")
    assert cfg.hydra.sweep.subdir == "defaults"  # the experiment itself is not part of the job names


def test_slurm_launcher_resolves_one_task_and_gpu_per_device() -> None:
    cfg = compose_with_hydra(
        ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4"]
        + ["hydra.launcher.partition=gpu", "hydra.launcher.mem_gb=64"]
    )
    launcher = cfg.hydra.launcher
    assert get_class(launcher._target_).__name__ == "SlurmLauncher"
    assert (launcher.partition, launcher.timeout_min, launcher.mem_gb, launcher.cpus_per_task) == ("gpu", 120, 64, 4)
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (1, 4, 4)
    assert launcher.submitit_folder.endswith("/.submitit/%j")

    single = compose_with_hydra(["hydra/launcher=slurm"]).hydra.launcher
    assert (single.nodes, single.tasks_per_node, single.gpus_per_node) == (1, 1, 1)


def test_parallel_launcher_extends_the_joblib_plugin_config() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no automatic-schema-matching deprecation: the name differs on purpose
        cfg = compose_with_hydra(["hydra/launcher=parallel", "hydra.launcher.n_jobs=3"])
    launcher = cfg.hydra.launcher
    assert get_class(launcher._target_).__name__ == "JoblibLauncher"
    assert (launcher.n_jobs, launcher.backend) == (3, "loky")


def test_ddp_config_tolerates_unused_parameters() -> None:
    cfg = compose_with_hydra(["trainer=ddp"])
    assert cfg.trainer.strategy._target_.endswith("DDPStrategy")
    assert cfg.trainer.strategy.find_unused_parameters is True
    assert (cfg.trainer.devices, cfg.trainer.num_nodes) == (2, 1)


@pytest.mark.parametrize("mode", ["-m", None])
def test_an_unexpected_error_is_recorded_with_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str | None
) -> None:
    def broken(cfg, interrupt):
        raise RuntimeError(f"broken job {cfg.seed}")

    monkeypatch.setattr(ssgan.cli.train, "prepare", broken)
    if mode:  # a sweep goes on past the failing job and records each failure in its own directory
        monkeypatch.setattr(sys, "argv", ["ssgan-train", "-m", "seed=0,1", f"hydra.sweep.dir={tmp_path}"])
        ssgan.cli.train.main()
        errors = {path.parent.name: path.read_text() for path in tmp_path.glob("*/error.txt")}
        assert sorted(errors) == ["seed=0", "seed=1"]
    else:  # a single run fails as usual, and leaves the same record
        monkeypatch.setattr(sys, "argv", ["ssgan-train", f"hydra.run.dir={tmp_path}"])
        with pytest.raises(SystemExit):
            ssgan.cli.train.main()
        errors = {"run": (tmp_path / "error.txt").read_text()}
    for text in errors.values():
        assert text.startswith("RuntimeError: broken job")
        assert "Traceback (most recent call last)" in text


def test_a_real_multirun_then_report(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    sweep = tmp_path / "sweep"
    command = [
        sys.executable, "-m", "ssgan.cli.train", "-m", "model=ssgan,supervised", "data.num_labeled=20,5",
        *TINY, EXCLUDE_TINY, f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = {path.name for path in sweep.iterdir() if path.is_dir()}
    assert jobs == {f"model={m},num_labeled={n}" for m in ("ssgan", "supervised") for n in (20, 5)}
    for model in ("ssgan", "supervised"):  # 5 labels < 10 classes: recorded, and the sweep went on
        error = (sweep / f"model={model},num_labeled=5" / "error.txt").read_text()
        assert "smaller than the number of classes" in error
    metrics = {
        model: json.loads((sweep / f"model={model},num_labeled=20" / "metrics.json").read_text())
        for model in ("ssgan", "supervised")
    }
    tiny = dict(override.split("=", 1) for override in TINY)
    assert metrics["ssgan"]["overrides"] == {"model": "ssgan", "data.num_labeled": "20", **tiny}

    report = subprocess.run(
        [sys.executable, "-m", "ssgan.cli.report", str(sweep)], env=env, capture_output=True, text=True, timeout=120
    )
    assert report.returncode == 0, report.stderr
    with (sweep / "report.csv").open() as stream:
        rows = {row["model"]: row for row in csv.DictReader(stream)}
    assert set(rows) == {"SSGAN", "SupervisedBaseline"}
    for model, name in (("ssgan", "SSGAN"), ("supervised", "SupervisedBaseline")):
        assert (rows[name]["num_labeled"], rows[name]["n"], rows[name]["seeds"]) == ("20", "1", "0")
        assert float(rows[name]["test_acc_mean"]) == pytest.approx(metrics[model]["test_acc"])
        assert rows[name]["test_acc_std"] == ""  # one seed: no spread

    table = (sweep / "report.md").read_text()
    assert f"| SSGAN | 20 | 1 | {100 * metrics['ssgan']['test_acc']:.2f} |" in table
    assert f"| SupervisedBaseline | 20 | 1 | {100 * metrics['supervised']['test_acc']:.2f} |" in table
    assert "## Failed jobs (2)" in table
    assert "- `model=ssgan,num_labeled=5`: SSGANError: data.num_labeled=5 is smaller" in table
    assert (sweep / "report.png").read_bytes().startswith(b"\x89PNG")


def test_a_job_name_too_long_for_a_file_system_is_cut_and_made_unique_by_a_hash() -> None:
    long_a = [f"model.optimizer.lr={0.1 + 1e-15:.17f}", *[f"key{i}.value={'x' * 20}" for i in range(12)]]
    long_b = [f"model.optimizer.lr={0.2 + 1e-15:.17f}", *long_a[1:]]  # differs only past the cut
    name_a, name_b = job_dirname(long_a), job_dirname(long_b)
    assert len(name_a.encode()) <= 200 and len(name_b.encode()) <= 200
    assert name_a != name_b and name_a.split("~")[0] == name_b.split("~")[0]  # same readable start
    assert job_dirname(long_a) == name_a  # deterministic: a resumed job finds its directory again
