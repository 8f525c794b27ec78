"""What the recipes train with: batch augmentation on the device and the LR schedules."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from lazytrain.augment import Augment, random_crop
from lazytrain.datamodule import DeviceBatches
from lazytrain.schedules import one_cycle, warmup_cosine


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_crop_shifts_each_image_within_the_padding():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 14, 14] = 1.0  # one bright pixel per image
    out = random_crop(x, 4, gen())
    assert out.shape == x.shape
    ys, xs = (out[:, 0] == 1.0).nonzero()[:, 1:].T
    assert ys.min() >= 10 and ys.max() <= 18 and xs.min() >= 10 and xs.max() <= 18
    assert len(set(zip(ys.tolist(), xs.tolist(), strict=True))) > 10  # offsets differ per image


def test_flip_mirrors_about_half_and_erasing_zeros_rectangles():
    x = torch.arange(28.0).expand(200, 1, 28, 28).clone()
    flipped = Augment(flip=True)(x, gen())
    mirrored = (flipped[:, 0, 0, 0] == 27).float().mean().item()
    assert 0.35 < mirrored < 0.65
    erased = Augment(erasing=1.0)(x + 1, gen())
    zero_fraction = (erased == 0).float().mean(dim=(1, 2, 3))
    assert (zero_fraction > 0).all() and (zero_fraction < 0.35).all()


def test_augmentation_is_seeded_per_epoch_and_only_on_training_batches():
    x = torch.randint(0, 255, (128, 1, 28, 28), dtype=torch.uint8)
    y = torch.arange(128)
    epoch = [0]
    batches = DeviceBatches(
        x, y, 32, shuffle=True, epoch=lambda: epoch[0], augment=Augment(crop_padding=2, flip=True)
    )
    first = [b.clone() for b, _ in batches]
    assert all(torch.equal(a, b) for a, b in zip(first, [b for b, _ in batches], strict=True))
    epoch[0] = 1
    assert not torch.equal(first[0], next(iter(batches))[0])
    with pytest.raises(ValueError, match="crop_padding must be >= 0"):
        Augment(crop_padding=-1)


@pytest.mark.parametrize(
    "schedule", [partial(warmup_cosine, warmup_fraction=0.1), partial(one_cycle)]
)
def test_schedules_span_exactly_the_run(schedule):
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    sched = schedule(optimizer, total_steps=100)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        sched.step()
    peak = max(lrs)
    assert lrs.index(peak) < 50 and lrs[-1] < 0.05 * peak and lrs[0] < peak
