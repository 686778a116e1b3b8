"""OmegaConf resolvers the configs use; imported by every entry point before composing."""

from __future__ import annotations

from omegaconf import OmegaConf


def validation_monitor(num_validation: int | None) -> str | None:
    """Checkpoint on validation accuracy when a validation set is held out, otherwise keep the latest."""
    return "val_acc" if num_validation else None


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("validation_monitor"):
        OmegaConf.register_new_resolver("validation_monitor", validation_monitor)


register_resolvers()
