"""The fitted-features cache: a second fit with the same settings and data is loaded, anything else is fitted."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import pytest
import torch

from ssgan.data import SemiSupervisedDataModule
from ssgan.data.sources import DigitsSource
from ssgan.errors import SSGANError
from ssgan.data.encoders.cache import fitted_encoding, fitting_device
from ssgan.data.encoders.patch_kmeans import PatchKMeansEncoder

SMALL = {"num_centroids": 8, "patch_size": 3, "pool_grid": 2, "output_dim": 6, "num_patches": 2000}


def images() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    data = DigitsSource().load()
    return data.train.inputs[:300], torch.arange(0, 300, 2), data.test.inputs[:50]


def refuse_to_fit(*args, **kwargs):
    raise AssertionError("fitted again although the cache holds this fit")


def test_the_same_fit_is_loaded_with_its_buffers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train, rows, test = images()
    first = PatchKMeansEncoder((1, 8, 8), seed=3, **SMALL)
    train_features, test_features = fitted_encoding(first, train, rows, test, tmp_path)
    assert len(list(tmp_path.glob("PatchKMeansEncoder-*.pt"))) == 1

    monkeypatch.setattr(PatchKMeansEncoder, "fit_encode", refuse_to_fit)
    second = PatchKMeansEncoder((1, 8, 8), seed=3, batch_size=7, **SMALL)  # batch size only bounds memory
    cached_train, cached_test = fitted_encoding(second, train, rows, test, tmp_path)
    assert torch.equal(cached_train, train_features) and torch.equal(cached_test, test_features)
    for name, buffer in first.state_dict().items():
        assert torch.equal(second.state_dict()[name], buffer), name
    assert bool(second.fitted)
    assert torch.allclose(second(test), test_features, atol=1e-5)  # the restored transform encodes like the fitted one


@pytest.mark.parametrize("change", ["seed", "settings", "images", "rows"])
def test_other_settings_or_data_are_fitted_again(tmp_path: Path, change: str) -> None:
    train, rows, test = images()
    fitted_encoding(PatchKMeansEncoder((1, 8, 8), **SMALL), train, rows, test, tmp_path)
    settings = {**SMALL, "output_dim": 5} if change == "settings" else SMALL
    extractor = PatchKMeansEncoder((1, 8, 8), seed=1 if change == "seed" else 0, **settings)
    if change == "images":
        train = train.clone()
        train[0, 0, 0, 0] += 0.5
    if change == "rows":
        rows = rows[1:]
    fitted_encoding(extractor, train, rows, test, tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_without_a_cache_folder_nothing_is_written(tmp_path: Path) -> None:
    train, rows, test = images()
    fitted_encoding(PatchKMeansEncoder((1, 8, 8), **SMALL), train, rows, test, None)
    assert not list(tmp_path.iterdir())


def test_an_unreadable_entry_is_fitted_again_and_replaced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    train, rows, test = images()
    expected, _ = fitted_encoding(PatchKMeansEncoder((1, 8, 8), **SMALL), train, rows, test, tmp_path)
    (entry,) = tmp_path.glob("*.pt")
    entry.write_bytes(entry.read_bytes()[:100])  # truncated, as by a full disk
    with caplog.at_level(logging.WARNING, logger="ssgan.data.encoders.cache"):
        again, _ = fitted_encoding(PatchKMeansEncoder((1, 8, 8), **SMALL), train, rows, test, tmp_path)
    assert "unreadable encoder cache entry" in caplog.text and str(entry) in caplog.text
    assert torch.allclose(again, expected)
    loaded, _ = fitted_encoding(PatchKMeansEncoder((1, 8, 8), **SMALL), train, rows, test, tmp_path)
    assert torch.equal(loaded, again)  # the rewritten entry is whole
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_data_modules_of_one_seed_share_the_fit_across_label_budgets(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def data_module(num_labeled: int) -> SemiSupervisedDataModule:
        return SemiSupervisedDataModule(DigitsSource(), num_labeled=num_labeled, split_seed=0,
                                        encoder=functools.partial(PatchKMeansEncoder, seed=0, **SMALL),
                                        encoder_cache_dir=str(tmp_path))

    first = data_module(50)
    first.setup("fit")
    monkeypatch.setattr(PatchKMeansEncoder, "fit_encode", refuse_to_fit)
    second = data_module(100)  # another budget: same unlabeled pool (every training example)
    second.setup("fit")
    assert torch.equal(second.data.train.inputs, first.data.train.inputs)
    assert torch.equal(second.data.test.inputs, first.data.test.inputs)
    assert torch.equal(second.encoder.projection, first.encoder.projection)


CHILD = """
import sys, time, torch
from ssgan.data.sources import DigitsSource
from ssgan.data.encoders.cache import fitted_encoding
from ssgan.data.encoders.patch_kmeans import PatchKMeansEncoder

fit_encode = PatchKMeansEncoder.fit_encode
def slow_fit_encode(self, *args):
    print("fitting", flush=True)
    time.sleep(3)  # long enough that the other run asks for the entry meanwhile
    return fit_encode(self, *args)
PatchKMeansEncoder.fit_encode = slow_fit_encode
data = DigitsSource().load()
extractor = PatchKMeansEncoder((1, 8, 8), num_centroids=8, patch_size=3, pool_grid=2, output_dim=6,
                                num_patches=2000)
train, test = fitted_encoding(extractor, data.train.inputs[:300], torch.arange(300), data.test.inputs[:50],
                              sys.argv[1])
print("sum", round(float(train.double().sum()), 6), flush=True)
"""


def test_runs_asking_for_one_entry_at_once_fit_it_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    runs = [subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err[-2000:] for _, err in outputs]
    fits = sum(out.count("fitting") for out, _ in outputs)
    assert fits == 1, outputs
    sums = {line for out, _ in outputs for line in out.splitlines() if line.startswith("sum")}
    assert len(sums) == 1  # the waiting run got exactly the features the other one fitted


def fit_seeds(folder: Path, seeds, limit_gb=None) -> dict[int, Path]:
    """Fit one entry per seed (in this order, file times one minute apart) and return each seed's entry."""
    train, rows, test = images()
    entries: dict[int, Path] = {}
    for minute, seed in enumerate(seeds):
        before = set(folder.glob("*.pt"))
        fitted_encoding(PatchKMeansEncoder((1, 8, 8), seed=seed, **SMALL), train, rows, test, folder, limit_gb)
        (entries[seed],) = set(folder.glob("*.pt")) - before
        os.utime(entries[seed], (1_000_000 + 60 * minute,) * 2)
    return entries


def test_the_size_limit_deletes_the_entries_used_longest_ago(tmp_path: Path) -> None:
    entries = fit_seeds(tmp_path, [0, 1])
    size_gb = entries[0].stat().st_size / 1024 ** 3
    train, rows, test = images()
    # seed 0 is used again, so seed 1 becomes the entry used longest ago
    fitted_encoding(PatchKMeansEncoder((1, 8, 8), seed=0, **SMALL), train, rows, test, tmp_path)
    fit_seeds(tmp_path, [2], limit_gb=2.5 * size_gb)
    assert entries[0].exists() and not entries[1].exists()
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_the_size_limit_skips_an_entry_another_run_holds(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import fcntl

    entries = fit_seeds(tmp_path, [0, 1])
    size_gb = entries[0].stat().st_size / 1024 ** 3
    with open(entries[0].with_suffix(".lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with caplog.at_level(logging.WARNING, logger="ssgan.data.encoders.cache"):
            fit_seeds(tmp_path, [2], limit_gb=1.5 * size_gb)
    assert entries[0].exists() and not entries[1].exists()
    assert "over data.encoder_cache_limit_gb" in caplog.text


@pytest.mark.parametrize("limit", [0, -1, "big", True])
def test_a_bad_size_limit_names_the_field(tmp_path: Path, limit) -> None:
    with pytest.raises(SSGANError, match="data.encoder_cache_limit_gb"):
        SemiSupervisedDataModule(DigitsSource(), encoder_cache_limit_gb=limit)


@pytest.mark.parametrize(
    ("device", "message"),
    [("tpu", "is not a device"), ("mps", "fitted on cpu or cuda only"), ("cuda:x", "is not a device")],
)
def test_a_bad_encoder_device_names_the_field(device, message) -> None:
    with pytest.raises(SSGANError, match=f"data.encoder_device={device!r}.*{message}"):
        SemiSupervisedDataModule(DigitsSource(), encoder=functools.partial(PatchKMeansEncoder, **SMALL),
                                 encoder_device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_a_gpu_fit_without_a_gpu_says_how_to_fit_on_the_cpu() -> None:
    with pytest.raises(SSGANError, match="no CUDA GPU here: set data.encoder_device=cpu"):
        SemiSupervisedDataModule(DigitsSource(), encoder=functools.partial(PatchKMeansEncoder, **SMALL),
                                 encoder_device="cuda")
    SemiSupervisedDataModule(DigitsSource(), encoder_device="cuda")  # without features the device is unused


def test_cuda_alone_means_this_ranks_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert fitting_device("cuda") == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert fitting_device("cuda") == torch.device("cuda", 2)
    assert fitting_device("cuda:1") == torch.device("cuda", 1)
    assert fitting_device("cpu") == torch.device("cpu")
    with pytest.raises(SSGANError, match="names GPU 5, but torch sees 4"):
        fitting_device("cuda:5")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_fit_hands_back_cpu_features_and_transform(tmp_path: Path) -> None:
    train, rows, test = images()
    extractor = PatchKMeansEncoder((1, 8, 8), seed=3, **SMALL)
    train_features, test_features = fitted_encoding(extractor, train, rows, test, tmp_path, device="cuda")
    assert train_features.device.type == test_features.device.type == "cpu"
    assert all(buffer.device.type == "cpu" for buffer in extractor.buffers())
    assert train_features.shape == (300, 6) and test_features.shape == (50, 6)
    assert float(train_features[rows].std()) == pytest.approx(0.35, rel=1e-2)
    assert torch.allclose(extractor(test), test_features, atol=1e-4)  # the CPU transform encodes like the GPU fit
