"""A run's evaluation.json: every evaluation of its G, one self-contained entry each.

    {"evaluations": [{"source": "ssgan-evaluate", "judge": {"name": "classifier", "test_accuracy": ...},
                      "num_samples": ..., "seed": ..., "num_real": ..., "inception_score_mean": ..., "fid": ...}]}

``ssgan-evaluate`` adds an entry (replacing its own earlier one of the same checkpoint, judge, count and seed);
the evaluation callback adds one every k epochs. :func:`final_entries` picks what a report shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssgan.callbacks.checkpointing import write_atomically
from ssgan.errors import SSGANError

EVALUATION_FILE = "evaluation.json"
COMMAND_SOURCE = "ssgan-evaluate"
CALLBACK_SOURCE = "callback"


def evaluation_entry(source: str, judge: Any, scores: Any, seed: int, epochs_trained: int, global_step: int,
                     checkpoint: str | None = None) -> dict[str, Any]:
    """One self-contained entry: where G came from (after how many finished epochs), which judge (and its
    accuracy), the counts and the scores."""
    return {
        "source": source,
        "checkpoint": checkpoint,
        "epochs_trained": int(epochs_trained),
        "global_step": int(global_step),
        "judge": judge.describe(),
        "num_samples": scores.num_samples,
        "seed": int(seed),
        "num_real": scores.num_real,
        "real_images": "test",
        "inception_score_mean": scores.inception_score_mean,
        "inception_score_std": scores.inception_score_std,
        "inception_score_splits": scores.splits,
        "fid": scores.fid,
    }


def read_entries(path: str | Path) -> list[dict[str, Any]]:
    """The entries of an evaluation.json (none when it does not exist); one line when it cannot be read."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        content = json.loads(path.read_text())
        entries = content["evaluations"]
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise ValueError("'evaluations' is not a list of objects")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SSGANError(f"{path} cannot be read as an evaluation file ({type(error).__name__}: {error}); "
                         "move it away to start a new one") from None
    return entries


def write_entries(path: str | Path, entries: list[dict[str, Any]]) -> None:
    write_atomically(path, json.dumps({"evaluations": entries}, indent=2) + "\n")


def append_entry(path: str | Path, entry: dict[str, Any],
                 replaces: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
    """Add ``entry`` after dropping the earlier entries ``replaces`` matches; the file is replaced atomically."""
    entries = [old for old in read_entries(path) if replaces is None or not replaces(old)]
    entries.append(entry)
    write_entries(path, entries)
    return entries


def same_evaluation(entry: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """Matches an earlier ssgan-evaluate entry of the same checkpoint, judge, sample count and seed."""
    keys = ("source", "checkpoint", "num_samples", "seed")
    return lambda old: all(old.get(key) == entry.get(key) for key in keys) and (
        old.get("judge", {}).get("name") == entry["judge"]["name"]
    )


def final_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (judge, number of samples): the latest ssgan-evaluate entry, else the callback's last.

    FID depends on the number of samples, so entries of different counts are never pooled.
    """
    chosen: dict[tuple[str, int], dict[str, Any]] = {}
    for entry in entries:  # in the order they were written: a later one replaces an earlier one of its kind
        key = (str(entry.get("judge", {}).get("name")), int(entry.get("num_samples", 0)))
        earlier = chosen.get(key)
        if earlier is None or entry.get("source") == COMMAND_SOURCE or earlier.get("source") != COMMAND_SOURCE:
            chosen[key] = entry
    return list(chosen.values())
