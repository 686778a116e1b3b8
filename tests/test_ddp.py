"""DDP on CPU (gloo, 2 processes): disjoint shards, one run directory, test accuracy equal to one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ssgan.callbacks import DistinctNoisePerRank
from ssgan.data.streams import EvaluationStream
from ssgan.build import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "model.discriminator.hidden_widths=[64,32]",
    "gan.generator.hidden_widths=[64,64]",
    "trainer.enable_progress_bar=false",
]
DDP_ON_CPU = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


def run_train(arguments: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m ssgan.cli.train ARGS`` from ``cwd`` with this checkout first on the path, one thread per process."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ssgan.cli.train", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def digits_datamodule(rank: int, world_size: int):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["data.num_labeled=50"])
    datamodule = instantiate(cfg.data)
    datamodule.trainer = SimpleNamespace(global_rank=rank, world_size=world_size)
    datamodule.setup("fit")
    return datamodule


def test_training_streams_shard_unlabeled_and_replicate_labeled() -> None:
    shards = []
    for rank in (0, 1):
        datamodule = digits_datamodule(rank, 2)
        datamodule.train_dataloader()
        shards.append(datamodule._train_stream.epoch_indices(epoch=0))
    (labeled_0, unlabeled_0, matching_0), (labeled_1, unlabeled_1, matching_1) = shards
    assert set(unlabeled_0.tolist()).isdisjoint(unlabeled_1.tolist())
    assert set(matching_0.tolist()).isdisjoint(matching_1.tolist())
    assert set(labeled_0.tolist()) == set(labeled_1.tolist()) == set(range(50))  # every rank: the whole subset
    assert not torch.equal(labeled_0, labeled_1)  # in its own order


def test_evaluation_shards_partition_the_set_without_padding() -> None:
    inputs, targets = torch.arange(361).float().unsqueeze(1), torch.arange(361) % 10
    seen = [row for rank in (0, 1) for batch, _ in EvaluationStream(inputs, targets, 100, rank, 2) for row in batch]
    assert sorted(int(row) for row in seen) == list(range(361))


def test_each_rank_draws_its_own_noise_and_one_process_is_untouched() -> None:
    def noise_after_train_start(rank: int, world_size: int) -> torch.Tensor:
        torch.manual_seed(0)  # every rank is seeded alike, as seed_everything does
        trainer = SimpleNamespace(global_rank=rank, world_size=world_size)
        DistinctNoisePerRank(seed=0).on_train_start(trainer, None)
        return torch.rand(8)

    assert not torch.equal(noise_after_train_start(0, 2), noise_after_train_start(1, 2))
    assert torch.equal(noise_after_train_start(0, 2), noise_after_train_start(0, 2))  # reproducible
    torch.manual_seed(0)
    untouched = torch.rand(8)
    assert torch.equal(noise_after_train_start(0, 1), untouched)


def single_process_test(run_dir: Path) -> dict[str, torch.Tensor]:
    """Evaluate the run's last checkpoint in this process, from the run's own resolved config."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    model = instantiate(
        cfg.model,
        input_shape=datamodule.input_shape,
        num_classes=datamodule.num_classes,
        class_names=list(datamodule.class_names),
    )
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    checkpoint = str(run_dir / "checkpoints" / "last.ckpt")  # written by this test run: safe to unpickle
    trainer.test(model, datamodule=datamodule, ckpt_path=checkpoint, verbose=False, weights_only=False)
    return model.test_results


def test_ddp_two_processes_share_one_run_directory_and_match_one_process(tmp_path: Path) -> None:
    result = run_train([*DDP_ON_CPU, *TINY], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    run_dirs = [path for path in (tmp_path / "outputs").glob("*/*") if path.is_dir()]
    assert len(run_dirs) == 1, run_dirs  # the child rank reused the parent's run directory
    run_dir = run_dirs[0]
    assert not list(run_dir.glob("error*.txt"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["num_test"] == 360  # both ranks' halves of the test set, counted once

    single = single_process_test(run_dir)
    assert float(single["test_acc"]) == metrics["test_acc"]
    assert float(single["test_acc_macro"]) == metrics["test_acc_macro"]
    assert single["test_confusion"].tolist() == metrics["test_confusion"]


def test_ddp_inside_a_local_multirun_is_refused_per_job(tmp_path: Path) -> None:
    result = run_train(["-m", *DDP_ON_CPU, *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]  # the sweep goes on
    (error,) = (tmp_path / "sweep").glob("*/error.txt")
    assert "cannot run inside a local multirun" in error.read_text()
    assert not list((tmp_path / "sweep").glob("*/metrics.json"))
