"""OmegaConf resolvers the configs use; imported by every entry point before composing."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import OmegaConf

from ssgan.naming import job_dirname


def validation_monitor(num_validation: int | None) -> str | None:
    """Checkpoint on validation accuracy when a validation set is held out, otherwise keep the latest."""
    return "val_acc" if num_validation else None


def sweep_job_dirname(overrides: Sequence[str], exclude_keys: Sequence[str] | None = None) -> str:
    """``hydra.sweep.subdir``: a job directory named by its overrides with short keys (see ssgan.naming)."""
    return job_dirname([str(item) for item in overrides], [str(key) for key in exclude_keys or ()])


def register_resolvers() -> None:
    for name, resolver in (("validation_monitor", validation_monitor), ("job_dirname", sweep_job_dirname)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


register_resolvers()
