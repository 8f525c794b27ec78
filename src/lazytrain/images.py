"""Images as tensors: the form every data set takes, Fashion-MNIST's files or a folder of one's
own (:class:`ImageSet`), their per-channel normalization and the train/validation split.

A whole data set is read into four uint8 tensors that the data module (:mod:`lazytrain.datamodule`)
keeps on the training device and batches there; Fashion-MNIST is 47 MB that way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


class DataError(RuntimeError):
    """The dataset is missing or damaged; the message says how to fix it."""


@dataclass(frozen=True)
class ImageSet:
    """Training and test images (uint8, N×C×H×W), their labels (int64) and the class names, in
    label order: what a data module holds and batches on the device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    # Where they were read from and a digest of what was read: a run's data lineage.
    source: str = ""
    digest: str = ""


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std of training images, in [0, 1]; called on uint8 images [0, 255] it
    returns float32 images with mean 0 and std 1 in each channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        # A Python scalar per channel: torch's scalar kernels, no constant tensor to keep on each
        # device, and for one channel exactly the arithmetic every earlier Fashion-MNIST run used.
        for c, (mean, std) in enumerate(zip(self.mean, self.std, strict=True)):
            x[:, c].mul_(1.0 / (255.0 * std)).sub_(mean / std)
        return x

    @classmethod
    def measure(
        cls, images: torch.Tensor, indices: torch.Tensor, chunk: int = 2048
    ) -> Normalization:
        """The statistics of ``images[indices]`` (uint8, N×C×H×W), summed in float64 a chunk at a
        time: no float copy of the whole set. A constant channel gets std 1/255 (not 0: no
        division by zero; its values all become 0)."""
        channels = images.shape[1]
        sums = torch.zeros(channels, dtype=torch.float64)
        squares = torch.zeros(channels, dtype=torch.float64)
        for start in range(0, len(indices), chunk):
            part = images[indices[start : start + chunk]].double().div_(255.0)
            sums += part.sum(dim=(0, 2, 3))
            squares += part.square().sum(dim=(0, 2, 3))
        count = len(indices) * images.shape[2] * images.shape[3]
        mean = sums / count
        std = (squares / count - mean.square()).clamp(min=0).sqrt().clamp(min=1 / 255)
        return cls(tuple(mean.tolist()), tuple(std.tolist()))


def split(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation indices: a fixed, seeded permutation of ``range(n)``."""
    if not 0 < val_size < n:
        raise ValueError(f"data.val_size must be between 1 and {n - 1}, got {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values
