"""CPU training keeps its freed tensor memory instead of page-faulting it back in every step."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ssgan.runtime.allocator
import ssgan.cli.train
from ssgan import SSGANClassifier
from ssgan.runtime.allocator import glibc, keep_freed_memory

pytestmark = pytest.mark.skipif(glibc() is None, reason="the malloc settings apply to glibc only")

# Steps of a small bf16 MLP like the paper's D; prints page faults per step after a warm-up.
FAULTS_PER_STEP = textwrap.dedent(
    """
    import resource, sys, torch
    from ssgan.runtime.allocator import keep_freed_memory
    applied = keep_freed_memory() if sys.argv[1] == "tuned" else False
    torch.manual_seed(0)
    torch.set_num_threads(1)  # one thread, one malloc arena: no arenas created by chance under load
    net = torch.nn.Sequential(torch.nn.Linear(784, 1000), torch.nn.ReLU(), torch.nn.Linear(1000, 500),
                              torch.nn.ReLU(), torch.nn.Linear(500, 10))
    x = torch.rand(300, 784)
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x + torch.randn_like(x))
        y.float().sum().backward()
    for _ in range(10):
        step()
    faults = []
    for _ in range(80):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    # The mean over all steps, and over the 90 % quietest: a tuned run's rare one-off heap growth is not a
    # per-step cost, while glibc's own trims come in bursts that only the full mean sees.
    quiet = sorted(faults)[: len(faults) * 9 // 10]
    print(applied, sum(faults) / len(faults), sum(quiet) / len(quiet))
    """
)


def faults_per_step(mode: str, **env: str) -> tuple[bool, float, float]:
    """(settings applied, mean faults per step, mean over the quietest 90 % of steps) of a fresh process."""
    result = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP, mode], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    applied, mean, quiet_mean = result.stdout.split()
    return applied == "True", float(mean), float(quiet_mean)


def test_raised_thresholds_stop_per_step_page_faults() -> None:
    untouched_applied, untouched, _ = faults_per_step("untouched")
    tuned_applied, _, tuned = faults_per_step("tuned")
    assert not untouched_applied and tuned_applied
    # glibc's defaults fault the step's buffers in again, in bursts whose size varies from run to run and
    # from CPU to CPU (on some CPUs the kernels' own buffers hide them); the tuned run's quiet steps fault nothing.
    assert tuned < 2
    assert tuned <= untouched


class RecordingLibc:
    """Stands in for glibc and records every ``mallopt`` call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return 1


@pytest.fixture
def fresh_allocator(monkeypatch: pytest.MonkeyPatch) -> RecordingLibc:
    """A process state in which the settings were never tried, with a recording C library."""
    libc = RecordingLibc()
    monkeypatch.setattr(ssgan.runtime.allocator, "_applied", None)
    monkeypatch.setattr(ssgan.runtime.allocator, "glibc", lambda: libc)
    return libc


@pytest.mark.parametrize("value", ["0", "false", "No", " off "])
def test_opt_out_leaves_glibc_alone(value: str, fresh_allocator: RecordingLibc,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ssgan.runtime.allocator.OPT_OUT_VARIABLE, value)
    assert keep_freed_memory() is False
    assert fresh_allocator.calls == []


def test_settings_are_raised_once_per_process(fresh_allocator: RecordingLibc,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ssgan.runtime.allocator.OPT_OUT_VARIABLE, raising=False)
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
    assert fresh_allocator.calls == [(ssgan.runtime.allocator.M_MMAP_THRESHOLD, ssgan.runtime.allocator.MMAP_THRESHOLD),
                                     (ssgan.runtime.allocator.M_TRIM_THRESHOLD, ssgan.runtime.allocator.TRIM_THRESHOLD)]


def test_the_estimator_leaves_the_allocator_alone(fresh_allocator: RecordingLibc,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A library call inside someone else's program must not change its process-wide malloc settings."""
    monkeypatch.delenv(ssgan.runtime.allocator.OPT_OUT_VARIABLE, raising=False)
    X = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    y = np.where(np.arange(40) < 10, np.arange(40) % 2, -1)
    SSGANClassifier(hidden_widths=(8,), generator_widths=(8,), noise_dim=4, max_epochs=1, batch_size=8).fit(X, y)
    assert fresh_allocator.calls == []


def test_a_training_command_on_cpu_applies_the_settings(make_config, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(ssgan.cli.train, "keep_freed_memory", lambda: calls.append(True) or True)
    ssgan.cli.train.train(make_config("run", "trainer.max_epochs=1", "trainer.limit_train_batches=2"))
    assert calls == [True]
