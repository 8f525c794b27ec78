"""An exponential moving average of the weights (``ema_decay``): validation, the final test, the
``state_dict`` of every checkpoint — and so ``scripts/eval.py`` — use the averaged weights, while
training goes on with the raw ones. Checkpoints keep the raw weights and the average's state beside
them, so a resume (mid-epoch included) continues exactly.

Lightning's ``EMAWeightAveraging`` does the averaging (parameters and BatchNorm statistics, after
every optimizer step). One fix: ``trainer.test(ckpt_path=best)`` after ``fit`` restores that
checkpoint through the callbacks as well, and Lightning's callback would then load the *raw*
weights into the model, so the test would score other weights than validation chose. Outside
``fit`` a checkpoint's ``state_dict`` — the average — is exactly what is to be evaluated.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


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
