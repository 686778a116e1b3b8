"""Readable names for sweep jobs: ``model=ssgan,num_labeled=50,seed=1`` instead of a job number or full keys."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser

PREFIXES = "+~"
MAX_NAME_BYTES = 200  # file systems allow 255 bytes per name; leave room for suffixes


def short_keys(keys: Iterable[str]) -> dict[str, str]:
    """Map each dotted (or group/option) key to its shortest trailing part that no other key ends with.

    ``data.num_labeled`` -> ``num_labeled``; ``model.discriminator.hidden_widths`` and
    ``gan.generator.hidden_widths`` -> ``discriminator.hidden_widths`` and ``generator.hidden_widths``.
    """
    unique = list(dict.fromkeys(keys))
    parts = {key: re.split(r"[./]", key) for key in unique}
    shortened: dict[str, str] = {}
    for key in unique:
        length = 1
        while length < len(parts[key]) and any(
            other != key and parts[other][-length:] == parts[key][-length:] for other in unique
        ):
            length += 1
        shortened[key] = ".".join(parts[key][-length:])
    return shortened


def excluded(key: str, exclude_keys: Sequence[str]) -> bool:
    """True for a key in ``exclude_keys`` or below one (``callbacks.checkpoint`` covers its ``.every_n_epochs``)."""
    return any(key == prefix or key.startswith(prefix + ".") for prefix in exclude_keys)


def override_values(overrides: Sequence[str], exclude_keys: Sequence[str] = ()) -> dict[str, str]:
    """One job's command-line overrides as {key with its +/++/~ prefix: value text}, minus excluded keys."""
    values: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if not excluded(override.key_or_group, exclude_keys):
            bare_deletion = override.is_delete() and override.value() is None  # ~key
            value = "" if bare_deletion else override.get_value_element_as_str()
            values[override.get_key_element()] = value
    return values


def job_dirname(overrides: Sequence[str], exclude_keys: Sequence[str] = ()) -> str:
    """Directory name of a sweep job: its overrides with short keys, sorted, path separators made safe.

    Used as ``hydra.sweep.subdir``; a job without overrides is named ``defaults``. A name longer than a file
    system allows (many swept keys, long floats from a search) keeps its start and ends in a hash of the
    whole, so it stays readable and unique.
    """
    values = override_values(overrides, exclude_keys)
    bare = {key: key.lstrip(PREFIXES) for key in values}
    names = short_keys(bare.values())
    items = []
    for key, value in values.items():
        prefix = key[: len(key) - len(bare[key])]
        deletion_without_value = prefix == "~" and not value
        items.append(prefix + names[bare[key]] + ("" if deletion_without_value else f"={value}"))
    name = ",".join(sorted(items)).replace("/", "_") or "defaults"
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    return name.encode()[: MAX_NAME_BYTES - len(digest) - 1].decode(errors="ignore") + "~" + digest
