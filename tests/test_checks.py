"""Every value a user sets is checked before anything is built or written: one line naming the key, the value and
what is allowed (test_command_line.py runs a few of these through the real command)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssgan.build import CONFIG_DIR, compose
from ssgan.cli.checks import check_config
from ssgan.cli.train import train
from ssgan.errors import SSGANError
from tests.conftest import compose_config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=-1", "seed=-1 must be an integer in [0, 4294967295]"),
        ("seed=99999999999", "seed=99999999999 must be an integer in [0, 4294967295]"),
        ("seed=abc", "seed='abc' must be an integer"),
        ("data.split_seed=-2", "data.split_seed=-2 must be an integer"),
        ("model.optimizer.lr=-1", "model.optimizer.lr=-1 must be a number > 0"),
        ("model.optimizer.lr=0", "model.optimizer.lr=0 must be a number > 0"),
        ("model.optimizer.lr=abc", "model.optimizer.lr='abc' must be a number > 0"),
        ("model.optimizer.betas=[1.5,0.9]", "model.optimizer.betas=[1.5, 0.9] must be two numbers in [0, 1)"),
        ("model.init_examples=0", "model.init_examples=0 must be an integer >= 1"),
        ("model.discriminator.hidden_widths=[0]", "model.discriminator.hidden_widths=[0] must be a list of integers"),
        ("model.discriminator.input_noise=-1", "model.discriminator.input_noise=-1 must be a number >= 0"),
        ("gan.generator.noise_dim=0", "gan.generator.noise_dim=0 must be an integer >= 1"),
        ("gan.generator.hidden_widths=[-3]", "gan.generator.hidden_widths=[-3] must be a list of integers >= 1"),
        ("data=table", "data.source.path is required but not set"),
        ("data=image_folder", "data.source.path is required but not set"),
        ("trainer.max_epochs=-5", "trainer.max_epochs=-5 must be an integer >= -1 or null"),
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc' must be an integer"),
        ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0 must be an integer >= 1"),
        ("trainer.limit_train_batches=-1", "trainer.limit_train_batches=-1 must be null, an integer >= 0"),
        ("trainer.accelerator=tpu9", "trainer.accelerator='tpu9' must be one of auto, cpu"),
        ("trainer.devices=0", "trainer.devices=0 must be auto, -1 (all), a count >= 1"),
        ("trainer.precision=13", "trainer.precision=13 must be one of 64-true, 32-true"),
        ("callbacks.checkpoint.every_n_epochs=-1", "callbacks.checkpoint: Invalid value for every_n_epochs=-1"),
        ("callbacks.progress.max_lines=0", "callbacks.progress.max_lines=0 must be a positive integer"),
    ],
)
def test_a_bad_value_stops_before_anything_is_written(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(SSGANError) as raised:
        train(compose_config(tmp_path / "run", [override]))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_a_gpu_accelerator_without_a_gpu_names_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SSGANError, match="trainer.accelerator=gpu but this machine has no usable CUDA GPU"):
        check_config(compose_config(Path("unused"), ["trainer.accelerator=gpu"]))


@pytest.mark.parametrize("experiment", sorted(path.stem for path in (Path(CONFIG_DIR) / "experiment").glob("*.yaml")))
@pytest.mark.parametrize("model", ["ssgan", "supervised"])
def test_the_shipped_configs_pass_the_checks(experiment: str, model: str) -> None:
    check_config(compose([f"experiment={experiment}", f"model={model}"], output_dir="unused"))


@pytest.mark.parametrize(
    ("overrides", "num_labeled"),
    [([], 50), (["data.labeled_fraction=0.1"], None), (["data.num_labeled=20"], 20),
     (["data=mnist", "data.labeled_fraction=0.5"], None)],
)
def test_a_labeled_fraction_replaces_the_data_configs_default_count(overrides: list[str], num_labeled) -> None:
    assert compose_config(Path("unused"), overrides).data.num_labeled == num_labeled
