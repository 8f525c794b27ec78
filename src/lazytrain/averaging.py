"""Averages of the weights: an exponential moving average (``ema_decay``) and stochastic weight
averaging (``callbacks=swa``), each resuming exactly.

EMA: validation, the final test, the
``state_dict`` of every checkpoint — and so ``scripts/eval.py`` — use the averaged weights, while
training goes on with the raw ones. Checkpoints keep the raw weights and the average's state beside
them, so a resume (mid-epoch included) continues exactly.

Lightning's ``EMAWeightAveraging`` does the averaging (parameters and BatchNorm statistics, after
every optimizer step). One fix: ``trainer.test(ckpt_path=best)`` after ``fit`` restores that
checkpoint through the callbacks as well, and Lightning's callback would then load the *raw*
weights into the model, so the test would score other weights than validation chose. Outside
``fit`` a checkpoint's ``state_dict`` — the average — is exactly what is to be evaluated.

SWA is Lightning's ``StochasticWeightAveraging`` with two fixes for a run resumed inside its
averaging epochs, which otherwise trains on with other learning rates than an uninterrupted run:

- it builds its ``SWALR`` schedule in ``on_train_epoch_start``, which Lightning does not call for
  an epoch resumed mid-way: no schedule stepped at that epoch's end;
- the rebuilt schedule's first step overwrites the learning rates the checkpoint restored (it
  anneals from whatever rate the optimizer holds); its own state is loaded only after.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging, StochasticWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn

from lazytrain.compat import batches_completed


class EMA(EMAWeightAveraging):
    """EMA of the weights with ``decay`` per optimizer step (0.99: about the last 100 steps)."""

    def __init__(self, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), e.g. 0.99; got {decay}")
        super().__init__(decay=decay)

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class SWA(StochasticWeightAveraging):
    """Lightning's SWA (same arguments), resuming exactly."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if batches_completed(trainer) and trainer.current_epoch <= self.swa_end:
            self.on_train_epoch_start(trainer, pl_module)  # resumed mid-epoch: Lightning won't

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        resumed = not self._initialized and self._scheduler_state is not None
        restored = [group["lr"] for group in trainer.optimizers[0].param_groups]
        super().on_train_epoch_start(trainer, pl_module)
        if resumed and self._initialized:  # SWALR was just built again, its state loaded
            for group, lr in zip(trainer.optimizers[0].param_groups, restored, strict=True):
                group["lr"] = lr
