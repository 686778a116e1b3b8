"""Sweep results as data: collect every job's metrics.json / error.txt, group runs that differ only in the seed.

A job's settings are its model, dataset, label count and every value of its (unresolved) config; the report
groups by all settings that vary across the collected jobs except those in :data:`NOT_GROUPED` (the seed,
paths, logging), so results from several sweep directories combine correctly.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssgan.errors import SSGANError

# config keys (and key prefixes) that never separate two cells: the seed is what a cell averages over
NOT_GROUPED = (
    "seed",
    "ckpt_path",
    "paths",
    "data.eval_batch_size",
    "trainer.log_every_n_steps",
    "trainer.enable_progress_bar",
)
LEADING_COLUMNS = ("model", "num_labeled")
STATISTICS = ("test_acc", "test_acc_macro", "test_errors", "train_seconds")

Value = str | int | float | bool | None


@dataclass(frozen=True)
class JobResult:
    """A finished job: its directory, the contents of its metrics.json and the sample-quality statistics of its
    evaluation.json (``is_<judge>_n<samples>``, ``fid_<judge>_n<samples>``; none without one)."""

    directory: Path
    metrics: dict[str, Any]
    evaluation: dict[str, float] = field(default_factory=dict)

    def statistic(self, name: str) -> Any:
        return self.evaluation[name] if name in self.evaluation else self.metrics.get(name)


@dataclass(frozen=True)
class JobFailure:
    """A job that did not finish: its directory and the first line of its error.txt."""

    directory: Path
    message: str


@dataclass
class Cell:
    """The jobs that share every grouped setting (they differ in the seed only), summarised."""

    settings: dict[str, Value]
    jobs: list[JobResult] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.jobs)

    @property
    def seeds(self) -> list[int]:
        return sorted(int(job.metrics["seed"]) for job in self.jobs)

    def values(self, name: str) -> list[float]:
        return [float(job.statistic(name)) for job in self.jobs if job.statistic(name) is not None]

    def mean(self, name: str) -> float:
        values = self.values(name)
        return statistics.fmean(values) if values else math.nan

    def std(self, name: str) -> float:
        """Sample standard deviation across seeds; NaN for a single run (no spread to estimate)."""
        values = self.values(name)
        return statistics.stdev(values) if len(values) > 1 else math.nan


def collect(roots: Sequence[str | Path]) -> tuple[list[JobResult], list[JobFailure]]:
    """Every job directory under ``roots``: metrics.json is a result unless an error.txt is newer."""
    results: list[JobResult] = []
    failures: list[JobFailure] = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise SSGANError(f"sweep directory {root} does not exist or is not a directory")
        directories = {path.parent for name in ("metrics.json", "error.txt") for path in root.rglob(name)}
        for directory in sorted(directories):
            outcome = read_job(directory)
            (results if isinstance(outcome, JobResult) else failures).append(outcome)  # type: ignore[arg-type]
    return results, failures


def read_job(directory: Path) -> JobResult | JobFailure:
    """One job directory's outcome; an unreadable or incomplete metrics.json counts as a failure."""
    metrics_path, error_path = directory / "metrics.json", directory / "error.txt"
    if error_path.exists() and (not metrics_path.exists() or error_path.stat().st_mtime > metrics_path.stat().st_mtime):
        lines = error_path.read_text(errors="replace").strip().splitlines()
        return JobFailure(directory, lines[0] if lines else "error.txt is empty")
    try:
        metrics = json.loads(metrics_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        return JobFailure(directory, f"unreadable metrics.json: {error}")
    missing = [key for key in ("model_name", "num_labeled", "seed", "test_acc") if key not in metrics]
    if missing:
        return JobFailure(directory, f"metrics.json lacks {', '.join(missing)}")
    if metrics.get("status", "completed") != "completed":
        return JobFailure(directory, f"status {metrics['status']}")
    return JobResult(directory, metrics, evaluation_statistics(directory))


def evaluation_name(kind: str, entry: Mapping[str, Any]) -> str:
    """``is_classifier_n1000`` / ``fid_classifier_n1000``: one statistic per judge and sample count, since FID
    depends on the number of samples and scores of different judges do not compare."""
    return f"{kind}_{entry.get('judge', {}).get('name')}_n{int(entry.get('num_samples', 0))}"


def evaluation_statistics(directory: Path) -> dict[str, float]:
    """The Inception score (mean over splits) and FID of the job's final evaluations, when it has evaluation.json.

    An unreadable file leaves the job's accuracy in the report, without sample-quality statistics.
    """
    from ssgan.evaluation.records import EVALUATION_FILE, final_entries, read_entries

    try:
        entries = read_entries(directory / EVALUATION_FILE)
    except SSGANError:
        return {}
    values: dict[str, float] = {}
    try:
        for entry in final_entries(entries):
            for kind, key in (("is", "inception_score_mean"), ("fid", "fid")):
                if isinstance(entry.get(key), (int, float)):
                    values[evaluation_name(kind, entry)] = float(entry[key])
    except (AttributeError, TypeError, ValueError):  # an entry edited by hand: no columns rather than no report
        return {}
    return values


def evaluation_columns(results: Sequence[JobResult]) -> list[str]:
    """The sample-quality statistics any job has, by judge and sample count, the Inception score first."""
    names = {key for job in results for key in job.evaluation}
    return sorted(names, key=lambda name: (name.split("_", 1)[1].rsplit("_n", 1)[0],
                                           int(name.rsplit("_n", 1)[1]), not name.startswith("is_")))


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Value]:
    """Nested config -> {dotted key: scalar}; lists become compact JSON text so they can be compared."""
    flat: dict[str, Value] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value, separators=(",", ":"))
        else:
            flat[name] = value
    return flat


def is_grouped(key: str, ignore: Iterable[str] = ()) -> bool:
    """False for keys in NOT_GROUPED or ``ignore`` (a key or any key below it)."""
    return not any(key == prefix or key.startswith(prefix + ".") for prefix in (*NOT_GROUPED, *ignore))


def job_settings(metrics: Mapping[str, Any], ignore: Iterable[str] = ()) -> dict[str, Value]:
    """What defines a job apart from its seed: model, dataset, label count, then its config."""
    settings: dict[str, Value] = {
        "model": metrics["model_name"],
        "num_labeled": int(metrics["num_labeled"]),
        "dataset": metrics.get("dataset"),
    }
    ignore = tuple(ignore)
    config = flatten(metrics.get("config") or {})
    settings.update({key: value for key, value in config.items() if is_grouped(key, ignore)})
    return settings


def group(results: Sequence[JobResult], ignore: Iterable[str] = ()) -> tuple[list[str], list[Cell]]:
    """Cells of jobs equal in every varying setting, and the few columns that tell the cells apart.

    The columns are the leading ones (model, number of labels) plus, in order, each varying setting that
    splits the cells further, so settings that follow from the model (its generator, its target) are not
    repeated.
    """
    ignore = tuple(ignore)
    settings = [job_settings(job.metrics, ignore) for job in results]
    keys = list(dict.fromkeys(key for entry in settings for key in entry))
    varying = [key for key in keys if len({entry.get(key) for entry in settings}) > 1]

    def count(columns: Sequence[str]) -> int:
        return len({tuple(entry.get(column) for column in columns) for entry in settings})

    columns = list(LEADING_COLUMNS)
    for key in varying:
        if count(columns) == count(varying + columns):
            break
        if key not in columns and count([*columns, key]) > count(columns):
            columns.append(key)

    cells: dict[tuple[Value, ...], Cell] = {}
    for job, entry in zip(results, settings):
        identity = tuple(entry.get(key) for key in [*columns, *varying])
        cell = cells.setdefault(identity, Cell({column: entry.get(column) for column in columns}))
        cell.jobs.append(job)
    ordered = sorted(cells.values(), key=lambda cell: [sort_key(cell.settings[c]) for c in columns])
    return columns, ordered


def sort_key(value: Value) -> tuple[int, float, str]:
    """Numbers before text, numbers by value (so 20 < 100), everything else by its text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))
