"""Fault injection for the tests: a callback that sends this process a real signal at a chosen
training step, so a test can interrupt a run at an exact, reproducible moment and let the
process's own handlers (Lightning's SIGTERM, lazytrain's Ctrl-C, the kernel's SIGKILL) act.

    python scripts/train.py ... +callbacks.fault._target_=tests.faults.SignalAt \
        +callbacks.fault.step=13 +callbacks.fault.signal=SIGTERM
"""

from __future__ import annotations

import os
import shutil
import signal as signals
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig


class SignalAt(L.Callback):
    """Send ``signal`` to this process when training has completed ``step`` optimizer steps —
    once per run (not again in the process that resumes it), and with ``seed`` only in the
    run of that seed, with ``job`` only in the sweep's job of that number (one job of a sweep)."""

    def __init__(
        self, step: int, signal: str, seed: int | None = None, job: int | None = None
    ) -> None:
        self.step, self.signal, self.seed, self.job = step, getattr(signals, signal), seed, job

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if self.seed is not None and pl_module.hparams.get("seed") != self.seed:
            return
        if self.job is not None and HydraConfig.get().job.num != self.job:
            return
        if trainer.global_step == self.step and trainer.ckpt_path is None:
            os.kill(os.getpid(), self.signal)


class FillDiskAt(L.Callback):
    """At ``step`` (once per run), fill the device of the run directory up to ``leave`` free
    bytes with ``<run dir>/../filler``, as another program filling a shared disk would."""

    def __init__(self, step: int, leave: int = 4096) -> None:
        self.step, self.leave = step, leave

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if trainer.global_step == self.step and trainer.ckpt_path is None:
            run_dir = Path(trainer.default_root_dir)
            free = shutil.disk_usage(run_dir).free
            with open(run_dir.parent / "filler", "wb") as f:
                f.write(b"\0" * max(free - self.leave, 0))


class SignalAtTest(L.Callback):
    """Send ``signal`` to this process as the final test starts: after the last epoch's
    checkpoint, before the run's result is written. Not again in the process that resumes it."""

    def __init__(self, signal: str) -> None:
        self.signal, self.resumed = getattr(signals, signal), False

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.resumed = trainer.ckpt_path is not None

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.resumed:
            os.kill(os.getpid(), self.signal)


class SignalAtBatch(L.Callback):
    """Send ``signal`` to this process when the first epoch has completed ``batch`` batches
    (not optimizer steps: under gradient accumulation, inside a window). Once per run."""

    def __init__(self, batch: int, signal: str) -> None:
        self.batch, self.signal = batch, getattr(signals, signal)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        batch_idx = args[-1]
        if trainer.current_epoch == 0 and batch_idx + 1 == self.batch and trainer.ckpt_path is None:
            os.kill(os.getpid(), self.signal)
