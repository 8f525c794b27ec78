"""Learning-rate schedules over the run's total optimizer steps (known only once the trainer
has the data: ``trainer.estimated_stepping_batches``). Each is ``schedule(optimizer, total_steps,
**options)``; configs bind the options with ``_partial_: true``."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR


def warmup_cosine(
    optimizer: Optimizer, total_steps: int, warmup_fraction: float = 0.05, final_factor: float = 0.0
) -> LRScheduler:
    """Linear warm-up from 0 to the configured lr, then cosine decay to ``final_factor``·lr."""
    if not 0 <= warmup_fraction <= 1:
        raise ValueError(f"warmup_fraction={warmup_fraction} is no fraction of the run's steps")
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def one_cycle(
    optimizer: Optimizer, total_steps: int, peak_factor: float = 10.0, warmup_fraction: float = 0.3
) -> LRScheduler:
    """Smith's one-cycle: up to ``peak_factor``·lr, then down far below the start."""
    peaks = [group["lr"] * peak_factor for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=peaks, total_steps=total_steps, pct_start=warmup_fraction)
