"""Trainer features a user switches on from the command line, checked for what each promises with
lazy models and lazytrain's on-device data, not only that the run exits 0."""

from __future__ import annotations

import torch
from hydra.utils import instantiate

from lazytrain.datamodule import ImageDataModule

from .helpers import make_cfg, quiet_trainer, read_events, train_run

RECIPE = "experiment=cnn_recipe"  # augmentation on: crop, flip, erasing


def train_batches(
    tmp_path, synthetic_dir, **trainer
) -> tuple[list[list[torch.Tensor]], ImageDataModule]:
    """Two epochs of the training loader, as a Trainer with ``trainer`` settings gets them, and
    the data module."""
    datamodule = instantiate(make_cfg(tmp_path, synthetic_dir, RECIPE).data)
    datamodule.trainer = quiet_trainer(tmp_path, **trainer)
    datamodule.setup("fit")
    return [[x for x, _ in datamodule.train_dataloader()] for _ in range(2)], datamodule


def test_overfit_batches_gives_the_same_batches_in_order_without_augmentation(
    tmp_path, synthetic_dir
):
    (first, again), datamodule = train_batches(tmp_path, synthetic_dir, overfit_batches=2)
    images = datamodule.normalization(datamodule._on["train_x"])
    size = datamodule.batch_size
    assert all(torch.equal(x, images[i * size : (i + 1) * size]) for i, x in enumerate(first[:2]))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    # without it: shuffled and augmented, as training is
    (plain, _), _ = train_batches(tmp_path, synthetic_dir)
    assert not torch.equal(plain[0], images[:size])


def test_overfit_batches_learns_its_batches_by_heart(tmp_path, real_data_root):
    """Two batches of Fashion-MNIST, the augmenting recipe, 60 epochs: train accuracy 100%."""
    run = train_run(
        tmp_path, f"data.root={real_data_root}", RECIPE, "data.batch_size=64",
        "++trainer.overfit_batches=2", "trainer.max_epochs=60", "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=2", "callbacks.progress_bar.refresh_rate=0",
    )  # fmt: skip
    curve = read_events(run).scalars["train/acc"]
    assert len(curve) == 60 and curve[-1][1] == 1.0, curve
