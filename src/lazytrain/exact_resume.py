"""What a checkpoint adds to Lightning's own so that a resume continues exactly where it stopped.

Lightning restores the weights, optimizer, schedule, loops and callbacks. It does not know three
things the module holds in flight:

- the epoch's running sums, its first bad step and the RNG (:class:`~lazytrain.epoch_state.EpochState`);
- the gradients of an unfinished accumulation window (``accumulate_grad_batches``): without them
  the resumed window would step on part of its batches. Under DDP each rank holds its own (they
  are all-reduced only at the window's last batch); rank 0's go into the checkpoint, every other
  rank writes its own file beside it (``.last.ckpt.rank1-window7.2.pt``), named after the window,
  so a checkpoint never meets another window's gradients. No collective: a stop runs this too;
- what the last validation scored: a run stopped after its last epoch's checkpoint validates
  nothing more when resumed, and still reports what a straight run would.

Their keys in a checkpoint: ``epoch_sums``, ``rng``, ``accumulated_gradients``,
``accumulation_window``, ``last_validation`` (each optional, so older checkpoints load and resume).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch

from lazytrain.atomic_write import atomic_write
from lazytrain.compat import batches_completed
from lazytrain.epoch_state import EpochState

log = logging.getLogger(__name__)

LAST_VALIDATION = "last_validation"  # {"val/acc": ..., "val/loss": ...}
ACCUMULATED = "accumulated_gradients"  # only in a checkpoint saved inside an accumulation window
WINDOW = "accumulation_window"  # and under DDP: {"id": ..., "world_size": ...} of its rank files


def validation_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The last validation's metrics (``val/...``), as floats."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}


def open_window(trainer: L.Trainer) -> str | None:
    """Which place inside an accumulation window the fit loop is at (``"<step>.<batches>"``), or
    None at a window's boundary (an epoch's last batch always steps, closing its window)."""
    inside = batches_completed(trainer) % trainer.accumulate_grad_batches
    if not inside or trainer.is_last_batch:
        return None
    return f"{trainer.global_step}.{inside}"


def rank_window_file(checkpoint: str | Path, rank: int, window: str) -> Path:
    path = Path(checkpoint)
    return path.with_name(f".{path.name}.rank{rank}-window{window}.pt")


def save_rank_window(trainer: L.Trainer, checkpoint: str) -> None:
    """Before ``checkpoint`` is saved, on every rank: a DDP rank other than 0, inside a window,
    writes its gradients so far beside it."""
    window = open_window(trainer)
    if window is None or trainer.global_rank == 0:
        return
    grads = [p.grad for p in trainer.lightning_module.parameters()]
    path = rank_window_file(checkpoint, trainer.global_rank, window)
    atomic_write(path, lambda f: torch.save(grads, f))


def drop_stale_rank_windows(trainer: L.Trainer, checkpoint: str) -> None:
    """After ``checkpoint`` is saved: this rank's files of the windows it no longer holds."""
    if trainer.global_rank == 0:  # (its window is in the checkpoint itself)
        return
    window = open_window(trainer)
    keep = rank_window_file(checkpoint, trainer.global_rank, window) if window else None
    stale = rank_window_file(checkpoint, trainer.global_rank, "*")
    for path in stale.parent.glob(stale.name):
        if path != keep:
            path.unlink(missing_ok=True)


class ExactResume:
    """The module's in-flight state: saved with each checkpoint, put back when training starts."""

    def __init__(self, epoch: EpochState) -> None:
        self.epoch = epoch
        self._accumulated: list[torch.Tensor | None] | None = None
        self._window: dict[str, Any] | None = None

    def state_dict(self, module: L.LightningModule) -> dict[str, Any]:
        trainer = module.trainer
        state = self.epoch.state_dict(module.device)
        state[LAST_VALIDATION] = validation_metrics(trainer)
        window = open_window(trainer)
        if window is not None:  # one more copy of the weights
            state[ACCUMULATED] = [p.grad for p in module.parameters()]
            if trainer.world_size > 1:
                state[WINDOW] = {"id": window, "world_size": trainer.world_size}
        return state

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """Read before the strategy moves the model: applied by :meth:`start_training`."""
        self.epoch.load_state_dict(checkpoint)
        self._accumulated = checkpoint.get(ACCUMULATED)
        self._window = checkpoint.get(WINDOW)

    def start_training(self, module: L.LightningModule) -> None:
        self.epoch.start_training(module.device)
        if self._accumulated is not None:  # resumed inside an accumulation window
            grads = self._rank_window(module.trainer) or self._accumulated
            for p, grad in zip(module.parameters(), grads, strict=True):
                p.grad = None if grad is None else grad.to(p.device)
            self._accumulated = self._window = None

    def _rank_window(self, trainer: L.Trainer) -> list[torch.Tensor | None] | None:
        """This DDP rank's gradients of the window the checkpoint was saved in (rank 0's are in
        the checkpoint itself)."""
        if self._window is None or trainer.global_rank == 0:
            return None
        saved_by = self._window["world_size"]
        path = rank_window_file(trainer.ckpt_path, trainer.global_rank, self._window["id"])
        if saved_by == trainer.world_size and path.is_file():
            return torch.load(path, map_location="cpu", weights_only=True)
        log.warning(
            "rank %d resumes its accumulation window with rank 0's gradients (%s): the window's "
            "step is not exact",
            trainer.global_rank,
            f"saved by {saved_by} processes" if saved_by != trainer.world_size else f"no {path}",
        )
        return None
