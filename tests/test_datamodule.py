"""The training stream: B labeled + B unlabeled per step, labeled cycled and reshuffled, DDP shards."""

import warnings
from types import SimpleNamespace

import torch
from pytorch_lightning.trainer.connectors import data_connector

from ssgan.data.datamodule import SemiSupervisedDataModule
from ssgan.runtime.quiet import quiet_third_party
from ssgan.data.sources import DigitsSource
from ssgan.data.streams import EvaluationStream, SemiSupervisedStream


def make_stream(rank: int = 0, world: int = 1, num_labeled: int = 7, num_unlabeled: int = 100) -> SemiSupervisedStream:
    unlabeled = torch.arange(num_unlabeled, dtype=torch.float32).unsqueeze(1)
    labeled = torch.arange(num_labeled, dtype=torch.float32).unsqueeze(1) + 1000
    return SemiSupervisedStream(labeled, torch.arange(num_labeled), unlabeled, batch_size=10, seed=0,
                                rank=rank, world_size=world)


def test_each_step_has_batch_size_labeled_and_two_unlabeled_batches() -> None:
    stream = make_stream()
    batches = list(stream)
    assert len(batches) == len(stream) == 10
    for x_lab, y_lab, x_unl, x_fm in batches:
        assert x_lab.shape == (10, 1) and y_lab.shape == (10,) and x_unl.shape == (10, 1) and x_fm.shape == (10, 1)
        assert torch.equal(x_lab[:, 0].long() - 1000, y_lab)


def test_unlabeled_epoch_visits_every_example_once_in_both_streams() -> None:
    batches = list(make_stream())
    seen = torch.cat([b[2] for b in batches]).flatten().long()
    matched = torch.cat([b[3] for b in batches]).flatten().long()
    assert sorted(seen.tolist()) == list(range(100)) == sorted(matched.tolist())
    assert not torch.equal(seen, matched)


def test_labeled_examples_are_tiled_with_a_fresh_shuffle_each_cycle() -> None:
    labels = torch.cat([b[1] for b in make_stream()])
    cycles = [labels[i : i + 7] for i in range(0, 98, 7)]
    assert all(sorted(c.tolist()) == list(range(7)) for c in cycles)
    assert len({tuple(c.tolist()) for c in cycles}) > 1


def test_epochs_reshuffle_and_are_reproducible() -> None:
    stream = make_stream()
    first, second = list(stream), list(stream)
    assert not torch.equal(first[0][2], second[0][2])
    assert torch.equal(make_stream().epoch_indices(1)[1], make_stream().epoch_indices(1)[1])


def test_ranks_see_disjoint_unlabeled_examples() -> None:
    ranks = [torch.cat([b[2] for b in make_stream(rank=r, world=2)]).flatten().tolist() for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1])
    assert len(ranks[0]) == len(ranks[1]) == 50


def test_evaluation_stream_shards_without_duplicates() -> None:
    x, y = torch.arange(11).float().unsqueeze(1), torch.arange(11)
    shards = [torch.cat([b[1] for b in EvaluationStream(x, y, 4, rank=r, world_size=2)]) for r in range(2)]
    assert sorted(torch.cat(shards).tolist()) == list(range(11))


def test_datamodule_builds_loaders_from_the_split() -> None:
    dm = SemiSupervisedDataModule(DigitsSource(), num_labeled=20, num_validation=30, batch_size=32)
    dm.setup("fit")
    assert dm.input_shape == (1, 8, 8) and dm.num_classes == 10
    x_lab, y_lab, x_unl, _ = next(iter(dm.train_dataloader()))
    assert x_lab.shape == (32, 1, 8, 8) and x_unl.shape == (32, 1, 8, 8)
    assert set(y_lab.tolist()) <= set(range(10))
    assert sum(b[1].numel() for b in dm.val_dataloader()) == 30
    assert sum(b[1].numel() for b in dm.test_dataloader()) == 360
    assert dm.initialization_inputs(100).shape == (100, 1, 8, 8)


def test_lightning_does_not_advise_workers_for_the_in_memory_loaders(monkeypatch) -> None:
    """On a many-core machine Lightning suggests ``num_workers`` for every loader; ours read tensors in memory."""
    monkeypatch.setattr(data_connector, "suggested_max_num_workers", lambda num_devices: 15)
    dm = SemiSupervisedDataModule(DigitsSource(), num_labeled=20, num_validation=30, batch_size=32)
    dm.setup("fit")
    trainer = SimpleNamespace(num_devices=1, reload_dataloaders_every_n_epochs=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # start from every warning shown, not from the test runner's filters
        with quiet_third_party():
            for name, loader in (("train_dataloader", dm.train_dataloader()), ("val_dataloader", dm.val_dataloader()),
                                 ("test_dataloader", dm.test_dataloader())):
                data_connector._worker_check(trainer, loader, name)
    assert not [str(w.message) for w in caught if "workers" in str(w.message)]
    with warnings.catch_warnings(record=True) as control:  # the check itself still fires without our filter
        warnings.simplefilter("always")
        data_connector._worker_check(trainer, dm.train_dataloader(), "train_dataloader")
    assert any("does not have many workers" in str(w.message) for w in control)
