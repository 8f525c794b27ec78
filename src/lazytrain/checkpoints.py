"""Checkpoints that survive interruptions and refuse to overwrite good weights with bad ones."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stops, its last good checkpoint stays."""


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's parameters do not fit the configured model."""


class LastCheckpoint(ModelCheckpoint):
    """``checkpoints/last.ckpt``: the run's latest state, written after every epoch and when the
    run is interrupted (Ctrl-C, SIGTERM from a scheduler, a crash), so ``resume=<run dir>``
    continues from there — except after a non-finite loss, when the weights are garbage and the
    last good ``last.ckpt`` must survive.

    (``ModelCheckpoint(save_last=True)`` is not enough: since Lightning 2.6 it refreshes
    ``last.ckpt`` only in epochs that also saved a top-k checkpoint.)
    """

    def __init__(self, dirpath: str | Path, **kwargs) -> None:
        super().__init__(
            dirpath=dirpath,
            filename="last",
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
            **kwargs,
        )

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, NonFiniteLossError) or trainer.sanity_checking:
            return
        path = Path(self.dirpath) / f"last{self.FILE_EXTENSION}"
        trainer.save_checkpoint(path)
        log.warning(
            "%s at step %d: saved %s; continue with: python scripts/train.py resume=%s",
            type(exception).__name__, trainer.global_step, path, Path(self.dirpath).parent,
        )  # fmt: skip
