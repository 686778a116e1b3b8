"""Does training stay healthy to its end? Validation accuracy and GAN health per epoch, by recipe variant.

    python scripts/long_training.py --pool 8000 --epochs 100 --seeds 100 101 102
    python scripts/long_training.py --pool 8000 --epochs 300 --seeds 100 --variants recipe --resume

Each run trains an experiment on a training pool of ``--pool`` images (``data.num_train``; null: all) with
``--validation`` labeled images held out, for ``--epochs`` epochs. Choices (the best epoch) are read on the
validation set; the test set is read once, at the end of each run (docs/protocol.md).

Everything goes to ``--output`` (the checkout's ``results/`` by default):

- ``long_training.csv``: one row per run: best validation epoch and accuracy, final validation and test accuracy,
  D's final rejection rate of samples, with the machine, device, precision, torch, commit and command;
- ``long_training_epochs.csv``: every run's epoch log (validation accuracy and the health statistics);
- ``long_training.md``: generated from the CSVs, mean ± std over seeds per (experiment, pool, epochs, variant);
- ``long_training.png``: the mean curves of each variant.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmark import GENERATED_HEADER, ROOT, checkout_commit, command_line, training_device
from ssgan.build import compose
from ssgan.cli.curves import epoch_series
from ssgan.cli.train import train
from ssgan.runtime.hardware import cpu_model
from ssgan.runtime.quiet import quiet_third_party

# recipe variants: overrides on top of the experiment
VARIANTS: dict[str, list[str]] = {
    "recipe": [],  # the experiment as it is
    "constant_rate": ["model.scheduler=null", "gan.balance_end_epoch=null"],  # no decay: the paper's constant rate
}
KEY = ("experiment", "pool", "epochs", "variant", "seed")
COLUMNS = (*KEY, "best_val_epoch", "best_val_acc", "final_val_acc", "final_test_acc", "final_d_rejects_generated",
           "machine", "device", "precision", "torch", "commit", "command")
EPOCH_SERIES = {"val_acc": "val_acc", "health_d_accuracy_generated": "d_rejects_generated",
                "health_feature_matching_loss": "generator_loss", "generated_class_entropy_ratio": "class_entropy_ratio"}
EPOCH_COLUMNS = (*KEY, "epoch", *EPOCH_SERIES.values())
NAME = "long_training"


def run_one(key: dict[str, Any], args: argparse.Namespace, command: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train one (variant, seed) and return its summary row and epoch rows."""
    output_dir = args.workdir / f"{key['experiment']}_pool{key['pool']}_e{key['epochs']}" / f"{key['variant']}_seed{key['seed']}"
    shutil.rmtree(output_dir, ignore_errors=True)
    overrides = [f"experiment={key['experiment']}", f"data.num_train={key['pool'] or 'null'}",
                 f"data.num_validation={args.validation}", f"trainer.max_epochs={key['epochs']}", f"seed={key['seed']}",
                 "trainer.enable_progress_bar=false", *VARIANTS[key["variant"]], *args.overrides]
    if key["experiment"].startswith("fashion_mnist"):
        overrides.append(f"data.root={args.fashion_root}")
    cfg = compose(overrides, output_dir)
    with quiet_third_party():
        metrics = train(cfg)
    series = epoch_series(output_dir)
    validation = series.get("val_acc", [])
    best_epoch, best_val = max(validation, key=lambda pair: pair[1]) if validation else (None, None)
    rejects = series.get("health_d_accuracy_generated", [])
    row = {**key, "best_val_epoch": best_epoch, "best_val_acc": best_val,
           "final_val_acc": validation[-1][1] if validation else None, "final_test_acc": metrics["test_acc"],
           "final_d_rejects_generated": rejects[-1][1] if rejects else None, "machine": cpu_model(),
           "device": training_device(cfg, int(metrics.get("world_size", 1))), "precision": str(cfg.trainer.precision),
           "torch": torch.__version__, "commit": checkout_commit(outputs(args.output)), "command": command}
    epochs: dict[int, dict[str, Any]] = defaultdict(lambda: dict(key))
    for column, name in EPOCH_SERIES.items():
        for epoch, value in series.get(column, []):
            epochs[epoch].update({"epoch": epoch, name: value})
    return row, [epochs[epoch] for epoch in sorted(epochs)]


def outputs(folder: Path) -> list[Path]:
    """The files this script writes (a commit is not "dirty" for them)."""
    return [folder / f"{NAME}{suffix}" for suffix in (".csv", "_epochs.csv", ".md", ".png")]


def read(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def key_of(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[name]) for name in KEY)


def stats(values: list[float]) -> str:
    if not values:
        return "–"
    mean = statistics.mean(values)
    return f"{mean:.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def markdown(rows: list[dict[str, str]], plotted: bool) -> str:
    groups: dict[tuple[str, ...], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        groups[key_of(row)[:4]].append(row)
    lines = [GENERATED_HEADER, "# Long training", "",
             "Accuracy in % over seeds (mean ± sample std, n runs). The best epoch is chosen on validation accuracy;",
             "the test set is read once, at each run's end. One row per run is in "
             f"[{NAME}.csv]({NAME}.csv), every epoch in [{NAME}_epochs.csv]({NAME}_epochs.csv).", "",
             "| experiment | pool | epochs | variant | best val (epoch) | final val | final − best val | final test | "
             "D rejects samples at end | n | seeds |", "| --- | ---: | ---: | --- | --- | --- | --- | --- | --- | ---: | --- |"]
    for (experiment, pool, epochs, variant), group in groups.items():
        best = [100 * float(r["best_val_acc"]) for r in group]
        final = [100 * float(r["final_val_acc"]) for r in group]
        test = [100 * float(r["final_test_acc"]) for r in group]
        rejects = [100 * float(r["final_d_rejects_generated"]) for r in group if r["final_d_rejects_generated"]]
        best_epochs = ", ".join(str(int(r["best_val_epoch"]) + 1) for r in group)
        gaps = [f - b for f, b in zip(final, best)]
        seeds = " ".join(r["seed"] for r in group)
        lines.append(f"| {experiment} | {pool or 'all'} | {epochs} | {variant} | {stats(best)} ({best_epochs}) | "
                     f"{stats(final)} | {stats(gaps)} | {stats(test)} | {stats(rejects)} | {len(group)} | {seeds} |")
    lines += ["", "## Where the rows ran", ""]
    provenance = sorted({(r["machine"], r["device"], r["precision"], r["torch"], r["commit"]) for r in rows})
    lines += [f"- {machine}, {device}, precision {precision}, torch {version}, commit {commit}"
              for machine, device, precision, version, commit in provenance]
    lines += sorted({f"- `{r['command']}`" for r in rows})
    if plotted:
        lines += ["", f"![Validation accuracy and D's rejection of samples per epoch]({NAME}.png)"]
    return "\n".join(lines) + "\n"


def plot(epoch_rows: list[dict[str, str]], path: Path) -> bool:
    """Mean over seeds of validation accuracy and D's rejection rate per epoch, one line per variant and length."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    curves: dict[tuple[str, ...], dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for row in epoch_rows:
        if row.get("val_acc") and row.get("d_rejects_generated"):
            curves[key_of(row)[:4]][int(row["epoch"])].append((float(row["val_acc"]), float(row["d_rejects_generated"])))
    if not curves:
        return False
    figure, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for index, (key, epochs) in enumerate(curves.items()):
        x = sorted(epochs)
        label = f"{key[0]} pool {key[1] or 'all'}, {key[2]} epochs, {key[3]} (n={len(epochs[x[0]])})"
        for axis, position in zip(axes, (0, 1)):
            axis.plot([e + 1 for e in x], [statistics.mean(v[position] for v in epochs[e]) for e in x],
                      color=f"C{index}", linewidth=1.2, label=label)
    axes[0].set_ylabel("validation accuracy")
    axes[1].set_ylabel("D rejects generated")
    axes[1].set_xlabel("epoch")
    for axis in axes:
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def publish(rows: list[dict[str, str]], epoch_rows: list[dict[str, str]], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    write(output / f"{NAME}.csv", COLUMNS, rows)
    write(output / f"{NAME}_epochs.csv", EPOCH_COLUMNS, epoch_rows)
    plotted = plot(epoch_rows, output / f"{NAME}.png")
    (output / f"{NAME}.md").write_text(markdown(rows, plotted))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="fashion_mnist_100")
    parser.add_argument("--pool", type=int, default=8000, help="training pool size (data.num_train); 0: all")
    parser.add_argument("--validation", type=int, default=1000, help="labeled images held out (data.num_validation)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", nargs="+", type=int, default=[100, 101, 102])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--fashion-root", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--workdir", type=Path, default=Path("outputs/long_training"))
    parser.add_argument("--output", type=Path, default=ROOT / "results")
    parser.add_argument("--resume", action="store_true", help="keep the CSVs' runs and run only the missing ones")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args(argv)
    if args.pool < 0 or args.epochs < 1 or args.validation < 1:
        parser.error("--pool must be >= 0, --epochs and --validation >= 1 (the best epoch is chosen on validation)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    command = command_line(argv).replace("benchmark.py", "long_training.py")
    rows = read(args.output / f"{NAME}.csv") if args.resume else []
    epoch_rows = read(args.output / f"{NAME}_epochs.csv") if args.resume else []
    done = {key_of(row) for row in rows}
    for variant in args.variants:
        for seed in args.seeds:
            key = {"experiment": args.experiment, "pool": args.pool, "epochs": args.epochs, "variant": variant,
                   "seed": seed}
            if key_of(key) in done:
                continue
            row, epochs = run_one(key, args, command)
            rows = [r for r in rows if key_of(r) != key_of(row)] + [{k: str(v) for k, v in row.items()}]
            epoch_rows = [r for r in epoch_rows if key_of(r) != key_of(row)]
            epoch_rows += [{k: "" if v is None else str(v) for k, v in r.items()} for r in epochs]
            publish(rows, epoch_rows, args.output)
            print(f"{variant} seed {seed}: best val {row['best_val_acc']:.4f} at epoch {row['best_val_epoch'] + 1}, "
                  f"final val {row['final_val_acc']:.4f}, test {row['final_test_acc']:.4f}", flush=True)
    publish(rows, epoch_rows, args.output)


if __name__ == "__main__":
    main()
