"""What a checkpoint adds to Lightning's own so that a resume continues exactly where it stopped.

Lightning restores the weights, optimizer, schedule, loops and callbacks. It does not know three
things the module holds in flight:

- the epoch's running sums, its first bad step and the RNG (:class:`~lazytrain.epoch_state.EpochState`);
- the gradients of an unfinished accumulation window (``accumulate_grad_batches``): without them
  the resumed window would step on part of its batches;
- what the last validation scored: a run stopped after its last epoch's checkpoint validates
  nothing more when resumed, and still reports what a straight run would.

Their keys in a checkpoint: ``epoch_sums``, ``rng``, ``accumulated_gradients``, ``last_validation``
(each optional, so older checkpoints load and resume).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from lazytrain.compat import batches_completed
from lazytrain.epoch_state import EpochState

LAST_VALIDATION = "last_validation"  # {"val/acc": ..., "val/loss": ...}
ACCUMULATED = "accumulated_gradients"  # only in a checkpoint saved inside an accumulation window


def validation_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The last validation's metrics (``val/...``), as floats."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}


class ExactResume:
    """The module's in-flight state: saved with each checkpoint, put back when training starts."""

    def __init__(self, epoch: EpochState) -> None:
        self.epoch = epoch
        self._accumulated: list[torch.Tensor | None] | None = None

    def state_dict(self, module: L.LightningModule) -> dict[str, Any]:
        trainer = module.trainer
        state = self.epoch.state_dict(module.device)
        state[LAST_VALIDATION] = validation_metrics(trainer)
        # (an epoch's last batch always steps, closing its window: nothing to keep there)
        inside_window = batches_completed(trainer) % trainer.accumulate_grad_batches
        if inside_window and not trainer.is_last_batch:  # one more copy of the weights
            state[ACCUMULATED] = [p.grad for p in module.parameters()]
        return state

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """Read before the strategy moves the model: applied by :meth:`start_training`."""
        self.epoch.load_state_dict(checkpoint)
        self._accumulated = checkpoint.get(ACCUMULATED)

    def start_training(self, module: L.LightningModule) -> None:
        self.epoch.start_training(module.device)
        if self._accumulated is not None:  # resumed inside an accumulation window
            for p, grad in zip(module.parameters(), self._accumulated, strict=True):
                p.grad = None if grad is None else grad.to(p.device)
            self._accumulated = None
