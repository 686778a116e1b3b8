"""Network shapes, data-dependent init, and which parameters each optimisation step touches."""

from functools import partial

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from ssgan.data.datamodule import SemiSupervisedDataModule
from ssgan.data.sources import DigitsSource
from ssgan.models.ssgan import SSGAN
from ssgan.nets import MLPDiscriminator, MLPGenerator, WeightNormLinear, data_dependent_init


def test_discriminator_returns_logits_and_chosen_features() -> None:
    net = MLPDiscriminator((1, 8, 8), 10, hidden_widths=(40, 30, 20), feature_layer=1)
    logits, features = net(torch.rand(5, 1, 8, 8))
    assert logits.shape == (5, 10) and features.shape == (5, 30)
    assert net.feature_size == 30


def test_generator_output_has_the_data_shape_and_range() -> None:
    gen = MLPGenerator((1, 8, 8), noise_dim=16, hidden_widths=(32,))
    samples = gen(gen.sample_noise(6))
    assert samples.shape == (6, 1, 8, 8)
    assert samples.min() >= 0 and samples.max() <= 1


def test_noise_is_on_in_training_and_off_in_evaluation() -> None:
    net = MLPDiscriminator((4,), 3, hidden_widths=(8,))
    x = torch.rand(2, 4)
    net.eval()
    assert torch.equal(net(x)[0], net(x)[0])
    net.train()
    assert not torch.equal(net(x)[0], net(x)[0])


def test_data_dependent_init_normalises_each_unit() -> None:
    torch.manual_seed(0)
    layer = WeightNormLinear(6, 4)
    x = torch.randn(256, 6) * 3 + 1
    data_dependent_init(layer, x)
    out = layer(x)
    assert torch.allclose(out.mean(0), torch.zeros(4), atol=1e-4)
    assert torch.allclose(out.std(0, unbiased=False), torch.ones(4), atol=1e-3)


def test_weight_norm_output_is_invariant_to_the_direction_scale() -> None:
    layer = WeightNormLinear(3, 2)
    x = torch.rand(4, 3)
    before = layer(x)
    with torch.no_grad():
        layer.v.mul_(7.0)
    assert torch.allclose(before, layer(x), atol=1e-5)


def weight_norm_by_definition(layer: WeightNormLinear, x: torch.Tensor) -> torch.Tensor:
    """y = (x @ v.T) * g / ||v|| + b written with plain autograd ops: what the hand-written backward must match."""
    return x @ layer.v.T * (layer.g / layer.v.norm(dim=1)) + layer.b


@pytest.mark.parametrize("frozen", [False, True])
def test_weight_norm_gradients_match_autograd_through_the_definition(frozen: bool) -> None:
    torch.manual_seed(0)
    layer = WeightNormLinear(6, 4).double()
    layer.g.requires_grad_(True)
    if frozen:  # G's step: D's parameters frozen, only the input's gradient is wanted
        layer.requires_grad_(False)
    x = torch.randn(5, 6, dtype=torch.double, requires_grad=True)
    upstream = torch.randn(5, 4, dtype=torch.double)
    wanted = [x] + [p for p in (layer.v, layer.g, layer.b) if p.requires_grad]
    expected = torch.autograd.grad(weight_norm_by_definition(layer, x), wanted, upstream)
    output = layer(x)
    assert torch.allclose(output, weight_norm_by_definition(layer, x))
    for got, want in zip(torch.autograd.grad(output, wanted, upstream), expected):
        assert torch.allclose(got, want, atol=1e-12)
    assert torch.autograd.gradcheck(lambda inp: layer(inp), (x,))


def test_weight_norm_under_cpu_autocast_keeps_each_gradient_in_its_parameters_dtype() -> None:
    torch.manual_seed(0)
    layer = WeightNormLinear(64, 32)
    x = torch.randn(16, 64, requires_grad=True)
    expected = torch.autograd.grad(weight_norm_by_definition(layer, x).square().sum(), [x, layer.v, layer.b])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = layer(x).square().sum()
    got = torch.autograd.grad(loss, [x, layer.v, layer.b])
    for value, want in zip(got, expected):
        assert value.dtype == torch.float32
        assert torch.allclose(value, want, rtol=0.05, atol=0.05 * float(want.abs().max()))


def test_weight_norm_under_cpu_autocast_multiplies_the_operands_autocast_would() -> None:
    """The layer casts x, v and the upstream gradient to bf16 once per pass; the matmuls must see exactly the
    bf16 operands that autocast's own ``F.linear`` would, and sum the norm's share in fp32."""
    torch.manual_seed(0)
    layer = WeightNormLinear(48, 24)
    x = torch.randn(20, 48, requires_grad=True)
    upstream = torch.randn(20, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        direction = F.linear(x, layer.v)
        output = layer(x)
    scale = layer.g / layer.v.norm(dim=1)
    assert direction.dtype == torch.bfloat16 and output.dtype == torch.float32
    assert torch.equal(output, torch.addcmul(layer.b, direction, scale))
    grad_x, grad_v = torch.autograd.grad(output, [x, layer.v], upstream)
    scaled = (upstream * scale).bfloat16()
    assert torch.equal(grad_x, (scaled @ layer.v.detach().bfloat16()).float())
    along = (upstream * direction.detach()).sum(0)
    expected_v = (scaled.T @ x.detach().bfloat16()).float()
    expected_v.addcmul_(layer.v.detach(), (-along * scale / layer.v.norm(dim=1).square()).unsqueeze(1).detach())
    assert torch.equal(grad_v, expected_v)


def test_discriminator_step_touches_only_d_and_generator_step_only_g(tmp_path) -> None:
    """Record, at every optimizer step, which parameters hold a gradient (and clear them all after)."""
    pl.seed_everything(0)
    steps: list[tuple[str, set[str]]] = []
    holder: dict[str, dict[str, torch.nn.Parameter]] = {}

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            params = list(params)
            self.role = "D" if params[0] is holder["d_first"] else "G"
            super().__init__(params, **kwargs)

        def step(self, closure=None):
            named = holder["params"]
            steps.append((self.role, {n for n, p in named.items() if p.grad is not None}))
            result = super().step(closure)
            for p in named.values():
                p.grad = None
            return result

    dm = SemiSupervisedDataModule(DigitsSource(), num_labeled=20, batch_size=16)
    dm.setup("fit")
    model = SSGAN(
        discriminator=partial(MLPDiscriminator, hidden_widths=(16, 8)),
        generator=partial(MLPGenerator, noise_dim=4, hidden_widths=(8,)),
        optimizer=partial(RecordingAdam, lr=1e-3),
        input_shape=dm.input_shape,
        num_classes=dm.num_classes,
    )
    holder["params"] = dict(model.named_parameters())
    holder["d_first"] = next(p for p in model.discriminator.parameters() if p.requires_grad)
    trainer = pl.Trainer(limit_train_batches=2, max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                         default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)

    d_params = {f"discriminator.{n}" for n, p in model.discriminator.named_parameters() if p.requires_grad}
    g_params = {f"generator.{n}" for n, p in model.generator.named_parameters() if p.requires_grad}
    assert [role for role, _ in steps] == ["D", "G", "D", "G"]
    for role, with_grad in steps:
        assert with_grad == (d_params if role == "D" else g_params)

