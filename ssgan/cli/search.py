"""After a hyper-parameter search: every trial's values and objective as trials.csv and trials.png."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("ssgan")


def trial_rows(sweep_dir: Path, metric: str) -> list[dict[str, Any]]:
    """One row per finished trial (oldest first): its swept values and its objective, or its error."""
    rows = []
    for metrics_file in sorted(sweep_dir.rglob("metrics.json"), key=lambda path: path.stat().st_mtime):
        metrics = json.loads(metrics_file.read_text())
        rows.append({"trial": len(rows), **metrics.get("overrides", {}), metric: metrics.get(metric),
                     "status": metrics.get("status", "unknown"), "directory": metrics_file.parent.name})
    return rows


def write_trials_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def plot_trials(path: Path, rows: list[dict[str, Any]], metric: str) -> bool:
    """Objective per trial and the best so far; False (nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    scored = [(row["trial"], float(row[metric])) for row in rows if row.get(metric) is not None]
    if not scored:
        return False
    trials, values = zip(*scored)
    best = [max(values[: index + 1]) for index in range(len(values))]
    figure, axes = plt.subplots(figsize=(6.0, 3.6))
    axes.plot(trials, values, "o", label=metric)
    axes.step(trials, best, where="post", label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


class TrialsSummary(Callback):
    """A Hydra callback: at the end of a multirun, summarise its trials beside optimization_results.yaml."""

    def __init__(self, metric: str = "val_acc") -> None:
        self.metric = metric

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = trial_rows(sweep_dir, self.metric)
        if not rows:
            log.warning("no finished trial under %s: nothing to summarise", sweep_dir)
            return
        write_trials_csv(sweep_dir / "trials.csv", rows)
        plotted = plot_trials(sweep_dir / "trials.png", rows, self.metric)
        log.info("%d trials -> %s%s", len(rows), sweep_dir / "trials.csv",
                 f", {sweep_dir / 'trials.png'}" if plotted else "")
