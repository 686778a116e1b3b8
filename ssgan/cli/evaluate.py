"""``ssgan-evaluate``: a run's G -> Inception score and FID of its samples, added to RUN_DIR/evaluation.json.

    ssgan-evaluate outputs/2025-01-01/12-00-00                         # 10000 samples, the classifier judge
    ssgan-evaluate RUN --samples 2000 --seed 1 --checkpoint best.ckpt
    ssgan-evaluate RUN --judge inception --inception-weights ~/weights/weights-inception-2015-12-05-6726825d.pth
    ssgan-evaluate RUN --data-root ~/data/fashion-mnist                  # where the run's data files are now

The judge is a network independent of the run (never the SSGAN's own D, whose features G was trained to
match): by default a small classifier trained once on every training label of the run's data and cached;
FID compares the samples with the run's test images (docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from ssgan.errors import SSGANError
from ssgan.evaluation.judge import JudgeSpec, check_images
from ssgan.evaluation.records import (COMMAND_SOURCE, EVALUATION_FILE, append_entry, evaluation_entry, read_entries,
                                     same_evaluation)

JUDGE_CACHE_FOLDER = "judges"  # under paths.cache_dir, beside the input encoders' cache


def judge_names() -> list[str]:
    """The judges ``conf/judge/`` defines (classifier, inception)."""
    from ssgan.build import CONFIG_DIR

    return sorted(path.stem for path in (Path(CONFIG_DIR) / "judge").glob("*.yaml"))


def judge_spec(name: str, inception_weights: str | None = None) -> JudgeSpec:
    """The judge's settings from ``conf/judge/<name>.yaml``, checked (a missing weights file fails here)."""
    from ssgan.build import CONFIG_DIR, instantiate_config

    names = judge_names()
    if name not in names:
        raise SSGANError(f"--judge {name}: no judge of that name; expected one of {names}")
    config = OmegaConf.load(Path(CONFIG_DIR) / "judge" / f"{name}.yaml")
    if inception_weights is not None:
        if "weights" not in config:
            raise SSGANError(f"--inception-weights goes with --judge inception, not --judge {name}")
        config.weights = inception_weights
    return instantiate_config(config)


def read_run_config(run_dir: Path) -> DictConfig:
    """The run's resolved config.yaml, refused when its model has no generator or G makes codes, not images."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise SSGANError(f"{path} does not exist; RUN_DIR must be a run directory of ssgan-train")
    try:
        cfg = OmegaConf.load(path)
    except (OSError, OmegaConfBaseException, ValueError) as error:
        raise SSGANError(f"{path} cannot be read ({error})") from None
    if not isinstance(cfg, DictConfig) or "data" not in cfg or "model" not in cfg:
        raise SSGANError(f"{path} holds no data and model settings; it was not written by ssgan-train")
    if cfg.model.get("generator") is None:
        target = cfg.model.get("_target_", "?")
        raise SSGANError(f"{run_dir} is a run of {target}, which has no generator G to judge; ssgan-evaluate "
                         "needs an SSGAN run (model=ssgan)")
    if cfg.data.get("encoder") is not None:
        raise SSGANError(
            f"{run_dir} trained on data.encoder codes: its G makes patch codes, not images, and codes cannot be "
            "turned back into images (the encoder pools and projects them away), so no image judge can score them"
        )
    return cfg


def checkpoint_path(run_dir: Path, name: str) -> Path:
    """``--checkpoint``: a file name in RUN_DIR/checkpoints, or a path."""
    path = Path(name) if Path(name).parent != Path(".") else run_dir / "checkpoints" / name
    if not path.is_file():
        raise SSGANError(f"no checkpoint {path}; --checkpoint takes a file name in {run_dir / 'checkpoints'} "
                         "(last.ckpt, best.ckpt) or a path to a .ckpt")
    return path


def evaluation_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise SSGANError(f"--device {name!r} is not a device; expected cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SSGANError(f"--device {name}: torch sees no CUDA GPU here; use --device cpu")
    return device


def run_datamodule(cfg: DictConfig, data_root: str | None) -> Any:
    """The run's data module through :func:`ssgan.build.build_datamodule` (the one builder)."""
    from ssgan.build import build_datamodule

    if data_root is not None:
        if "root" not in cfg.data:
            raise SSGANError("--data-root: the run's data config reads no 'root' folder")
        with open_dict(cfg):
            cfg.data.root = data_root
            if "root" in cfg.data.source:  # config.yaml is resolved: the source holds its own copy
                cfg.data.source.root = data_root
    return build_datamodule(cfg)


def default_cache_dir() -> str:
    """``paths.cache_dir`` as this environment resolves it (SSGAN_CACHE_DIR, else ~/.cache/ssgan), + judges."""
    from ssgan.build import compose

    return str(Path(compose().paths.cache_dir).expanduser() / JUDGE_CACHE_FOLDER)


def check_arguments(arguments: argparse.Namespace) -> None:
    if arguments.samples < 2:
        raise SSGANError(f"--samples={arguments.samples}: the Inception score and FID need an integer >= 2")
    if not 1 <= arguments.splits <= arguments.samples:
        raise SSGANError(f"--splits={arguments.splits} must be between 1 and --samples ({arguments.samples})")
    if arguments.batch_size < 1:
        raise SSGANError(f"--batch-size={arguments.batch_size} must be an integer >= 1")


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    """Check everything, then build the judge, sample G, score and add the entry to evaluation.json."""
    from ssgan.callbacks.checkpointing import read_checkpoint
    from ssgan.cli.predict import load_module
    from ssgan.cli.run_directory import resumed_epoch
    from ssgan.evaluation.scores import sample_quality

    check_arguments(arguments)
    run_dir = Path(arguments.run_dir)
    if not run_dir.is_dir():
        raise SSGANError(f"RUN_DIR {run_dir} does not exist or is not a directory; expected a run directory "
                         "of ssgan-train (config.yaml, checkpoints/)")
    cfg = read_run_config(run_dir)
    checkpoint = checkpoint_path(run_dir, arguments.checkpoint)
    output = run_dir / EVALUATION_FILE
    read_entries(output)  # an unreadable file is refused now, not after the work
    device = evaluation_device(arguments.device)
    spec = judge_spec(arguments.judge, arguments.inception_weights)

    datamodule = run_datamodule(cfg, arguments.data_root)
    data = datamodule.data
    check_images(data.input_shape, f"{run_dir}'s data")
    module = load_module(checkpoint)
    if not hasattr(module, "sample"):
        raise SSGANError(f"{checkpoint} holds a {type(module).__name__}, which has no generator G to judge")
    if tuple(module.input_shape) != tuple(data.input_shape):
        raise SSGANError(f"{checkpoint} generates examples of shape {tuple(module.input_shape)}, but the run's "
                         f"data has shape {tuple(data.input_shape)}")
    position = read_checkpoint(checkpoint)
    cache_dir = arguments.cache_dir if arguments.cache_dir is not None else default_cache_dir()
    judge = spec.prepare(data, cache_dir, device)

    samples = module.to(device).sample(arguments.samples, arguments.seed)
    scores = sample_quality(judge, samples, data.test.inputs, arguments.splits, arguments.seed, arguments.batch_size)
    inside = checkpoint.resolve().is_relative_to(run_dir.resolve())
    name = str(checkpoint.resolve().relative_to(run_dir.resolve())) if inside else str(checkpoint)
    entry = evaluation_entry(COMMAND_SOURCE, judge, scores, arguments.seed, resumed_epoch(position),
                             int(position.get("global_step", 0)), checkpoint=name)
    append_entry(output, entry, replaces=same_evaluation(entry))
    return entry


def summary(entry: dict[str, Any]) -> str:
    """One line: the scores, and the judge and counts they depend on."""
    spread = entry["inception_score_std"]
    score = f"{entry['inception_score_mean']:.3f}" + (f" ± {spread:.3f}" if spread is not None else "")
    accuracy = entry["judge"].get("test_accuracy")
    judged = f"{entry['judge']['name']} judge" + (f", test accuracy {accuracy:.4f}" if accuracy is not None else "")
    return (f"Inception score {score}, FID {entry['fid']:.3f} ({judged}; {entry['num_samples']} samples, seed "
            f"{entry['seed']}, {entry['num_real']} test images)")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ssgan-evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="an SSGAN run's directory (config.yaml, checkpoints/)")
    parser.add_argument("--samples", type=int, default=10000, help="samples of G to judge (default: %(default)s)")
    parser.add_argument("--judge", default="classifier", help="classifier (default) or inception (conf/judge/)")
    parser.add_argument("--inception-weights", metavar="PATH",
                        help="Inception-v3 weights file for --judge inception (torch-fidelity's "
                        "weights-inception-2015-12-05-6726825d.pth); never downloaded")
    parser.add_argument("--seed", type=int, default=0, help="seed of G's noise and of the score's splits")
    parser.add_argument("--splits", type=int, default=10, help="parts the Inception score averages over")
    parser.add_argument("--checkpoint", default="last.ckpt", help="file in RUN_DIR/checkpoints, or a path")
    parser.add_argument("--data-root", help="folder of the run's data files (its config's root), if moved")
    parser.add_argument("--cache-dir", help="judge cache folder (default: paths.cache_dir/judges)")
    parser.add_argument("--device", default="cpu", help="where G and the judge run (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=500, help="images per judge pass")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Console entry ``ssgan-evaluate``: a user error is one line on stderr and exit status 2; nothing is written."""
    from ssgan.runtime.quiet import quiet_third_party

    arguments = parse_arguments(argv)
    logging.basicConfig(format="%(message)s")  # the judge's training and cache use, on stderr
    logging.getLogger("ssgan").setLevel(logging.INFO)
    try:
        with quiet_third_party():
            entry = run(arguments)
    except SSGANError as error:
        print(f"ssgan-evaluate: error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {Path(arguments.run_dir) / EVALUATION_FILE}: {summary(entry)}", file=sys.stderr)


if __name__ == "__main__":
    main()
