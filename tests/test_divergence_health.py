"""A NaN stops the run with a one-line hint and keeps the last good checkpoint; health figures reach metrics.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from ssgan.callbacks.divergence import TrainingDiverged
from ssgan.callbacks.health import class_share_entropy, health_warnings
from ssgan.cli.train import train

POISON = "+callbacks.poison={_target_: helpers.PoisonAtBatch, batch: 9}"


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(make_config):
    cfg = make_config(
        "diverged",
        "trainer.max_epochs=2",
        "callbacks.last_checkpoint.every_n_train_batches=4",
        "callbacks.divergence.check_every_n_steps=5",
        POISON,
    )
    with pytest.raises(TrainingDiverged) as caught:
        train(cfg)
    message = str(caught.value)
    assert "\n" not in message
    assert "became NaN/inf at training step 9" in message and "loss_d" in message
    assert "lower learning rate" in message and "last good checkpoint" in message

    run_dir = Path(cfg.paths.output_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["step"] == 9 and metrics["diverged"] == "loss_d"
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["SemiSupervisedDataModule"] == {"epoch": 0, "step": 8}  # saved before the NaN
    weights = [v for v in checkpoint["state_dict"].values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    assert weights and all(torch.isfinite(v).all() for v in weights)


def test_health_is_logged_summarised_and_sampled(make_config):
    cfg = make_config("healthy", "trainer.max_epochs=2", "callbacks.health.sample_every_n_epochs=1")
    metrics = train(cfg)
    health = metrics["health"]
    last = health["last"]
    for key in ("d_accuracy_real", "d_accuracy_generated", "generator_loss", "grad_norm_d", "grad_norm_g"):
        assert math.isfinite(last[key]), key
    assert 0.0 <= last["d_accuracy_real"] <= 1.0 and 0.0 <= last["d_accuracy_generated"] <= 1.0
    assert len(last["generated_class_share"]) == 10 and sum(last["generated_class_share"]) == pytest.approx(1.0)
    assert last["generated_class_entropy"] <= last["generated_class_entropy_max"] == pytest.approx(math.log(10))
    assert [record["epoch"] for record in health["history"]] == [0, 1]
    samples = Path(cfg.paths.output_dir) / "samples"
    assert sorted(p.name for p in samples.iterdir()) == ["epoch_000.png", "epoch_001.png"]
    on_disk = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert on_disk["health"]["last"]["epoch"] == 1


def record(epoch: int, share: list[float], d_generated: float, fm_loss: float) -> dict:
    counts = torch.tensor(share) * 1000
    return {
        "epoch": epoch,
        "generated_class_share": share,
        "generated_class_entropy": class_share_entropy(counts),
        "generated_class_entropy_max": math.log(len(share)),
        "d_accuracy_generated": d_generated,
        "generator_loss": fm_loss,
    }


def test_health_warnings_name_collapse_and_a_winning_discriminator():
    balanced = [0.1] * 10
    collapsed = [0.91] + [0.01] * 9
    assert health_warnings([record(0, balanced, 0.6, 0.1)], 0.5, 0.99, 3) == []
    (collapse,) = health_warnings([record(0, collapsed, 0.6, 0.1)], 0.5, 0.99, 3)
    assert "collapse" in collapse and "91% of samples go to class 0" in collapse
    rising = [record(e, balanced, 0.995, 0.1 * (e + 1)) for e in range(4)]
    (won,) = health_warnings(rising, 0.5, 0.99, 3)
    assert "discriminator winning outright" in won
    assert health_warnings(rising[:3], 0.5, 0.99, 3) == []  # not yet rising for 3 epochs


def test_tensorboard_logger_composes(make_config, tmp_path):
    cfg = make_config("tb", "logger=tensorboard")
    logger = instantiate(cfg.logger)
    assert type(logger).__name__ == "TensorBoardLogger"
    assert Path(logger.log_dir) == Path(cfg.paths.output_dir) / "tensorboard"
