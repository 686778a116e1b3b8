"""Config resolvers: the automatic precision choice, where learnt features are fitted, and the CPU name the
reports carry."""

from pathlib import Path

import pytest
import torch

from ssgan.build import compose, epoch_at
from ssgan.errors import SSGANError
from ssgan.runtime.hardware import cpu_has_native_bf16, cpu_model
from tests.conftest import compose_run


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    with_bf16 = tmp_path / "bf16"
    with_bf16.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 avx512bw\n")
    without = tmp_path / "plain"
    without.write_text("flags\t\t: fpu avx2 avx512f avx512bw\n")
    assert cpu_has_native_bf16(str(with_bf16))
    assert not cpu_has_native_bf16(str(without))
    assert not cpu_has_native_bf16(str(tmp_path / "missing"))


def test_cpu_model_is_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9454 48-Core Processor\n")
    assert cpu_model(str(cpuinfo)) == "AMD EPYC 9454 48-Core Processor"
    assert cpu_model(str(tmp_path / "missing"))  # falls back to the platform's name, never empty


@pytest.mark.parametrize(("fraction", "max_epochs", "expected"),
                         [(0.667, 60, 40), (0.667, 1200, 800), (0.667, 900, 600), (0.667, 1, 0), (0.667, 2, 1),
                          (1.0, 5, 4), (0.0, 5, 0)])
def test_epoch_at_scales_a_schedule_with_the_run_and_stays_before_its_end(fraction, max_epochs, expected) -> None:
    assert epoch_at(fraction, max_epochs) == expected


@pytest.mark.parametrize(("fraction", "max_epochs", "field"), [(1.5, 10, "fraction=1.5"), (0.5, 0, "max_epochs=0")])
def test_epoch_at_refuses_bad_values_by_name(fraction, max_epochs, field) -> None:
    with pytest.raises(SSGANError, match=field):
        epoch_at(fraction, max_epochs)


def test_the_same_command_trains_at_the_same_precision_everywhere(tmp_path: Path) -> None:
    """Precision is part of the recipe, never read from the machine: fp32 unless the command line says so."""
    for experiment in ("digits_50", "fashion_mnist_100", "fashion_mnist_1000", "cifar10_4000"):
        assert compose([f"experiment={experiment}"], output_dir=tmp_path).trainer.precision == "32-true"


def test_the_encoder_cache_folder_follows_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SSGAN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert compose_run(tmp_path).data.encoder_cache_dir == "/xdg/ssgan/encoders"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert compose_run(tmp_path).data.encoder_cache_dir == "~/.cache/ssgan/encoders"
    monkeypatch.setenv("SSGAN_CACHE_DIR", "/own")
    assert compose_run(tmp_path).data.encoder_cache_dir == "/own/encoders"
    assert compose_run(tmp_path, ["data.encoder_cache_dir=null"]).data.encoder_cache_dir is None


@pytest.mark.parametrize("accelerator", ["cpu", "gpu", "auto"])
def test_encoders_are_fitted_on_the_training_device_type(tmp_path: Path, accelerator: str) -> None:
    expected = "cuda" if accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available()) else "cpu"
    cfg = compose_run(tmp_path, [f"trainer.accelerator={accelerator}"])
    assert cfg.data.encoder_device == expected
    assert compose_run(tmp_path, ["trainer.accelerator=gpu", "data.encoder_device=cpu"]).data.encoder_device == "cpu"
