"""Users' own partially labeled data: CSV tables, image folders and .npz, read and trained end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from ssgan.data.sources import ImageFolderSource, NpzSource, TableSource
from ssgan.errors import SSGANError
from ssgan.build import CONFIG_DIR
from ssgan.cli.train import train

TINY_MLP = [
    "model.discriminator.hidden_widths=[16,8]",
    "gan.generator.hidden_widths=[8]",
    "gan.generator.noise_dim=4",
    "model.init_examples=20",
    "data.batch_size=8",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
]


def partially_labeled_csv(path: Path, rows: int = 80, labeled_every: int = 4, seed: int = 0) -> Path:
    """Two clusters; only every ``labeled_every``-th row carries a (string) label, the rest are empty."""
    rng = np.random.default_rng(seed)
    lines = ["f1,f2,f3,species"]
    for i in range(rows):
        kind = i % 2
        features = rng.normal(3.0 * kind, 1.0, 3)
        label = ("setosa", "virginica")[kind] if i % labeled_every < 2 else ""
        lines.append(",".join(f"{v:.4f}" for v in features) + f",{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def run(tmp_path: Path, overrides: list[str]) -> dict:
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.output_dir={tmp_path / 'run'}"])
    return train(cfg)


def test_table_reads_string_labels_and_scales_on_train_only(tmp_path: Path) -> None:
    path = partially_labeled_csv(tmp_path / "t.csv")
    data = TableSource(path, label_column="species", test_fraction=0.25).load()
    assert data.class_names == ("setosa", "virginica")
    assert data.input_shape == (3,)
    assert float(data.train.inputs.min()) == 0.0 and float(data.train.inputs.max()) == 1.0
    assert bool((data.test.labels >= 0).all()) and len(data.test) == 10  # a quarter of the 40 labeled rows
    assert int((data.train.labels == -1).sum()) == 40


def test_table_numeric_labels_sort_numerically_and_minus_one_is_unlabeled(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,label,b\n" + "".join(f"{i},{[10, 2, -1, 2.0][i % 4]},{i * 2}\n" for i in range(16)))
    data = TableSource(path, feature_columns=["b"], test_fraction=0.3, scaling="none").load()
    assert data.class_names == ("2", "10") and data.input_shape == (1,)
    assert sorted(set(data.train.labels.tolist())) == [-1, 0, 1]


def test_table_separate_test_file(tmp_path: Path) -> None:
    train_path = partially_labeled_csv(tmp_path / "train.csv")
    test_path = tmp_path / "test.csv"
    test_path.write_text("f1,f2,f3,species\n0,0,0,setosa\n3,3,3,virginica\n1,1,1,rose\n")
    source = TableSource(train_path, label_column="species", test_path=test_path, scaling="standard")
    with pytest.raises(SSGANError, match=r"test.csv: line 4, column 'species': label 'rose' is not one of"):
        source.load()
    test_path.write_text("f1,f2,f3,species\n0,0,0,setosa\n3,3,3,virginica\n")
    data = source.load()
    assert len(data.train) == 80 and data.test.labels.tolist() == [0, 1]
    assert abs(float(data.train.inputs.mean())) < 1e-5


def test_parquet_table(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "label": ["a", "b", None, "a", "b", None]})
    pq.write_table(table, tmp_path / "t.parquet")
    data = TableSource(tmp_path / "t.parquet", test_fraction=0.5).load()
    assert data.class_names == ("a", "b") and len(data.test) == 2


def test_npz_with_holdout_and_separate_test(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((30, 2, 4, 4)).astype(np.float32)
    y = np.where(np.arange(30) % 3 == 0, -1, np.arange(30) % 2 + 5)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = NpzSource(tmp_path / "d.npz", test_fraction=0.2).load()
    assert data.class_names == ("5", "6") and data.input_shape == (2, 4, 4)
    assert len(data.train) + len(data.test) == 30
    np.savez(tmp_path / "t.npz", x=x[:4], y=np.array([5, 6, 5, -1]))
    with pytest.raises(SSGANError, match=r"t.npz: y\[3\], column 'y': test rows need a label"):
        NpzSource(tmp_path / "d.npz", test_path=tmp_path / "t.npz").load()


def write_image_folder(root: Path, size: int = 8, seed: int = 0) -> Path:
    """Two classes (dark, bright) with 6 labeled images each and 24 unlabeled ones, some JPEG."""
    rng = np.random.default_rng(seed)
    for folder, count, levels in (("dark", 6, (0, 90)), ("bright", 6, (160, 255)), ("unlabeled", 24, (0, 255))):
        (root / folder).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(*levels, (size, size, 3), dtype=np.uint8)
            suffix = ".jpg" if i % 3 == 0 else ".png"
            Image.fromarray(pixels).save(root / folder / f"{i}{suffix}")
    (root / "unlabeled" / "notes.txt").write_text("not an image: ignored")
    return root


def test_image_folder_reads_classes_unlabeled_resize_and_grayscale(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images")
    data = ImageFolderSource(root, test_fraction=0.34, image_size=[6, 5], grayscale=True).load()
    assert data.class_names == ("bright", "dark") and data.input_shape == (1, 6, 5)
    assert len(data.test) == 4 and int((data.train.labels == -1).sum()) == 24
    assert 0.0 <= float(data.train.inputs.min()) and float(data.train.inputs.max()) <= 1.0


def test_user_csv_with_mostly_empty_labels_trains_end_to_end(tmp_path: Path) -> None:
    path = partially_labeled_csv(tmp_path / "t.csv", rows=120, labeled_every=10)
    metrics = run(tmp_path, ["data=table", f"data.source.path={path}", "data.source.label_column=species", *TINY_MLP])
    assert metrics["class_names"] == ["setosa", "virginica"]
    assert metrics["num_labeled"] + metrics["num_test"] == 24  # every labeled row is either labeled or test
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "completed"


def test_user_image_folder_trains_end_to_end(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images")
    metrics = run(tmp_path, ["data=image_folder", f"data.source.path={root}", *TINY_MLP])
    assert metrics["class_names"] == ["bright", "dark"] and metrics["num_test"] == 2
    assert torch.tensor(metrics["test_confusion"]).sum() == 2
