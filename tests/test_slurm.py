"""SLURM: a sweep through hydra/launcher=slurm on a one-node cluster on this machine (scripts/slurm_local.sh).

One sweep of 6 jobs serves every test: budgets 20 and 50 train, budget 5 fails (fewer labels than classes).
The cluster fixture skips these tests where the cluster cannot start (not root, no apt-get).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SlurmCluster

pytestmark = pytest.mark.slurm

BUDGETS, FAILING_BUDGET, SEEDS = (20, 50), 5, (100, 101)
TINY = {
    "trainer.max_epochs": "2",
    "model.discriminator.hidden_widths": "[32,16]",
    "gan.generator.hidden_widths": "[32]",
    "gan.generator.noise_dim": "8",
    "model.init_examples": "100",
    "trainer.accelerator": "cpu",
    "trainer.enable_progress_bar": "False",  # as Hydra writes it back
}
# the defaults of conf/train.yaml plus the tiny settings: job directories are named by the swept values only
EXCLUDE_KEYS = ["ckpt_path", "data.eval_batch_size", "trainer.log_every_n_steps", *TINY]
ONE_CPU_JOB = {"gpus_per_node": "0", "cpus_per_task": "1", "mem_gb": "2", "timeout_min": "10"}


@dataclass(frozen=True)
class Sweep:
    directory: Path
    result: subprocess.CompletedProcess
    cluster: SlurmCluster

    def task_folders(self) -> list[Path]:
        """submitit's folder of each array task, ``.submitit/<array job>_<task>``."""
        return sorted(p for p in (self.directory / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name))

    def array_job_id(self) -> str:
        (array_id,) = {folder.name.split("_")[0] for folder in self.task_folders()}
        return array_id


def job_name(num_labeled: int, seed: int) -> str:
    return f"num_labeled={num_labeled},seed={seed}"


def train_command() -> list[str]:
    """``ssgan-train`` of this interpreter's environment, which submitit also runs in each job."""
    script = Path(sys.executable).parent / "ssgan-train"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ssgan.cli.train"]


@pytest.fixture(scope="module")
def sweep(slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    work = tmp_path_factory.mktemp("slurm_sweep")
    directory = work / "sweep"
    env = {**slurm_cluster.env, "SSGAN_CACHE_DIR": str(work / "cache"), "OMP_NUM_THREADS": "1"}
    command = [
        *train_command(), "-m", "hydra/launcher=slurm",
        f"data.num_labeled={','.join(map(str, (*BUDGETS, FAILING_BUDGET)))}", f"seed={','.join(map(str, SEEDS))}",
        *(f"{key}={value}" for key, value in TINY.items()),
        f"hydra.job.config.override_dirname.exclude_keys=[{','.join(EXCLUDE_KEYS)}]",
        *(f"hydra.launcher.{key}={value}" for key, value in ONE_CPU_JOB.items()),
        f"hydra.launcher.partition={slurm_cluster.partition}",
        f"hydra.sweep.dir={directory}",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    return Sweep(directory, result, slurm_cluster)


def completion_records(cluster: SlurmCluster) -> list[dict[str, str]]:
    """The cluster's finished jobs, one ``Key=Value ...`` line each (JobCompType=jobcomp/filetxt)."""
    path = Path(cluster.setting("JobCompLoc"))
    fields = re.compile(r"(\w+)=(\S*)")
    return [dict(fields.findall(line)) for line in path.read_text().splitlines() if line.strip()]


def test_every_sweep_job_ran_as_a_task_of_one_slurm_array_job(sweep: Sweep) -> None:
    assert sweep.result.returncode == 0, sweep.result.stderr[-3000:]
    array_id = sweep.array_job_id()
    tasks = sweep.task_folders()
    assert [folder.name for folder in tasks] == [f"{array_id}_{i}" for i in range(6)]
    for folder in tasks:  # submitit wrote each task's result, from inside the job
        assert (folder / f"{folder.name}_0_result.pkl").is_file(), list(folder.iterdir())
        assert "Starting with JobEnvironment" in (folder / f"{folder.name}_0_log.out").read_text()

    records = [r for r in completion_records(sweep.cluster) if r.get("ArrayJobId") == array_id]
    assert sorted(int(r["ArrayTaskId"]) for r in records) == list(range(6))
    for record in records:  # a failed training job still ends its SLURM job normally: the sweep goes on
        assert (record["JobState"], record["ExitCode"], record["Partition"]) == (
            "COMPLETED", "0:0", sweep.cluster.partition
        )  # fmt: skip
        assert record["Tres"].startswith("cpu=1,mem=2G")

    # the jobs run the submitting interpreter (the virtual environment), not whatever python is on PATH
    (submission,) = (sweep.directory / ".submitit" / array_id).glob("*_submission.sh")
    assert "srun --unbuffered" in submission.read_text()
    assert f"{sys.executable} -u -m submitit.core._submit" in submission.read_text()


def test_job_directories_are_named_by_their_values_and_hold_metrics(sweep: Sweep) -> None:
    jobs = {path.name for path in sweep.directory.iterdir() if path.is_dir() and path.name != ".submitit"}
    assert jobs == {job_name(n, seed) for n in (*BUDGETS, FAILING_BUDGET) for seed in SEEDS}
    logs = "\n".join((folder / f"{folder.name}_0_log.out").read_text() for folder in sweep.task_folders())
    for n in BUDGETS:
        for seed in SEEDS:
            job = sweep.directory / job_name(n, seed)
            metrics = json.loads((job / "metrics.json").read_text())
            assert (metrics["status"], metrics["num_labeled"], metrics["seed"]) == ("completed", n, seed)
            assert metrics["overrides"] == {"data.num_labeled": str(n), "seed": str(seed), **TINY}
            assert 0 <= metrics["test_acc"] <= 1 and metrics["epochs"] == 2
            assert logs.count(f"-> {job / 'metrics.json'}") == 1  # written by exactly one SLURM task


def test_a_failed_job_leaves_error_txt_and_the_other_jobs_complete(sweep: Sweep) -> None:
    for seed in SEEDS:
        job = sweep.directory / job_name(FAILING_BUDGET, seed)
        error = (job / "error.txt").read_text()
        assert error.startswith(f"SSGANError: data.num_labeled={FAILING_BUDGET} is smaller than the number of classes")
        assert error.count("\n") == 1  # a user error is one line
        assert not (job / "metrics.json").exists()
    errors = [(folder / f"{folder.name}_0_log.err").read_text() for folder in sweep.task_folders()]
    assert sum(f"ssgan-train: error: data.num_labeled={FAILING_BUDGET}" in text for text in errors) == len(SEEDS)
    completed = list(sweep.directory.glob("*/metrics.json"))
    assert len(completed) == len(BUDGETS) * len(SEEDS)


def test_report_aggregates_the_slurm_sweep(sweep: Sweep) -> None:
    report_script = Path(sys.executable).parent / "ssgan-report"
    command = [str(report_script)] if report_script.is_file() else [sys.executable, "-m", "ssgan.cli.report"]
    report = subprocess.run(
        [*command, str(sweep.directory)], env=sweep.cluster.env, capture_output=True, text=True, timeout=120
    )
    assert report.returncode == 0, report.stderr
    with (sweep.directory / "report.csv").open() as stream:
        rows = {row["num_labeled"]: row for row in csv.DictReader(stream)}
    assert set(rows) == {str(n) for n in BUDGETS}
    for row in rows.values():
        assert (row["model"], row["n"], row["seeds"]) == ("SSGAN", "2", " ".join(map(str, SEEDS)))
    table = (sweep.directory / "report.md").read_text()
    assert "Jobs: 4 completed, 2 failed" in table
    for n in BUDGETS:
        assert f"| SSGAN | {n} | 2 |" in table
    assert "## Failed jobs (2)" in table
