"""The switches of the paper's section 3: minibatch discrimination, G's GAN objectives, historical averaging,
one-sided label smoothing and virtual batch norm. Each formula against values computed by hand on tiny
tensors, its effect on a real training step, and an exact resume with it on."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from helpers import SimulatedKill

from ssgan.build import build, compose
from ssgan.cli.train import train
from ssgan.errors import SSGANError
from ssgan.models.history import HistoricalAverage
from ssgan.models.losses import (
    SSGANObjective,
    minimax_generator_loss,
    non_saturating_generator_loss,
    unlabeled_loss,
)
from ssgan.nets import ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator, data_dependent_init
from ssgan.nets.minibatch import MinibatchDiscrimination, within_group_closeness
from ssgan.nets.normalization import VirtualBatchNorm
from tests.conftest import compose_run

e = math.exp
# a short deterministic run: digits, tiny nets, two steps
STEPS = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.deterministic=true",
         "callbacks.health.sample_every_n_epochs=0", "callbacks.checkpoint=null", "callbacks.last_checkpoint=null"]
SAMPLE_QUALITY = ["gan.minibatch_discrimination.kernels=4", "gan.minibatch_discrimination.kernel_dim=3",
                  "gan.generator_objective=minimax"]
HISTORY = ["gan.historical_averaging.discriminator_weight=0.5", "gan.historical_averaging.generator_weight=0.25"]
VIRTUAL = ["gan.generator.normalization=virtual", "gan.generator.reference_batch_size=8"]


class RecordSteps(pl.Callback):
    """At every optimizer step: which player steps, and its parameters and gradients just before the update."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]] = []

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module, optimizer) -> None:
        first = optimizer.param_groups[0]["params"][0]
        role = "D" if any(first is p for p in pl_module.discriminator.parameters()) else "G"
        network = pl_module.discriminator if role == "D" else pl_module.generator
        self.steps.append((role, {name: (p.detach().clone(), p.grad.clone())
                                  for name, p in network.named_parameters() if p.grad is not None}))

    def of(self, role: str) -> list[dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        return [recorded for who, recorded in self.steps if who == role]


def recorded_steps(tmp_path: Path, *overrides: str) -> tuple[RecordSteps, pl.LightningModule]:
    """Two SSGAN steps on digits with tiny nets, recorded."""
    recorder = RecordSteps()
    datamodule, model, trainer = build(compose_run(tmp_path, [*STEPS, *overrides]), extra_callbacks=[recorder])
    trainer.fit(model, datamodule=datamodule)
    assert [role for role, _ in recorder.steps] == ["D", "G", "D", "G"]
    return recorder, model


def gradients_differ(first: dict, second: dict) -> bool:
    assert first.keys() == second.keys()
    return any(not torch.equal(first[name][1], second[name][1]) for name in first)


# ----------------------------------------------------------------------------------------- minibatch discrimination
def test_closeness_by_hand_stays_within_each_group() -> None:
    # M (3 examples, B=2 kernels, C=2); distances: 0-1: 2 and 3, 0-2: 10 and 1, 1-2: 8 and 4
    projected = torch.tensor([[[0.0, 0.0], [1.0, 0.0]],
                              [[1.0, 1.0], [1.0, 3.0]],
                              [[5.0, 5.0], [0.0, 0.0]]])
    one_group = within_group_closeness(projected, [3])
    expected = [[e(-2) + e(-10), e(-3) + e(-1)], [e(-2) + e(-8), e(-3) + e(-4)], [e(-10) + e(-8), e(-1) + e(-4)]]
    assert torch.allclose(one_group, torch.tensor(expected), rtol=1e-6)
    two_groups = within_group_closeness(projected, [2, 1])  # the third example has no neighbour in its group
    expected = [[e(-2), e(-3)], [e(-2), e(-3)], [0.0, 0.0]]
    assert torch.allclose(two_groups, torch.tensor(expected), rtol=1e-6)
    with pytest.raises(ValueError, match="add up to the batch of 3"):
        within_group_closeness(projected, [2, 2])


def test_minibatch_layer_by_hand_appends_o_to_f() -> None:
    layer = MinibatchDiscrimination(in_features=2, kernels=1, kernel_dim=2)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(2).view(2, 1, 2))  # T = identity: M_i = f_i
    features = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 3.0]])
    out = layer(features)
    expected_o = [e(-3) + e(-6), e(-3) + e(-3), e(-6) + e(-3)]
    assert out.shape == (3, 3) and torch.equal(out[:, :2], features)
    assert torch.allclose(out[:, 2], torch.tensor(expected_o), rtol=1e-6)


def test_minibatch_init_sets_the_mean_nearest_neighbour_distance() -> None:
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(in_features=6, kernels=3, kernel_dim=4, init_distance=1.5)
    features = torch.randn(40, 6) * 7
    data_dependent_init(layer, features)
    projected = (features @ layer.weight.flatten(1)).view(40, 3, 4).transpose(0, 1)
    distance = torch.cdist(projected, projected, p=1) + torch.eye(40) * 1e9
    assert torch.allclose(distance.min(dim=2).values.mean(dim=1), torch.full((3,), 1.5), rtol=1e-4)


@pytest.mark.parametrize("sizes", [[4, 4, 4], [3, 5, 2]], ids=["equal", "unequal"])
def test_one_grouped_pass_equals_one_pass_per_source(sizes: list[int]) -> None:
    """The SSGAN's single D pass over labeled + unlabeled + generated must equal three separate passes."""
    torch.manual_seed(0)
    inputs = torch.rand(sum(sizes), 1, 8, 8)
    mlp = MLPDiscriminator((1, 8, 8), 3, hidden_widths=(12, 10), minibatch_kernels=5, minibatch_layer=0)
    conv = ConvDiscriminator((1, 12, 12), 3, widths=(4,), top_width=6, minibatch_kernels=5)
    for net, x in ((mlp, inputs), (conv, torch.rand(sum(sizes), 1, 12, 12))):
        data_dependent_init(net, x)
        net.eval()  # noise and dropout off: the passes are comparable
        logits, features = net(x, group_sizes=sizes)
        separate = [net(part) for part in x.split(sizes)]
        assert torch.allclose(logits, torch.cat([part[0] for part in separate]), atol=1e-5)
        assert torch.allclose(features, torch.cat([part[1] for part in separate]), atol=1e-5)
        assert not torch.allclose(logits, net(x)[0], atol=1e-5)  # one group over everything differs


def test_minibatch_discrimination_sits_where_configured() -> None:
    last = MLPDiscriminator((4,), 3, hidden_widths=(8, 6), minibatch_kernels=5)
    assert last.classifier.in_features == 6 + 5 and last.hidden[1].in_features == 8
    first = MLPDiscriminator((4,), 3, hidden_widths=(8, 6), minibatch_kernels=5, minibatch_layer=0)
    assert first.classifier.in_features == 6 and first.hidden[1].in_features == 8 + 5
    plain = MLPDiscriminator((4,), 3, hidden_widths=(8, 6))
    assert plain.minibatch is None and "minibatch" not in str(plain.state_dict().keys())
    conv = ConvDiscriminator((3, 12, 12), 3, widths=(4,), top_width=6, minibatch_kernels=7)
    assert conv.classifier.in_features == 6 + 7


def test_the_training_step_groups_each_source_and_trains_the_layer(tmp_path: Path) -> None:
    seen: list[list[int] | None] = []
    recorder = RecordSteps()
    cfg = compose_run(tmp_path, [*STEPS, *SAMPLE_QUALITY])
    datamodule, model, trainer = build(cfg, extra_callbacks=[recorder])
    model.discriminator.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("group_sizes")), with_kwargs=True
    )
    trainer.fit(model, datamodule=datamodule)
    batch = cfg.data.batch_size
    # the data-dependent init pass, then per step: D on three sources, G's step on its samples alone
    assert seen == [None] + [[batch, batch, batch], None] * 2
    d_gradient = recorder.of("D")[0]["minibatch.weight"][1]
    assert torch.isfinite(d_gradient).all() and d_gradient.abs().sum() > 0


# ----------------------------------------------------------------------------------------- generator objective
def test_generator_objectives_by_hand() -> None:
    fake = torch.tensor([[math.log(1 / 3), -1e9], [math.log(3.0), -1e9]])  # D(G(z)) = 1/4 and 3/4
    assert minimax_generator_loss(fake).item() == pytest.approx(0.5 * (math.log(3 / 4) + math.log(1 / 4)), rel=1e-6)
    assert non_saturating_generator_loss(fake).item() == pytest.approx(
        0.5 * (-math.log(1 / 4) - math.log(3 / 4)), rel=1e-6
    )
    features = torch.tensor([[1.0, 2.0]])
    assert SSGANObjective(generator_objective="minimax").generator(None, features, fake) == minimax_generator_loss(fake)
    assert not SSGANObjective(generator_objective="non_saturating").matches_features
    assert SSGANObjective().matches_features


def test_a_gan_objective_changes_the_generator_step_only(tmp_path: Path) -> None:
    paper, _ = recorded_steps(tmp_path / "paper")
    verdict, _ = recorded_steps(tmp_path / "verdict", "gan.generator_objective=non_saturating")
    assert not gradients_differ(paper.of("D")[0], verdict.of("D")[0])  # the first D step is the same
    assert gradients_differ(paper.of("G")[0], verdict.of("G")[0])


# ----------------------------------------------------------------------------------------- historical averaging
def test_historical_average_by_hand() -> None:
    network = torch.nn.Linear(2, 1, bias=False)
    network.bias = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # frozen: not averaged
    history = HistoricalAverage(network, weight=0.5)
    assert [name for name, _ in history.named_buffers()] == ["mean_0"]
    penalties, added = [], []
    for theta in ([1.0, 2.0], [3.0, 2.0], [2.0, 5.0]):  # means: [1, 2], [2, 2], [2, 3]
        with torch.no_grad():
            network.weight.copy_(torch.tensor([theta]))
        network.weight.grad = torch.ones(1, 2)
        penalties.append(history.add_penalty_gradient(network).item())
        added.append((network.weight.grad - 1.0).view(-1).tolist())
    assert penalties == pytest.approx([0.0, 0.5 * 1.0, 0.5 * 4.0])
    assert added == [pytest.approx([0.0, 0.0]), pytest.approx([1.0, 0.0]), pytest.approx([0.0, 2.0])]
    assert history.num_steps == 3 and history.get_extra_state() == {"num_steps": 3}
    assert torch.equal(history.mean_0, torch.tensor([[2.0, 3.0]]))


@pytest.mark.parametrize("role,key,weight", [("D", "discriminator_weight", 0.5), ("G", "generator_weight", 0.25)])
def test_historical_averaging_adds_lambda_times_the_last_move_at_the_second_step(
    tmp_path: Path, role: str, key: str, weight: float
) -> None:
    """Step 1 costs nothing (the mean is theta_1); at step 2 the mean is (theta_1 + theta_2) / 2, so the
    gradient grows by 2 lambda (theta_2 - mean) = lambda (theta_2 - theta_1). One player averaged at a time,
    so the other's steps, and the averaged player's loss gradient, are those of the plain run."""
    plain, _ = recorded_steps(tmp_path / "plain")
    averaged, _ = recorded_steps(tmp_path / "averaged", f"gan.historical_averaging.{key}={weight}")
    (first_plain, second_plain), (first, second) = plain.of(role), averaged.of(role)
    assert not gradients_differ(first_plain, first)
    assert gradients_differ(second_plain, second)
    for name, (theta_2, gradient) in second.items():
        expected = second_plain[name][1] + weight * (theta_2 - first[name][0])
        assert torch.allclose(gradient, expected, atol=1e-6), name


# ----------------------------------------------------------------------------------------- label smoothing
def test_one_sided_label_smoothing_by_hand() -> None:
    real = torch.tensor([[math.log(2.0), 0.0]])  # Z = 3: D(x) = 3/4
    fake = torch.tensor([[math.log(1 / 3), -1e9]])  # D(G(z)) = 1/4, target 0 either way
    smoothed = -(0.9 * math.log(3 / 4) + 0.1 * math.log(1 / 4))
    expected = 0.5 * smoothed + 0.5 * -math.log(3 / 4)
    assert unlabeled_loss(real, fake, real_target=0.9).item() == pytest.approx(expected, rel=1e-6)
    assert torch.equal(unlabeled_loss(real, fake, 1.0), unlabeled_loss(real, fake))


def test_label_smoothing_changes_the_discriminator_step(tmp_path: Path) -> None:
    paper, _ = recorded_steps(tmp_path / "paper")
    smoothed, _ = recorded_steps(tmp_path / "smoothed", "gan.real_target=0.9")
    assert gradients_differ(paper.of("D")[0], smoothed.of("D")[0])


# ----------------------------------------------------------------------------------------- virtual batch norm
def test_virtual_batch_norm_by_hand() -> None:
    dense = VirtualBatchNorm(1, reference_size=2, eps=0.0)
    out = dense(torch.tensor([[0.0], [2.0], [5.0]]))  # reference 0, 2 (mean 1, var 1); the example 5
    # with the example: mean (0 + 2 + 5) / 3 = 7/3, mean of squares 29/3, variance 29/3 - 49/9 = 38/9
    assert out.view(-1).tolist() == pytest.approx([-1.0, 1.0, 8 / math.sqrt(38)], rel=1e-6)
    image = VirtualBatchNorm(1, reference_size=1, eps=0.0)
    out = image(torch.tensor([0.0, 2.0, 4.0, 6.0]).view(2, 1, 1, 2))  # reference [0, 2]; example [4, 6]
    # mean (0 + 2 + 4 + 6) / 4 = 3, mean of squares 56/4 = 14, variance 5
    assert out.view(-1).tolist() == pytest.approx([-1.0, 1.0, 1 / math.sqrt(5), 3 / math.sqrt(5)], rel=1e-6)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_virtual_batch_norm_makes_each_sample_independent_of_its_batch(kind: str) -> None:
    torch.manual_seed(0)
    if kind == "mlp":
        net = MLPGenerator((1, 8, 8), noise_dim=4, hidden_widths=(16,), normalization="virtual", reference_batch_size=6)
    else:
        net = ConvGenerator((1, 8, 8), noise_dim=4, widths=(8, 4), normalization="virtual", reference_batch_size=6)
    z = net.sample_noise(5)
    together = net(z)
    alone = torch.cat([net(z[i : i + 1]) for i in range(5)])
    assert torch.allclose(together, alone, atol=1e-6)
    net.eval()
    assert torch.allclose(net(z), together, atol=1e-6)  # the same function in evaluation
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())


def test_virtual_batch_norm_changes_the_generator_gradients() -> None:
    """Same seed, same weights: only the normalisation differs."""
    torch.manual_seed(0)
    batch = ConvGenerator((1, 8, 8), noise_dim=4, widths=(8, 4))
    torch.manual_seed(0)
    virtual = ConvGenerator((1, 8, 8), noise_dim=4, widths=(8, 4), normalization="virtual", reference_batch_size=6)
    shared = batch.state_dict()
    assert all(torch.equal(shared[name], value) for name, value in virtual.state_dict().items() if name in shared)
    z = torch.rand(5, 4)
    gradients = [torch.autograd.grad(net(z).square().sum(), net.project.weight)[0] for net in (batch, virtual)]
    assert not torch.allclose(*gradients)


def test_the_training_step_trains_through_the_reference_batch_and_keeps_it(tmp_path: Path) -> None:
    recorder, model = recorded_steps(tmp_path, *VIRTUAL)
    reference = model.generator.reference.noise
    assert reference.shape == (8, 16)  # gan.generator.noise_dim=16 in the tiny config
    assert torch.equal(model.state_dict()["generator.reference.noise"], reference)
    step = recorder.of("G")[0]
    assert step["body.1.bias"][1].abs().sum() > 0  # the virtual batch norm's shift learns
    assert len(recorder.of("G")) == 2


# ----------------------------------------------------------------------------------------- boundary checks
@pytest.mark.parametrize("settings,field", [
    ({"generator_objective": "wasserstein"}, "gan.generator_objective='wasserstein'"),
    ({"real_target": 0.0}, "gan.real_target=0.0"),
    ({"real_target": 1.5}, "gan.real_target=1.5"),
    ({"discriminator_history_weight": -1.0}, "gan.historical_averaging.discriminator_weight=-1.0"),
    ({"generator_history_weight": "lots"}, "gan.historical_averaging.generator_weight='lots'"),
])
def test_objective_switches_refuse_bad_values_by_name(settings: dict, field: str) -> None:
    with pytest.raises(SSGANError, match=re.escape(field)):
        SSGANObjective(**settings)


@pytest.mark.parametrize("build_net,field", [
    (lambda: MLPDiscriminator((4,), 3, hidden_widths=(8,), minibatch_kernels=-1),
     "gan.minibatch_discrimination.kernels=-1"),
    (lambda: MLPDiscriminator((4,), 3, hidden_widths=(8,), minibatch_kernels=2, minibatch_layer=3),
     "gan.minibatch_discrimination.layer=3"),
    (lambda: MLPDiscriminator((4,), 3, hidden_widths=(8,), minibatch_kernels=2, minibatch_kernel_dim=0),
     "gan.minibatch_discrimination.kernel_dim=0"),
    (lambda: MLPDiscriminator((4,), 3, hidden_widths=(8,), minibatch_kernels=2, minibatch_init_distance=0),
     "gan.minibatch_discrimination.init_distance=0"),
    (lambda: ConvDiscriminator((3, 12, 12), 3, widths=(4,), minibatch_kernels=2, minibatch_layer=0),
     "gan.minibatch_discrimination.layer=0"),
    (lambda: MLPGenerator((4,), normalization="layer"), "gan.generator.normalization='layer'"),
    (lambda: ConvGenerator((1, 8, 8), widths=(4,), normalization="virtual", reference_batch_size=1),
     "gan.generator.reference_batch_size=1"),
])
def test_network_switches_refuse_bad_values_by_name(build_net, field: str) -> None:
    with pytest.raises(SSGANError, match=re.escape(field)):
        build_net()


def test_every_switch_is_off_by_default(tmp_path: Path) -> None:
    cfg = compose([], output_dir=tmp_path)
    assert cfg.gan.generator_objective == "feature_matching" and cfg.gan.real_target == 1.0
    assert cfg.gan.historical_averaging == {"discriminator_weight": 0.0, "generator_weight": 0.0}
    assert cfg.gan.minibatch_discrimination.kernels == 0 and cfg.gan.generator.normalization == "batch"
    supervised = compose(["model=supervised"], output_dir=tmp_path)
    assert not any(key.startswith("minibatch") for key in supervised.model.discriminator)


# ----------------------------------------------------------------------------------------- exact resume
RESUME = ["trainer.max_epochs=2", "trainer.limit_train_batches=3", "trainer.deterministic=true",
          "callbacks.checkpoint.every_n_epochs=1", "callbacks.health.sample_every_n_epochs=0",
          "callbacks.last_checkpoint.every_n_train_batches=2"]
KILL_AFTER_BATCH_5 = "+callbacks.kill={_target_: helpers.KillAtBatch, batch: 5}"  # resumes mid-epoch from batch 4


@pytest.mark.parametrize("switch", [SAMPLE_QUALITY, HISTORY, ["gan.real_target=0.9"], VIRTUAL],
                         ids=["minibatch_and_minimax", "historical_averaging", "label_smoothing", "virtual_batch_norm"])
def test_resume_with_the_switch_on_matches_the_uninterrupted_run(make_config, switch: list[str]) -> None:
    reference = train(make_config("reference", *RESUME, *switch))
    with pytest.raises(SimulatedKill):
        train(make_config("run", *RESUME, *switch, KILL_AFTER_BATCH_5))
    saved = torch.load(Path(make_config("run").paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["SemiSupervisedDataModule"] == {"epoch": 1, "step": 1}  # the resume starts mid-epoch
    resumed = train(make_config("run", *RESUME, *switch, "ckpt_path=last"))

    assert resumed["test_confusion"] == reference["test_confusion"]
    weights, reference_weights = (
        torch.load(Path(make_config(name).paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
        for name in ("run", "reference")
    )
    assert weights["state_dict"].keys() == reference_weights["state_dict"].keys()
    for name, value in reference_weights["state_dict"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(weights["state_dict"][name], value), name
        else:
            assert weights["state_dict"][name] == value, name


@pytest.mark.parametrize("override,message", [
    ("gan.generator_objective=wgan", "gan.generator_objective='wgan' must be one of feature_matching, minimax"),
    ("gan.real_target=1.1", "gan.real_target=1.1 must be a number in (0, 1]"),
    ("gan.historical_averaging.generator_weight=-2",
     "gan.historical_averaging.generator_weight=-2 must be a number >= 0"),
    ("gan.minibatch_discrimination.kernels=-1", "gan.minibatch_discrimination.kernels=-1 must be an integer >= 0"),
    ("gan.minibatch_discrimination.kernel_dim=0", "gan.minibatch_discrimination.kernel_dim=0 must be an integer >= 1"),
    ("gan.minibatch_discrimination.init_distance=0",
     "gan.minibatch_discrimination.init_distance=0 must be a number > 0"),
    ("gan.generator.normalization=layer", "gan.generator.normalization='layer' must be one of batch, virtual"),
    ("gan.generator.reference_batch_size=1", "gan.generator.reference_batch_size=1 must be an integer >= 2"),
])
def test_the_config_check_refuses_bad_switches_before_the_data_loads(
    tmp_path: Path, override: str, message: str
) -> None:
    from ssgan.cli.checks import check_config

    with pytest.raises(SSGANError, match=re.escape(message)):
        check_config(compose_run(tmp_path, [override]))
