"""ssgan-evaluate and the sample-quality callback: IS and FID of G's samples under a judge that is not D.

Hand-checkable scores on a judge whose outputs are known, the judge cache, the real command line on a tiny digits
run and on Fashion-MNIST-format files, one-line refusals that leave the run directory as it was, the report's
columns.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import Tensor

from conftest import compose_run
from format_writers import write_mnist
from test_command_line import environment, one_line, snapshot, ssgan_train
from ssgan.build import build
from ssgan.cli.evaluate import main as evaluate_main
from ssgan.cli.report import report
from ssgan.cli.train import train
from ssgan.data.sources import DigitsSource
from ssgan.errors import SSGANError
from ssgan.evaluation import ClassifierJudgeSpec, InceptionJudgeSpec, Judge, sample_quality
from ssgan.evaluation import classifier_judge
from ssgan.evaluation.records import final_entries

QUIET = ["callbacks.health.sample_every_n_epochs=0"]


def ssgan_evaluate(run_dir: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ssgan.cli.evaluate", str(run_dir), *arguments],
                          cwd=run_dir.parent, env=environment(), capture_output=True, text=True, timeout=240)


def entries(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "evaluation.json").read_text())["evaluations"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch SSGAN run on digits with tiny networks, trained through the real command line."""
    run_dir = tmp_path_factory.mktemp("evaluate") / "run"
    result = ssgan_train(run_dir, "trainer.max_epochs=1", "trainer.limit_train_batches=4", *QUIET)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture
def run_copy(digits_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(digits_run, copy)
    return copy


# ------------------------------------------------------------------------------------------ scores by hand
class PixelJudge(Judge):
    """Logits: 50 x the pixels of a 1x2x2 image (K = 4 classes); features: the pixels themselves."""

    name = "pixels"
    num_features = 4

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the judge a device

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        pixels = images.flatten(1)
        return 50 * pixels, pixels


def one_hot_images(classes: Tensor) -> Tensor:
    return torch.nn.functional.one_hot(classes, 4).float().reshape(-1, 1, 2, 2)


def test_scores_are_the_hand_computed_ones() -> None:
    judge = PixelJudge()
    balanced = one_hot_images(torch.arange(400) % 4)
    real = torch.rand(300, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    scores = sample_quality(judge, balanced, real, splits=1)
    assert scores.inception_score_mean == pytest.approx(4.0, rel=1e-3)  # sure of each class, all classes equal
    assert scores.inception_score_std is None  # one split: no spread
    assert sample_quality(judge, one_hot_images(torch.zeros(100, dtype=torch.long)), real).inception_score_mean \
        == pytest.approx(1.0, abs=1e-4)  # every sample the same class
    assert 1.0 <= sample_quality(judge, real, real).inception_score_mean <= 4.0
    assert sample_quality(judge, real, real).fid == pytest.approx(0.0, abs=1e-3)
    shifted = sample_quality(judge, real + 0.5, real).fid  # same covariance, means 0.5 apart in each of 4 features
    assert shifted == pytest.approx(4 * 0.5**2, rel=1e-3)


def test_the_score_is_deterministic_and_leaves_the_global_rng_alone() -> None:
    judge = PixelJudge()
    samples = one_hot_images(torch.randint(0, 4, (200,), generator=torch.Generator().manual_seed(1)))
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = sample_quality(judge, samples, samples, splits=5, seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert sample_quality(judge, samples, samples, splits=5, seed=7) == first
    with pytest.raises(SSGANError, match="at least 2"):
        sample_quality(judge, samples[:1], samples)
    with pytest.raises(SSGANError, match="splits=300 must be between 1 and the number of samples"):
        sample_quality(judge, samples, samples, splits=300)


# ------------------------------------------------------------------------------------------ judge cache
def small_spec(**changes) -> ClassifierJudgeSpec:
    return ClassifierJudgeSpec(**{"channels": 4, "feature_dim": 8, "epochs": 2, **changes})


def refuse_to_train(*args, **kwargs):
    raise AssertionError("trained again although the cache holds this judge")


def test_the_judge_is_trained_once_then_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = DigitsSource().load()
    judge = small_spec().prepare(data, tmp_path)
    [entry] = tmp_path.glob("ClassifierJudge-*.pt")
    assert judge.cache_entry == entry and 0.0 < judge.accuracy <= 1.0 and judge.num_train == len(data.train.labels)
    assert torch.load(entry, weights_only=True)["accuracy"] == judge.accuracy  # recorded with the weights
    with monkeypatch.context() as patch:
        patch.setattr(classifier_judge, "train_judge_network", refuse_to_train)
        loaded = small_spec().prepare(data, tmp_path)
    assert loaded.accuracy == judge.accuracy and loaded.describe() == judge.describe()
    images = data.test.inputs[:20]
    assert torch.equal(loaded.outputs(images)[1], judge.outputs(images)[1])
    small_spec(seed=1).prepare(data, tmp_path)  # another setting: another entry
    assert len(list(tmp_path.glob("ClassifierJudge-*.pt"))) == 2
    entry.write_bytes(b"truncated")  # an unreadable entry is trained again and replaced
    assert small_spec().prepare(data, tmp_path).accuracy == judge.accuracy


def test_training_is_deterministic_without_a_cache() -> None:
    data = DigitsSource().load()
    first, second = small_spec().prepare(data, None), small_spec().prepare(data, None)
    assert first.cache_entry is None
    for name, tensor in first.network.state_dict().items():
        assert torch.equal(tensor, second.network.state_dict()[name]), name


def test_judge_settings_are_checked() -> None:
    with pytest.raises(SSGANError, match=r"judge.epochs=0 must be a positive integer"):
        ClassifierJudgeSpec(epochs=0)
    with pytest.raises(SSGANError, match=r"judge.learning_rate=-1 must be a number > 0"):
        ClassifierJudgeSpec(learning_rate=-1)


# ------------------------------------------------------------------------------------------ Inception
def test_missing_inception_weights_say_what_to_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SSGANError, match=r"never downloaded.*weights-inception-2015-12-05-6726825d\.pth"):
        InceptionJudgeSpec(None)
    with pytest.raises(SSGANError, match=r"nowhere\.pth: no such file"):
        InceptionJudgeSpec(str(tmp_path / "nowhere.pth"))
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as where the package is not installed
    with pytest.raises(SSGANError, match=r"needs the torch-fidelity package: pip install 'ssgan\[inception\]'"):
        InceptionJudgeSpec(str(weights))


def test_the_inception_judge_feeds_torch_fidelity_uint8_rgb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch-fidelity's network is replaced by a stand-in that checks what it is given (no weights here)."""
    seen: list[Tensor] = []

    class StandIn(torch.nn.Module):
        def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str) -> None:
            super().__init__()
            assert features_list == ["2048", "logits_unbiased"] and Path(feature_extractor_weights_path).is_file()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
            seen.append(images)
            flat = images.float().flatten(1)[:, :8]
            return flat.repeat(1, 256), flat.repeat(1, 126)  # (N, 2048) features, (N, 1008) logits

    package = types.ModuleType("torch_fidelity")
    module = types.ModuleType("torch_fidelity.feature_extractor_inceptionv3")
    module.FeatureExtractorInceptionV3 = StandIn
    monkeypatch.setitem(sys.modules, "torch_fidelity", package)
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", module)
    weights = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"")
    data = DigitsSource().load()
    judge = InceptionJudgeSpec(str(weights)).prepare(data)
    logits, features = judge.outputs(data.test.inputs[:40])
    assert seen[0].dtype == torch.uint8 and seen[0].shape == (40, 3, 8, 8)
    assert int(seen[0].max()) == 255  # digits' [0, 1] pixels span the bytes
    assert logits.shape == (40, 1008) and features.shape == (40, judge.num_features)
    assert judge.describe()["weights"] == str(weights)


# ------------------------------------------------------------------------------------------ the command
def test_evaluate_writes_scores_and_reuses_the_judge(run_copy: Path) -> None:
    result = ssgan_evaluate(run_copy, "--samples", "200")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training the judge network" in result.stderr and "wrote" in result.stderr.splitlines()[-1]
    [entry] = entries(run_copy)
    assert entry["source"] == "ssgan-evaluate" and entry["checkpoint"] == "checkpoints/last.ckpt"
    assert entry["judge"]["name"] == "classifier" and 0.5 < entry["judge"]["test_accuracy"] <= 1.0
    assert (entry["num_samples"], entry["seed"], entry["num_real"], entry["epochs_trained"]) == (200, 0, 360, 1)
    assert 1.0 <= entry["inception_score_mean"] <= 10.0 and entry["fid"] >= 0.0

    again = ssgan_evaluate(run_copy, "--samples", "200")
    assert again.returncode == 0 and "loaded the judge network" in again.stderr
    assert entries(run_copy) == [entry]  # the same evaluation replaces its entry, with the same scores
    evaluate_main([str(run_copy), "--samples", "100", "--seed", "1"])
    assert [e["num_samples"] for e in entries(run_copy)] == [200, 100]


def test_bad_inputs_are_one_line_and_write_nothing(run_copy: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(run_copy)
    result = ssgan_evaluate(run_copy, "--judge", "inception")
    assert result.returncode == 2
    assert "weights-inception-2015-12-05-6726825d.pth" in one_line(result, "ssgan-evaluate: error:")
    result = ssgan_evaluate(tmp_path / "missing")
    assert result.returncode == 2
    assert "RUN_DIR" in one_line(result, "ssgan-evaluate: error:")
    for arguments, expected in (
        (["--samples", "1"], "--samples=1: the Inception score and FID need an integer >= 2"),
        (["--judge", "inception", "--inception-weights", str(tmp_path / "w.pth")], "w.pth: no such file"),
        (["--judge", "dall-e"], "--judge dall-e: no judge of that name; expected one of ['classifier', 'inception']"),
        (["--inception-weights", "w.pth"], "--inception-weights goes with --judge inception"),
        (["--checkpoint", "other.ckpt"], "no checkpoint"),
    ):
        assert expected in refusal(capsys, run_copy, *arguments)
    (run_copy / "checkpoints" / "last.ckpt").rename(run_copy / "checkpoints" / "moved.ckpt")
    assert "no checkpoint" in refusal(capsys, run_copy)
    (run_copy / "checkpoints" / "moved.ckpt").rename(run_copy / "checkpoints" / "last.ckpt")
    assert snapshot(run_copy) == before


def refusal(capsys: pytest.CaptureFixture[str], run_dir: Path, *arguments: str) -> str:
    """The one error line of an in-process ssgan-evaluate that exits with status 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        evaluate_main([str(run_dir), *arguments])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    lines = [line for line in error.splitlines() if line.startswith("ssgan-evaluate: error:")]
    assert len(lines) == 1 and "Traceback" not in error, error
    return lines[0]


def test_runs_without_images_from_g_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    supervised = tmp_path / "supervised"
    train(compose_run(supervised, ["model=supervised", "trainer.max_epochs=1", *QUIET]))
    before = snapshot(supervised)
    assert "SupervisedBaseline, which has no generator G to judge" in refusal(capsys, supervised)
    assert snapshot(supervised) == before

    encoded = tmp_path / "encoded"
    train(compose_run(encoded, ["data/encoder=patch_kmeans", "data.encoder.num_centroids=8",
                                "data.encoder.patch_size=3", "data.encoder.pool_grid=2", "data.encoder.output_dim=6",
                                "data.encoder.num_patches=2000", "trainer.max_epochs=1",
                                "trainer.limit_train_batches=2", *QUIET]))
    assert "G makes patch codes, not images" in refusal(capsys, encoded)
    assert not (encoded / "evaluation.json").exists()


def test_a_fashion_mnist_format_run_is_judged(tmp_path: Path) -> None:
    """Fashion-MNIST's idx files, tiny and random, through training and evaluation; the data may move."""
    root = tmp_path / "fashion"
    write_mnist(root, train=60, test=30)
    run_dir = tmp_path / "run"
    train(compose_run(run_dir, ["data=fashion_mnist", f"data.root={root}", "data.num_labeled=20",
                                "data.batch_size=20", "model.init_examples=40", "trainer.max_epochs=1", *QUIET]))
    moved = tmp_path / "moved"
    root.rename(moved)
    evaluate_main([str(run_dir), "--samples", "40", "--splits", "4", "--data-root", str(moved)])
    [entry] = entries(run_dir)
    assert entry["num_real"] == 30 and entry["judge"]["num_train"] == 60 and entry["inception_score_splits"] == 4
    assert 1.0 <= entry["inception_score_mean"] <= 10.0


# ------------------------------------------------------------------------------------------ callback, report
def test_the_callback_appends_every_k_epochs_without_changing_training(tmp_path: Path) -> None:
    plain = train(compose_run(tmp_path / "plain", ["trainer.max_epochs=3", *QUIET]))
    run_dir = tmp_path / "judged"
    judged = train(compose_run(run_dir, ["trainer.max_epochs=3", *QUIET, "callbacks/evaluation=classifier",
                                         "callbacks.evaluation.every_n_epochs=2",
                                         "callbacks.evaluation.num_samples=50"]))
    assert judged["test_acc"] == plain["test_acc"]  # the training RNG is untouched
    assert [(e["source"], e["epochs_trained"]) for e in entries(run_dir)] == [("callback", 2), ("callback", 3)]
    assert final_entries(entries(run_dir)) == entries(run_dir)[-1:]

    with pytest.raises(SSGANError, match=r"run_test=false keeps the test set unread"):
        build(compose_run(tmp_path / "search", ["run_test=false", "callbacks/evaluation=classifier"]))
    assert "evaluation" not in compose_run(tmp_path / "default").callbacks  # off by default


def test_a_resume_drops_the_callbacks_entries_of_the_epochs_it_trains_again(tmp_path: Path) -> None:
    from ssgan.callbacks import SampleQuality

    path = tmp_path / "evaluation.json"
    written = [{"source": "callback", "epochs_trained": epochs} for epochs in (2, 4, 6)]
    written.append({"source": "ssgan-evaluate", "epochs_trained": 6})
    path.write_text(json.dumps({"evaluations": written}))
    spec = types.SimpleNamespace(prepare=lambda data, cache_dir, device: PixelJudge())
    callback = SampleQuality(spec, path)
    data = types.SimpleNamespace(input_shape=(1, 2, 2), test=types.SimpleNamespace(inputs=torch.zeros(3, 1, 2, 2)))
    trainer = types.SimpleNamespace(is_global_zero=True, current_epoch=4,
                                    datamodule=types.SimpleNamespace(encoder=None, data=data))
    callback.on_train_start(trainer, types.SimpleNamespace(sample=None, device=torch.device("cpu")))
    assert [(e["source"], e["epochs_trained"]) for e in entries(tmp_path)] == [
        ("callback", 2), ("callback", 4), ("ssgan-evaluate", 6)]
    assert isinstance(callback.judge, PixelJudge)


def test_the_report_shows_sample_quality_beside_accuracy(tmp_path: Path) -> None:
    from test_report import write_job

    for seed, (score, fid) in enumerate(((3.0, 20.0), (5.0, 10.0))):
        job = write_job(tmp_path, f"seed={seed}", "SSGAN", 50, seed, 0.9)
        callback = {"source": "callback", "judge": {"name": "classifier"}, "num_samples": 1000,
                    "inception_score_mean": 1.0, "fid": 99.0}
        command = {**callback, "source": "ssgan-evaluate", "inception_score_mean": score, "fid": fid}
        (job / "evaluation.json").write_text(json.dumps({"evaluations": [command, callback]}))
    write_job(tmp_path, "baseline", "SupervisedBaseline", 50, 0, 0.8)
    paths = report([tmp_path])
    table = paths["md"].read_text()
    assert "| IS (classifier, N=1000) | FID (classifier, N=1000) |" in table
    assert "| 4.00 ± 1.41 | 15.00 ± 7.07 |" in table and "| - | - |" in table  # the baseline has none
    assert "is_classifier_n1000_mean" in paths["csv"].read_text().splitlines()[0]

    for job in tmp_path.glob("seed=*"):
        (job / "evaluation.json").unlink()
    assert "IS (" not in report([tmp_path])["md"].read_text()
