"""What a checkpoint was trained on (the model, the data and the seed), so a resume can refuse a different run."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, ListConfig, OmegaConf

from ssgan.errors import SSGANError

log = logging.getLogger("ssgan")

CHECKPOINT_KEY = "ssgan_run"
# settings that change where or how fast data is read, never which examples a run sees or what it learns
NOT_IDENTITY = frozenset(
    {
        "data.eval_batch_size",
        "data.encoder_cache_dir",
        "data.encoder_cache_limit_gb",
        "data.encoder_device",
        "data.root",
        "data.source.root",
        "data.source.download",
        "model.step_capture",  # the same step, eager or as a CUDA graph replay; checkpoints load in either mode
    }
)

# settings added after checkpoints of earlier versions existed, with the value that trains exactly as those
# versions did: a checkpoint that lacks one resumes when the setting still has that value
ADDED_SETTINGS: dict[str, Any] = {
    "data.num_train": None,
    "model.discriminator.minibatch_kernels": 0,
    "model.discriminator.minibatch_kernel_dim": 5,
    "model.discriminator.minibatch_layer": -1,
    "model.discriminator.minibatch_init_distance": 1.0,
    "model.generator.normalization": "batch",
    "model.generator.reference_batch_size": 100,
    "model.objective.generator_objective": "feature_matching",
    "model.objective.real_target": 1.0,
    "model.objective.discriminator_history_weight": 0.0,
    "model.objective.generator_history_weight": 0.0,
}


def flat_values(node: DictConfig, prefix: str) -> dict[str, Any]:
    """Dotted key -> resolved value; a value that follows the trainer (``${trainer.max_epochs}``) stays as written,
    so a finished run can be continued for more epochs with the same schedule."""
    values: dict[str, Any] = {}
    raw = OmegaConf.to_container(node, resolve=False)
    for key in node:
        name = f"{prefix}.{key}"
        written = raw[key]
        if OmegaConf.is_interpolation(node, str(key)) and "trainer." in str(written):
            values[name] = written
            continue
        value = node[key]
        if isinstance(value, DictConfig):
            values.update(flat_values(value, name))
        elif isinstance(value, ListConfig):
            values[name] = OmegaConf.to_container(value, resolve=True)
        else:
            values[name] = value
    return values


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """The settings a resume must share with its checkpoint: ``seed``, every ``model.*`` and ``data.*`` value."""
    identity: dict[str, Any] = {"seed": cfg.get("seed")}
    for group in ("model", "data"):
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            identity.update(flat_values(node, group))
    return {key: value for key, value in identity.items() if key not in NOT_IDENTITY}


_ABSENT = object()  # a key one side does not have


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def one_sided_group(key: str, other: dict[str, Any]) -> str:
    """The shortest parent of ``key`` that the other side lacks entirely (``model.generator``, not each leaf)."""
    parts = key.split(".")
    for length in range(1, len(parts) + 1):
        prefix = ".".join(parts[:length])
        if not any(name == prefix or name.startswith(prefix + ".") for name in other):
            return prefix
    return key


def identity_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key=saved (now current)`` for every setting that differs; a group one side lacks is named once."""
    differences: dict[str, str] = {}
    for key in sorted(set(saved) | set(current), key=lambda name: (not name.endswith("_target_"), name)):
        before, now = saved.get(key, _ABSENT), current.get(key, _ABSENT)
        if before is _ABSENT and key in ADDED_SETTINGS and now == ADDED_SETTINGS[key]:
            before = now  # an earlier version's checkpoint: it trained with the setting's neutral value
        if before == now:
            continue
        if before is _ABSENT:
            group = one_sided_group(key, saved)
            differences.setdefault(group, f"{group} (absent in the checkpoint)")
        elif now is _ABSENT:
            group = one_sided_group(key, current)
            differences.setdefault(group, f"{group} (now absent)")
        else:
            differences[key] = f"{key}={shown(before)} (now {shown(now)})"
    return list(differences.values())


def check_resume_identity(checkpoint: dict[str, Any], cfg: DictConfig, path: str) -> None:
    """Refuse to resume ``checkpoint`` under a config with another model, other data or another seed."""
    saved = (checkpoint.get(CHECKPOINT_KEY) or {}).get("identity")
    if saved is None:
        log.warning("ckpt_path=%s records no run settings (an older checkpoint); resuming without comparing them", path)
        return
    differences = identity_differences(saved, run_identity(cfg))
    if differences:
        listed = "; ".join(differences[:4]) + (f"; and {len(differences) - 4} more" if len(differences) > 4 else "")
        raise SSGANError(
            f"ckpt_path={path} was trained with other settings: {listed}. Resume with the run's own settings "
            "(its config.yaml), or drop ckpt_path to start a new run in another directory"
        )


class RunIdentity(pl.Callback):
    """Writes the run's identity (see :func:`run_identity`) into every checkpoint it saves."""

    def __init__(self, identity: dict[str, Any]) -> None:
        self.identity = identity

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = {"identity": self.identity}
