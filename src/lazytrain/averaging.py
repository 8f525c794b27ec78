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
``fit`` a checkpoint's ``state_dict`` — the average — is exactly what is to be evaluated. And
torch's ``AveragedModel`` asks the device for its count twice an update (``n_averaged == 0``,
``> 0``): two host syncs every training step; :class:`HostCountedAverage` keeps the count on the
host as well.

SWA is Lightning's ``StochasticWeightAveraging`` with two fixes for a run resumed inside its
averaging epochs, which otherwise trains on with other learning rates than an uninterrupted run:

- it builds its ``SWALR`` schedule in ``on_train_epoch_start``, which Lightning does not call for
  an epoch resumed mid-way: no schedule stepped at that epoch's end;
- the rebuilt schedule's first step overwrites the learning rates the checkpoint restored (it
  anneals from whatever rate the optimizer holds); its own state is loaded only after.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import chain
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, StochasticWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torch.optim.swa_utils import AveragedModel

from lazytrain.compat import average_model, batches_completed, swa_schedule_state
from lazytrain.config import ConfigValueError


class EMA(EMAWeightAveraging):
    """EMA of the weights with ``decay`` per optimizer step (0.99: about the last 100 steps)."""

    def __init__(self, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigValueError(f"ema_decay={decay}: give a value in (0, 1), e.g. 0.99")
        super().__init__(decay=decay)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        built = average_model(self)
        if built is not None:
            built.__class__ = HostCountedAverage  # same state, a sync-free update

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class HostCountedAverage(AveragedModel):
    """torch's ``AveragedModel`` whose update reads its count from the host: the same
    operations, no host sync. The count is read from the device once per process, after a
    checkpoint loads ``n_averaged``."""

    host_count: int | None = None

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self.host_count = None
        return super().load_state_dict(*args, **kwargs)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        if self.avg_fn is None and self.multi_avg_fn is None:  # torch's default: SWA's mean
            return super().update_parameters(model)
        count = int(self.n_averaged) if self.host_count is None else self.host_count
        if self.use_buffers:
            pairs = zip(chain(self.module.parameters(), self.module.buffers()),
                        chain(model.parameters(), model.buffers()), strict=True)  # fmt: skip
        else:
            pairs = zip(self.module.parameters(), model.parameters(), strict=True)
        groups: dict[tuple, tuple[list, list]] = defaultdict(lambda: ([], []))
        for kept, current in pairs:
            kept_list, current_list = groups[kept.device, kept.dtype]
            kept_list.append(kept.detach())
            current_list.append(current.detach().to(kept.device))
        for kept_list, current_list in groups.values():
            if count == 0:
                for kept, current in zip(kept_list, current_list, strict=True):
                    kept.copy_(current)
            elif self.multi_avg_fn is not None:
                self.multi_avg_fn(kept_list, current_list, self.n_averaged)
            else:
                for kept, current in zip(kept_list, current_list, strict=True):
                    kept.copy_(self.avg_fn(kept, current, self.n_averaged))
        if not self.use_buffers:  # kept equal to the model's, as torch does
            for kept, current in zip(self.module.buffers(), model.buffers(), strict=True):
                kept.detach().copy_(current.detach().to(kept.device))
        self.n_averaged += 1
        self.host_count = count + 1


class SWA(StochasticWeightAveraging):
    """Lightning's SWA (same arguments), resuming exactly."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if batches_completed(trainer) and trainer.current_epoch <= self.swa_end:
            self.on_train_epoch_start(trainer, pl_module)  # resumed mid-epoch: Lightning won't

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        built, loading = swa_schedule_state(self)
        restored = [group["lr"] for group in trainer.optimizers[0].param_groups]
        super().on_train_epoch_start(trainer, pl_module)
        if loading and not built and swa_schedule_state(self)[0]:  # rebuilt, its state loaded
            for group, lr in zip(trainer.optimizers[0].param_groups, restored, strict=True):
                group["lr"] = lr
