"""Shared fixtures: compose the real Hydra configs with tiny networks so end-to-end runs take seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import DictConfig

from ssgan.build import compose

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
