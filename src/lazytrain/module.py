"""The LightningModule: a lazy network, materialized and initialized in ``__init__``.

Materialized in ``__init__`` (not ``setup()`` or ``configure_model()``), every later consumer sees
concrete parameters: the optimizer, summaries, loggers, SWA/EMA's ``deepcopy``, ``ddp_spawn``'s
pickling, DDP's wrap. Hyperparameters are plain containers the net is rebuilt from, so checkpoints
load with ``weights_only=True`` (:mod:`lazytrain.loading`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics.classification import MulticlassAccuracy

from lazytrain.compat import CheapHooks, estimated_stepping_batches
from lazytrain.config import ConfigValueError
from lazytrain.distributed import leave_process_group_at_exit
from lazytrain.dry_run import ShapeReport, apply_init
from lazytrain.epoch_state import EpochState
from lazytrain.exact_resume import ExactResume
from lazytrain.loading import load_from_checkpoint
from lazytrain.models import build_net, to_channels_last
from lazytrain.optimizers import build_optimizer


class LazyClassifier(CheapHooks):
    """Classifier around any lazy ``net`` declared by a Hydra config (``model``)."""

    def __init__(
        self,
        model: dict[str, Any],
        init: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        test_time_flip: bool = False,
        bias_lr_factor: float = 1.0,
        num_classes: int = 10,
        input_shape: Sequence[int] = (1, 28, 28),
        sample_size: int = 2,
        seed: int = 0,
        sample: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= label_smoothing <= 1:  # (torch's refusal would come at the first step)
            raise ConfigValueError(f"label_smoothing={label_smoothing}: give a value in [0, 1]")
        self.save_hyperparameters(ignore=["sample"])
        self.net: nn.Module = build_net(model, num_classes)
        if sample is None:
            # Rebuilding from a checkpoint: only the shape matters, the weights and buffers load
            # after. As many rows as the training run's sample: a layer fitted on it (LazyPCA)
            # checks that there are enough.
            sample = torch.zeros(sample_size, *input_shape)
        # The dry run: materialize, check the logits' shape, init - once (idempotent).
        self.shape_report: ShapeReport | None = apply_init(
            self.net, sample, instantiate(init), seed=seed, num_classes=num_classes
        )
        if channels_last:
            to_channels_last(self.net)
        # torchmetrics for evaluation; training accuracy is a plain on-device count (a
        # torchmetrics update costs 5x more, per step).
        self.val_acc, self.test_acc = (
            MulticlassAccuracy(num_classes, average="micro", validate_args=False) for _ in range(2)
        )
        self.epoch_state = EpochState()
        self.exact_resume = ExactResume(self.epoch_state)

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: str | Path | IO[bytes], *args: Any, **kwargs: Any
    ) -> LazyClassifier:
        """Lightning's ``load_from_checkpoint`` (same arguments, plus ``trusted_targets``), safe
        for a file from elsewhere: allowlisted targets only (:mod:`lazytrain.loading`)."""
        return load_from_checkpoint(cls, checkpoint_path, *args, **kwargs)

    @property
    def lr(self) -> float:
        """The configured learning rate; settable, so ``Tuner(trainer).lr_find(model)`` works."""
        return self.hparams.optimizer["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.hparams.optimizer["lr"] = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def evaluation_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The logits validation, test and ``scripts/eval.py`` score: with ``test_time_flip``
        the mean of the image's and its mirror image's (clothes look alike mirrored, and the
        training flips them too), which costs a second forward pass."""
        logits = self.net(x)
        if self.hparams.test_time_flip:
            logits = (logits + self.net(x.flip(-1))) / 2
        return logits

    def setup(self, stage: str) -> None:
        # In every rank (ddp_spawn's workers too), once its process group exists.
        leave_process_group_at_exit()

    def on_train_epoch_start(self) -> None:
        self.epoch_state.reset(self.device)  # (not for an epoch resumed mid-way: sums are loaded)

    def on_train_start(self) -> None:
        self.exact_resume.start_training(self)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint.update(self.exact_resume.state_dict(self))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.exact_resume.load_state_dict(checkpoint)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        self.epoch_state.update(loss, logits, y, self.global_step)
        # On the steps Lightning writes to the loggers (counted over the run, not the epoch), so
        # each point lands at its own step and none is dropped at an epoch's end; 0: none.
        every = self.trainer.log_every_n_steps
        if every and (self.global_step + 1) % every == 0:
            self.epoch_state.check_finite(self.current_epoch)
            # sync_dist: under DDP the loss of the global batch, the same on every rank (one
            # all-reduce every log_every_n_steps; free on one device).
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, sync_dist=True)
            # the schedule as it is applied, step by step (warm-up, decay)
            self.log(
                "train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False
            )
        return loss

    def on_validation_epoch_start(self) -> None:
        # before validation, so no checkpoint is written from bad weights
        self.epoch_state.check_finite(self.current_epoch)

    def on_train_epoch_end(self) -> None:
        self.epoch_state.check_finite(self.current_epoch)
        for name, value in self.epoch_state.metrics().items():
            # not on the progress bar: shown all next epoch, it would read as that epoch's loss
            self.log(name, value, sync_dist=True)

    def _evaluate(
        self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, acc: MulticlassAccuracy
    ):
        x, y = batch
        logits = self.evaluation_logits(x)
        acc.update(logits, y)
        # sync_dist: the mean over every rank's shard (synced once per epoch, not per step; free
        # on one device). The accuracy is a torchmetrics Metric, which syncs itself.
        loss = F.cross_entropy(logits, y)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", sync_dist=True)
        self.log(f"{stage}/acc", acc, prog_bar=stage == "val")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_acc)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_acc)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        optimizer, schedule = self.build_optimizer(lambda: estimated_stepping_batches(self.trainer))
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def build_optimizer(
        self, total_steps: Callable[[], int]
    ) -> tuple[torch.optim.Optimizer, LRScheduler | None]:
        """The configured optimizer and schedule (:mod:`lazytrain.optimizers`): a plain loop or a
        checkpoint check gets exactly what Lightning gets."""
        hp = self.hparams
        return build_optimizer(self, hp.optimizer, hp.scheduler, total_steps, hp.bias_lr_factor)
