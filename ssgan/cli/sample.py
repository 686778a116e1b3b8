"""``ssgan-sample``: a run's checkpoint -> PNG grid (and optionally ``.npz``) of samples from its generator.

    ssgan-sample outputs/.../checkpoints/last.ckpt -n 100 -o samples.png --npz samples.npz --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ssgan.errors import SSGANError
from ssgan.callbacks.sample_grid import is_image_shape, save_image_grid


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ssgan-sample", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="an SSGAN run's .ckpt file")
    parser.add_argument("-n", "--num-samples", type=int, default=100)
    parser.add_argument("-o", "--output", default="samples.png", help="PNG grid to write (default: %(default)s)")
    parser.add_argument("--npz", help="also write the raw samples as an .npz (array 'x')")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default: %(default)s)")
    return parser.parse_args(argv)


def run(arguments: argparse.Namespace) -> list[Path]:
    """Generate and write the files; return their paths."""
    from ssgan.cli.predict import load_module

    if arguments.num_samples < 1:
        raise SSGANError(f"--num-samples={arguments.num_samples} must be >= 1")
    module = load_module(arguments.checkpoint)
    if not hasattr(module, "sample"):
        raise SSGANError(f"{type(module).__name__} has no generator; sampling needs an SSGAN checkpoint")
    samples = module.sample(arguments.num_samples, arguments.seed)
    written = []
    if is_image_shape(tuple(module.input_shape)):
        written.append(save_image_grid(samples, arguments.output))
    elif arguments.npz is None:
        raise SSGANError(
            f"samples of shape {tuple(module.input_shape)} are not images; pass --npz to save them as an array"
        )
    if arguments.npz is not None:
        np.savez(arguments.npz, x=samples.cpu().numpy())
        written.append(Path(arguments.npz))
    return written


def main(argv: list[str] | None = None) -> None:
    """Console entry ``ssgan-sample``: a user error is one line on stderr and exit status 2."""
    arguments = parse_arguments(argv)
    try:
        written = run(arguments)
    except SSGANError as error:
        print(f"ssgan-sample: error: {error}", file=sys.stderr)
        sys.exit(2)
    print("wrote " + ", ".join(map(str, written)), file=sys.stderr)


if __name__ == "__main__":
    main()
