"""What a run may monitor: the metrics lazytrain logs, by name, which way each improves, and
when a validation metric is there to watch.

A checkpoint's, early stopping's or a sweeper's metric is a string in a config. A typo
(``callbacks.checkpoint.monitor=val/accuracy``) otherwise surfaces as Lightning's traceback after
the first epoch, or never (``optimized_metric`` then comes back NaN from every trial); the wrong
direction (``optimized_metric=val/loss`` under early stopping's ``mode: max``) keeps the worst
epoch without a word. Both are refused before anything is written. A name outside lazytrain's
own namespaces (``lr-AdamW`` from Lightning's ``LearningRateMonitor``, a user's callback's) is
not lazytrain's to judge and passes.

A fit can end before its first validation (``trainer.max_steps`` inside the first epoch,
``trainer.limit_val_batches=0``); then there is no validation metric yet, and Lightning's
callbacks fail (EarlyStopping: "conditioned on metric ... which is not available") or warn,
blaming the module (ModelCheckpoint: "Did you call `log`?"). lazytrain's wait for one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping
from omegaconf import DictConfig

NAMESPACES = ("train/", "val/", "test/", "time/")
# What a fit leaves in trainer.callback_metrics (the module's and the callbacks' logs), with
# the mode that keeps the best value; None: no better or worse (a test checks the names
# against a real fit's).
FIT_METRICS: dict[str, str | None] = {
    "val/acc": "max",
    "val/loss": "min",
    "train/acc": "max",
    "train/loss_epoch": "min",
    "train/loss_step": "min",
    "train/lr": None,
    "time/epoch_seconds": None,
    "time/startup_seconds": None,
    "time/import_seconds": None,
}
# What ``train()`` returns a sweeper: the last validation's metrics and the test's.
FINAL_METRICS: dict[str, str | None] = {
    "val/acc": "max",
    "val/loss": "min",
    "test/acc": "max",
    "test/loss": "min",
    "time/run_seconds": None,
}
LIGHTNING_DEFAULT_MODE = "min"  # ModelCheckpoint's and EarlyStopping's


class MonitorError(ValueError):
    """A monitored metric lazytrain never logs, or one watched in the direction that keeps the
    worst value."""


def check_monitors(cfg: DictConfig) -> None:
    """Refuse a monitored name in lazytrain's namespaces that it does not log, or a callback's
    ``mode`` that takes the worst value of its metric for the best."""
    if (metric := cfg.get("optimized_metric")) is not None:
        check_name("optimized_metric", metric, FINAL_METRICS, "a run returns")
    for key, callback in monitoring_callbacks(cfg.get("callbacks") or {}):
        metric, mode = callback["monitor"], callback.get("mode", LIGHTNING_DEFAULT_MODE)
        check_name(f"callbacks.{key}.monitor", metric, FIT_METRICS, "a fit logs")
        check_mode(f"callbacks.{key}.monitor", metric, f"callbacks.{key}.mode", mode, FIT_METRICS)


def check_search_direction(cfg: DictConfig) -> None:
    """A sweeper's ``direction`` (Optuna's ``maximize``/``minimize``) against ``optimized_metric``."""
    direction = cfg.hydra.sweeper.get("direction")
    if direction in ("maximize", "minimize"):  # (a list: several objectives, not lazytrain's)
        metric = cfg.get("optimized_metric")
        check_mode("optimized_metric", metric, "hydra.sweeper.direction", direction, FINAL_METRICS)


def check_name(key: str, metric: Any, known: Mapping[str, str | None], where: str) -> None:
    if str(metric).startswith(NAMESPACES) and metric not in known:
        raise MonitorError(
            f"{key}={metric}: {where} no such metric; give one of {', '.join(known)}"
        )


def check_mode(
    key: str, metric: Any, mode_key: str, mode: str, known: Mapping[str, str | None]
) -> None:
    """``mode`` (``max``/``min``, or a sweeper's ``maximize``/``minimize``) against the one that
    takes ``metric``'s best value for the best."""
    best = known.get(metric)
    if best is None or mode.startswith(best):
        return
    right = mode.replace(mode[:3], best, 1)
    raise MonitorError(
        f"{key}={metric} with {mode_key}={mode} takes the "
        f"{'highest' if mode.startswith('max') else 'lowest'} {metric} for the best: set "
        f"{mode_key}={right}"
    )


def monitoring_callbacks(callbacks: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The configured callbacks that watch a metric (``monitor`` set), by their config key."""
    for key, callback in callbacks.items():
        if isinstance(callback, Mapping) and callback.get("monitor") is not None:
            yield key, callback


class WaitsForValidation(L.Callback):
    """For a callback that watches ``monitor`` at each training epoch's end, as Lightning's
    ``ModelCheckpoint`` and ``EarlyStopping`` do: while the metric is missing and no validation
    has ended in this fit, the epoch's check waits. A metric still missing after a validation
    is Lightning's error, as before."""

    _validated = False

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validated = False
        super().on_fit_start(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validated = self._validated or not trainer.sanity_checking
        super().on_validation_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        monitor = getattr(self, "monitor", None)
        if monitor is None or monitor in trainer.callback_metrics or self._validated:
            super().on_train_epoch_end(trainer, pl_module)


class EarlyStopping(WaitsForValidation, LightningEarlyStopping):
    """Lightning's ``EarlyStopping``, which waits for the fit's first validation."""
