"""The package layout: every subpackage ships in the wheel, the configs ship with it, the top level stays small."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ssgan.build import CONFIG_DIR, config_dir

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    """pyproject lists packages by hand (the configs live outside ssgan/): a new folder must be added there."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "ssgan").rglob("__init__.py")}
    assert found | {"ssgan.conf"} == listed


def test_a_checkout_reads_the_top_level_configs() -> None:
    assert config_dir() == ROOT / "conf" and Path(CONFIG_DIR) == ROOT / "conf"
    assert (ROOT / "conf" / "train.yaml").is_file()
    assert not (ROOT / "ssgan" / "conf").exists()  # conf/ is the only copy


def test_the_top_level_holds_subpackages_and_at_most_three_modules() -> None:
    modules = sorted(p.name for p in (ROOT / "ssgan").glob("*.py") if p.name != "__init__.py")
    assert modules == ["build.py", "errors.py", "sklearn.py"]
