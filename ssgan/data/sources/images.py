"""A user's image folder: one sub-folder per class of labeled images, plus ``unlabeled/`` (PNG/JPEG via Pillow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ssgan.data.sources.pixels import check_pixel_range, scale_pixels
from ssgan.data.sources.userdata import assemble, check_test_choice, encode_labels
from ssgan.data.sources.base import ArrayDataset, SourceData
from ssgan.errors import SSGANError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_files(folder: Path) -> list[Path]:
    """The PNG/JPEG files directly in ``folder``, sorted (other files are ignored)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def parse_size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``image_size`` as (height, width): an int means a square."""
    if image_size is None:
        return None
    size = (int(image_size), int(image_size)) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise SSGANError(f"data.source.image_size={image_size} must be a positive int or [height, width]")
    return size  # type: ignore[return-value]


class ImageFolderSource:
    """``path/<class>/*.png`` are labeled, ``path/unlabeled/*.png`` are not; the class names are folder names.

    All images must share one size unless ``image_size`` resizes them; ``grayscale`` gives 1 channel, else 3.
    The test set is ``test_path`` (same class folders) or a seeded ``test_fraction`` of the labeled images.
    """

    def __init__(
        self,
        path: str | Path,
        test_path: str | Path | None = None,
        test_fraction: float | None = 0.2,
        image_size: int | Sequence[int] | None = None,
        grayscale: bool = False,
        unlabeled_folder: str = "unlabeled",
        pixel_range: str = "unit",
        split_seed: int = 0,
    ) -> None:
        check_test_choice(test_path, test_fraction)
        self.path = Path(path).expanduser()
        self.test_path = Path(test_path).expanduser() if test_path is not None else None
        self.test_fraction = test_fraction
        self.image_size = parse_size(image_size)
        self.grayscale = grayscale
        self.unlabeled_folder = unlabeled_folder
        self.pixel_range = check_pixel_range(pixel_range)
        self.split_seed = split_seed

    def class_folders(self, root: Path) -> dict[str, list[Path]]:
        """Class name -> its image files; a missing root or an empty class folder is an error."""
        if not root.is_dir():
            raise SSGANError(f"{root}: no such folder; expected one sub-folder per class (+ {self.unlabeled_folder}/)")
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        classes = {p.name: image_files(p) for p in folders if p.name != self.unlabeled_folder}
        if not classes:
            raise SSGANError(f"{root}: has no class sub-folders; expected e.g. {root}/cat/*.png, {root}/dog/*.png")
        for name, files in classes.items():
            if not files:
                raise SSGANError(f"{root / name}: class folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        return classes

    def read_images(self, files: list[Path]) -> np.ndarray:
        """Decode every file to uint8 (N, C, H, W); unreadable files and mixed sizes name the file."""
        from PIL import Image, UnidentifiedImageError

        mode = "L" if self.grayscale else "RGB"
        arrays, first = [], None
        for file in files:
            try:
                with Image.open(file) as image:
                    image = image.convert(mode)
                    if self.image_size is not None:
                        height, width = self.image_size
                        image = image.resize((width, height), Image.Resampling.BILINEAR)
                    pixels = np.asarray(image, dtype=np.uint8)
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError, IndexError) as error:
                raise SSGANError(f"{file}: cannot be read as an image ({error})") from None
            if first is None:
                first = (file, pixels.shape)
            elif pixels.shape != first[1]:
                raise SSGANError(
                    f"{file}: is {pixels.shape[1]}x{pixels.shape[0]} but {first[0]} is {first[1][1]}x{first[1][0]}; "
                    "set data.source.image_size to resize every image"
                )
            arrays.append(pixels)
        stacked = np.stack(arrays)
        return stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2)

    def read_folder(self, root: Path, classes: list[str], with_unlabeled: bool) -> ArrayDataset:
        """Images of ``root`` with ids into ``classes`` (-1 for the unlabeled folder)."""
        folders = self.class_folders(root)
        files = [file for name in folders for file in folders[name]]
        keys = [name for name in folders for _ in folders[name]]
        unlabeled = root / self.unlabeled_folder
        if with_unlabeled and unlabeled.is_dir():
            extra = image_files(unlabeled)
            files += extra
            keys += [""] * len(extra)
        key_array = np.asarray(keys, dtype=object)
        labels = encode_labels(key_array, classes, lambda row: str(files[row]), "class folder")
        return ArrayDataset(scale_pixels(self.read_images(files), self.pixel_range), labels)

    def load(self) -> SourceData:
        classes = sorted(self.class_folders(self.path))
        train = self.read_folder(self.path, classes, with_unlabeled=True)
        test = self.read_folder(self.test_path, classes, with_unlabeled=False) if self.test_path else None
        if test is not None and test.inputs.shape[1:] != train.inputs.shape[1:]:
            raise SSGANError(
                f"{self.test_path}: images are {tuple(test.inputs.shape[1:])} but the training images are "
                f"{tuple(train.inputs.shape[1:])}; set data.source.image_size"
            )
        return assemble(train.inputs, train.labels, classes, test, self.test_fraction, self.split_seed)
