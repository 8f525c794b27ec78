"""Batch augmentation on the training device: random crop with padding, horizontal flip, random
erasing — each a few tensor ops over the whole batch, no PIL, no per-sample Python.

Randomness comes from a generator the caller seeds per epoch, so a resumed run sees the same
augmented batches as an uninterrupted one. The generator lives on the images' device and nothing
here reads a value back to the host or makes a tensor from host data: on a GPU, augmenting a
batch queues behind the step before it instead of waiting for it (``tests/probes.py`` checks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """``crop_padding``: pad by p pixels and crop back at a random offset (0 = off);
    ``flip``: mirror half the images left–right; ``erasing``: probability of zeroing one random
    rectangle (2–25% of the image, aspect 0.3–3.3, as in Zhong et al. 2017) per image."""

    crop_padding: int = 0
    flip: bool = False
    erasing: float = 0.0

    def __post_init__(self) -> None:
        if self.crop_padding < 0 or not 0.0 <= self.erasing <= 1.0:
            raise ValueError(
                f"augment: crop_padding must be >= 0 and erasing in [0, 1], got {self}"
            )

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, generator)
        if self.flip:
            flip = _rand(len(x), generator, x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if self.erasing:
            x = random_erasing(x, self.erasing, generator)
        return x


def _rand(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``n`` uniform numbers drawn on ``device``, by a generator that lives there."""
    return torch.rand(n, generator=generator, device=device)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad with the batch's minimum (the background of normalized Fashion-MNIST) and take each
    image's window at its own random offset, by one gather. The minimum stays a tensor: padding
    with ``float(x.min())`` would wait for the device."""
    n, c, h, w = x.shape
    border = torch.ones(1, 1, h, w, dtype=torch.bool, device=x.device)
    border = F.pad(~border, (padding,) * 4, value=True)
    padded = torch.where(border, x.amin(), F.pad(x, (padding,) * 4))
    top = (_rand(n, generator, x.device) * (2 * padding + 1)).long()
    left = (_rand(n, generator, x.device) * (2 * padding + 1)).long()
    rows = (top[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(
        n, c, h, w + 2 * padding
    )
    out = padded.gather(2, rows)
    cols = (left[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(n, c, h, w)
    return out.gather(3, cols)


def random_erasing(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    area = (0.02 + 0.23 * _rand(n, generator, x.device)) * h * w
    aspect = torch.exp(math.log(0.3) + math.log(3.3 / 0.3) * _rand(n, generator, x.device))
    eh = (area * aspect).sqrt().clamp(1, h).long()
    ew = (area / aspect).sqrt().clamp(1, w).long()
    top = (_rand(n, generator, x.device) * (h - eh + 1)).long()
    left = (_rand(n, generator, x.device) * (w - ew + 1)).long()
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    inside_y = (ys >= top[:, None]) & (ys < (top + eh)[:, None])
    inside_x = (xs >= left[:, None]) & (xs < (left + ew)[:, None])
    erase = (
        inside_y[:, :, None]
        & inside_x[:, None, :]
        & (_rand(n, generator, x.device) < p)[:, None, None]
    )
    return x.masked_fill(erase[:, None], 0.0)
