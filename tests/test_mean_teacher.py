"""Mean Teacher: its consistency cost and ramp-up by hand, a teacher that only follows the student, a real run."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
import torch

from ssgan.errors import SSGANError
from ssgan.models import MeanTeacher
from ssgan.models.losses import consistency_loss, sigmoid_rampup
from ssgan.nets import MLPDiscriminator


def test_consistency_loss_by_hand_and_no_gradient_into_the_target() -> None:
    # softmax([0, 0]) = (1/2, 1/2); softmax([log 3, 0]) = (3/4, 1/4): squared distance 1/16 + 1/16 on row 0
    logits = torch.tensor([[0.0, 0.0], [1.0, 2.0]], requires_grad=True)
    target = torch.tensor([[math.log(3.0), 0.0], [1.0, 2.0]], requires_grad=True)
    loss = consistency_loss(logits, target)
    assert loss.item() == pytest.approx(0.5 * 0.125, rel=1e-6)
    loss.backward()
    assert target.grad is None and logits.grad is not None and logits.grad[0].abs().sum() > 0


@pytest.mark.parametrize(("progress", "expected"), [(0.0, math.exp(-5.0)), (0.5, math.exp(-1.25)), (1.0, 1.0),
                                                    (3.0, 1.0), (-1.0, math.exp(-5.0))])
def test_sigmoid_rampup_by_hand(progress: float, expected: float) -> None:
    assert sigmoid_rampup(progress) == pytest.approx(expected)


def mean_teacher(**options) -> MeanTeacher:
    return MeanTeacher(
        discriminator=partial(MLPDiscriminator, hidden_widths=(16,)),
        optimizer=partial(torch.optim.Adam, lr=1e-2),
        input_shape=(6,), num_classes=3, **options,
    )


def test_a_step_trains_the_student_and_the_teacher_follows_it_without_gradients() -> None:
    torch.manual_seed(0)
    model = mean_teacher(consistency_weight=1.0, rampup_epochs=0)
    model.initialise(torch.rand(20, 6))
    batch = (torch.rand(8, 6), torch.randint(0, 3, (8,)), torch.rand(8, 6), torch.rand(8, 6))
    loss = model.training_step(batch, 0)
    loss.backward()
    assert all(p.grad is not None for p in model.discriminator.parameters() if p.requires_grad)
    assert all(p.grad is None for p in model.teacher.parameters())
    before = [p.clone() for p in model.teacher.parameters()]
    torch.optim.SGD(model.discriminator.parameters(), lr=1.0).step()
    model.on_train_batch_end(None, batch, 0)
    moved = [(a - b).abs().sum().item() for a, b in zip(model.teacher.parameters(), before)]
    assert any(m > 0 for m in moved)  # the teacher moved towards the updated student


def test_the_consistency_weight_ramps_up_over_its_epochs() -> None:
    from types import SimpleNamespace

    model = mean_teacher(consistency_weight=10.0, rampup_epochs=4)
    model._trainer = SimpleNamespace(num_training_batches=10)
    for step, expected in ((0, 10 * math.exp(-5.0)), (20, 10 * math.exp(-1.25)), (40, 10.0), (400, 10.0)):
        assert model.consistency_ramp(step) == pytest.approx(expected)


@pytest.mark.parametrize(("options", "field"), [({"ema_decay": None}, "model.ema_decay=null"),
                                                 ({"consistency_weight": -1}, "model.consistency_weight=-1"),
                                                 ({"rampup_epochs": "soon"}, "model.rampup_epochs='soon'")])
def test_bad_settings_are_refused_by_name(options: dict, field: str) -> None:
    with pytest.raises(SSGANError, match=field):
        mean_teacher(**options)


def test_a_mean_teacher_run_trains_tests_and_logs_its_consistency_cost(make_config, tmp_path: Path) -> None:
    import csv

    from ssgan.cli.train import train

    metrics = train(make_config("run", "model=mean_teacher", "trainer.max_epochs=2", "model.rampup_epochs=1"))
    assert metrics["status"] == "completed" and metrics["model"] == "MeanTeacher"
    rows = [row for row in csv.DictReader(open(tmp_path / "run" / "logs" / "metrics.csv"))
            if row.get("train_loss_consistency")]
    assert len(rows) == 2 and all(math.isfinite(float(row["train_loss_consistency"])) for row in rows)
