"""Conv discriminator/generator of the CIFAR/SVHN recipe, weight-normed conv layers, and the lr schedule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from ssgan.errors import SSGANError
from ssgan.nets import ConvDiscriminator, ConvGenerator, WeightNormConv2d, WeightNormConvTranspose2d, data_dependent_init
from ssgan.models.schedules import linear_decay
from ssgan.build import CONFIG_DIR
from ssgan.cli.train import train


def test_weight_norm_conv_matches_plain_conv_and_inits_per_channel() -> None:
    torch.manual_seed(0)
    layer = WeightNormConv2d(3, 5, 3, stride=2, padding=1)
    x = torch.randn(16, 3, 9, 9) * 3 + 1
    out = layer(x)
    weight = layer.v * (layer.g / layer.v.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
    assert torch.allclose(out, F.conv2d(x, weight, layer.b, stride=2, padding=1), atol=1e-5)
    assert out.shape == (16, 5, 5, 5)
    data_dependent_init(layer, x)
    initialised = layer(x)
    assert torch.allclose(initialised.mean(dim=(0, 2, 3)), torch.zeros(5), atol=1e-4)
    assert torch.allclose(initialised.std(dim=(0, 2, 3), unbiased=False), torch.ones(5), atol=1e-3)


def test_weight_norm_transposed_conv_doubles_size() -> None:
    layer = WeightNormConvTranspose2d(8, 3, 5, stride=2)
    assert layer(torch.randn(2, 8, 4, 4)).shape == (2, 3, 8, 8)


def test_paper_discriminator_shapes_and_output_init_scale() -> None:
    torch.manual_seed(0)
    network = ConvDiscriminator((3, 32, 32), num_classes=10, widths=(16, 32), top_width=24)
    x = torch.rand(40, 3, 32, 32) * 2 - 1
    data_dependent_init(network, x)
    logits, features = network(x)
    assert logits.shape == (40, 10) and features.shape == (40, 24)
    network.eval()
    with torch.no_grad():
        assert 0.03 < float(network(x)[0].std()) < 0.3  # the output layer is initialised to std 0.1
    convs = [m for m in network.modules() if isinstance(m, WeightNormConv2d)]
    assert len(convs) == 9 and not any(m.pending_init for m in convs)



def test_discriminator_runs_channels_last_with_unchanged_outputs() -> None:
    """The fast layout is internal: logits and features equal those of a contiguous-layout copy."""
    torch.manual_seed(0)
    network = ConvDiscriminator((1, 12, 12), num_classes=4, widths=(6,), top_width=8).eval()
    assert all(m.v.is_contiguous(memory_format=torch.channels_last) for m in network.body if hasattr(m, "v"))
    plain = ConvDiscriminator((1, 12, 12), num_classes=4, widths=(6,), top_width=8).eval()
    plain.load_state_dict(network.state_dict())
    plain.to(memory_format=torch.contiguous_format)
    x = torch.rand(5, 1, 12, 12)
    with torch.no_grad():
        for fast, reference in zip(network(x), plain(x)):
            assert torch.allclose(fast, reference, atol=1e-5)

def test_discriminator_refuses_unsuitable_inputs() -> None:
    with pytest.raises(SSGANError, match=r"needs images \(C, H, W\) but the data is \(784,\)"):
        ConvDiscriminator((784,), num_classes=10)
    with pytest.raises(SSGANError, match="8x8 inputs shrink to 2x2"):
        ConvDiscriminator((1, 8, 8), num_classes=10)


def test_generator_shapes_and_ranges() -> None:
    generator = ConvGenerator((3, 32, 32), widths=(32, 16, 8))
    samples = generator(generator.sample_noise(6))
    assert samples.shape == (6, 3, 32, 32) and float(samples.detach().abs().max()) <= 1.0
    mnist_like = ConvGenerator((1, 28, 28), widths=(16, 8), output_activation="sigmoid")
    samples = mnist_like(mnist_like.sample_noise(4))
    assert samples.shape == (4, 1, 28, 28) and float(samples.detach().min()) >= 0.0
    assert not mnist_like.project_norm.weight.requires_grad  # batch norm learns a shift only
    with pytest.raises(SSGANError, match="28x28 is not divisible by 2\\^3"):
        ConvGenerator((1, 28, 28), widths=(16, 8, 4))


def test_linear_decay_is_the_paper_schedule() -> None:
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.0003)
    scheduler = linear_decay(optimizer, start_epoch=800, end_epoch=1200)
    factor = scheduler.lr_lambdas[0]
    paper = lambda epoch: min(3.0 - epoch / 400.0, 1.0)  # noqa: E731  (train_cifar_feature_matching.py)
    for epoch in (0, 799, 800, 900, 1100, 1199, 1200):
        assert factor(epoch) == pytest.approx(max(paper(epoch), 0.0))
    assert "lr_lambdas" in scheduler.state_dict()
    with pytest.raises(SSGANError, match="start_epoch=5 and end_epoch=5"):
        linear_decay(optimizer, 5, 5)


def test_paper_configs_compose_to_the_conv_recipe() -> None:
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cifar = compose("train", overrides=["experiment=cifar10_4000"])
        svhn = compose("train", overrides=["experiment=svhn_1000"])
    assert cifar.model.optimizer.lr == 0.0003 and cifar.gan.feature_matching_distance == "l1"
    assert list(cifar.model.discriminator.widths) == [96, 192] and list(svhn.model.discriminator.widths) == [64, 128]
    assert cifar.data.source.pixel_range == "symmetric" and cifar.gan.generator.output_activation == "tanh"
    assert (cifar.model.scheduler.start_epoch, cifar.model.scheduler.end_epoch) == (800, 1200)
    discriminator = instantiate(cifar.model.discriminator)(input_shape=(3, 32, 32), num_classes=10)
    generator = instantiate(cifar.gan.generator)(output_shape=(3, 32, 32))
    assert discriminator(generator(generator.sample_noise(2)))[1].shape == (2, 192)


def test_conv_ssgan_trains_end_to_end_on_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((48, 3, 16, 16)) * 2 - 1).astype(np.float32)
    y = np.where(np.arange(48) < 24, np.arange(48) % 2, -1)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    overrides = [
        "data=npz", f"data.source.path={tmp_path / 'd.npz'}", "data.batch_size=8",
        "model/discriminator=conv", "gan/generator=conv",
        "model.discriminator.widths=[8]", "model.discriminator.top_width=8",
        "gan.generator.widths=[16,8]", "gan.generator.noise_dim=4", "model.init_examples=16",
        "gan.feature_matching_distance=l1",
        "+model.scheduler={_target_: ssgan.models.schedules.linear_decay, _partial_: true, start_epoch: 1, end_epoch: 3}",
        "trainer.max_epochs=2", "trainer.limit_train_batches=2", "trainer.enable_progress_bar=false", f"paths.output_dir={tmp_path / 'run'}",
    ]
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    metrics = train(cfg)
    assert metrics["epochs"] == 2 and metrics["num_test"] == 4  # 20% of each class's 12 labeled rows
