"""The benchmark and throughput scripts end to end on tiny settings (figures are checked for shape, not speed)."""

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / args[0]), *args[1:]], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_benchmark_writes_table_and_csv_for_every_method_on_the_same_split(tmp_path: Path) -> None:
    result = run_script("benchmark.py", "--suites", "digits_50", "--seeds", "0", "1", "--jobs", "2",
                        "--workdir", str(tmp_path / "work"), "--output", str(tmp_path / "out"),
                        "trainer.max_epochs=1", "trainer.limit_train_batches=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "out" / "benchmarks.csv")))
    assert [(r["method"], r["seed"]) for r in rows] == [
        (method, seed) for seed in ("0", "1") for method in ("ssgan", "supervised", "label_spreading", "self_training")
    ]
    assert all(0.0 <= float(r["test_acc"]) <= 1.0 and r["num_labeled"] == "50" for r in rows)
    table = (tmp_path / "out" / "benchmarks.md").read_text()
    assert "2 run(s) at a time" in table and "CPU threads" in table
    assert "| digits | 50 | label_spreading |" in table and "| 2 |" in table


def test_benchmark_resume_runs_only_the_missing_methods(tmp_path: Path) -> None:
    common = ["--suites", "digits_50", "--seeds", "3", "--workdir", str(tmp_path / "work"),
              "--output", str(tmp_path / "out")]
    first = run_script("benchmark.py", *common, "--methods", "self_training", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    kept = list(csv.DictReader(open(tmp_path / "out" / "benchmarks.csv")))
    second = run_script("benchmark.py", *common, "--methods", "label_spreading", "self_training", "--resume",
                        cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "out" / "benchmarks.csv")))
    assert [r["method"] for r in rows] == ["label_spreading", "self_training"]  # table order, not run order
    assert rows[1] == kept[0]  # the finished run was kept, not repeated
    assert "seed=3 self_training:" not in second.stdout and "seed=3 label_spreading:" in second.stdout
    assert not (tmp_path / "work" / "digits_50" / "ssgan_seed3").exists()  # no network was trained for the split


def test_benchmark_resume_with_nothing_to_run_rewrites_the_table_from_the_csv(tmp_path: Path) -> None:
    """Rows pasted into the CSV out of order (say from another machine) come back sorted and summarised."""
    out = tmp_path / "out"
    out.mkdir()
    fields = "suite,num_labeled,method,seed,test_acc,wall_seconds,samples_per_second,hardware"
    (out / "benchmarks.csv").write_text(
        f"{fields}\n"
        "digits_50,50,self_training,3,0.80,6.0,,\"x86_64, 1 CPU threads (torch 2.13.0+cpu)\"\n"
        "digits_50,50,label_spreading,3,0.90,1.0,,\"AMD EPYC, 1 CPU threads (torch 2.13.0+cpu)\"\n"
    )
    result = run_script("benchmark.py", "--suites", "digits_50", "--seeds", "3", "--methods", "label_spreading",
                        "self_training", "--resume", "--workdir", str(tmp_path / "work"), "--output", str(out),
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(open(out / "benchmarks.csv")))
    assert [(r["method"], r["test_acc"]) for r in rows] == [("label_spreading", "0.9"), ("self_training", "0.8")]
    table = (out / "benchmarks.md").read_text()
    assert "| digits | 50 | label_spreading | CPU | 90.00 ± 0.00 | 1 |" in table and "x86_64" in table
    assert not (tmp_path / "work").exists()  # nothing was trained or split


def test_benchmark_adds_self_training_on_features_where_the_recipe_learns_them(tmp_path: Path) -> None:
    features = ["data/encoder=patch_kmeans", "data.encoder.num_centroids=8", "data.encoder.patch_size=3",
                "data.encoder.pool_grid=2", "data.encoder.output_dim=6", "data.encoder.num_patches=2000"]
    result = run_script("benchmark.py", "--suites", "digits_50", "--seeds", "0", "--workdir", str(tmp_path / "work"),
                        "--output", str(tmp_path / "out"), "--methods", "self_training", "self_training_on_features",
                        "--", *features, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "out" / "benchmarks.csv")))
    assert [r["method"] for r in rows] == ["self_training", "self_training_on_features"]
    # the pixel baseline stays on the pixels: 6 features from 8 prototypes cannot score the same
    assert rows[0]["test_acc"] != rows[1]["test_acc"]


def test_throughput_reports_epoch_time_and_matmul_fraction(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    result = run_script("throughput.py", "--steps", "3", "--warmup", "2", "--precision", "32-true",
                        "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["timed_steps"] == 3 and figures["precision"] == "32-true"
    assert abs(figures["seconds_per_60k_epoch"] - 60_000 / figures["samples_per_second"]) < 1e-6
    assert 3.0 < figures["gflop_per_step"] < 4.5  # the paper's MNIST networks at batch 100 + 100 + 100
    assert 0.0 < figures["fraction_of_matmul"]
    assert figures["page_faults_per_step"] is None or figures["page_faults_per_step"] >= 0


def test_throughput_profile_sorts_ops_by_their_own_time(tmp_path: Path) -> None:
    result = run_script("throughput.py", "--steps", "2", "--warmup", "2", "--precision", "32-true", "--profile",
                        "--profile-by", "self", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.lstrip().startswith("aten::")]
    self_shares = [float(row[1].rstrip("%")) for row in rows]
    assert "aten::mm" in {row[0] for row in rows}
    assert len(self_shares) > 5 and self_shares == sorted(self_shares, reverse=True)


def test_benchmark_table_keeps_gpu_runs_apart_from_cpu_runs() -> None:
    spec = importlib.util.spec_from_file_location("benchmark_script", ROOT / "scripts" / "benchmark.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    row = {"suite": "digits_50", "num_labeled": 50, "method": "ssgan", "wall_seconds": 10.0, "samples_per_second": 5.0}
    rows = [{**row, "seed": 0, "test_acc": 0.90, "hardware": "AMD EPYC, 1 CPU threads (torch 2.13.0+cpu)"},
            {**row, "seed": 1, "test_acc": 0.92, "hardware": "x86_64, 2 CPU threads (torch 2.13.0+cpu)"},
            {**row, "seed": 0, "test_acc": 0.80, "hardware": "NVIDIA H200 (torch 2.11.0+cu130)"}]
    table = benchmark.summarise(rows)
    assert "| digits | 50 | ssgan | CPU | 91.00 ± 1.41 | 2 |" in table  # CPU machines share a row
    assert "| digits | 50 | ssgan | NVIDIA H200 | 80.00 ± 0.00 | 1 |" in table
