"""D's pooled Gaussian noise: right numbers, seeded offsets, the run's random stream untouched, clear errors."""

import pytest
import torch
from hydra import compose, initialize_config_dir

from ssgan.errors import SSGANError
from ssgan.nets import MLPDiscriminator
from ssgan.nets.layers import (
    NOISE_POOL_MIN_RATIO,
    NOISE_POOL_SEED,
    GaussianNoise,
    clear_noise_pools,
    pooled_standard_normal,
)
from ssgan.build import CONFIG_DIR

POOL = 4096


def test_noise_is_the_fixed_block_sliced_at_the_seeded_offset() -> None:
    clear_noise_pools()
    like = torch.empty(4, 8)
    torch.manual_seed(3)
    noise = pooled_standard_normal(like, POOL)
    torch.manual_seed(3)
    offset = int(torch.randint(POOL - like.numel() + 1, ()))
    block = torch.randn(POOL, generator=torch.Generator().manual_seed(NOISE_POOL_SEED))
    assert noise.shape == like.shape
    assert torch.equal(noise.flatten(), block[offset:offset + like.numel()])


def test_drawing_the_block_leaves_the_runs_random_stream_alone() -> None:
    """A second run with the same seed in the same process (block already drawn) sees the same numbers."""
    like = torch.empty(10, 20)
    clear_noise_pools()
    torch.manual_seed(0)
    first = pooled_standard_normal(like, POOL)
    after_first = torch.rand(5)
    torch.manual_seed(0)
    second = pooled_standard_normal(like, POOL)
    after_second = torch.rand(5)
    assert torch.equal(first, second) and torch.equal(after_first, after_second)
    assert not torch.equal(first, pooled_standard_normal(like, POOL))  # the next offset differs


def test_pooled_noise_has_the_layers_scale_and_is_off_in_evaluation() -> None:
    torch.manual_seed(0)
    noise = GaussianNoise(0.5, pool_size=1 << 20)
    zeros = torch.zeros(100, 500)
    added = noise(zeros)
    assert abs(float(added.mean())) < 0.01 and abs(float(added.std()) - 0.5) < 0.01
    noise.eval()
    assert torch.equal(noise(zeros), zeros)


def test_a_slice_too_large_for_the_block_gets_fresh_draws() -> None:
    like = torch.empty(POOL // NOISE_POOL_MIN_RATIO + 1)
    torch.manual_seed(1)
    noise = pooled_standard_normal(like, POOL)
    torch.manual_seed(1)
    assert torch.equal(noise, torch.randn_like(like))


def test_the_block_follows_the_inputs_dtype() -> None:
    assert pooled_standard_normal(torch.empty(3, 4, dtype=torch.bfloat16), POOL).dtype == torch.bfloat16


def test_pooled_discriminator_trains_noisily_and_evaluates_cleanly() -> None:
    torch.manual_seed(0)
    net = MLPDiscriminator((1, 8, 8), 10, hidden_widths=(40, 30), noise_pool_size=POOL)
    x = torch.rand(6, 1, 8, 8)
    assert not torch.equal(net(x)[0], net(x)[0])
    net.eval()
    assert torch.equal(net(x)[0], net(x)[0])


@pytest.mark.parametrize("size", [-1, 2.5, True])
def test_a_bad_pool_size_names_the_field(size) -> None:
    with pytest.raises(SSGANError, match="model.discriminator.noise_pool_size"):
        MLPDiscriminator((1, 8, 8), 10, hidden_widths=(40,), noise_pool_size=size)


@pytest.mark.parametrize("experiment", ["digits_50", "fashion_mnist_100", "fashion_mnist_1000"])
def test_the_recipes_pool_the_noise_and_the_class_default_draws_fresh(experiment) -> None:
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"])
    assert cfg.model.discriminator.noise_pool_size == 1 << 24  # 64 MB in fp32; the widest slice is 1/56 of it
    net = MLPDiscriminator((1, 8, 8), 10, hidden_widths=(40,))
    assert net.input_noise.pool_size == net.hidden_noise.pool_size == 0


def test_a_zero_pool_draws_fresh_noise_as_the_paper() -> None:
    net = MLPDiscriminator((1, 8, 8), 10, hidden_widths=(40,), input_noise=1.0, noise_pool_size=0)
    x = torch.zeros(2, 1, 8, 8)
    torch.manual_seed(5)
    expected = torch.randn(2, 64)
    torch.manual_seed(5)
    assert torch.equal(net.input_noise(x.flatten(1)), expected)
