"""The rules of a run directory, one function at a time (test_command_line.py runs them through ssgan-train)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ssgan.callbacks.logs import keep_epochs_before
from ssgan.callbacks.run_identity import identity_differences
from omegaconf import OmegaConf

from ssgan.cli.run_directory import check_restart, check_run_directory, resumed_epoch, run_files
from ssgan.errors import SSGANError


def test_an_empty_or_failed_start_directory_is_free(tmp_path: Path) -> None:
    check_run_directory(tmp_path / "missing", None, "hydra.run.dir")
    (tmp_path / "error.txt").write_text("SSGANError: an earlier start failed\n")
    assert run_files(tmp_path) == []
    check_run_directory(tmp_path, None, "hydra.run.dir")


def test_a_directory_with_a_run_needs_its_own_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(SSGANError, match=r"already holds a run \(config.yaml, checkpoints\); resume it with "
                                         r"ckpt_path=last \(or auto\), or start a new run elsewhere with hydra.sweep.dir="):
        check_run_directory(tmp_path, None, "hydra.sweep.dir")
    check_run_directory(tmp_path, str(tmp_path / "checkpoints" / "last.ckpt"), "hydra.run.dir")
    with pytest.raises(SSGANError, match="is not one of its checkpoints"):
        check_run_directory(tmp_path, str(tmp_path / "elsewhere.ckpt"), "hydra.run.dir")


def test_the_resumed_epoch_counts_finished_epochs_only() -> None:
    def checkpoint(processed: int) -> dict:
        return {"loops": {"fit_loop": {"epoch_progress": {"current": {"processed": processed, "completed": 0}}}}}

    assert resumed_epoch(checkpoint(0)) == 0 and resumed_epoch(checkpoint(3)) == 3
    assert resumed_epoch({"epoch": 2}) == 2  # a checkpoint without loop state


def test_logs_keep_the_epochs_before_the_resume_and_their_columns(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,test_acc,train_loss\n0,2,,1.5\n1,5,,1.2\n2,8,,1.1\n3,9,0.9,\n")
    keep_epochs_before(path, 2)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["epoch", "step", "test_acc", "train_loss"]
        assert [row["epoch"] for row in reader] == ["0", "1"]
    keep_epochs_before(tmp_path / "absent.csv", 0)  # no log yet: nothing to do


def test_identity_differences_name_each_key_and_a_missing_group_once() -> None:
    saved = {"seed": 0, "model._target_": "a.SSGAN", "model.generator.noise_dim": 100, "model.generator.widths": [5]}
    current = {"seed": 1, "model._target_": "a.Supervised"}
    assert identity_differences(saved, current) == [
        "model._target_='a.SSGAN' (now 'a.Supervised')",
        "model.generator (now absent)",
        "seed=0 (now 1)",
    ]
    assert identity_differences(current, current) == []


def test_an_earlier_versions_checkpoint_resumes_while_the_settings_it_lacks_keep_their_neutral_values() -> None:
    saved = {"seed": 0, "model.objective.unlabeled_weight": 1.0}  # written before the improved-GAN switches existed
    current = {**saved, "model.objective.real_target": 1.0, "model.objective.generator_objective": "feature_matching",
               "model.discriminator.minibatch_kernels": 0, "data.num_train": None}
    assert identity_differences(saved, current) == []
    smoothed = {**current, "model.objective.real_target": 0.9}  # a switch turned on: not the run it was
    assert identity_differences(saved, smoothed) == ["model.objective.real_target (absent in the checkpoint)"]


def test_auto_without_a_checkpoint_starts_over_only_on_the_same_runs_unfinished_start(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"seed": 3, "data": {"num_labeled": 50}, "model": {"lr": 0.1}})
    assert check_restart(tmp_path / "new", cfg, "hydra.run.dir") is False  # nothing there: a plain start
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (tmp_path / "logs").mkdir()
    assert check_restart(tmp_path, cfg, "hydra.run.dir") is True  # its own early start: start over on it
    other = OmegaConf.merge(cfg, {"seed": 4})
    with pytest.raises(SSGANError, match=r"no checkpoints/last.ckpt, started with other settings: seed=3 \(now 4\)"):
        check_restart(tmp_path, other, "hydra.sweep.dir")
    (tmp_path / "metrics.json").write_text('{"status": "interrupted"}')
    assert check_restart(tmp_path, cfg, "hydra.run.dir") is True
    (tmp_path / "metrics.json").write_text('{"test_acc": 0.9}')
    with pytest.raises(SSGANError, match=r"and it ended \(completed\); start a new run elsewhere"):
        check_restart(tmp_path, cfg, "hydra.run.dir")
