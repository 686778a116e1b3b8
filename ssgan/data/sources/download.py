"""Find the official files under ``root``, or fetch them from their published URLs and verify their MD5."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from ssgan.errors import SSGANError

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One official file: its name on disk, where it is published and the MD5 published with it."""

    name: str
    url: str
    md5: str


def file_md5(path: Path) -> str:
    """MD5 of a file read in chunks (integrity against the published checksum, not security)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(remote: RemoteFile, root: Path) -> Path:
    """Download ``remote`` into ``root`` with a progress line; keep it only if its MD5 matches the published one."""
    root.mkdir(parents=True, exist_ok=True)
    target, partial = root / remote.name, root / (remote.name + ".part")
    print(f"downloading {remote.url} -> {target}", file=sys.stderr, flush=True)
    try:
        with urlopen(remote.url, timeout=60) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done, shown = 0, -1
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                out.write(chunk)
                done += len(chunk)
                percent = 100 * done // total if total else -1
                if percent // 10 != shown // 10:
                    shown = percent
                    print(f"  {remote.name}: {done / 1e6:.1f} MB ({percent}%)", file=sys.stderr, flush=True)
    except (URLError, OSError, ValueError) as error:
        partial.unlink(missing_ok=True)
        raise SSGANError(f"{remote.name}: download from {remote.url} failed ({error})") from None
    actual = file_md5(partial)
    if actual != remote.md5:
        partial.unlink(missing_ok=True)
        raise SSGANError(
            f"{remote.name}: downloaded file has MD5 {actual} but the published checksum is {remote.md5} "
            f"({remote.url}); the file was discarded"
        )
    partial.replace(target)
    return target


def missing_files_error(root: Path, expected: Sequence[str], hint: str = "") -> SSGANError:
    """The one message for absent data: which files, which folder, and how to get them."""
    return SSGANError(
        f"no data found in {root}: expected {', '.join(expected)}{hint}; "
        "set data.root to the folder holding them, or data.source.download=true to fetch them"
    )
