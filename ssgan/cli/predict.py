"""``ssgan-predict``: a run's checkpoint + inputs -> CSV of predicted class and per-class probabilities.

    ssgan-predict outputs/.../checkpoints/last.ckpt inputs.npz -o predictions.csv    # .npz with an ``x`` array
    ssgan-predict last.ckpt features.csv                                            # one example per row
    ssgan-predict last.ckpt --data digits --split test                              # a data config's source
    ssgan-predict last.ckpt --data fashion_mnist --data-root /usr/share/datasets/fashion-mnist   # its files' folder
    ssgan-predict run1/last.ckpt run2/last.ckpt inputs.npz                          # mean of two runs' probabilities
"""

from __future__ import annotations

import argparse
import csv
import importlib
import inspect
import io
import math
import os
import sys
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ssgan.callbacks.checkpointing import read_checkpoint, write_atomically
from ssgan.data.sources.base import InputScaling
from ssgan.errors import SSGANError


class Predictor(NamedTuple):
    """A run's classifier and the scaling its source applied to raw inputs in training (None: inputs as stored)."""

    module: Any
    input_scaling: InputScaling | None


def load_predictor(checkpoint_path: str | Path) -> Predictor:
    """Rebuild the classifier a run saved (eval mode, CPU) with its training-time input scaling.

    The hyperparameters hold the network factories (``functools.partial`` of classes), so the checkpoint
    is unpickled in full: load only checkpoints you trust, as with any pickle.
    """
    from ssgan.data.datamodule import SemiSupervisedDataModule
    from ssgan.models.base import ClassifierModule

    path = Path(checkpoint_path)
    if not path.is_file():
        raise SSGANError(f"checkpoint {path} does not exist")
    checkpoint = read_checkpoint(path)
    hyper_parameters = dict(checkpoint["hyper_parameters"])
    name = checkpoint.get("ssgan", {}).get("module_class")
    if not name:
        raise SSGANError(f"{path} names no module class; it was not written by ssgan-train")
    module_name, _, class_name = name.rpartition(".")
    module_class = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(module_class, type) and issubclass(module_class, ClassifierModule)):
        raise SSGANError(f"{path} names module class {name}, which is not an ssgan classifier")
    unknown = unknown_arguments(module_class, hyper_parameters)
    if unknown:
        raise SSGANError(
            f"checkpoint {path} was saved with hyperparameters {', '.join(unknown)} that this version's "
            f"{class_name} does not take; load it with the ssgan version that wrote it"
        )
    module = module_class(**hyper_parameters)
    module.load_state_dict(checkpoint["state_dict"])
    data_state = checkpoint.get(SemiSupervisedDataModule.__qualname__) or {}
    return Predictor(module.eval(), InputScaling.from_state(data_state.get("input_scaling")))


def load_module(checkpoint_path: str | Path) -> Any:
    """The classifier a run saved, in eval mode on the CPU (see :func:`load_predictor`)."""
    return load_predictor(checkpoint_path).module


def unknown_arguments(module_class: type, hyper_parameters: dict[str, Any]) -> list[str]:
    """Saved hyperparameter names the class's constructor does not accept (a checkpoint from another version)."""
    parameters = inspect.signature(module_class.__init__).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return []
    accepted = {p.name for p in parameters}
    return sorted(name for name in hyper_parameters if name not in accepted)


def conform_inputs(inputs: np.ndarray, input_shape: tuple[int, ...], where: str) -> Tensor:
    """(N, *input_shape) float32, accepting flat rows of the right length; otherwise name expected vs found."""
    expected_features = math.prod(input_shape)
    found = tuple(inputs.shape[1:])
    if inputs.ndim < 2 or (found != input_shape and (len(found) != 1 or found[0] != expected_features)):
        raise SSGANError(
            f"{where}: examples have shape {found} ({math.prod(found) if found else 0} features); the checkpoint "
            f"expects shape {input_shape} ({expected_features} features per example)"
        )
    if not np.issubdtype(inputs.dtype, np.number):
        raise SSGANError(f"{where}: expected numbers, found dtype {inputs.dtype}")
    array = np.asarray(inputs, dtype=np.float32)
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array.reshape(len(array), -1)))[0, 0])
        raise SSGANError(f"{where}: row {row} holds NaN or inf; expected finite numbers")
    return torch.from_numpy(array.copy()).reshape(len(array), *input_shape)


def read_csv_features(path: Path) -> np.ndarray:
    """Numeric rows of a CSV file; a first row that is not numeric is taken as a header."""
    with path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if rows:
        try:
            [float(value) for value in rows[0]]
        except ValueError:
            rows = rows[1:]
    if not rows:
        raise SSGANError(f"{path} holds no data rows")
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise SSGANError(f"{path}: rows have different numbers of columns {sorted(widths)}")
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError as error:
        raise SSGANError(f"{path}: non-numeric value ({error})") from None


def read_inputs(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs, labels or None) from an ``.npz`` (arrays ``x`` and optional ``y``) or a ``.csv`` of features."""
    path = Path(path)
    if not path.is_file():
        raise SSGANError(f"input {path} does not exist")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as saved:
                if "x" not in saved:
                    raise SSGANError(f"{path} has arrays {sorted(saved.files)}; expected one named 'x' (and optional 'y')")
                return saved["x"], saved["y"] if "y" in saved else None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            if isinstance(error, SSGANError):
                raise
            raise SSGANError(f"{path}: cannot be read as .npz of numbers ({error})") from None
    if path.suffix == ".csv":
        return read_csv_features(path), None
    raise SSGANError(f"input {path}: expected a .npz (array 'x') or a .csv of features")


def read_source(data: str, split: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and labels of a data config's source (``digits`` or a path to a data .yaml), train or test part.

    ``root`` replaces the config's ``root`` (the folder of a file-based dataset such as Fashion-MNIST).
    """
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    from ssgan.build import CONFIG_DIR, compose, instantiate_config

    if data.endswith((".yaml", ".yml")):
        path = Path(data)
        if not path.is_file():
            raise SSGANError(f"--data {data}: no data config at {path}")
        cfg = compose()
        with open_dict(cfg):
            cfg.data = OmegaConf.load(path)
    else:
        names = sorted(p.stem for p in (Path(CONFIG_DIR) / "data").glob("*.yaml"))
        if data not in names:
            raise SSGANError(f"--data {data}: no data config of that name; expected one of {names} or a .yaml path")
        cfg = compose([f"data={data}"])
    if "source" not in cfg.data:
        raise SSGANError(f"--data {data}: the config has no 'source' entry")
    if root is not None:
        if "root" not in cfg.data:
            raise SSGANError(f"--data-root: the data config {data} reads no 'root' folder")
        cfg.data.root = root
    try:
        loaded = instantiate_config(cfg.data.source).load()
    except OmegaConfBaseException as error:
        raise SSGANError(
            f"--data {data}: its source refers to a value only a training run sets ({error.msg}); save the "
            "inputs as an .npz file (array 'x', optional 'y') and give that instead"
        ) from None
    part = loaded.test if split == "test" else loaded.train
    return part.inputs.numpy(), part.labels.numpy()


def class_ids(labels: np.ndarray, class_names: tuple[str, ...], num_inputs: int, where: str) -> np.ndarray:
    """``y`` as int64 class ids (-1: unlabeled): whole numbers in [0, K), or the checkpoint's class names."""
    if labels.shape != (num_inputs,):
        raise SSGANError(f"{where}: y has shape {labels.shape}; expected ({num_inputs},), one label per example")
    if labels.dtype.kind in "iuf":
        return numeric_class_ids(labels, len(class_names), where)
    if labels.dtype.kind in "US":
        return named_class_ids(labels.astype(str), class_names, where)
    raise SSGANError(f"{where}: y has dtype {labels.dtype}; expected class ids (whole numbers) or class names")


def numeric_class_ids(labels: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    valid = np.isfinite(labels) & (labels == np.round(labels)) & (labels >= -1) & (labels < num_classes)
    if not valid.all():
        row = int(np.flatnonzero(~valid)[0])
        raise SSGANError(
            f"{where}: y[{row}]={labels[row].item()!r} is not a class of the checkpoint; expected whole numbers in "
            f"[0, {num_classes}), or -1 for unlabeled"
        )
    return labels.astype(np.int64)


def named_class_ids(labels: np.ndarray, class_names: tuple[str, ...], where: str) -> np.ndarray:
    lookup = {name: index for index, name in enumerate(class_names)} | {"": -1, "-1": -1}
    ids = np.array([lookup.get(label.strip(), -2) for label in labels], dtype=np.int64)
    unknown = np.flatnonzero(ids == -2)
    if unknown.size:
        row = int(unknown[0])
        raise SSGANError(
            f"{where}: y[{row}]={str(labels[row])!r} is not one of the checkpoint's classes {list(class_names)} "
            "(empty or -1: unlabeled)"
        )
    return ids


def check_output(path: str | Path) -> Path:
    """The output must be a file name in an existing, writable folder: checked before any work is done."""
    output = Path(path)
    folder = output.parent
    if output.is_dir():
        raise SSGANError(f"-o {output}: is a folder; expected a file name such as {output / 'predictions.csv'}")
    if not folder.is_dir():
        raise SSGANError(f"-o {output}: the folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK):
        raise SSGANError(f"-o {output}: the folder {folder} is not writable")
    return output


@torch.no_grad()
def predict_probabilities(module: Any, inputs: Tensor, batch_size: int = 1000) -> Tensor:
    """(N, K) class probabilities of the evaluation network for raw examples, in batches."""
    module.eval()
    with torch.no_grad():
        chunks = [module.predict_proba(module.encode(chunk)) for chunk in inputs.split(batch_size)]
    return torch.cat(chunks) if len(inputs) else (
        torch.empty(0, module.num_classes)
    )


def check_ensemble(modules: list[Any], paths: list[str]) -> None:
    """Runs averaged together must predict the same classes, in the same order, from the same raw inputs."""
    first, first_path = modules[0], paths[0]
    for module, path in zip(modules[1:], paths[1:]):
        if module.class_names != first.class_names:
            raise SSGANError(
                f"checkpoint {path} has classes {list(module.class_names)}, but {first_path} has "
                f"{list(first.class_names)}: an ensemble needs the same classes in the same order"
            )
        if module.raw_input_shape != first.raw_input_shape:
            raise SSGANError(
                f"checkpoint {path} takes inputs of shape {module.raw_input_shape}, but {first_path} takes "
                f"{first.raw_input_shape}: an ensemble needs runs on the same kind of data"
            )


def predict_ensemble(
    predictors: list[Predictor], inputs: Tensor, batch_size: int = 1000, raw: bool = True
) -> Tensor:
    """Mean of the runs' class probabilities: independent runs err differently, so the mean errs less.

    ``raw`` inputs (from a file) go through each run's training-time scaling first; a data config's source
    (``--data``) has already scaled its own.
    """
    probabilities = []
    for module, scaling in predictors:
        scaled = scaling(inputs) if raw and scaling is not None else inputs
        probabilities.append(predict_probabilities(module, scaled, batch_size))
    return torch.stack(probabilities).mean(dim=0)


def write_predictions(
    path: str | Path, probabilities: Tensor, class_names: tuple[str, ...], labels: np.ndarray | None = None
) -> None:
    """CSV: ``[label,] prediction, p_<class>...`` with one row per example; ``labels`` are class ids (-1: none)."""
    predictions = probabilities.argmax(dim=1).tolist()
    header = (["label"] if labels is not None else []) + ["prediction"] + [f"p_{name}" for name in class_names]
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    for index, row in enumerate(probabilities.tolist()):
        prefix = [class_names[int(labels[index])] if labels[index] >= 0 else ""] if labels is not None else []
        writer.writerow(prefix + [class_names[predictions[index]]] + [f"{p:.6g}" for p in row])
    write_atomically(path, text.getvalue())  # an existing file stays whole until the new one is complete


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ssgan-predict", description=__doc__.split("\n")[0])
    parser.add_argument(
        "paths", nargs="+", metavar="CHECKPOINT [CHECKPOINT ...] [INPUT]",
        help="one or more runs' .ckpt files (several: their class probabilities are averaged), then the input "
        "file unless --data is given: .npz (array 'x', optional 'y') or .csv of features",
    )
    parser.add_argument("--data", help="a data config name (e.g. digits) or .yaml path, instead of an input file")
    parser.add_argument("--split", choices=("test", "train"), default="test", help="part of --data to predict")
    parser.add_argument("--data-root", help="folder of --data's files (its config's root), e.g. "
                        "/usr/share/datasets/fashion-mnist")
    parser.add_argument("-o", "--output", default="predictions.csv", help="CSV to write (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=1000)
    arguments = parser.parse_args(argv)
    if arguments.batch_size < 1:
        parser.error(f"--batch-size {arguments.batch_size}: expected an integer >= 1")
    if arguments.data is not None:
        inputs = [path for path in arguments.paths if Path(path).suffix in (".npz", ".csv")]
        if inputs:
            parser.error(f"give either an input file ({inputs[0]}) or --data, not both")
        arguments.checkpoints, arguments.input = arguments.paths, None
    elif arguments.data_root is not None:
        parser.error("--data-root goes with --data")
    elif len(arguments.paths) >= 2:
        arguments.checkpoints, arguments.input = arguments.paths[:-1], arguments.paths[-1]
    else:
        parser.error("give an input file after the checkpoint(s), or --data")
    return arguments


def run(arguments: argparse.Namespace) -> float | None:
    """Check the output path, load the runs, read and check the inputs, predict, write the CSV atomically;
    return the accuracy when the inputs carry labels."""
    output = check_output(arguments.output)
    predictors = [load_predictor(path) for path in arguments.checkpoints]
    modules = [predictor.module for predictor in predictors]
    check_ensemble(modules, arguments.checkpoints)
    module = modules[0]
    if arguments.data is not None:
        raw, labels = read_source(arguments.data, arguments.split, arguments.data_root)
        where = f"--data {arguments.data}"
    else:
        raw, labels = read_inputs(arguments.input)
        where = str(arguments.input)
    inputs = conform_inputs(raw, module.raw_input_shape, where)
    if labels is not None:
        labels = class_ids(labels, module.class_names, len(inputs), where)
    probabilities = predict_ensemble(predictors, inputs, arguments.batch_size, raw=arguments.data is None)
    write_predictions(output, probabilities, module.class_names, labels)
    if labels is None:
        return None
    labeled = labels >= 0
    correct = probabilities.argmax(dim=1).numpy()[labeled] == labels[labeled]
    return float(correct.mean()) if labeled.any() else None


def main(argv: list[str] | None = None) -> None:
    """Console entry ``ssgan-predict``: a user error is one line on stderr and exit status 2."""
    arguments = parse_arguments(argv)
    try:
        accuracy = run(arguments)
    except SSGANError as error:
        print(f"ssgan-predict: error: {error}", file=sys.stderr)
        sys.exit(2)
    summary = f"; accuracy {accuracy:.4f}" if accuracy is not None else ""
    print(f"wrote {arguments.output}{summary}", file=sys.stderr)


if __name__ == "__main__":
    main()
