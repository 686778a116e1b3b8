"""Accuracy per label budget: the SSGAN against the supervised-only network, LabelSpreading and self-training.

    python scripts/benchmark.py                                  # digits (50 labels) + Fashion-MNIST (100, 1000)
    python scripts/benchmark.py --suites digits_50 --seeds 0 1 2
    python scripts/benchmark.py --fashion-root /usr/share/datasets/fashion-mnist --output docs

Every method of a (suite, seed) sees the same labeled examples: the split is drawn once from the suite's data
config and saved, the network runs draw it again from the same seed (checked equal after each run), and the
scikit-learn methods are given exactly the saved labeled indices, on the same pixels. Writes ``benchmarks.csv``
(one row per run) and ``benchmarks.md`` (mean ± std per method and budget, wall seconds, training samples/s,
hardware). ``--resume`` keeps the rows already in the CSV and runs only the missing (suite, seed, method) runs,
so after changing one recipe you can drop its rows and re-run just those; with nothing left to run it rewrites
both files from the CSV's rows (sorted, summarised again), e.g. after pasting in rows from another machine.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from ssgan.runtime.hardware import device_name  # also registers the config resolvers
from ssgan.data.split import Split
from ssgan.cli.train import CONFIG_DIR, train

SUITES: dict[str, list[str]] = {
    "digits_50": ["experiment=digits_50"],
    "fashion_mnist_100": ["experiment=fashion_mnist_100"],
    "fashion_mnist_1000": ["experiment=fashion_mnist_1000"],
}
METHODS = ("ssgan", "supervised", "label_spreading", "self_training", "self_training_on_features")
# run only for suites whose recipe trains its networks on learnt features (data.encoder): scikit-learn's
# self-training given the same features, to show how much of the gain is the representation
FEATURE_METHODS = ("self_training_on_features",)


def compose_run(suite: str, seed: int, model: str, output_dir: Path, extra: list[str]) -> Any:
    overrides = [*SUITES[suite], f"model={model}", f"seed={seed}", f"paths.output_dir={output_dir}",
                 "trainer.enable_progress_bar=false", "~logger", *extra]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def draw_split(suite: str, seed: int, workdir: Path, extra: list[str]) -> Any:
    """The suite's data module with the (suite, seed) split drawn (no training) and saved beside the runs.

    It holds the pixels even where the recipe trains its networks on learnt features (``data.encoder``):
    the split does not depend on them, and the scikit-learn methods are run on the pixels.
    """
    folder = workdir / suite
    datamodule = instantiate(compose_run(suite, seed, "ssgan", folder, extra).data)
    datamodule.features = None  # a recipe's learnt features are the networks' business: baselines get pixels
    datamodule.setup("fit")
    folder.mkdir(parents=True, exist_ok=True)
    datamodule.save_split(folder / f"split_seed{seed}.npz")
    return datamodule


def has_features(suite: str, extra: list[str]) -> bool:
    """Whether the suite's recipe trains its networks on learnt features rather than on the pixels."""
    return compose_run(suite, 0, "ssgan", Path("."), extra).data.get("features") is not None


def featurised(suite: str, seed: int, workdir: Path, extra: list[str]) -> Any:
    """The suite's data module with its features fitted as in the network runs (same data, seed and pool)."""
    datamodule = instantiate(compose_run(suite, seed, "ssgan", workdir / suite, extra).data)
    datamodule.setup("fit")
    return datamodule


def same_split(a: Split, b: Split) -> bool:
    return all(torch.equal(getattr(a, part), getattr(b, part)) for part in ("labeled", "unlabeled", "validation"))


def network_run(suite: str, seed: int, model: str, workdir: Path, extra: list[str], split: Split) -> dict[str, Any]:
    """Train ``model`` (ssgan or supervised) on the suite's recipe; fails if its split is not the shared one."""
    output_dir = workdir / suite / f"{model}_seed{seed}"
    started = time.perf_counter()
    metrics = train(compose_run(suite, seed, model, output_dir, extra))
    wall_seconds = time.perf_counter() - started
    if not same_split(Split.load(output_dir / "split_indices.npz"), split):
        raise RuntimeError(f"{suite} seed {seed}: the {model} run drew a different split than the benchmark's; "
                           "an override changed the split (data.split_seed?), so the methods are not comparable")
    return {"test_acc": metrics["test_acc"], "wall_seconds": wall_seconds,
            "samples_per_second": metrics["samples_per_second"]}


def sklearn_run(method: str, datamodule: Any) -> dict[str, Any]:
    """Fit a scikit-learn semi-supervised method on the drawn split (same pixels, same labels as the networks)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

    data, split = datamodule.data, datamodule.split
    pool = split.unlabeled.numpy()
    inputs = data.train.inputs.flatten(1).numpy()[pool]
    targets = np.full(pool.shape[0], -1)
    labeled_positions = np.searchsorted(pool, split.labeled.numpy())
    targets[labeled_positions] = data.train.labels.numpy()[split.labeled.numpy()]
    if method == "label_spreading":
        estimator = LabelSpreading(kernel="knn", n_neighbors=7, max_iter=100,
                                   n_jobs=torch.get_num_threads())
    else:
        estimator = SelfTrainingClassifier(LogisticRegression(max_iter=300), max_iter=10)
    started = time.perf_counter()
    estimator.fit(inputs, targets)
    accuracy = float((estimator.predict(data.test.inputs.flatten(1).numpy()) == data.test.labels.numpy()).mean())
    return {"test_acc": accuracy, "wall_seconds": time.perf_counter() - started, "samples_per_second": None}


def hardware() -> str:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return f"{device_name(device)} (torch {torch.__version__})"


def device_of(hardware: str) -> str:
    """The table's device column: "CPU" for every CPU row (threads and models vary between machines; the header
    lists them), the GPU's name otherwise, so GPU runs get rows of their own instead of joining the CPU means."""
    return "CPU" if "CPU thread" in hardware else hardware.split(" (torch")[0]


def summarise(rows: list[dict[str, Any]], jobs: int = 1) -> str:
    cells: dict[tuple[str, int, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        cells[(row["suite"], row["num_labeled"], row["method"], device_of(row["hardware"]))].append(row)
    lines = [
        f"Hardware: {'; '.join(sorted({row['hardware'] for row in rows}))}; {jobs} run(s) at a time.",
        "",
        "| dataset | labels | method | device | test accuracy (mean ± std) | n | wall s / run | train samples/s |",
        "| --- | ---: | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for (suite, num_labeled, method, device), group in cells.items():
        accs = [100 * r["test_acc"] for r in group]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        wall = statistics.mean(r["wall_seconds"] for r in group)
        speeds = [r["samples_per_second"] for r in group if r["samples_per_second"]]
        speed = f"{statistics.mean(speeds):,.0f}" if speeds else "–"
        dataset = suite.rsplit("_", 1)[0]
        lines.append(f"| {dataset} | {num_labeled} | {method} | {device} | {statistics.mean(accs):.2f} ± {std:.2f} | "
                     f"{len(accs)} | {wall:.0f} | {speed} |")
    return "\n".join(lines) + "\n"


def run_unit(suite: str, seed: int, methods: list[str], workdir: Path, extra: list[str],
             threads: int | None) -> list[dict[str, Any]]:
    """The given methods on one (suite, seed), all on the split drawn (and saved) first."""
    if threads:
        torch.set_num_threads(threads)
    datamodule = draw_split(suite, seed, workdir, extra)
    num_labeled = int(datamodule.split.labeled.numel())
    rows = []
    for method in methods:
        if method in ("ssgan", "supervised"):
            result = network_run(suite, seed, method, workdir, extra, datamodule.split)
        elif method in FEATURE_METHODS:
            result = sklearn_run(method.removesuffix("_on_features"), featurised(suite, seed, workdir, extra))
        else:
            result = sklearn_run(method, datamodule)
        row = {"suite": suite, "num_labeled": num_labeled, "method": method, "seed": seed,
               "test_acc": result["test_acc"], "wall_seconds": result["wall_seconds"],
               "samples_per_second": result["samples_per_second"], "hardware": hardware()}
        rows.append(row)
        print(f"{suite} seed={seed} {method}: test_acc={row['test_acc']:.4f} ({row['wall_seconds']:.0f} s)",
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", nargs="+", default=list(SUITES), choices=list(SUITES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--fashion-root", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--workdir", type=Path, default=Path("outputs/benchmark"))
    parser.add_argument("--output", type=Path, default=Path("docs"), help="folder for benchmarks.md and .csv")
    parser.add_argument("--jobs", type=int, default=1,
                        help="(suite, seed) units run at once, each in its own process with cores/jobs threads")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows of OUTPUT/benchmarks.csv and run only the (suite, seed, method) runs it lacks")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every network run")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs={args.jobs} must be at least 1")

    extras = {suite: list(args.overrides) + ([f"data.root={args.fashion_root}"] if "fashion" in suite else [])
              for suite in args.suites}
    rows: list[dict[str, Any]] = read_rows(args.output / "benchmarks.csv") if args.resume else []
    done = {(row["suite"], row["seed"], row["method"]) for row in rows}
    methods = [method for method in METHODS if method in args.methods]
    featured = {suite for suite in args.suites if has_features(suite, extras[suite])}
    units = [(suite, seed, missing) for suite in args.suites for seed in args.seeds
             if (missing := [method for method in methods if (suite, seed, method) not in done
                             and (method not in FEATURE_METHODS or suite in featured)])]
    if args.jobs == 1:
        for suite, seed, missing in units:
            rows += run_unit(suite, seed, missing, args.workdir, extras[suite], None)
            sort_rows(rows, args.suites)  # resumed runs land where a single run would have put them
            write_results(rows, args.output, args.jobs)  # after every unit: a stopped run keeps what it did
    else:
        threads = max(1, torch.get_num_threads() // args.jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
            futures = [pool.submit(run_unit, suite, seed, missing, args.workdir, extras[suite], threads)
                       for suite, seed, missing in units]
            for future in futures:  # in submission order, so the table's order does not depend on timing
                rows += future.result()
                sort_rows(rows, args.suites)
                write_results(rows, args.output, args.jobs)
    if rows:  # once more at the end, so a resume with nothing left to run still rewrites both files from the CSV
        sort_rows(rows, args.suites)
        write_results(rows, args.output, args.jobs)
    print(summarise(rows, args.jobs))


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of an earlier run's CSV with their types back (none when the file does not exist yet)."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["num_labeled"], row["seed"] = int(row["num_labeled"]), int(row["seed"])
        row["test_acc"], row["wall_seconds"] = float(row["test_acc"]), float(row["wall_seconds"])
        row["samples_per_second"] = float(row["samples_per_second"]) if row["samples_per_second"] else None
    return rows


def sort_rows(rows: list[dict[str, Any]], suites: list[str]) -> None:
    """In place: by suite (the order asked for, others after), seed, then method, wherever a row was run."""
    known = list(suites) + [row["suite"] for row in rows if row["suite"] not in suites]
    rows.sort(key=lambda row: (known.index(row["suite"]), row["seed"],
                               METHODS.index(row["method"]) if row["method"] in METHODS else len(METHODS)))


def write_results(rows: list[dict[str, Any]], output: Path, jobs: int) -> None:
    """``benchmarks.csv`` (one row per run) and ``benchmarks.md`` (the summary) in ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    with open(output / "benchmarks.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (output / "benchmarks.md").write_text("# Benchmarks\n\nProduced by `python scripts/benchmark.py "
                                          f"{' '.join(sys_args())}`.\n\n{summarise(rows, jobs)}")


def sys_args() -> list[str]:
    return sys.argv[1:]


if __name__ == "__main__":
    main()
