"""Shared test helpers: compose the real configs with Hydra, tiny and fast."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ssgan.train import CONFIG_DIR

TINY = [
    "model.discriminator.hidden_widths=[64,32]",
    "trainer.enable_progress_bar=false",
    "~logger",
]


def compose_config(output_dir: Path, overrides: list[str] | None = None) -> DictConfig:
    """The real conf/ tree, composed as ``ssgan-train`` would, writing into ``output_dir``."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=[f"paths.output_dir={output_dir}", *(overrides or [])])


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)
