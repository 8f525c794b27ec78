"""The configured optimizer over a materialized model's parameters, in two groups, and its
schedule: the same for Lightning's ``configure_optimizers``, checkpoint checks and plain loops."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from lazytrain.config import refusing
from lazytrain.dry_run import uninitialized


def parameter_groups(
    module: nn.Module, weight_decay: float, lr: float, bias_lr_factor: float = 1.0
) -> list[dict[str, Any]]:
    """Matrices and kernels with ``weight_decay``; 1-D parameters (biases, norm scales) without
    it, as decaying them hurts, and at ``lr * bias_lr_factor`` (airbench trains BatchNorm's
    biases at a higher rate). Empty groups are left out."""
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    if bias_lr_factor != 1.0:
        groups[1]["lr"] = lr * bias_lr_factor
    return [g for g in groups if g["params"]]


def build_optimizer(
    module: nn.Module,
    optimizer: Mapping[str, Any],
    scheduler: Mapping[str, Any] | None,
    total_steps: Callable[[], int],
    bias_lr_factor: float = 1.0,
) -> tuple[torch.optim.Optimizer, LRScheduler | None]:
    """The ``optimizer`` config over :func:`parameter_groups`, and the ``scheduler`` config over
    ``total_steps()`` optimizer steps if there is one. Refuses a module with lazy parameters: an
    optimizer over them trains, but the configured init never ran."""
    lazy = uninitialized(module)
    if lazy:
        raise RuntimeError(f"configure_optimizers reached with uninitialized parameters: {lazy}")
    options = dict(optimizer)
    groups = parameter_groups(
        module, float(options.get("weight_decay", 0.0)), float(options["lr"]), bias_lr_factor
    )
    built = refusing("optimizer", options, lambda: instantiate(options)(groups))
    if not scheduler:
        return built, None
    steps = total_steps()
    return built, refusing("scheduler", scheduler, lambda: instantiate(scheduler)(built, steps))
