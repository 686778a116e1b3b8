"""Config resolvers: the automatic precision choice."""

from pathlib import Path

import pytest
import torch

from ssgan import config
from ssgan.config import cpu_has_native_bf16, fast_precision


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    with_bf16 = tmp_path / "bf16"
    with_bf16.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 avx512bw\n")
    without = tmp_path / "plain"
    without.write_text("flags\t\t: fpu avx2 avx512f avx512bw\n")
    assert cpu_has_native_bf16(str(with_bf16))
    assert not cpu_has_native_bf16(str(without))
    assert not cpu_has_native_bf16(str(tmp_path / "missing"))


@pytest.mark.parametrize("native,expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_cpu_precision_follows_native_bf16(monkeypatch: pytest.MonkeyPatch, native: bool, expected: str) -> None:
    monkeypatch.setattr(config, "cpu_has_native_bf16", lambda: native)
    assert fast_precision("cpu") == expected
    if not torch.cuda.is_available():
        assert fast_precision("auto") == expected
