"""SIGINT and SIGTERM end a run cleanly: at the next training batch end, after saving the last checkpoint.

A cluster's preemption signal that a job runner already handles (submitit's checkpoint-and-requeue on SIGUSR2)
gets the same treatment first, then goes to that runner's handler, which requeues the job.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Callable

import pytorch_lightning as pl

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# preemption signals: deferred like the above only where a runner installed a handler for them before the run
FORWARDED_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


class RunInterrupted(Exception):
    """A signal stopped the run; ``signum`` is the signal (the process exits with 128 + signum, as a shell does).

    ``forward_to`` is the job runner's own handler of a preemption signal: whoever ends the process calls
    :meth:`forward` instead of exiting, so the runner can requeue the job.
    """

    def __init__(self, signum: int, forward_to: Callable[[int, FrameType | None], Any] | None = None) -> None:
        self.signum = int(signum)
        self.forward_to = forward_to
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")

    def __reduce__(self) -> tuple[Any, ...]:
        """Picklable (a job runner may pickle it as a job's outcome); the runner's handler does not travel."""
        return (RunInterrupted, (self.signum,))

    def forward(self) -> None:
        """Hand the signal to the runner's handler (submitit: checkpoint hook, requeue, exit)."""
        assert self.forward_to is not None
        self.forward_to(self.signum, None)


class GracefulInterrupt(pl.Callback):
    """Turns SIGINT/SIGTERM into :class:`RunInterrupted`, a plain exception a run can record and exit on.

    While training batches run on one process the first signal is deferred to the end of the current batch:
    ``checkpoint_path`` is saved there, the same way as a mid-epoch last checkpoint, so resuming from it is
    exact. Elsewhere (loading data, testing, under DDP, or a second signal) the exception is raised at once.
    Lightning's own SIGTERM handling (a ``SystemExit`` with status 0) composes with this handler and never
    gets to run its exit. Handlers can only be installed in the main thread; elsewhere this does nothing.
    """

    def __init__(self, checkpoint_path: str | Path | None) -> None:
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.signum: int | None = None
        self._deferring = False
        self._previous: dict[int, Any] = {}
        self._forwarded: dict[int, Callable[[int, FrameType | None], Any]] = {}
        self._stopping = False

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
            for signum in FORWARDED_SIGNALS:
                if callable(signal.getsignal(signum)):
                    self._forwarded[signum] = signal.getsignal(signum)
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        self._forwarded.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:  # the run is already stopping (recording, exiting): a repeated signal must not cut it
            return
        first = self.signum is None
        self.signum = signum
        if not (first and self._deferring):
            raise self.interruption()

    def interruption(self) -> RunInterrupted:
        assert self.signum is not None
        self._stopping = True
        return RunInterrupted(self.signum, self._forwarded.get(self.signum))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._deferring = trainer.world_size == 1  # ranks would stop at different batches and hang the others

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A signal that came after the last batch (validation, epoch end) stops the run before its test."""
        self._deferring = False
        if self.signum is not None:
            self.stop(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._deferring = False

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # At an epoch's last batch the run goes on through the epoch's end (validation, its logged losses), so
        # no epoch is left half-recorded; it stops after the next batch, or at the end of training.
        if self.signum is not None and batch_idx + 1 < trainer.num_training_batches:
            self.stop(trainer)

    def stop(self, trainer: pl.Trainer) -> None:
        """Save the last checkpoint (at a batch boundary, so resume is exact) and raise."""
        assert self.signum is not None
        self._deferring = False
        if self.checkpoint_path is not None and not trainer.fast_dev_run:
            trainer.save_checkpoint(self.checkpoint_path, weights_only=False)
        raise self.interruption()
