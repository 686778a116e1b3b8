"""The captured training step on a CUDA GPU against the eager step (skipped without one): the same losses from one
seed, no host sync inside a captured step, a short run's accuracy, and an exact-enough resume.

    pytest -q tests/test_capture_gpu.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from helpers import KillAtBatch, SimulatedKill

from ssgan.build import build, compose
from ssgan.cli.train import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="the captured step needs a CUDA GPU")

# D's pool of noise is a CPU device; the captured step always draws fresh noise, so the eager reference does too
GPU = ["trainer.accelerator=gpu", "trainer.devices=1", "model.discriminator.noise_pool_size=0",
       "trainer.enable_progress_bar=false"]
LOSSES = ("loss_d", "loss_labeled", "loss_unlabeled", "loss_g")


class RecordSteps(pl.Callback):
    """Each step's losses (copied, since a replay overwrites its outputs) and the runner's counts at the end."""

    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []
        self.counts: tuple[int, int, int] | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.losses.append(torch.stack([outputs[name].float() for name in LOSSES]).clone())

    def on_train_end(self, trainer: pl.Trainer, module: Any) -> None:
        step = module.captured_step
        self.counts = (step.captures, step.replays, step.eager_steps) if step is not None else None


class NoSyncInsideCapturedSteps(pl.Callback):
    """Turns torch's sync check to "error" from a batch's start to its end, once the step is captured: any host
    read of a device value in the step, the callbacks' batch hooks or Lightning's loop then raises."""

    def __init__(self) -> None:
        self.checked = 0

    def on_train_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, batch_idx: int) -> None:
        if module.captured_step is not None and module.captured_step.replays > 0:
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if torch.cuda.get_sync_debug_mode() != 0:
            torch.cuda.set_sync_debug_mode("default")
            self.checked += 1


def fit(run_dir: Path, *overrides: str, callbacks: tuple[pl.Callback, ...] = ()) -> tuple[Any, pl.Trainer]:
    cfg = compose([*GPU, "~logger", "callbacks.health.samples_dir=null", *overrides], output_dir=run_dir)
    datamodule, model, trainer = build(cfg, extra_callbacks=callbacks)
    trainer.fit(model, datamodule=datamodule)
    return model, trainer


SHIFTS = "model.augmentation={_target_: ssgan.data.augment.RandomShiftFlip, max_shift: 1}"


@pytest.mark.parametrize(
    ("overrides", "rtol", "atol"),
    [
        (["trainer.precision=32-true"], 1e-4, 1e-5),
        (["trainer.precision=bf16-mixed"], 2e-2, 2e-3),
        (["trainer.precision=32-true", "gan.minibatch_discrimination.kernels=20", SHIFTS], 1e-4, 1e-5),
    ],
    ids=["fp32", "bf16", "minibatch-and-shifts"],
)
def test_the_captured_step_gives_the_eager_losses_for_50_steps(tmp_path: Path, overrides: list[str], rtol: float,
                                                                atol: float) -> None:
    # the paper's MNIST networks on digits; 50 batches = 100 optimizer steps, over 4 epochs of 14 batches
    run = ["trainer.max_epochs=10", "trainer.max_steps=100", "seed=3", *overrides]
    eager, captured = RecordSteps(), RecordSteps()
    eager_model, eager_trainer = fit(tmp_path / "eager", *run, "model.step_capture=off", callbacks=(eager,))
    model, trainer = fit(tmp_path / "captured", *run, "model.step_capture=on", callbacks=(captured,))
    assert model.capture_active and not eager_model.capture_active
    assert captured.counts == (1, 47, 3)  # three warm-up steps, one capture, a replay for every later batch
    assert trainer.global_step == eager_trainer.global_step == 100
    assert model.weight_average.num_updates == eager_model.weight_average.num_updates == 50
    torch.testing.assert_close(torch.stack(captured.losses), torch.stack(eager.losses), rtol=rtol, atol=atol)
    eager_weights = eager_model.discriminator.state_dict()
    for name, value in model.discriminator.state_dict().items():
        torch.testing.assert_close(value, eager_weights[name], rtol=10 * rtol, atol=10 * atol, msg=name)


def test_auto_captures_on_a_gpu_with_the_data_on_it_and_no_host_sync_per_step(tmp_path: Path) -> None:
    watch = NoSyncInsideCapturedSteps()
    model, trainer = fit(tmp_path / "run", "trainer.max_epochs=2", "model.step_capture=auto",
                         "callbacks.divergence.check_every_n_steps=1000", callbacks=(watch,))
    assert model.capture_active
    assert trainer.datamodule._train_stream.unlabeled_inputs.is_cuda
    assert watch.checked == 2 * 14 - 4  # every batch after the three warm-up steps and the capture


def test_a_short_captured_run_learns_as_the_eager_one(tmp_path: Path) -> None:
    run = ["experiment=digits_50", "trainer.max_epochs=30", "callbacks.health.sample_every_n_epochs=0"]
    eager = train(compose([*GPU, *run, "model.step_capture=off"], output_dir=tmp_path / "eager"))
    captured = train(compose([*GPU, *run, "model.step_capture=on"], output_dir=tmp_path / "captured"))
    assert captured["test_acc"] > 0.5
    assert abs(captured["test_acc"] - eager["test_acc"]) < 0.05


def test_a_captured_run_resumed_mid_epoch_ends_near_the_uninterrupted_one(tmp_path: Path) -> None:
    run = [*GPU, "trainer.max_epochs=2", "callbacks.checkpoint.every_n_epochs=1", "model.step_capture=on",
           "callbacks.health.sample_every_n_epochs=0", "callbacks.last_checkpoint.every_n_train_batches=3"]
    reference = train(compose(run, output_dir=tmp_path / "reference"))
    kill = f"+callbacks.kill={{_target_: {KillAtBatch.__module__}.KillAtBatch, batch: 8}}"
    with pytest.raises(SimulatedKill):
        train(compose([*run, kill], output_dir=tmp_path / "run"))
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert all(not group["capturable"] for state in saved["optimizer_states"] for group in state["param_groups"])
    resumed = train(compose([*run, "ckpt_path=last"], output_dir=tmp_path / "run"))
    final = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    expected = torch.load(tmp_path / "reference" / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    for name, value in expected["state_dict"].items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            torch.testing.assert_close(final["state_dict"][name], value, rtol=1e-3, atol=1e-4, msg=name)
    assert abs(resumed["test_acc"] - reference["test_acc"]) < 0.02


def test_an_eager_run_resumes_a_captured_runs_checkpoint(tmp_path: Path) -> None:
    run = [*GPU, "callbacks.checkpoint.every_n_epochs=1", "callbacks.health.sample_every_n_epochs=0"]
    train(compose([*run, "trainer.max_epochs=1", "model.step_capture=on"], output_dir=tmp_path / "run"))
    resumed = train(compose([*run, "trainer.max_epochs=2", "model.step_capture=off", "ckpt_path=last"],
                            output_dir=tmp_path / "run"))
    assert resumed["test_acc"] > 0.1
