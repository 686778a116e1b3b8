"""Shared fixtures: compose the real Hydra configs with tiny networks so end-to-end runs take seconds."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from omegaconf import DictConfig

from ssgan.build import compose

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "model.discriminator.hidden_widths=[32,16]",
    "gan.generator.hidden_widths=[32]",
    "gan.generator.noise_dim=16",
    "model.init_examples=100",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
]


def compose_run(output_dir: Path, overrides: list[str] = ()) -> DictConfig:
    """The train config with tiny networks, run files in ``output_dir``, composed as the commands compose it."""
    return compose([*TINY, *overrides], output_dir=output_dir)


compose_config = compose_run


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own empty cache folder (paths.cache_dir), never the user's ~/.cache/ssgan."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("SSGAN_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def make_config(tmp_path: Path):
    """``make_config(name, *overrides)`` -> a config whose run directory is ``tmp_path / name``."""

    def make(name: str, *overrides: str) -> DictConfig:
        return compose_run(tmp_path / name, list(overrides))

    return make


@dataclass(frozen=True)
class SlurmCluster:
    """A running SLURM cluster: its config file, partition, and an environment whose commands reach it."""

    conf: Path
    partition: str
    env: dict[str, str]

    def setting(self, name: str) -> str:
        """A value of slurm.conf, e.g. ``JobCompLoc``."""
        match = re.search(rf"^{name}=(.*)$", self.conf.read_text(), re.MULTILINE)
        assert match, f"{name} is not set in {self.conf}"
        return match.group(1).strip()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """The one-node cluster of scripts/slurm_local.sh, started once per session and stopped at its end.

    Skipped with the script's one-line reason when it cannot start (not root, no apt-get, ...), unless
    SSGAN_REQUIRE_SLURM=1 turns that into a failure. A cluster already running is used and left running, and
    so is one that still has jobs at the end (another test session may be using it).
    """
    script = ROOT / "scripts" / "slurm_local.sh"
    status = subprocess.run([script, "status"], capture_output=True, text=True, timeout=60)
    started_here = status.returncode != 0
    if started_here:
        status = subprocess.run([script, "start"], capture_output=True, text=True, timeout=600)
        if status.returncode != 0:
            reason = (status.stderr.strip() or status.stdout.strip() or "no message").splitlines()[-1]
            subprocess.run([script, "stop"], capture_output=True, timeout=120)  # what did start
            if os.environ.get("SSGAN_REQUIRE_SLURM") == "1":
                pytest.fail(f"SLURM cluster did not start: {reason}", pytrace=False)
            pytest.skip(f"no SLURM cluster: {reason}")
    conf = re.search(r"SLURM_CONF=(\S+)", status.stdout)
    partition = re.search(r"in partition ([\w.-]+)", status.stdout)
    assert conf and partition, f"unexpected output of {script}: {status.stdout!r}"
    # a clean client environment: no SLURM_* of an allocation this session may itself run in
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    env["SLURM_CONF"] = conf.group(1)
    yield SlurmCluster(Path(conf.group(1)), partition.group(1), env)
    queue = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True, timeout=60)
    if started_here and not queue.stdout.strip():  # jobs left are another session's: leave them their cluster
        subprocess.run([script, "stop"], capture_output=True, timeout=120)
