"""Quiet output for the commands: third-party warnings that do not apply to these runs are hidden, for the run only."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

# (message pattern, why it does not apply)
INAPPLICABLE_WARNINGS = (
    # the streams are in memory and read in the main process: workers would only copy tensors
    (r".*`IterableDataset` has `__len__` defined.*", UserWarning),
    (r"The '\w+' does not have many workers which may be a bottleneck.*", UserWarning),
    # no validation set (data.num_validation=0) is a choice, not a mistake
    (r"Total length of `list` across ranks is zero.*", UserWarning),
    # raised inside torch's own pytree code that Lightning calls, not by anything a user can change
    (r".*LeafSpec.*", Warning),
    # the data module restores its stream position from the checkpoint (exact mid-epoch resume)
    (r"You're resuming from a checkpoint that ended before the epoch ended.*", Warning),
    # a machine with SLURM installed but a run started by hand: a local run is what was asked for
    (r"The `srun` command is available on your system but is not used.*", Warning),
)
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric")


class DropVendorTips(logging.Filter):
    """Lightning's advertisements ("Tip: ... litlogger") carry no information about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "💡 Tip" not in message and "litlogger" not in message and "litmodels" not in message


@contextlib.contextmanager
def quiet_third_party(level: int | None = None) -> Iterator[None]:
    """Hide inapplicable warnings and vendor tips while the block runs; ``level`` also raises Lightning's logs."""
    tips = DropVendorTips()
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    # a logger's filters see only its own records, so every Lightning logger gets one
    filtered = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
                if name.startswith(LIGHTNING_LOGGERS)]
    with warnings.catch_warnings():
        for pattern, category in INAPPLICABLE_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern, category=category)
        for logger in filtered:
            logger.addFilter(tips)
        if level is not None:
            for logger in loggers:
                logger.setLevel(level)
        try:
            yield
        finally:
            for logger in filtered:
                logger.removeFilter(tips)
            for logger, old_level in zip(loggers, levels):
                logger.setLevel(old_level)
