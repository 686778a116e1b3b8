"""The patch encoder: the encoding matches its definition, fitting is seeded, bad settings say why, and a run
trained on codes predicts raw images through its checkpoint."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from ssgan.data import SemiSupervisedDataModule
from ssgan.data.sources import DigitsSource
from ssgan.errors import SSGANError
from ssgan.data.encoders.patch_kmeans import PatchKMeansEncoder
from ssgan.models.ssgan import SSGAN
from ssgan.nets import MLPDiscriminator, MLPGenerator
from ssgan.cli.predict import parse_arguments, run as predict_run
from ssgan.cli.train import train

SMALL = {"num_centroids": 8, "patch_size": 3, "pool_grid": 2, "output_dim": 6, "num_patches": 2000}


def digits_images() -> torch.Tensor:
    return DigitsSource().load().train.inputs[:300]


def test_triangle_encoding_matches_a_direct_computation() -> None:
    features = PatchKMeansEncoder((1, 4, 4), num_centroids=2, patch_size=3, pool_grid=1, output_dim=1,
                                   contrast_eps=0.0)
    features.centroids.copy_(torch.tensor([[1.0] + [0.0] * 8, [0.0] * 8 + [1.0]]))
    image = torch.arange(16.0).reshape(1, 1, 4, 4) ** 2
    expected = torch.zeros(2)
    for row in range(2):
        for col in range(2):
            patch = image[0, 0, row:row + 3, col:col + 3].flatten()
            patch = (patch - patch.mean()) / patch.var().sqrt()  # contrast normalisation, identity whitening
            distances = torch.stack([(patch - c).norm() for c in features.centroids])
            expected += torch.relu(distances.mean() - distances) / 4  # the 4 positions pooled into 1 region
    assert torch.allclose(features._pooled(image)[0], expected, atol=1e-5)


def test_fit_is_seeded_and_scales_the_output() -> None:
    images = digits_images()
    first = PatchKMeansEncoder((1, 8, 8), **SMALL, seed=3).fit(images)
    again = PatchKMeansEncoder((1, 8, 8), **SMALL, seed=3).fit(images)
    other = PatchKMeansEncoder((1, 8, 8), **SMALL, seed=4).fit(images)
    encoded = first(images)
    assert encoded.shape == (300, 6)
    assert torch.equal(encoded, again(images))
    assert not torch.equal(encoded, other(images))
    assert float(encoded.std()) == pytest.approx(0.35, rel=1e-3)
    assert torch.allclose(first(images[:7]), encoded[:7], atol=1e-5)  # encoding is per image, batch-free


def test_fit_leaves_the_global_random_state_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    PatchKMeansEncoder((1, 8, 8), **SMALL).fit(digits_images())
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("shape", "options", "message"),
    [
        ((64,), {}, "needs images"),
        ((1, 8, 8), {"patch_size": 9}, "patch_size=9 is larger"),
        ((1, 8, 8), {"patch_size": 5, "pool_grid": 5}, "pool_grid=5 asks for more regions"),
        ((1, 8, 8), {"num_centroids": 2, "pool_grid": 2, "output_dim": 9}, "output_dim=9 exceeds the 8"),
        ((1, 8, 8), {"num_centroids": 0}, "num_centroids=0 must be a positive integer"),
    ],
)
def test_bad_settings_name_the_field(shape, options, message) -> None:
    with pytest.raises(SSGANError, match=message):
        PatchKMeansEncoder(shape, **options)


def test_unfitted_or_wrongly_shaped_inputs_are_refused() -> None:
    features = PatchKMeansEncoder((1, 8, 8), **SMALL)
    with pytest.raises(SSGANError, match="not fitted"):
        features(digits_images())
    with pytest.raises(SSGANError, match=r"images of shape \(1, 8, 8\), got \(1, 7, 7\)"):
        features.fit(torch.rand(10, 1, 7, 7))


def test_data_module_trains_on_features_of_the_unlabeled_pool() -> None:
    data = SemiSupervisedDataModule(DigitsSource(), num_labeled=50, num_validation=100, batch_size=20,
                                    encoder=functools.partial(PatchKMeansEncoder, **SMALL))
    data.setup()
    assert data.input_shape == (6,) and data.raw_input_shape == (1, 8, 8)
    assert data.encoder is not None
    raw = DigitsSource().load()
    assert torch.equal(data.data.train.labels, raw.train.labels)
    assert torch.allclose(data.data.test.inputs, data.encoder(raw.test.inputs))
    assert torch.allclose(data.data.train.inputs, data.encoder(raw.train.inputs), atol=1e-5)
    # fitted on the unlabeled pool only: refitting on it gives the same transform
    refit = PatchKMeansEncoder((1, 8, 8), **SMALL).fit(raw.train.inputs[data.split.unlabeled])
    assert torch.equal(refit.centroids, data.encoder.centroids)
    rebuilt = data.encoder_arguments()["input_encoder"]()
    assert rebuilt.input_shape == (1, 8, 8) and rebuilt.settings() == data.encoder.settings()


def test_run_on_features_predicts_raw_images_from_its_checkpoint(tmp_path: Path) -> None:
    from tests.conftest import compose_run

    overrides = ["trainer.max_epochs=2", "callbacks.health.sample_every_n_epochs=0", "data/encoder=patch_kmeans"]
    overrides += [f"data.encoder.{key}={value}" for key, value in SMALL.items()]
    metrics = train(compose_run(tmp_path, overrides))
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    accuracy = predict_run(parse_arguments([str(checkpoint), "--data", "digits", "-o", str(tmp_path / "p.csv")]))
    assert accuracy == pytest.approx(metrics["test_acc"], abs=1e-6)
    assert metrics["test_acc"] > 0.5  # 10 classes: features from 8 prototypes still carry the digits


def test_unit_interval_maps_onto_each_features_range_over_the_fitted_images() -> None:
    images = digits_images()
    features = PatchKMeansEncoder((1, 8, 8), **SMALL).fit(images)
    encoded = features(images)
    assert torch.allclose(features.from_unit(torch.zeros(1, 6))[0], encoded.amin(0), atol=1e-6)
    assert torch.allclose(features.from_unit(torch.ones(1, 6))[0], encoded.amax(0), atol=1e-6)
    halfway = features.from_unit(torch.full((1, 6), 0.5))[0]
    assert torch.allclose(halfway, (encoded.amin(0) + encoded.amax(0)) / 2, atol=1e-6)
    # fit_encode records the range of the rows it fits on, like fit does
    rows = torch.arange(0, 300, 2)
    one_pass = PatchKMeansEncoder((1, 8, 8), **SMALL)
    one_pass.fit_encode(images, rows)
    refit = PatchKMeansEncoder((1, 8, 8), **SMALL).fit(images[rows])
    assert torch.allclose(one_pass.output_low, refit.output_low, atol=1e-5)
    assert torch.allclose(one_pass.output_high, refit.output_high, atol=1e-5)


def ssgan_on_features(**generator_options) -> SSGAN:
    features = PatchKMeansEncoder((1, 8, 8), **SMALL).fit(digits_images())
    model = SSGAN(
        discriminator=functools.partial(MLPDiscriminator, hidden_widths=(16,)),
        generator=functools.partial(MLPGenerator, hidden_widths=(16,), **generator_options),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        input_shape=(6,), num_classes=10,
        input_encoder=functools.partial(PatchKMeansEncoder, (1, 8, 8), **SMALL),
    )
    model.input_encoder.load_state_dict(features.state_dict())
    return model


def test_generator_on_features_stays_within_their_range() -> None:
    model = ssgan_on_features()
    with torch.no_grad():
        model.generator.output.g.mul_(1e3)  # saturate the sigmoid: samples sit on the range's ends
        samples = model.generate(64)
    low, high = model.input_encoder.output_low, model.input_encoder.output_high
    assert samples.shape == (64, 6)
    assert bool(((samples >= low - 1e-6) & (samples <= high + 1e-6)).all())
    assert bool((samples - low).abs().lt(1e-4).any() and (samples - high).abs().lt(1e-4).any())
    torch.manual_seed(0)
    drawn = model.sample(5, seed=1)
    assert bool(((drawn >= low - 1e-6) & (drawn <= high + 1e-6)).all())


def test_generator_on_features_must_end_in_a_sigmoid() -> None:
    with pytest.raises(SSGANError, match="output_activation='identity': with data.encoder it must be 'sigmoid'"):
        ssgan_on_features(output_activation="identity")


@pytest.mark.parametrize("experiment", ["fashion_mnist_100", "fashion_mnist_1000"])
def test_removing_the_encoder_group_trains_a_fashion_recipe_on_pixels(tmp_path: Path, experiment: str) -> None:
    from hydra.utils import instantiate

    from tests.conftest import compose_run

    cfg = compose_run(tmp_path, [f"experiment={experiment}", "~data/encoder"])
    assert cfg.data.get("encoder") is None
    assert instantiate(cfg.data).encoder_factory is None


@pytest.mark.parametrize("max_epochs", [None, 100, 2, 1])
def test_the_100_label_recipe_decays_its_rate_over_the_last_third_of_any_length(
    tmp_path: Path, max_epochs: int | None
) -> None:
    """Constant for two thirds of training, then linear to 0 at trainer.max_epochs: shortening or lengthening
    a run scales the schedule (and the balance term's end) instead of breaking it."""
    from hydra.utils import instantiate

    from ssgan.build import epoch_at
    from tests.conftest import compose_run

    overrides = ["experiment=fashion_mnist_100"] + ([f"trainer.max_epochs={max_epochs}"] if max_epochs else [])
    cfg = compose_run(tmp_path, overrides)
    epochs = cfg.trainer.max_epochs
    start = epoch_at(0.667, epochs)
    assert cfg.model.scheduler.start_epoch == start == cfg.gan.balance_end_epoch
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=cfg.model.optimizer.lr)
    factor = instantiate(cfg.model.scheduler)(optimizer).lr_lambdas[0]
    assert [factor(0), factor(start), factor(epochs - 1)] == pytest.approx(
        [1.0 if start > 0 else 1.0 / epochs, 1.0, 1.0 / (epochs - start)]
    )


def test_the_supervised_baseline_takes_a_gan_recipe_and_leaves_its_gan_group_unused(tmp_path: Path) -> None:
    """One experiment serves both models: the GAN's settings live in the gan group, which model=supervised
    does not read."""
    from hydra.utils import instantiate

    from tests.conftest import compose_run

    supervised = compose_run(tmp_path, ["experiment=fashion_mnist_100", "model=supervised"])
    assert "generator" not in supervised.model and "objective" not in supervised.model
    instantiate(supervised.model, input_shape=(512,), num_classes=10)
