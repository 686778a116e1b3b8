"""Training curves: validation accuracy and the GAN-health statistics against epochs, so a late collapse shows.

Read from a run's own epoch log (``logs/metrics.csv``). The test set is read once, at the end, so test accuracy
is one marker at the last epoch, never a curve.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from ssgan.errors import SSGANError

CURVES_FILE = "curves.png"
# (column of the epoch log, legend label); the panels a run's figure shows, top to bottom
ACCURACY = (("val_acc", "validation accuracy"),)
DISCRIMINATOR = (
    ("health_d_accuracy_real", "D accepts real (share)"),
    ("health_d_accuracy_generated", "D rejects generated (share)"),
    ("generated_class_entropy_ratio", "class entropy of samples / log K"),
)
GENERATOR = (("health_generator_loss", "G's loss"), ("train_loss_d", "D's loss"))
# with validation (ssgan.callbacks.MemorisationProbe): does D call its own pool more real than held-out images?
MEMORISATION = (("probe_lse_gap", "D's lse: pool − held out"), ("probe_d_scale_max", "D's largest scale"))
# the generator's loss was logged under this name before it followed gan.generator_objective
RENAMED = {"health_feature_matching_loss": "health_generator_loss"}


def epoch_series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Each logged column as (epoch, value) pairs; the class entropy also as a share of its maximum."""
    path = run_dir / "logs" / "metrics.csv"
    if not path.is_file():
        return {}
    series: dict[str, dict[int, float]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue
            epoch = int(row["epoch"])
            for name, text in row.items():
                if name in ("epoch", "step") or not text:
                    continue
                name = RENAMED.get(name, name)
                try:
                    series.setdefault(name, {})[epoch] = float(text)
                except ValueError:
                    continue
    entropy, maximum = series.get("health_generated_class_entropy", {}), series.get("health_generated_class_entropy_max", {})
    if entropy and maximum:
        series["generated_class_entropy_ratio"] = {e: v / maximum[e] for e, v in entropy.items() if maximum.get(e)}
    return {name: sorted(values.items()) for name, values in series.items()}


def final_test_accuracy(run_dir: Path) -> tuple[int, float] | None:
    """(tested epoch, test accuracy) from metrics.json, when the run was tested: the epoch whose weights the test
    read (``tested_weights``), or the last one for runs that do not record it."""
    path = run_dir / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("test_acc"), (int, float)):
        return None
    tested = metrics.get("tested_weights")
    if isinstance(tested, dict) and isinstance(tested.get("epoch"), int):
        return max(tested["epoch"], 0), float(metrics["test_acc"])
    return max(int(metrics.get("epochs", 1)) - 1, 0), float(metrics["test_acc"])


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise SSGANError(f"the curves need matplotlib ({error}); pip install 'ssgan[sweeps]'") from None
    return plt


def plot_run(run_dir: str | Path, path: str | Path | None = None) -> Path | None:
    """``curves.png`` of one run (None when it logged no epoch): accuracy, D's view, the two losses."""
    run_dir = Path(run_dir)
    series = epoch_series(run_dir)
    if not any(name in series for name, _ in (*ACCURACY, *DISCRIMINATOR, *GENERATOR)):
        return None
    plt = pyplot()
    panels = [p for p in (ACCURACY, DISCRIMINATOR, GENERATOR, MEMORISATION) if any(name in series for name, _ in p)]
    test = final_test_accuracy(run_dir)
    figure, axes = plt.subplots(len(panels), 1, figsize=(7, 2.4 * len(panels)), sharex=True, squeeze=False)
    for axis, panel in zip(axes[:, 0], panels):
        for name, label in panel:
            if name in series:
                epochs, values = zip(*series[name])
                axis.plot([e + 1 for e in epochs], values, label=label, linewidth=1.2)
        if panel is ACCURACY and test is not None:
            axis.plot([test[0] + 1], [test[1]], "k*", markersize=9, label="test accuracy (read once)")
        if panel is GENERATOR and all(v > 0 for name, _ in panel for _, v in series.get(name, [])):
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("epoch")
    figure.suptitle(run_dir.name, fontsize=9)
    figure.tight_layout()
    target = Path(path) if path is not None else run_dir / CURVES_FILE
    figure.savefig(target, dpi=110)
    plt.close(figure)
    return target


def plot_runs(run_dirs: Sequence[Path], path: str | Path, labels: Sequence[str] | None = None) -> Path | None:
    """Many runs in one figure (a sweep): validation accuracy and D's rejection of samples, one line per run."""
    named = [(d, labels[i] if labels else d.name, epoch_series(d)) for i, d in enumerate(run_dirs)]
    named = [(d, label, s) for d, label, s in named if "val_acc" in s or "health_d_accuracy_generated" in s]
    if not named:
        return None
    plt = pyplot()
    figure, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    colours = plt.get_cmap("tab20")
    for index, (run_dir, label, series) in enumerate(named):
        colour = colours(index % 20)
        for axis, name in zip(axes, ("val_acc", "health_d_accuracy_generated")):
            if name in series:
                epochs, values = zip(*series[name])
                axis.plot([e + 1 for e in epochs], values, color=colour, linewidth=1, label=label)
        test = final_test_accuracy(run_dir)
        if test is not None and "val_acc" in series:
            axes[0].plot([test[0] + 1], [test[1]], "*", color=colour, markersize=7)
    axes[0].set_ylabel("validation accuracy\n(* test, read once)")
    axes[1].set_ylabel("D rejects generated")
    axes[1].set_xlabel("epoch")
    for axis in axes:
        axis.grid(alpha=0.3)
    if len(named) <= 12:
        axes[0].legend(fontsize=6, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)

