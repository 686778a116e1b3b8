"""The catalogue of bad inputs: each is one SSGANError whose message names the file and the row or field."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from format_writers import cifar_batch, cifar_files, write_cifar_folder, write_idx, write_mnist, write_svhn_mat
from ssgan.data import SemiSupervisedDataModule
from ssgan.data.sources import CIFAR10Source, ImageFolderSource, MNISTSource, NpzSource, SVHNSource, TableSource
from ssgan.errors import SSGANError

REPO = Path(__file__).resolve().parent.parent


def error_of(source: object) -> str:
    with pytest.raises(SSGANError) as error:
        source.load()  # type: ignore[attr-defined]
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# ------------------------------------------------------------------------------------------------ official files
def test_idx_wrong_magic(tmp_path: Path) -> None:
    paths = write_mnist(tmp_path, compress=False)
    raw = bytearray(paths["train_labels"].read_bytes())
    raw[2:4] = b"\x08\x03"[::-1]  # 0x00000308: type and dimension bytes swapped
    paths["train_labels"].write_bytes(bytes(raw))
    message = error_of(MNISTSource(tmp_path))
    assert "train-labels-idx1-ubyte" in message and "magic number 0x00000308" in message


def test_idx_truncated_gz(tmp_path: Path) -> None:
    paths = write_mnist(tmp_path, compress=True)
    raw = paths["train_images"].read_bytes()
    paths["train_images"].write_bytes(raw[: len(raw) // 2])
    message = error_of(MNISTSource(tmp_path))
    assert "train-images-idx3-ubyte.gz: cannot be read" in message


def test_idx_data_shorter_than_header(tmp_path: Path) -> None:
    paths = write_mnist(tmp_path, compress=False)
    paths["test_images"].write_bytes(paths["test_images"].read_bytes()[:-100])
    message = error_of(MNISTSource(tmp_path))
    assert "t10k-images-idx3-ubyte" in message and "header (20, 28, 28) promises 15680" in message


def test_idx_image_and_label_counts_differ(tmp_path: Path) -> None:
    write_mnist(tmp_path, train=30, compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", (np.arange(29) % 10).astype(np.uint8), compress=True)
    message = error_of(MNISTSource(tmp_path))
    assert "train-images-idx3-ubyte.gz holds 30 images but train-labels-idx1-ubyte.gz holds 29 labels" in message


def test_idx_label_outside_classes(tmp_path: Path) -> None:
    write_mnist(tmp_path, compress=True)
    labels = (np.arange(20) % 10).astype(np.uint8)
    labels[7] = 12
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, compress=True)
    message = error_of(MNISTSource(tmp_path))
    assert "t10k-labels-idx1-ubyte.gz: label 12 at row 7 is outside [0, 10)" in message


def test_cifar_batch_missing_key(tmp_path: Path) -> None:
    files = cifar_files()
    batch = cifar_batch(10)
    del batch[b"labels"]
    files["data_batch_2"] = pickle.dumps(batch, protocol=2)
    write_cifar_folder(tmp_path, files)
    message = error_of(CIFAR10Source(tmp_path))
    assert "data_batch_2: key b'labels' missing" in message and "b'data'" in message


def test_cifar_label_outside_classes(tmp_path: Path) -> None:
    files = cifar_files()
    batch = cifar_batch(10)
    batch[b"labels"][4] = 10
    files["test_batch"] = pickle.dumps(batch, protocol=2)
    write_cifar_folder(tmp_path, files)
    assert "test_batch: label 10 at row 4 is outside [0, 10)" in error_of(CIFAR10Source(tmp_path))


def test_mat_without_x(tmp_path: Path) -> None:
    from scipy.io import savemat

    savemat(tmp_path / "train_32x32.mat", {"images": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((2, 1))})
    write_svhn_mat(tmp_path / "test_32x32.mat", 4)
    message = error_of(SVHNSource(tmp_path))
    assert "train_32x32.mat: has no variable 'X'" in message


def test_mat_that_is_not_a_mat(tmp_path: Path) -> None:
    (tmp_path / "train_32x32.mat").write_bytes(b"<html>404 not found</html>")
    write_svhn_mat(tmp_path / "test_32x32.mat", 4)
    assert "train_32x32.mat: cannot be read as a MATLAB .mat file" in error_of(SVHNSource(tmp_path))


# ------------------------------------------------------------------------------------------------ image folders
def write_png(path: Path, size: tuple[int, int] = (8, 8), value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)


def test_image_folder_empty_class(tmp_path: Path) -> None:
    write_png(tmp_path / "cat" / "a.png")
    (tmp_path / "dog").mkdir()
    message = error_of(ImageFolderSource(tmp_path))
    assert f"{tmp_path / 'dog'}: class folder has no images" in message


def test_image_folder_unreadable_image(tmp_path: Path) -> None:
    write_png(tmp_path / "cat" / "a.png")
    write_png(tmp_path / "dog" / "b.png")
    (tmp_path / "unlabeled").mkdir()
    (tmp_path / "unlabeled" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    message = error_of(ImageFolderSource(tmp_path))
    assert "unlabeled/broken.png: cannot be read as an image" in message


def test_image_folder_mixed_sizes_without_resize(tmp_path: Path) -> None:
    write_png(tmp_path / "cat" / "a.png", (8, 8))
    write_png(tmp_path / "dog" / "b.png", (10, 6))
    message = error_of(ImageFolderSource(tmp_path))
    assert "dog/b.png: is 10x6" in message and "cat/a.png is 8x8" in message and "image_size" in message


# ------------------------------------------------------------------------------------------------ tables and arrays
def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_non_numeric_feature(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "x1,x2,label\n1,2,a\n3,abc,b\n5,6,\n")
    assert f"{path}: line 3, column 'x2': value 'abc' is not a number" in error_of(TableSource(path))


def test_csv_empty_feature(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "x1,x2,label\n1,2,a\n3,4,b\n,6,\n")
    assert f"{path}: line 4, column 'x1': value empty is not a number" in error_of(TableSource(path))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_csv_non_finite_feature(tmp_path: Path, value: str) -> None:
    path = write_csv(tmp_path / "t.csv", f"x1,x2,label\n1,2,a\n3,4,b\n5,{value},\n")
    message = error_of(TableSource(path))
    assert f"{path}: line 4, column 'x2': value" in message and "is not finite" in message


def test_npz_non_finite_feature(tmp_path: Path) -> None:
    x = np.zeros((6, 3), np.float32)
    x[4, 2] = np.inf
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 0, 1, -1, -1]))
    assert "d.npz: x row 4, feature 2 is inf" in error_of(NpzSource(tmp_path / "d.npz"))


def test_csv_float_label(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "x,label\n1,0\n2,1\n3,2.5\n4,\n")
    assert f"{path}: line 4, column 'label': label '2.5' is not a class" in error_of(TableSource(path))


def test_csv_ragged_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "x1,x2,label\n1,2,0\n3,1\n")
    assert f"{path}: line 3 has 2 fields but the header has 3" in error_of(TableSource(path))


def test_csv_without_label_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "x1,x2,target\n1,2,0\n")
    assert "has no label column 'label' (columns: x1, x2, target)" in error_of(TableSource(path))


def test_npz_missing_array(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", features=np.zeros((3, 2)), y=np.zeros(3))
    assert "d.npz: has no array 'x' (arrays: features, y)" in error_of(NpzSource(tmp_path / "d.npz"))


def test_budget_needs_more_labels_than_a_class_has(tmp_path: Path) -> None:
    rows = "".join(f"{i},{'a' if i < 12 else 'b' if i < 14 else ''}\n" for i in range(40))
    path = write_csv(tmp_path / "t.csv", "x,label\n" + rows)
    source = TableSource(path, test_path=None, test_fraction=0.25)
    datamodule = SemiSupervisedDataModule(source, num_labeled=8, batch_size=4)
    with pytest.raises(SSGANError, match="data.num_labeled=8 needs 4 labeled examples of class 'b' but the training pool has only 2"):
        datamodule.setup("fit")


# ------------------------------------------------------------------------------------------------ end to end
def test_entry_point_writes_only_error_txt(tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", "x1,x2,label\n1,2,a\n3,oops,b\n")
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "ssgan.cli.train", "data=table", f"data.source.path={bad}", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("ssgan-train: error:")]
    assert error_lines == [f"ssgan-train: error: {bad}: line 3, column 'x2': value 'oops' is not a number"]
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["error.txt"]
    assert "line 3, column 'x2'" in (run_dir / "error.txt").read_text()
