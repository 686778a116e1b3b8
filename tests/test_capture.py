"""The captured training step's CPU-testable parts: the switch and its refusals, the fallback reasons, the graph-safe
pieces of the step (weight average, noise, class counts), the capture runner's bookkeeping, and whole runs with the
CUDA graph replaced by an emulation that replays the step's Python; tests/test_capture_gpu.py has the real thing."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from helpers import KillAtBatch, PoisonAtBatch, SimulatedKill
from torch import nn
from torch.utils._pytree import tree_flatten

import ssgan.models.ssgan as ssgan_module
from ssgan.build import build
from ssgan.callbacks.divergence import TrainingDiverged
from ssgan.cli.checks import check_config
from ssgan.cli.train import train
from ssgan.data.augment import RandomShiftFlip
from ssgan.data.streams import SemiSupervisedStream
from ssgan.errors import SSGANError
from ssgan.models import capture
from ssgan.models.capture import (
    CapturedStep,
    capture_blockers,
    resolve_step_capture,
    step_capture_mode,
)
from ssgan.models.ema import WeightAverage
from ssgan.models.ssgan import class_counts
from ssgan.nets.layers import GaussianNoise, clear_noise_pools, draw_fresh_noise
from tests.conftest import compose_config

# digits: 1437 training images, batch 100 -> 14 batches per epoch
SHORT = ["trainer.max_epochs=2", "trainer.limit_train_batches=6", "trainer.deterministic=true"]


# ----------------------------------------------------------------------------------------------- an emulated graph
class EmulatedGraph:
    """Stands in for a CUDA graph on the CPU: capturing runs nothing; each replay runs the step's Python on the
    static inputs and writes the results into the first replay's tensors, as a graph writes its static outputs."""

    def __init__(self, run: Callable[[], Any]) -> None:
        self.run = run
        self.outputs: Any = None

    def replay(self) -> None:
        results = self.run()
        if self.outputs is None:
            self.outputs = results
            return
        for static, fresh in zip(tree_flatten(self.outputs)[0], tree_flatten(results)[0]):
            static.copy_(fresh)


class EmulatedGraphs:
    captured = 0  # captures by every instance, so a test can tell that a run went through one

    def __init__(self) -> None:
        self.warm_ups = 0

    def warm_up(self, run: Callable[[], Any]) -> Any:
        self.warm_ups += 1
        return run()

    def capture(self, run: Callable[[], Any]) -> EmulatedGraph:
        EmulatedGraphs.captured += 1
        return EmulatedGraph(run)


@pytest.fixture
def emulated_capture(monkeypatch: pytest.MonkeyPatch) -> type[EmulatedGraphs]:
    """Runs with step_capture=auto capture on the CPU, through the emulated graph."""
    monkeypatch.setattr(capture, "CudaGraphs", EmulatedGraphs)
    monkeypatch.setattr(ssgan_module, "resolve_step_capture", lambda mode, device, blockers: mode != "off")
    monkeypatch.setattr(EmulatedGraphs, "captured", 0)
    return EmulatedGraphs


class RecordOutputs(pl.Callback):
    """Copies of every step's returned losses and health statistics."""

    def __init__(self) -> None:
        self.rows: list[list[torch.Tensor]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.rows.append([value.clone() for value in tree_flatten(outputs)[0]])


def fit(tmp_path: Path, *overrides: str, callbacks: tuple[pl.Callback, ...] = ()) -> tuple[Any, pl.Trainer, RecordOutputs]:
    cfg = compose_config(tmp_path, [*SHORT, "~callbacks", "~logger", "++trainer.enable_checkpointing=false",
                                    *overrides])
    record = RecordOutputs()
    datamodule, model, trainer = build(cfg, extra_callbacks=[record, *callbacks])
    trainer.fit(model, datamodule=datamodule)
    return model, trainer, record


def assert_same_run(first: tuple[Any, pl.Trainer, RecordOutputs], second: tuple[Any, pl.Trainer, RecordOutputs]) -> None:
    (model_a, trainer_a, record_a), (model_b, trainer_b, record_b) = first, second
    assert trainer_a.global_step == trainer_b.global_step
    assert model_a.weight_average.num_updates == model_b.weight_average.num_updates
    assert len(record_a.rows) == len(record_b.rows)
    for row_a, row_b in zip(record_a.rows, record_b.rows):
        assert all(torch.equal(a, b) for a, b in zip(row_a, row_b))
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    for name, value in state_a.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, state_b[name]), name


# ----------------------------------------------------------------------------------------------- the switch
@pytest.mark.parametrize("value", ["auto", "on", "off"])
def test_the_switch_takes_auto_on_and_off(value: str) -> None:
    assert step_capture_mode(value) == value


@pytest.mark.parametrize("value", ["maybe", True, False, None])
def test_another_value_is_one_line_naming_the_key(value: Any) -> None:
    with pytest.raises(SSGANError, match=r"model.step_capture=.* must be one of auto, on, off"):
        step_capture_mode(value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.step_capture=maybe"], "model.step_capture='maybe' must be one of auto, on, off"),
        (["model.step_capture=true"], "model.step_capture=True must be one of auto, on, off"),
        (["model.step_capture=on"], "model.step_capture=on needs a CUDA GPU, but trainer.accelerator=cpu"),
    ],
)
def test_a_bad_switch_stops_before_anything_is_written(tmp_path: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(SSGANError) as raised:
        train(compose_config(tmp_path / "run", overrides))
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_on_with_auto_accelerator_and_no_gpu_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = compose_config(Path("unused"), ["trainer.accelerator=auto", "model.step_capture=on"])
    with pytest.raises(SSGANError, match="needs a CUDA GPU, but no CUDA GPU is visible; use model.step_capture=auto"):
        check_config(cfg)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (["trainer=ddp"], "DDP with 2 processes"),
        (["trainer.precision=16-mixed"], "trainer.precision=16-mixed"),
        (["gan.historical_averaging.generator_weight=0.1"], "gan.historical_averaging"),
        (["model.optimizer._target_=torch.optim.SGD", "~model.optimizer.betas", "~model.optimizer.fused"],
         "model.optimizer=SGD"),
    ],
)
def test_on_refuses_what_the_graph_cannot_hold_at_the_boundary(
    monkeypatch: pytest.MonkeyPatch, overrides: list[str], reason: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine, as far as the checks can tell
    cfg = compose_config(Path("unused"), ["trainer.accelerator=gpu", "model.step_capture=on", *overrides])
    with pytest.raises(SSGANError, match=f"model.step_capture=on cannot capture this run: {reason}") as raised:
        check_config(cfg)
    assert "\n" not in str(raised.value)


def test_on_passes_the_checks_for_a_plain_gpu_run_with_the_shipped_augmentation(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    augmentation = "model.augmentation={_target_: ssgan.data.augment.RandomShiftFlip, max_shift: 1}"
    check_config(compose_config(Path("unused"), ["trainer.accelerator=gpu", "model.step_capture=on", augmentation]))


class PythonRandomShift:
    """An augmentation that does not say it is graph-safe."""


def test_each_unsupported_feature_is_one_reason() -> None:
    assert capture_blockers(world_size=1, precision="32-true", historical_averaging=False,
                            augmentation=RandomShiftFlip, optimizer=torch.optim.Adam) == []
    reasons = capture_blockers(world_size=4, precision="16-mixed", historical_averaging=True,
                               augmentation=PythonRandomShift, optimizer=torch.optim.SGD)
    assert [reason.split(" ")[0] for reason in reasons] == [
        "DDP", "trainer.precision=16-mixed", "gan.historical_averaging", "model.augmentation=PythonRandomShift",
        "model.optimizer=SGD",
    ]
    assert capture_blockers(world_size=1, precision="bf16-mixed", historical_averaging=False, augmentation=None,
                            optimizer=torch.optim.AdamW) == []


def test_auto_is_eager_off_a_gpu_silently_and_logs_one_line_on_a_gpu_it_cannot_capture(caplog) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    with caplog.at_level(logging.INFO, logger="ssgan"):
        assert resolve_step_capture("auto", cpu, ["DDP with 2 processes"]) is False
        assert resolve_step_capture("off", cuda, []) is False
        assert caplog.records == []
        assert resolve_step_capture("auto", cuda, []) is True
        assert resolve_step_capture("auto", cuda, ["DDP with 2 processes", "gan.historical_averaging"]) is False
    assert len(caplog.records) == 1
    assert "not captured: DDP with 2 processes; gan.historical_averaging" in caplog.records[0].getMessage()
    with pytest.raises(SSGANError, match="needs a CUDA device but this run trains on cpu"):
        resolve_step_capture("on", cpu, [])
    with pytest.raises(SSGANError, match="cannot capture this run: DDP with 2 processes; use auto or off"):
        resolve_step_capture("on", cuda, ["DDP with 2 processes"])


def test_auto_on_a_cpu_trains_the_eager_step_bit_for_bit(tmp_path: Path) -> None:
    auto = fit(tmp_path / "auto", "model.step_capture=auto")
    off = fit(tmp_path / "off", "model.step_capture=off")
    assert auto[0].capture_active is False and auto[0].captured_step is None
    assert auto[1].datamodule.training_device is None
    assert_same_run(auto, off)


# ----------------------------------------------------------------------------------------------- graph-safe pieces
def test_the_weight_average_counted_on_the_device_equals_the_host_count_bit_for_bit() -> None:
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(7, 5), nn.Linear(5, 3))
    on_host, on_device = WeightAverage(network, 0.99), WeightAverage(network, 0.99)
    on_device.count_on_device(torch.device("cpu"))
    for _ in range(150):  # through the warm-up and past it
        with torch.no_grad():
            for parameter in network.parameters():
                parameter.add_(torch.randn_like(parameter))
        on_host.update(network)
        on_device.update(network)
    for a, b in zip(on_host.average.parameters(), on_device.average.parameters()):
        assert torch.equal(a, b)
    assert on_device.num_updates == on_host.num_updates == 150
    on_device.set_extra_state({"num_updates": 7})  # a restored checkpoint reaches the device count
    assert on_device.device_updates is not None and float(on_device.device_updates) == 7.0
    on_device.count_on_host()
    assert on_device.device_updates is None and on_device.get_extra_state() == {"num_updates": 7}


def test_fresh_draws_skip_the_noise_pool_and_draw_from_torchs_generator() -> None:
    clear_noise_pools()
    x = torch.zeros(4, 50)
    pooled, fresh = GaussianNoise(0.5, pool_size=1 << 12), GaussianNoise(0.5)
    draw_fresh_noise(nn.Sequential(pooled), True)
    torch.manual_seed(3)
    expected = fresh(x)
    torch.manual_seed(3)
    assert torch.equal(pooled(x), expected)
    draw_fresh_noise(nn.Sequential(pooled), False)
    torch.manual_seed(3)
    assert not torch.equal(pooled(x), expected)  # the pool again: a slice at a seeded offset


def test_class_counts_equal_bincount_without_reading_the_largest_index() -> None:
    logits = torch.randn(300, 10)
    logits[:, 7] -= 100.0  # a class nobody predicts still gets its zero
    counts = class_counts(logits, 10)
    assert counts.dtype == torch.int64
    assert torch.equal(counts, torch.bincount(logits.argmax(dim=1), minlength=10))


def test_every_training_batch_has_the_static_shape() -> None:
    stream = SemiSupervisedStream(torch.rand(50, 3), torch.arange(50) % 5, torch.rand(1437, 3), batch_size=100, seed=0)
    shapes = {tuple(part.shape[0] for part in batch) for batch in stream}
    assert shapes == {(100, 100, 100, 100)} and len(stream) == 14  # the short remainder of 37 is never a batch


def test_the_data_module_cuts_training_batches_where_it_is_asked_to(tmp_path: Path) -> None:
    from ssgan.build import build_datamodule

    datamodule = build_datamodule(compose_config(tmp_path, []))
    datamodule.keep_training_data_on(torch.device("meta"))  # shapes only: a stand-in for a GPU
    batches = list(datamodule.train_dataloader())
    assert len(batches) == 14 and all(part.device.type == "meta" for batch in batches for part in batch)
    assert {tuple(part.shape[0] for part in batch) for batch in batches} == {(100, 100, 100, 100)}
    datamodule.keep_training_data_on(None)
    assert next(iter(datamodule.train_dataloader()))[0].device.type == "cpu"


def test_the_throughput_script_refuses_capture_without_a_gpu_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "throughput.py"
    result = subprocess.run([sys.executable, str(script), "--step-capture", "on"], cwd=tmp_path, text=True,
                            capture_output=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=300,
                            check=False)
    assert result.returncode == 2
    assert "model.step_capture=on needs a CUDA GPU, but trainer.accelerator=cpu" in result.stderr.splitlines()[-1]


# ----------------------------------------------------------------------------------------------- the runner
def test_the_runner_warms_up_captures_once_replays_and_recaptures_on_new_settings(caplog) -> None:
    weight = torch.ones(3)
    counted: list[int] = []

    def step(inputs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        weight.add_(inputs[0].sum(0))
        return {"sum": weight.sum().reshape(1)}

    backend = EmulatedGraphs()
    runner = CapturedStep(step, after_step=lambda: counted.append(1), backend=backend, warmup_steps=2)
    batches = [torch.full((2, 3), float(i)) for i in range(6)]
    outputs = [runner((batch,), settings=("lr", 0.1)) for batch in batches[:4]]
    assert backend.warm_ups == 2 and runner.captures == 1 and runner.replays == 2
    assert outputs[2] is outputs[3]  # replays write the graph's static outputs
    assert float(weight.sum()) == 3 + 6 * (0 + 1 + 2 + 3)  # each batch trained once, the captured one included

    runner((batches[4],), settings=("lr", 0.05))  # a new rate: captured again
    assert runner.captures == 2
    with caplog.at_level(logging.INFO, logger="ssgan"):
        runner((torch.ones(1, 3),), settings=("lr", 0.05))  # another shape: trained eagerly, graph kept
        runner((torch.ones(1, 3),), settings=("lr", 0.05))
    assert runner.eager_steps == 4 and runner.captures == 2 and runner.graph is not None
    assert len(caplog.records) == 1 and "runs eagerly" in caplog.records[0].getMessage()
    assert len(counted) == 7  # the host's share of every step, captured or not


# ----------------------------------------------------------------------------------------------- whole runs
def test_an_emulated_captured_run_equals_the_eager_one_bit_for_bit(tmp_path: Path, emulated_capture) -> None:
    fresh = "model.discriminator.noise_pool_size=0"  # a captured step draws D's noise fresh, whatever the pool
    captured = fit(tmp_path / "captured", "model.step_capture=auto", fresh)
    eager = fit(tmp_path / "eager", "model.step_capture=off", fresh)
    model, trainer, _ = captured
    assert model.capture_active and model.captured_step is None  # released at the fit's end
    assert trainer.datamodule.training_device == model.device
    assert all(not group["capturable"] for optimizer in trainer.optimizers for group in optimizer.param_groups)
    assert model.weight_average.device_updates is None
    assert_same_run(captured, eager)


class CountCaptures(pl.Callback):
    """The runner's counts at the end of training (before the fit's end releases it)."""

    def on_train_end(self, trainer: pl.Trainer, module: Any) -> None:
        step = module.captured_step
        self.seen = (step.captures, step.replays, step.eager_steps)


def test_a_new_learning_rate_each_epoch_captures_the_step_again(tmp_path: Path, emulated_capture) -> None:
    schedule = "model.scheduler={_target_: ssgan.models.linear_decay, _partial_: true, start_epoch: 0, end_epoch: 3}"
    counts = CountCaptures()
    fit(tmp_path / "run", "model.step_capture=auto", schedule, callbacks=(counts,))
    assert counts.seen == (2, 12 - 3, 3)  # 2 epochs of 6 steps: 3 warm-up steps, a capture per epoch's rate


RUN = ["trainer.max_epochs=2", "trainer.deterministic=true", "callbacks.checkpoint.every_n_epochs=1",
       "callbacks.health.sample_every_n_epochs=0", "model.step_capture=auto"]


def test_an_emulated_captured_run_resumes_exactly_and_saves_eager_checkpoints(tmp_path: Path, emulated_capture) -> None:
    reference = train(compose_config(tmp_path / "reference", RUN))
    assert emulated_capture.captured == 1
    mid_epoch = "callbacks.last_checkpoint.every_n_train_batches=3"
    kill = f"+callbacks.kill={{_target_: {KillAtBatch.__module__}.KillAtBatch, batch: 8}}"
    with pytest.raises(SimulatedKill):
        train(compose_config(tmp_path / "run", [*RUN, mid_epoch, kill]))
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert all(not group["capturable"] for state in saved["optimizer_states"] for group in state["param_groups"])
    assert saved["state_dict"]["weight_average._extra_state"] == {"num_updates": 6}
    resumed = train(compose_config(tmp_path / "run", [*RUN, mid_epoch, "ckpt_path=last"]))
    assert emulated_capture.captured == 3  # the resumed fit captures again
    assert resumed["test_acc"] == reference["test_acc"] and resumed["test_confusion"] == reference["test_confusion"]
    assert resumed["health"]["history"] == reference["health"]["history"]
    final = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    expected = torch.load(tmp_path / "reference" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    for name, value in expected.items():
        assert torch.equal(final[name], value) if isinstance(value, torch.Tensor) else final[name] == value, name


def test_checkpoints_resume_across_the_switch(tmp_path: Path, emulated_capture) -> None:
    base = ["trainer.deterministic=true", "callbacks.checkpoint.every_n_epochs=1",
            "callbacks.health.sample_every_n_epochs=0"]
    train(compose_config(tmp_path / "eager", [*base, "trainer.max_epochs=1", "model.step_capture=off"]))
    train(compose_config(tmp_path / "eager", [*base, "trainer.max_epochs=2", "model.step_capture=auto",
                                              "ckpt_path=last"]))
    assert emulated_capture.captured == 1
    train(compose_config(tmp_path / "captured", [*base, "trainer.max_epochs=1", "model.step_capture=auto"]))
    train(compose_config(tmp_path / "captured", [*base, "trainer.max_epochs=2", "model.step_capture=off",
                                                 "ckpt_path=last"]))
    assert emulated_capture.captured == 2


def test_the_divergence_guard_stops_an_emulated_captured_run(tmp_path: Path, emulated_capture) -> None:
    poison = f"+callbacks.poison={{_target_: {PoisonAtBatch.__module__}.PoisonAtBatch, batch: 6}}"
    cfg = compose_config(tmp_path / "run", [*RUN, "callbacks.divergence.check_every_n_steps=1", poison])
    with pytest.raises(TrainingDiverged) as raised:
        train(cfg)
    assert raised.value.step == 6 and emulated_capture.captured == 1
