"""The run's story as log lines (console and ``train.log``) and its clock: how long the job took to
reach its first training step, per epoch its wall time (also the ``time/epoch_seconds`` scalar)
and metrics — so ``train.log`` reads like a progress report even with the progress bar off — and
the whole run's wall time, from process start to the test accuracy (``time/run_seconds``).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import lightning as L
import torch

from lazytrain.tracking import hardware

log = logging.getLogger(__name__)
_IMPORTED = time.time()  # (torch and Lightning are imported above: its start-up is theirs)
_job_start: float | None = None  # time.time() when this process's current job started
_first_job = True  # whether the current job started with the process


def process_age() -> float:
    """Seconds since this process started (Linux ``/proc``; else since this module's import)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: start time, in clock ticks
        lines = Path("/proc/stat").read_text().splitlines()
        boot = next(int(line.split()[1]) for line in lines if line.startswith("btime"))
        return time.time() - (boot + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time() - _IMPORTED


def start_job_clock() -> None:
    """Start this job's clock. A process's first job starts with the process (its imports are
    what a person waits for after pressing Enter); each later job of a multirun when the launcher
    hands it over."""
    global _job_start, _first_job
    _first_job = _job_start is None
    _job_start = time.time() - (process_age() if _first_job else 0.0)


def job_age() -> float:
    """Seconds since this job started (since the process started, outside a job)."""
    return process_age() if _job_start is None else time.time() - _job_start


def import_seconds() -> float:
    """Seconds from process start until torch and Lightning were imported: the part of start-up
    that is theirs (the rest, to the first step, is lazytrain's and Hydra's). 0 for a later job
    of a multirun, which imports nothing."""
    if not _first_job:
        return 0.0
    return process_age() - (time.time() - _IMPORTED)


class ProgressLog(L.Callback):
    """One line when training starts (seconds since the job started, and on what), and one per
    epoch: its wall time, logged as ``time/epoch_seconds`` too, and its metrics. At the end of the
    test, the run's wall time as ``time/run_seconds``: what a speedrun is measured by, and a
    column of the HPARAMS row and of ``scripts/compare.py``'s leaderboard."""

    def __init__(self) -> None:
        self._epoch_start = 0.0
        # Wall time of the processes a resumed run ran in before this one (up to the checkpoint).
        self._earlier_seconds = self._restored_seconds = 0.0

    def run_seconds(self) -> float:
        """The run's wall time so far: this job's, plus that of the jobs it was resumed from."""
        return self._earlier_seconds + job_age()

    def state_dict(self) -> dict[str, float]:
        return {
            "epoch_seconds": time.perf_counter() - self._epoch_start,
            "run_seconds": self.run_seconds(),
        }

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        # An epoch resumed mid-way (no on_train_epoch_start) counts the time it had already run.
        self._epoch_start = time.perf_counter() - state_dict["epoch_seconds"]
        self._restored_seconds = state_dict.get("run_seconds", 0.0)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Only a fit's restore continues the run's clock; the test's restore of the best
        # checkpoint (after fit) loads this state too, and must not count that time twice.
        self._earlier_seconds = self._restored_seconds

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("time/run_seconds", self.run_seconds(), sync_dist=True)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        if trainer.current_epoch != 0:
            return
        # per job of a multirun; a process's first job: since the process started
        startup, imports = job_age(), import_seconds()
        # the same keys on every rank: sync_dist is a collective (the mean over the ranks)
        pl_module.log("time/startup_seconds", startup, on_epoch=True, sync_dist=True)
        pl_module.log("time/import_seconds", imports, on_epoch=True, sync_dist=True)
        if trainer.global_rank == 0:
            log.info(
                "first training step %.2f s after job start (%.2f s of it importing torch and "
                "Lightning; %s)",
                startup,
                imports,
                hardware(trainer),
            )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = time.perf_counter() - self._epoch_start
        # sync_dist: the mean over ranks (they wait for each other at every step anyway)
        pl_module.log("time/epoch_seconds", seconds, on_epoch=True, sync_dist=True)
        # Callbacks run before the module's on_train_epoch_end, where it logs this epoch's
        # training metrics: ask the module for them rather than show last epoch's, averaged over
        # the ranks as its sync_dist logging does (a collective, so on every rank; free on one).
        state = getattr(pl_module, "epoch_state", None)
        train = state.metrics() if state is not None else {}
        for k, v in train.items():
            if isinstance(v, torch.Tensor):
                train[k] = trainer.strategy.reduce(v, reduce_op="mean")
        if trainer.global_rank == 0:
            metrics = {
                k: v
                for k, v in trainer.callback_metrics.items()
                if "step" not in k and not k.startswith("time/")
            }
            metrics.update(train)
            shown = ", ".join(f"{k} {float(v):.4g}" for k, v in sorted(metrics.items()))
            log.info(
                "epoch %d (step %d, %.1f s): %s",
                trainer.current_epoch,
                trainer.global_step,
                seconds,
                shown,
            )
