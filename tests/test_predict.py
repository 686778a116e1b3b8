"""ssgan-predict reproduces a run's test accuracy from its checkpoint; ssgan-sample draws a grid; bad inputs say why."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ssgan.models.supervised import SupervisedBaseline
from ssgan.data.sources import DigitsSource
from ssgan.errors import SSGANError
from ssgan.models.ssgan import SSGAN
from ssgan.cli.predict import load_module, main as predict_main, read_inputs, read_source, run as predict_run, parse_arguments
from ssgan.cli.sample import main as sample_main
from ssgan.cli.train import train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[dict, Path]:
    from conftest import compose_run

    run_dir = tmp_path_factory.mktemp("run")
    metrics = train(compose_run(run_dir, ["trainer.max_epochs=2", "callbacks.health.sample_every_n_epochs=0"]))
    return metrics, run_dir / "checkpoints" / "last.ckpt"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_predict_on_digits_test_data_reproduces_test_acc(trained_run, tmp_path):
    metrics, checkpoint = trained_run
    output = tmp_path / "predictions.csv"
    accuracy = predict_run(parse_arguments([str(checkpoint), "--data", "digits", "-o", str(output)]))
    assert accuracy == pytest.approx(metrics["test_acc"], abs=1e-6)  # test_acc is a float32
    rows = read_rows(output)
    assert len(rows) == metrics["num_test"]
    assert list(rows[0]) == ["label", "prediction"] + [f"p_{k}" for k in range(10)]
    assert sum(row["label"] == row["prediction"] for row in rows) == metrics["num_test"] - metrics["test_errors"]
    assert sum(float(rows[0][f"p_{k}"]) for k in range(10)) == pytest.approx(1.0, abs=1e-4)


def test_predict_from_npz_and_flat_csv_agree(trained_run, tmp_path):
    _, checkpoint = trained_run
    test = DigitsSource().load().test
    images = test.inputs.numpy()
    np.savez(tmp_path / "x.npz", x=images)
    np.savetxt(tmp_path / "x.csv", images.reshape(len(images), -1), delimiter=",", header=",".join(
        f"pixel{i}" for i in range(64)), comments="")
    predict_main([str(checkpoint), str(tmp_path / "x.npz"), "-o", str(tmp_path / "npz.csv")])
    predict_main([str(checkpoint), str(tmp_path / "x.csv"), "-o", str(tmp_path / "csv.csv")])
    from_npz, from_csv = read_rows(tmp_path / "npz.csv"), read_rows(tmp_path / "csv.csv")
    assert [r["prediction"] for r in from_npz] == [r["prediction"] for r in from_csv]
    assert "label" not in from_npz[0]


def test_checkpoint_from_another_version_names_the_unknown_hyperparameter(trained_run, tmp_path):
    import torch

    _, checkpoint_path = trained_run
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    checkpoint["hyper_parameters"]["dropped_option"] = 0.5
    edited = tmp_path / "other_version.ckpt"
    torch.save(checkpoint, edited)
    with pytest.raises(SSGANError, match=r"dropped_option.*SSGAN does not take"):
        load_module(edited)


def test_mismatched_inputs_name_expected_and_found(trained_run, tmp_path, capsys):
    _, checkpoint = trained_run
    np.savez(tmp_path / "wrong.npz", x=np.zeros((5, 63), dtype=np.float32))
    with pytest.raises(SystemExit) as exit_info:
        predict_main([str(checkpoint), str(tmp_path / "wrong.npz"), "-o", str(tmp_path / "out.csv")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "(63,) (63 features)" in error and "expects shape (1, 8, 8) (64 features" in error
    np.savez(tmp_path / "other.npz", features=np.zeros((5, 64)))
    with pytest.raises(SSGANError, match="expected one named 'x'"):
        read_inputs(tmp_path / "other.npz")


def test_load_module_picks_the_class_and_sample_writes_a_grid(trained_run, tmp_path, make_config):
    _, checkpoint = trained_run
    module = load_module(checkpoint)
    assert isinstance(module, SSGAN) and not module.training and module.initialised
    sample_main([str(checkpoint), "-n", "16", "-o", str(tmp_path / "grid.png"), "--npz", str(tmp_path / "s.npz")])
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size[0] > 4 * 8
    assert np.load(tmp_path / "s.npz")["x"].shape == (16, 1, 8, 8)

    cfg = make_config("baseline", "model=supervised", "trainer.max_epochs=1")
    train(cfg)
    baseline_checkpoint = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert isinstance(load_module(baseline_checkpoint), SupervisedBaseline)
    with pytest.raises(SystemExit):
        sample_main([str(baseline_checkpoint), "-o", str(tmp_path / "none.png")])


@pytest.fixture(scope="module")
def second_run(tmp_path_factory) -> Path:
    """Another run on digits (other seed, one epoch): a second member for ensembles."""
    from conftest import compose_run

    run_dir = tmp_path_factory.mktemp("second_run")
    train(compose_run(run_dir, ["seed=1", "trainer.max_epochs=1", "callbacks.health.sample_every_n_epochs=0"]))
    return run_dir / "checkpoints" / "last.ckpt"


def probabilities_of(path: Path) -> np.ndarray:
    return np.array([[float(row[f"p_{k}"]) for k in range(10)] for row in read_rows(path)])


def test_several_checkpoints_predict_the_mean_of_their_probabilities(trained_run, second_run, tmp_path):
    _, first = trained_run
    outputs = {name: tmp_path / f"{name}.csv" for name in ("first", "second", "both")}
    predict_run(parse_arguments([str(first), "--data", "digits", "-o", str(outputs["first"])]))
    predict_run(parse_arguments([str(second_run), "--data", "digits", "-o", str(outputs["second"])]))
    accuracy = predict_run(parse_arguments([str(first), str(second_run), "--data", "digits", "-o",
                                            str(outputs["both"])]))
    first_p, second_p, both_p = (probabilities_of(outputs[name]) for name in ("first", "second", "both"))
    assert not np.allclose(first_p, second_p, atol=1e-3)  # two different runs, so the mean is neither
    np.testing.assert_allclose(both_p, (first_p + second_p) / 2, atol=2e-6)
    labels = DigitsSource().load().test.labels.numpy()
    assert accuracy == pytest.approx(float((both_p.argmax(axis=1) == labels).mean()))

    np.savez(tmp_path / "x.npz", x=DigitsSource().load().test.inputs.numpy())
    predict_main([str(first), str(second_run), str(tmp_path / "x.npz"), "-o", str(tmp_path / "file.csv")])
    np.testing.assert_allclose(probabilities_of(tmp_path / "file.csv"), both_p, atol=2e-6)


def test_an_ensemble_of_runs_on_other_classes_or_inputs_names_the_checkpoint(trained_run, second_run, tmp_path):
    import torch

    _, first = trained_run
    checkpoint = torch.load(second_run, map_location="cpu", weights_only=False)
    checkpoint["hyper_parameters"]["class_names"] = [str(k) for k in reversed(range(10))]
    reordered = tmp_path / "reordered.ckpt"
    torch.save(checkpoint, reordered)
    with pytest.raises(SSGANError, match=rf"{reordered.name} has classes \['9', '8'.*same classes in the same order"):
        predict_run(parse_arguments([str(first), str(reordered), "--data", "digits", "-o", str(tmp_path / "o.csv")]))

    from ssgan.cli.predict import check_ensemble

    pixels, wider = (type("Run", (), {"class_names": ("a", "b"), "raw_input_shape": shape})() for shape in
                     [(1, 8, 8), (1, 9, 9)])
    with pytest.raises(SSGANError, match=r"wider.ckpt takes inputs of shape \(1, 9, 9\), but pixels.ckpt takes"):
        check_ensemble([pixels, wider], ["pixels.ckpt", "wider.ckpt"])


def test_an_input_file_with_data_or_no_input_at_all_is_a_usage_error(trained_run, tmp_path, capsys):
    _, checkpoint = trained_run
    for argv in ([str(checkpoint), "x.npz", "--data", "digits"], [str(checkpoint)]):
        with pytest.raises(SystemExit) as exit_info:
            parse_arguments(argv)
        assert exit_info.value.code == 2
    errors = capsys.readouterr().err
    assert "give either an input file (x.npz) or --data, not both" in errors
    assert "give an input file after the checkpoint(s), or --data" in errors


def test_data_configs_that_read_a_folder_are_read_from_data_root(tmp_path):
    from format_writers import write_mnist

    write_mnist(tmp_path / "fashion", train=30, test=20)
    inputs, labels = read_source("fashion_mnist", "test", root=str(tmp_path / "fashion"))
    assert inputs.shape == (20, 1, 28, 28) and 0.0 <= inputs.min() and inputs.max() <= 1.0
    assert labels.tolist() == [k % 10 for k in range(20)]
    assert read_source("fashion_mnist", "train", root=str(tmp_path / "fashion"))[0].shape[0] == 30


def test_data_root_needs_data_and_a_config_with_a_root(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_arguments(["last.ckpt", "x.npz", "--data-root", str(tmp_path)])
    assert "--data-root goes with --data" in capsys.readouterr().err
    with pytest.raises(SSGANError, match="reads no 'root' folder"):
        read_source("digits", "test", root=str(tmp_path))
