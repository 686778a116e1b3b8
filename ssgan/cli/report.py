"""``ssgan-report SWEEP_DIR [...]``: a sweep's results as report.csv, report.md, report.png and curves.png.

    ssgan-report multirun/label_budget_sweep/2025-01-01_12-00-00
    ssgan-report multirun/a multirun/b --output reports/combined --ignore trainer.max_epochs

Cells are the jobs that differ only in their seed (mean ± sample std over seeds, n per cell); the figure
plots test accuracy against the number of labels, one line per model (and per other varying setting);
curves.png shows each job's validation accuracy and D's rejection of samples against epochs.
Jobs with an evaluation.json (ssgan-evaluate) add Inception score and FID columns, one pair per judge and
number of samples.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from ssgan.errors import SSGANError
from ssgan.cli.curves import plot_runs
from ssgan.cli.naming import short_keys
from ssgan.cli.results import STATISTICS, Cell, JobFailure, collect, evaluation_columns, group


def csv_rows(columns: Sequence[str], cells: Sequence[Cell], evaluations: Sequence[str] = ()) -> list[dict[str, object]]:
    """One row per cell: its settings, n, seeds, and mean/std of every statistic (std empty when n = 1; both
    empty for a sample-quality statistic the cell's jobs lack)."""
    rows = []
    for cell in cells:
        row: dict[str, object] = {column: cell.settings[column] for column in columns}
        row["n"] = cell.n
        row["seeds"] = " ".join(map(str, cell.seeds))
        for name in STATISTICS:
            row[f"{name}_mean"] = cell.mean(name)
            row[f"{name}_std"] = "" if math.isnan(cell.std(name)) else cell.std(name)
        for name in evaluations:
            row[f"{name}_mean"] = "" if math.isnan(cell.mean(name)) else cell.mean(name)
            row[f"{name}_std"] = "" if math.isnan(cell.std(name)) else cell.std(name)
        rows.append(row)
    return rows


def write_csv(path: Path, columns: Sequence[str], cells: Sequence[Cell], evaluations: Sequence[str] = ()) -> None:
    statistics = (*STATISTICS, *evaluations)
    fields = [*columns, "n", "seeds", *(f"{name}_{kind}" for name in statistics for kind in ("mean", "std"))]
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=fields)
        writer.writeheader()
        writer.writerows(csv_rows(columns, cells, evaluations))


def evaluation_header(name: str) -> str:
    """``is_classifier_n1000`` -> ``IS (classifier, N=1000)``."""
    kind, rest = name.split("_", 1)
    judge, samples = rest.rsplit("_n", 1)
    return f"{kind.upper()} ({judge}, N={samples})"


def plain(cell: Cell, name: str) -> str:
    """``8.91 ± 0.12``; the mean alone for one seed; ``-`` when no job of the cell has the statistic."""
    mean, std = cell.mean(name), cell.std(name)
    if math.isnan(mean):
        return "-"
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def percent(cell: Cell, name: str) -> str:
    """``91.39 ± 1.20`` (percent); the mean alone when one seed gives no spread."""
    mean, std = 100 * cell.mean(name), 100 * cell.std(name)
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def markdown(
    columns: Sequence[str],
    cells: Sequence[Cell],
    failures: Sequence[JobFailure],
    roots: Sequence[Path],
    evaluations: Sequence[str] = (),
) -> str:
    """The table a reader wants: settings, n, accuracy (micro and macro, %), errors and time, the sample-quality
    scores when jobs have them, then failures."""
    names = short_keys(columns)
    header = [*(names[c] for c in columns), "n", "test acc % (mean ± std)", "macro acc %", "test errors", "train s"]
    header += [evaluation_header(name) for name in evaluations]
    lines = [
        "# Sweep report",
        "",
        f"Jobs: {sum(cell.n for cell in cells)} completed, {len(failures)} failed, from "
        + ", ".join(f"`{root}`" for root in roots)
        + ". Each cell: mean ± sample std over seeds.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * len(columns) + ["---:"] * (len(header) - len(columns))) + "|",
    ]
    for cell in cells:
        values = [str(cell.settings[c]) for c in columns]
        values += [
            str(cell.n),
            percent(cell, "test_acc"),
            percent(cell, "test_acc_macro"),
            f"{cell.mean('test_errors'):.1f}",
            f"{cell.mean('train_seconds'):.1f}",
            *(plain(cell, name) for name in evaluations),
        ]
        lines.append("| " + " | ".join(values) + " |")
    if not cells:
        lines[-2:] = ["No completed jobs."]
    lines += ["", f"## Failed jobs ({len(failures)})", ""]
    lines += [f"- `{relative(failure.directory, roots)}`: {failure.message}" for failure in failures] or ["None."]
    return "\n".join(lines) + "\n"


def relative(directory: Path, roots: Sequence[Path]) -> str:
    """A job directory relative to the sweep directory it was found under."""
    for root in roots:
        if directory.resolve().is_relative_to(root.resolve()):
            return str(directory.resolve().relative_to(root.resolve()))
    return str(directory)


def plot(path: Path, columns: Sequence[str], cells: Sequence[Cell]) -> None:
    """Test accuracy vs number of labels (log x), one line per series with a ±std band where n > 1."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter, ScalarFormatter
    except ImportError as error:
        raise SSGANError(f"the figure needs matplotlib ({error}); pip install 'ssgan[sweeps]'") from None

    series_columns = [c for c in columns if c != "num_labeled"]
    names = short_keys(series_columns)
    series: dict[tuple[object, ...], list[Cell]] = {}
    for cell in cells:
        series.setdefault(tuple(cell.settings[c] for c in series_columns), []).append(cell)

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for key, members in series.items():
        members = sorted(members, key=lambda cell: int(cell.settings["num_labeled"]))
        labels = [int(cell.settings["num_labeled"]) for cell in members]
        means = [100 * cell.mean("test_acc") for cell in members]
        spreads = [0.0 if math.isnan(cell.std("test_acc")) else 100 * cell.std("test_acc") for cell in members]
        name = ", ".join(
            str(value) if column == "model" else f"{names[column]}={value}"
            for column, value in zip(series_columns, key)
        )
        (line,) = axes.plot(labels, means, marker="o", label=name)
        axes.fill_between(
            labels,
            [m - s for m, s in zip(means, spreads)],
            [m + s for m, s in zip(means, spreads)],
            color=line.get_color(),
            alpha=0.2,
            linewidth=0,
        )
    budgets = sorted({int(cell.settings["num_labeled"]) for cell in cells})
    axes.set_xscale("log")
    axes.set_xticks(budgets)
    axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("labeled training examples (log scale)")
    axes.set_ylabel("test accuracy (%)")
    seeds = sorted({cell.n for cell in cells})
    datasets = sorted({str(job.metrics.get("dataset")) for cell in cells for job in cell.jobs})
    axes.set_title(f"{', '.join(datasets)}: mean ± std over seeds (n = {'/'.join(map(str, seeds))})")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def report(
    roots: Sequence[str | Path], output: str | Path | None = None, ignore: Sequence[str] = ()
) -> dict[str, Path]:
    """Collect, group and write the three files; returns their paths."""
    roots = [Path(root) for root in roots]
    results, failures = collect(roots)
    if not results and not failures:
        raise SSGANError(f"no metrics.json or error.txt under {', '.join(map(str, roots))}; is this a sweep directory?")
    output_dir = Path(output) if output is not None else roots[0]
    output_dir.mkdir(parents=True, exist_ok=True)
    columns, cells = group(results, ignore) if results else ([], [])
    evaluations = evaluation_columns(results)
    paths = {kind: output_dir / f"report.{kind}" for kind in ("csv", "md", "png")}
    write_csv(paths["csv"], columns, cells, evaluations)
    paths["md"].write_text(markdown(columns, cells, failures, roots, evaluations))
    if cells:
        plot(paths["png"], columns, cells)
    else:
        del paths["png"]
    directories = [result.directory for result in results]
    curves = plot_runs(directories, output_dir / "curves.png", [relative(d, roots) for d in directories])
    if curves is not None:
        paths["curves"] = curves
    return paths


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ssgan-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dirs", nargs="+", metavar="SWEEP_DIR", help="directories searched for job results")
    parser.add_argument("--output", "-o", help="where report.{csv,md,png} go (default: the first SWEEP_DIR)")
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="KEY",
        help="a config key (or prefix) not to group by, e.g. trainer.max_epochs to pool runs of different lengths",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry ``ssgan-report``: a problem with the inputs is one line on stderr and exit status 2."""
    arguments = parse_arguments(argv)
    try:
        paths = report(arguments.sweep_dirs, arguments.output, arguments.ignore)
    except SSGANError as error:
        print(f"ssgan-report: error: {error}", file=sys.stderr)
        return 2
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
