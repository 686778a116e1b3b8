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
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ssgan.errors import SSGANError



def load_module(checkpoint_path: str | Path) -> Any:
    """Rebuild the SSGAN or SupervisedBaseline a run saved, in eval mode on the CPU.

    The hyperparameters hold the network factories (``functools.partial`` of classes), so the checkpoint
    is unpickled in full: load only checkpoints you trust, as with any pickle.
    """
    from ssgan.models.base import ClassifierModule

    path = Path(checkpoint_path)
    if not path.is_file():
        raise SSGANError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated or foreign file: say which and why, in one line
        raise SSGANError(f"checkpoint {path} cannot be read ({type(error).__name__}: {error})") from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "hyper_parameters"} <= checkpoint.keys():
        raise SSGANError(f"{path} is not an ssgan checkpoint (no state_dict / hyper_parameters)")
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
    return module.eval()


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
        with np.load(path, allow_pickle=False) as saved:
            if "x" not in saved:
                raise SSGANError(f"{path} has arrays {sorted(saved.files)}; expected one named 'x' (and optional 'y')")
            return saved["x"], saved["y"] if "y" in saved else None
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


def predict_ensemble(modules: list[Any], inputs: Tensor, batch_size: int = 1000) -> Tensor:
    """Mean of the runs' class probabilities: independent runs err differently, so the mean errs less."""
    return torch.stack([predict_probabilities(module, inputs, batch_size) for module in modules]).mean(dim=0)


def write_predictions(
    path: str | Path, probabilities: Tensor, class_names: tuple[str, ...], labels: np.ndarray | None = None
) -> None:
    """CSV: ``[label,] prediction, p_<class>...`` with one row per example; labels as class names."""
    predictions = probabilities.argmax(dim=1).tolist()
    header = (["label"] if labels is not None else []) + ["prediction"] + [f"p_{name}" for name in class_names]
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for index, row in enumerate(probabilities.tolist()):
            prefix = [class_names[int(labels[index])] if labels[index] >= 0 else ""] if labels is not None else []
            writer.writerow(prefix + [class_names[predictions[index]]] + [f"{p:.6g}" for p in row])


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
    """Predict and write the CSV; return the accuracy when the inputs carry labels."""
    modules = [load_module(path) for path in arguments.checkpoints]
    check_ensemble(modules, arguments.checkpoints)
    module = modules[0]
    if arguments.data is not None:
        raw, labels = read_source(arguments.data, arguments.split, arguments.data_root)
        where = f"--data {arguments.data}"
    else:
        raw, labels = read_inputs(arguments.input)
        where = str(arguments.input)
    inputs = conform_inputs(raw, module.raw_input_shape, where)
    probabilities = predict_ensemble(modules, inputs, arguments.batch_size)
    write_predictions(arguments.output, probabilities, module.class_names, labels)
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
