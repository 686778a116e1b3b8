"""Download path with urllib mocked: a matching checksum is kept, a wrong one is refused and discarded."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

import ssgan.data.sources.download as download
from format_writers import write_mnist
from ssgan.data.sources import MNISTSource
from ssgan.data.sources.download import RemoteFile, fetch
from ssgan.errors import SSGANError


class FakeResponse(io.BytesIO):
    """What urlopen returns: a readable body with headers, usable as a context manager."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self.headers = {"Content-Length": str(len(body))}


def serve(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes], requested: list[str]) -> None:
    def fake_urlopen(url: str, timeout: float = 0) -> FakeResponse:
        requested.append(url)
        return FakeResponse(files[url.rsplit("/", 1)[-1]])

    monkeypatch.setattr(download, "urlopen", fake_urlopen)


def test_download_verifies_and_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = {path.name: path.read_bytes() for path in write_mnist(tmp_path / "published").values()}
    checksums = {name: hashlib.md5(raw).hexdigest() for name, raw in served.items()}
    monkeypatch.setattr(MNISTSource, "checksums", checksums)
    requested: list[str] = []
    serve(monkeypatch, served, requested)
    data = MNISTSource(tmp_path / "mnist", download=True).load()
    assert len(data.train) == 30 and len(requested) == 4
    assert all(url.startswith(MNISTSource.base_url) for url in requested)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(served)


def test_wrong_checksum_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, {"file.gz": b"not what was published"}, [])
    remote = RemoteFile("file.gz", "https://example.org/data/file.gz", "0" * 32)
    with pytest.raises(SSGANError) as error:
        fetch(remote, tmp_path)
    message = str(error.value)
    assert "file.gz" in message and "published checksum is " + "0" * 32 in message and "discarded" in message
    assert list(tmp_path.iterdir()) == []


def test_network_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, timeout: float = 0) -> FakeResponse:
        raise download.URLError("no route to host")

    monkeypatch.setattr(download, "urlopen", offline)
    with pytest.raises(SSGANError, match="file.gz: download from https://example.org/file.gz failed"):
        fetch(RemoteFile("file.gz", "https://example.org/file.gz", "0" * 32), tmp_path)
