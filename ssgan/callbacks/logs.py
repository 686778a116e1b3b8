"""``logs/metrics.csv`` that a resumed run continues, and the trim that keeps every epoch in it once."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from ssgan.callbacks.checkpointing import write_atomically


class AppendingExperimentWriter(ExperimentWriter):
    """Lightning's writer, except that an existing ``metrics.csv`` is continued (its columns kept), not deleted."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                self.metrics_keys = next(csv.reader(handle), [])


class AppendingCSVLogger(CSVLogger):
    """:class:`CSVLogger` whose ``metrics.csv`` survives a resume: ``ssgan-train`` first trims the rows of the
    epochs the resumed run trains again (:func:`keep_epochs_before`), then the run appends its own."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment


def keep_epochs_before(metrics_file: Path, epoch: int) -> None:
    """Drop the rows of ``epoch`` and later (logged before an interruption, or a finished run's test row)."""
    if not metrics_file.is_file():
        return
    with metrics_file.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = [row for row in reader if row.get("epoch") not in (None, "") and int(float(row["epoch"])) < epoch]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(metrics_file, text.getvalue())
