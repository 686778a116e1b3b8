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
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

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
    if not path.is_file():  # no job of this cluster has ended yet
        return []
    return [dict(fields.findall(line)) for line in path.read_text().splitlines() if line.strip()]


def test_every_sweep_job_ran_as_a_task_of_one_slurm_array_job(sweep: Sweep) -> None:
    assert sweep.result.returncode == 0, sweep.result.stderr[-3000:]
    array_id = sweep.array_job_id()
    tasks = sweep.task_folders()
    assert [folder.name for folder in tasks] == [f"{array_id}_{i}" for i in range(6)]
    for folder in tasks:  # submitit wrote each task's result, from inside the job
        assert (folder / f"{folder.name}_0_result.pkl").is_file(), list(folder.iterdir())
        assert "Starting with JobEnvironment" in (folder / f"{folder.name}_0_log.out").read_text()

    def records_of_the_array() -> list[dict[str, str]]:
        return [r for r in completion_records(sweep.cluster) if r.get("ArrayJobId") == array_id]

    # submitit returns once every result file exists; slurmctld appends a task's record after its job ends
    wait_for(lambda: len(records_of_the_array()) >= len(tasks), "every task's completion record", timeout=60)
    records = records_of_the_array()
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


# ------------------------------------------------------------------------------------------ requeue and preemption
REQUEUED_RUN = {
    "seed": "100",
    "trainer.max_epochs": "60",
    "trainer.deterministic": "true",
    "callbacks.last_checkpoint.every_n_train_batches": "5",
    "callbacks.health.sample_every_n_epochs": "0",
    "trainer.accelerator": "cpu",
    "trainer.enable_progress_bar": "false",
}


def wait_for(condition, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def job_state(cluster: SlurmCluster, job_id: str) -> str:
    result = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], env=cluster.env, capture_output=True, text=True)
    return result.stdout.strip()


def release_requeued(cluster: SlurmCluster, job_id: str) -> None:
    """A requeued job waits out SLURM's begin-time delay; a test cluster starts it at once."""
    wait_for(lambda: job_state(cluster, job_id) == "PENDING", f"job {job_id} to be requeued")
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], env=cluster.env, check=True)
    wait_for(lambda: job_state(cluster, job_id) == "RUNNING", f"job {job_id} to run again")


def checkpoint_step(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=False, map_location="cpu")["global_step"])
    except (OSError, EOFError, RuntimeError, KeyError):
        return -1


def test_a_requeued_then_preempted_job_resumes_by_itself_and_ends_as_an_uninterrupted_run(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    env = {**slurm_cluster.env, "SSGAN_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    directory = tmp_path / "sweep"
    overrides = [f"{key}={value}" for key, value in REQUEUED_RUN.items()]
    launcher = {**ONE_CPU_JOB, "timeout_min": "20", "partition": slurm_cluster.partition}
    command = [*train_command(), "-m", "hydra/launcher=slurm", "ckpt_path=auto", *overrides,
               *(f"hydra.launcher.{key}={value}" for key, value in launcher.items()), f"hydra.sweep.dir={directory}"]
    with (tmp_path / "sweep.log").open("w") as log:
        sweep = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: any(directory.glob("*/checkpoints/last.ckpt")), "the first checkpoint")
            (last,) = directory.glob("*/checkpoints/last.ckpt")
            (job_id,) = [p.name for p in (directory / ".submitit").iterdir() if p.name.isdigit()]

            subprocess.run(["scontrol", "requeue", job_id], env=env, check=True)  # SIGTERM, then back in the queue
            release_requeued(slurm_cluster, job_id)
            stopped_at = checkpoint_step(last)  # saved at the batch end after SIGTERM
            # a later save proves the resumed run trains, with its signal handlers installed
            wait_for(lambda: checkpoint_step(last) > stopped_at, "the requeued job to resume and save")
            subprocess.run(["scancel", "--signal=USR2", job_id], env=env, check=True)  # preemption notice
            release_requeued(slurm_cluster, job_id)
            assert sweep.wait(timeout=300) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
        finally:
            sweep.kill()

    job_dir = last.parents[1]
    task_log = (directory / ".submitit" / job_id / f"{job_id}_0_log.out").read_text()
    assert task_log.count("Starting with JobEnvironment") == 3, task_log[-3000:]
    assert "this job is preempted" in task_log and f"Requeued job {job_id}" in task_log  # submitit's own hook
    metrics = json.loads((job_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 60

    reference_dir = tmp_path / "reference"
    reference = subprocess.run([*train_command(), *overrides, f"hydra.run.dir={reference_dir}"], cwd=tmp_path,
                               env=env, capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert metrics["test_confusion"] == json.loads((reference_dir / "metrics.json").read_text())["test_confusion"]
    weights = torch.load(last, weights_only=False)["state_dict"]
    reference_weights = torch.load(reference_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert weights.keys() == reference_weights.keys()
    for name, value in reference_weights.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(weights[name], value), name
    logged = (job_dir / "logs" / "metrics.csv").read_text().splitlines()
    assert logged == (reference_dir / "logs" / "metrics.csv").read_text().splitlines()


# ------------------------------------------------------------------------------------------ DDP under SLURM
DDP_RUN = [
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.deterministic=true",
    "seed=100",
    "model.discriminator.hidden_widths=[64,32]",
    "gan.generator.hidden_widths=[64,64]",
    "callbacks.health.sample_every_n_epochs=0",
    "trainer.enable_progress_bar=false",
]


def sbatch_ddp(cluster: SlurmCluster, work: Path, name: str, overrides: list[str]) -> Path:
    """One 2-task SLURM job (``srun`` starts both ranks; Lightning reads the SLURM environment); returns its log."""
    log = work / f"{name}.log"
    script = work / f"{name}.sh"
    arguments = " ".join(f"'{value}'" for value in [*train_command(), *DDP_RUN, *overrides])
    script.write_text(f"#!/bin/bash\nsrun --kill-on-bad-exit=1 {arguments}\n")
    result = subprocess.run(
        ["sbatch", "--wait", "--job-name", name, "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1",
         "--mem=4G", f"--partition={cluster.partition}", f"--output={log}", str(script)],
        cwd=work, env={**cluster.env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, log.read_text()[-3000:] if log.is_file() else result.stderr
    return log


def test_ddp_under_slurm_one_directory_rank_zero_writes_identical_weights_and_distinct_noise_after_resume(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    from test_ddp import single_process_test

    dump = "+callbacks.dump={_target_: helpers.DumpRankState, folder: %s}"
    run_dir = tmp_path / "run"
    log = sbatch_ddp(slurm_cluster, tmp_path, "ddp-first",
                     ["trainer.max_epochs=1", f"hydra.run.dir={run_dir}", dump % (tmp_path / "ranks-first")])
    first = json.loads((run_dir / "metrics.json").read_text())
    assert (first["world_size"], first["num_test"]) == (2, 360)  # both ranks' halves of the test set
    assert log.read_text().count(f"-> {run_dir / 'metrics.json'}") == 1  # rank 0 alone reported and wrote
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "config.yaml", "curves.png", "logs",
                                                         "metrics.json", "samples", "split_indices.npz"]  # fmt: skip
    single = single_process_test(run_dir)
    assert float(single["test_acc"]) == first["test_acc"]
    assert single["test_confusion"].tolist() == first["test_confusion"]

    sbatch_ddp(slurm_cluster, tmp_path, "ddp-resume", ["trainer.max_epochs=2", "ckpt_path=last",
               f"hydra.run.dir={run_dir}", dump % (tmp_path / "ranks-resumed")])  # fmt: skip
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 2
    for folder in ("ranks-first", "ranks-resumed"):
        rank0, rank1 = (torch.load(tmp_path / folder / f"rank{r}.pt", weights_only=False) for r in (0, 1))
        assert rank0["parameters"].keys() == rank1["parameters"].keys()
        for name, value in rank0["parameters"].items():  # DDP keeps every rank's copy identical
            assert torch.equal(value, rank1["parameters"][name]), (folder, name)
        assert not torch.equal(rank0["rng"], rank1["rng"]), folder  # each rank draws its own noise
