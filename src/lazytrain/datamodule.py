"""The Lightning face of :mod:`lazytrain.data`: split, move to the training device, batch."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch

from lazytrain.augment import Augment
from lazytrain.data import CLASSES, SYSTEM_DIR, DeviceBatches, FashionMNIST, split


class FashionMNISTDataModule(L.LightningDataModule):
    """55k/5k train/val split of the official training set (seeded), the official 10k test set.

    Files are read once on the CPU (``load``: the dry-run sample needs them before any trainer
    exists) and moved to the training device in ``setup``.
    """

    num_classes = len(CLASSES)
    input_shape = (1, 28, 28)

    def __init__(
        self,
        root: str = "data",
        batch_size: int = 256,
        eval_batch_size: int = 1024,
        val_size: int = 5000,
        split_seed: int = 0,
        shuffle_seed: int = 0,
        search_dirs: Sequence[str] = (SYSTEM_DIR,),
        download: bool = True,
        augment: Augment | None = None,
    ) -> None:
        super().__init__()
        self.root, self.search_dirs, self.download = root, list(search_dirs), download
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.split_seed, self.shuffle_seed = val_size, split_seed, shuffle_seed
        self.augment = augment  # training batches only
        self._cpu: FashionMNIST | None = None
        self._on: dict[str, torch.Tensor] = {}

    def load(self) -> FashionMNIST:
        """Read the files once (CPU tensors); later calls reuse them."""
        if self._cpu is None:
            self._cpu = FashionMNIST.load(self.root, self.search_dirs, self.download)
        return self._cpu

    def prepare_data(self) -> None:
        self.load()

    def sample(self, n: int) -> torch.Tensor:
        return self.load().sample(n)

    def setup(self, stage: str | None = None) -> None:
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        if self._on and self._on["train_x"].device == device:
            return
        data = self.load()
        train_idx, val_idx = split(len(data.train_y), self.val_size, self.split_seed)
        parts = {
            "train_x": data.train_x[train_idx], "train_y": data.train_y[train_idx],
            "val_x": data.train_x[val_idx], "val_y": data.train_y[val_idx],
            "test_x": data.test_x, "test_y": data.test_y,
        }  # fmt: skip
        self._on = {k: v.to(device).contiguous() for k, v in parts.items()}

    def _batches(self, part: str, batch_size: int, train: bool = False) -> DeviceBatches:
        trainer = self.trainer
        return DeviceBatches(
            self._on[f"{part}_x"],
            self._on[f"{part}_y"],
            batch_size,
            shuffle=train,
            seed=self.shuffle_seed,
            epoch=lambda: trainer.current_epoch if trainer else 0,
            completed=lambda: trainer.fit_loop.epoch_loop.batch_progress.current.completed,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
            augment=self.augment if train else None,
        )

    def train_dataloader(self) -> DeviceBatches:
        return self._batches("train", self.batch_size, train=True)

    def val_dataloader(self) -> DeviceBatches:
        return self._batches("val", self.eval_batch_size)

    def test_dataloader(self) -> DeviceBatches:
        return self._batches("test", self.eval_batch_size)
