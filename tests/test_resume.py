"""Kill or signal a run mid-epoch or between epochs, resume it with ckpt_path=last, and get the uninterrupted run's
results."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from helpers import RecordLearningRates, SimulatedKill

from ssgan.callbacks import RunInterrupted
from ssgan.callbacks.checkpointing import AtomicCheckpointIO, resolve_checkpoint
from ssgan.cli.train import train
from ssgan.errors import SSGANError

# digits: 1437 training images, batch 100 -> 14 batches per epoch; 2 epochs = 28 batches.
RUN = [
    "trainer.max_epochs=2",
    "trainer.deterministic=true",
    "callbacks.checkpoint.every_n_epochs=1",
    "callbacks.health.sample_every_n_epochs=0",
]
KILL = "+callbacks.kill={_target_: helpers.KillAtBatch, batch: %d}"


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[dict, Path]:
    from conftest import compose_run

    run_dir = tmp_path_factory.mktemp("uninterrupted")
    return train(compose_run(run_dir, RUN)), run_dir


@pytest.mark.parametrize(
    "every_n_batches, kill_after",
    [(3, 8), (0, 17)],  # mid-epoch checkpoint at batch 6; epoch-end checkpoint at batch 14
    ids=["mid-epoch", "epoch-end"],
)
def test_resume_after_kill_matches_uninterrupted_run(make_config, uninterrupted, every_n_batches, kill_after):
    reference, reference_dir = uninterrupted
    step_option = f"callbacks.last_checkpoint.every_n_train_batches={every_n_batches}"
    with pytest.raises(SimulatedKill):
        train(make_config("run", *RUN, step_option, KILL % kill_after))
    saved = torch.load(Path(make_config("run").paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    expected_step = 6 if every_n_batches else 0
    assert saved["SemiSupervisedDataModule"] == {"epoch": 0 if every_n_batches else 1, "step": expected_step}

    resumed = train(make_config("run", *RUN, step_option, "ckpt_path=last"))

    assert resumed["test_acc"] == reference["test_acc"]
    assert resumed["test_confusion"] == reference["test_confusion"]
    weights, reference_weights = final_weights(Path(make_config("run").paths.output_dir)), final_weights(reference_dir)
    assert weights.keys() == reference_weights.keys()
    for name, value in reference_weights.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(weights[name], value), name
        else:
            assert weights[name] == value, name


def test_a_signal_saves_at_the_batch_end_and_the_resume_matches_the_uninterrupted_run(make_config, uninterrupted):
    reference, reference_dir = uninterrupted
    signal_option = f"+callbacks.signal={{_target_: helpers.SignalAtBatch, batch: 8, signum: {int(signal.SIGTERM)}}}"
    with pytest.raises(RunInterrupted, match="interrupted by SIGTERM at epoch 0, training step 8; resume with"):
        train(make_config("run", *RUN, signal_option))
    run_dir = Path(make_config("run").paths.output_dir)
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["SemiSupervisedDataModule"] == {"epoch": 0, "step": 8}  # the signal's batch was finished
    record = json.loads((run_dir / "metrics.json").read_text())
    assert (record["status"], record["signal"], record["epochs"], record["step"]) == ("interrupted", "SIGTERM", 0, 8)

    resumed = train(make_config("run", *RUN, "ckpt_path=last"))

    assert resumed["test_confusion"] == reference["test_confusion"]
    weights, reference_weights = final_weights(run_dir), final_weights(reference_dir)
    for name, value in reference_weights.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(weights[name], value), name


def test_a_signal_outside_training_stops_at_once() -> None:
    from ssgan.callbacks import GracefulInterrupt

    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(RunInterrupted, match="interrupted by SIGINT"), GracefulInterrupt(None):
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous  # the caller's handler is back


def test_resuming_with_more_epochs_stretches_the_rate_decay_as_configured(make_config):
    """A finished run continued with a larger trainer.max_epochs follows the config's schedule, not the saved one.

    The decay's end is ``${trainer.max_epochs}``: restoring the checkpoint's factor would keep the old end and
    train every added epoch at rate 0.
    """
    decay = ("+model.scheduler={_target_: ssgan.models.schedules.linear_decay, _partial_: true, start_epoch: 1, "
             "end_epoch: ${trainer.max_epochs}}")
    probe = "+callbacks.rates={_target_: helpers.RecordLearningRates}"
    quick = ["callbacks.health.sample_every_n_epochs=0", "trainer.limit_train_batches=2", decay, probe]
    RecordLearningRates.seen.clear()
    train(make_config("run", "trainer.max_epochs=2", *quick))
    RecordLearningRates.seen.clear()

    train(make_config("run", "trainer.max_epochs=4", *quick, "ckpt_path=last"))

    base = 0.003  # conf/model/optimizer/adam.yaml, for D and G alike
    epochs = [epoch for epoch, _ in RecordLearningRates.seen]
    assert epochs == [2, 3]
    for epoch, rates in RecordLearningRates.seen:
        assert rates == [pytest.approx(base * (4 - epoch) / 3)] * 2, epoch


def test_auto_resumes_a_signalled_run_and_starts_over_a_run_stopped_before_its_first_checkpoint(
    make_config, uninterrupted
):
    """The same command, ckpt_path=auto, run again after every stop: what a requeued cluster job does."""
    reference, reference_dir = uninterrupted
    auto = [*RUN, "ckpt_path=auto"]
    with pytest.raises(SimulatedKill):  # before any checkpoint: config, split and logs only
        train(make_config("run", *auto, KILL % 5))
    run_dir = Path(make_config("run").paths.output_dir)
    assert (run_dir / "config.yaml").is_file() and not (run_dir / "checkpoints" / "last.ckpt").exists()
    signal_option = f"+callbacks.signal={{_target_: helpers.SignalAtBatch, batch: 20, signum: {int(signal.SIGTERM)}}}"
    with pytest.raises(RunInterrupted):
        train(make_config("run", *auto, signal_option))
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] > 0

    resumed = train(make_config("run", *auto))

    assert resumed["test_confusion"] == reference["test_confusion"]
    weights, reference_weights = final_weights(run_dir), final_weights(reference_dir)
    for name, value in reference_weights.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(weights[name], value), name
    logged = (run_dir / "logs" / "metrics.csv").read_text().splitlines()
    reference_logged = (reference_dir / "logs" / "metrics.csv").read_text().splitlines()
    assert logged == reference_logged  # no duplicate rows; the cut epoch's means cover all its steps


def test_ckpt_path_last_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(SSGANError, match=r"ckpt_path=last but .*last\.ckpt does not exist"):
        resolve_checkpoint("last", tmp_path)
    with pytest.raises(SSGANError, match="does not exist"):
        resolve_checkpoint(tmp_path / "missing.ckpt", tmp_path)
    assert resolve_checkpoint(None, tmp_path) is None
    assert resolve_checkpoint("auto", tmp_path) is None


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"good": 1}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        io.save_checkpoint({"bad": Unpicklable()}, target)
    assert torch.load(target, weights_only=False) == {"good": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_a_runners_preemption_signal_saves_at_the_batch_end_then_goes_to_the_runners_handler(make_config):
    """submitit's SIGUSR2 handler (checkpoint hook + requeue) gets the signal only once the checkpoint is saved."""
    received: list[int] = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))
    try:
        signal_option = f"+callbacks.signal={{_target_: helpers.SignalAtBatch, batch: 8, signum: {int(signal.SIGUSR2)}}}"
        with pytest.raises(RunInterrupted, match="interrupted by SIGUSR2 at epoch 0, training step 8") as caught:
            train(make_config("run", *RUN, signal_option))
        assert received == []  # deferred: the run stopped at the batch end and saved first
        saved = torch.load(Path(make_config("run").paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
        assert saved["SemiSupervisedDataModule"] == {"epoch": 0, "step": 8}
        caught.value.forward()
        assert received == [signal.SIGUSR2]
        assert signal.getsignal(signal.SIGUSR2) is not None and signal.getsignal(signal.SIGUSR2) != signal.SIG_DFL
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_a_preemption_signal_nobody_handles_is_left_alone() -> None:
    from ssgan.callbacks import GracefulInterrupt

    previous = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        with GracefulInterrupt(None):
            assert signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_an_interruption_pickles_and_a_repeated_signal_does_not_cut_the_stop() -> None:
    import pickle

    from ssgan.callbacks import GracefulInterrupt

    assert pickle.loads(pickle.dumps(RunInterrupted(signal.SIGTERM))).signum == signal.SIGTERM
    with pytest.raises(RunInterrupted), GracefulInterrupt(None):
        try:
            signal.raise_signal(signal.SIGTERM)
        finally:
            signal.raise_signal(signal.SIGTERM)  # while stopping: ignored, the first interruption goes on
