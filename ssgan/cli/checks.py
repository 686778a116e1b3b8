"""The composed config's values, checked before anything is built: each bad value is one line naming its key,
the value and what is allowed, instead of an error from deep inside torch or Lightning later.

Checks that need the data (label budgets, batch size against the pool) stay in the data module; the networks
and callbacks check their own settings when they are built. This module covers what would otherwise fail late:
seeds, optimizer settings, network sizes named by convention, the trainer's loop settings and missing values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ssgan.errors import SSGANError
from ssgan.models.capture import STEP_CAPTURE_MODES, capture_blockers
from ssgan.runtime.hardware import trains_on_gpu

MAX_SEED = 2**32 - 1  # NumPy's and Lightning's seeds are unsigned 32-bit
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
PRECISIONS = ("64-true", "32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed", "64", "32", "16", "bf16", 64, 32, 16)

Rule = Callable[[str, Any], None]


# ----------------------------------------------------------------------------------------------- value rules
def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def refuse(key: str, value: Any, allowed: str) -> SSGANError:
    return SSGANError(f"{key}={value!r} must be {allowed}")


def integer_at_least(low: int, optional: bool = False) -> Rule:
    def rule(key: str, value: Any) -> None:
        if value is None and optional:
            return
        if not is_integer(value) or value < low:
            raise refuse(key, value, f"an integer >= {low}" + (" or null" if optional else ""))

    return rule


def number_above(low: float, inclusive: bool) -> Rule:
    def rule(key: str, value: Any) -> None:
        if not is_number(value) or value < low or (value == low and not inclusive):
            raise refuse(key, value, f"a number {'>=' if inclusive else '>'} {low:g}")

    return rule


def one_of(*options: str) -> Rule:
    def rule(key: str, value: Any) -> None:
        if value not in options:
            raise refuse(key, value, f"one of {', '.join(options)}")

    return rule


def real_target(key: str, value: Any) -> None:
    if not is_number(value) or not 0.0 < value <= 1.0:
        raise refuse(key, value, "a number in (0, 1]; 1 turns label smoothing off")


def fraction_below_one(key: str, value: Any) -> None:
    if not is_number(value) or not 0.0 <= value < 1.0:
        raise refuse(key, value, "a number in [0, 1)")


def seed(key: str, value: Any) -> None:
    if not is_integer(value) or not 0 <= value <= MAX_SEED:
        raise refuse(key, value, f"an integer in [0, {MAX_SEED}]")


def betas(key: str, value: Any) -> None:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(is_number(v) and 0 <= v < 1 for v in value):
        raise refuse(key, value, "two numbers in [0, 1), e.g. [0.5,0.999]")


def widths(key: str, value: Any) -> None:
    if not isinstance(value, (list, tuple)) or not all(is_integer(v) and v >= 1 for v in value):
        raise refuse(key, value, "a list of integers >= 1, e.g. [500,500]")


def batch_limit(key: str, value: Any) -> None:
    """Lightning's ``limit_*_batches``: null, a count of batches, or a fraction of the epoch."""
    if value is None or (is_integer(value) and value >= 0) or (is_number(value) and 0.0 <= value <= 1.0):
        return
    raise refuse(key, value, "null, an integer >= 0 (batches) or a number in [0, 1] (a fraction of them)")


def accelerator(key: str, value: Any) -> None:
    if value not in ACCELERATORS:
        raise refuse(key, value, f"one of {', '.join(ACCELERATORS)}")
    if value in ("gpu", "cuda") and not torch.cuda.is_available():
        raise SSGANError(f"{key}={value} but this machine has no usable CUDA GPU; use {key}=cpu or auto")


def devices(key: str, value: Any) -> None:
    if value == "auto" or (is_integer(value) and (value >= 1 or value == -1)):
        return
    if isinstance(value, (list, tuple)) and value and all(is_integer(v) and v >= 0 for v in value):
        return
    raise refuse(key, value, "auto, -1 (all), a count >= 1 or a list of device indices")


def precision(key: str, value: Any) -> None:
    if value not in PRECISIONS:
        raise refuse(key, value, f"one of {', '.join(str(p) for p in PRECISIONS[:6])}")


# ----------------------------------------------------------------------------------------------- which keys
# exact keys of the train config (checked when present)
KEY_RULES: dict[str, Rule] = {
    "seed": seed,
    "data.split_seed": seed,
    "data.stream_seed": seed,
    "data.source.split_seed": seed,
    "trainer.max_epochs": integer_at_least(-1, optional=True),
    "trainer.max_steps": integer_at_least(-1, optional=True),
    "trainer.check_val_every_n_epoch": integer_at_least(1, optional=True),
    "trainer.log_every_n_steps": integer_at_least(0, optional=True),
    "trainer.num_nodes": integer_at_least(1),
    "trainer.limit_train_batches": batch_limit,
    "trainer.limit_val_batches": batch_limit,
    "trainer.limit_test_batches": batch_limit,
    "trainer.accelerator": accelerator,
    "trainer.devices": devices,
    "trainer.precision": precision,
    "model.step_capture": one_of(*STEP_CAPTURE_MODES),
    "test_weights": one_of("best", "final"),
}

# leaf names anywhere under model.* and gan.* (networks, optimizer, objective), whatever the class
NAME_RULES: dict[str, Rule] = {
    "lr": number_above(0.0, inclusive=False),
    "betas": betas,
    "eps": number_above(0.0, inclusive=False),
    "weight_decay": number_above(0.0, inclusive=True),
    "momentum": number_above(0.0, inclusive=True),
    "widths": widths,
    "hidden_widths": widths,
    "noise_dim": integer_at_least(1),
    "top_width": integer_at_least(1),
    "init_examples": integer_at_least(1),
    "input_noise": number_above(0.0, inclusive=True),
    "hidden_noise": number_above(0.0, inclusive=True),
    "input_dropout": fraction_below_one,
    "block_dropout": fraction_below_one,
    "init_std": number_above(0.0, inclusive=False),
    "leaky_slope": number_above(0.0, inclusive=True),
    # the improved-GAN switches (gan.*), refused here before the data loads; their classes check them again
    "generator_objective": one_of("feature_matching", "minimax", "non_saturating"),
    "real_target": real_target,
    "discriminator_weight": number_above(0.0, inclusive=True),
    "generator_weight": number_above(0.0, inclusive=True),
    "kernels": integer_at_least(0),
    "kernel_dim": integer_at_least(1),
    "init_distance": number_above(0.0, inclusive=False),
    "normalization": one_of("batch", "virtual"),
    "reference_batch_size": integer_at_least(2),
}


def plain_leaves(node: DictConfig, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf set in ``node`` itself: interpolations are checked where they point."""
    for key in node:
        name = f"{prefix}.{key}"
        if OmegaConf.is_interpolation(node, str(key)) or OmegaConf.is_missing(node, str(key)):
            continue
        value = node[key]
        if isinstance(value, DictConfig):
            yield from plain_leaves(value, name)
        else:
            yield name, to_plain(value)


# ----------------------------------------------------------------------------------------------- the checks
def check_required(cfg: DictConfig) -> None:
    """A required value (``???`` in the config, e.g. ``data.source.path``) must be given on the command line."""
    missing = [key for key in OmegaConf.missing_keys(cfg) if not key.startswith("hydra.")]
    if missing:
        key = min(missing)
        raise SSGANError(f"{key} is required but not set; give it on the command line, e.g. {key}=...")


def check_keys(cfg: DictConfig) -> None:
    for key, rule in KEY_RULES.items():
        if has_key(cfg, key):
            rule(key, to_plain(OmegaConf.select(cfg, key)))


def has_key(cfg: DictConfig, key: str) -> bool:
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    return isinstance(parent, DictConfig) and leaf in parent


def to_plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def check_named_values(cfg: DictConfig) -> None:
    for group in ("model", "gan"):
        node = cfg.get(group)
        if not isinstance(node, DictConfig):
            continue
        for key, value in plain_leaves(node, group):
            rule = NAME_RULES.get(key.rsplit(".", 1)[-1])
            if rule is not None:
                rule(key, value)


def check_schedule(cfg: DictConfig) -> None:
    """A rate schedule's epochs: the scheduler is built only once training starts, too late to refuse cleanly."""
    scheduler = OmegaConf.select(cfg, "model.scheduler", default=None)
    if not isinstance(scheduler, DictConfig) or not {"start_epoch", "end_epoch"} <= set(scheduler):
        return
    start, end = scheduler.start_epoch, scheduler.end_epoch
    if not (is_integer(start) and is_integer(end) and 0 <= start < end):
        raise SSGANError(
            f"model.scheduler: start_epoch={start!r} and end_epoch={end!r} must be integers with 0 <= start < end"
        )


def configured_class(cfg: DictConfig, key: str) -> type | None:
    """The class a ``_target_`` under ``key`` names (None: unset, or not importable; building reports that)."""
    from hydra.utils import get_class

    target = OmegaConf.select(cfg, f"{key}._target_", default=None)
    if not isinstance(target, str):
        return None
    try:
        return get_class(target)
    except Exception:  # noqa: BLE001  (an unimportable target fails with its own message when built)
        return None


def configured_world_size(cfg: DictConfig) -> int:
    """Processes the trainer settings ask for; ``auto`` and -1 count as one (the fit checks the real number)."""
    devices = to_plain(OmegaConf.select(cfg, "trainer.devices", default=1))
    nodes = OmegaConf.select(cfg, "trainer.num_nodes", default=1)
    if isinstance(devices, list):
        per_node = len(devices)
    else:
        per_node = devices if is_integer(devices) and devices > 0 else 1
    return per_node * (nodes if is_integer(nodes) and nodes > 0 else 1)


def check_step_capture(cfg: DictConfig) -> None:
    """``model.step_capture=on`` needs a CUDA GPU and a run the graph can hold: refused here, before data loads
    (``auto`` decides when the fit starts, and says why it trains eagerly)."""
    if OmegaConf.select(cfg, "model.step_capture", default=None) != "on":
        return
    accelerator = OmegaConf.select(cfg, "trainer.accelerator", default="auto")
    if not trains_on_gpu(accelerator):
        where = "no CUDA GPU is visible" if accelerator == "auto" else f"trainer.accelerator={accelerator}"
        raise SSGANError(f"model.step_capture=on needs a CUDA GPU, but {where}; use model.step_capture=auto or off")
    history = [OmegaConf.select(cfg, f"model.objective.{name}_history_weight", default=0) for name in
               ("discriminator", "generator")]
    blockers = capture_blockers(
        world_size=configured_world_size(cfg),
        precision=OmegaConf.select(cfg, "trainer.precision", default="32-true"),
        historical_averaging=any(is_number(weight) and weight > 0 for weight in history),
        augmentation=configured_class(cfg, "model.augmentation"),
        optimizer=configured_class(cfg, "model.optimizer"),
    )
    if blockers:
        raise SSGANError(f"model.step_capture=on cannot capture this run: {'; '.join(blockers)}; use auto or off")


def check_config(cfg: DictConfig) -> None:
    """Every value this module knows a rule for; raises the first bad one as a one-line :class:`SSGANError`."""
    check_required(cfg)
    try:
        check_keys(cfg)
        check_named_values(cfg)
        check_schedule(cfg)
        check_step_capture(cfg)
    except OmegaConfBaseException as error:  # a value that cannot be resolved, e.g. a resolver's bad argument
        raise SSGANError(f"config: {str(error).splitlines()[0]}") from None
