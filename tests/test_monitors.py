"""Monitored metrics: the names lazytrain declares are the ones a real fit logs, and a name it
never logs, or a mode that takes the worst value for the best, is refused before training."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from lazytrain.config import compose_config
from lazytrain.monitors import (
    FINAL_METRICS,
    FIT_METRICS,
    NAMESPACES,
    MonitorError,
    check_monitors,
    check_search_direction,
)
from lazytrain.train import train

from .helpers import assert_refused, make_cfg, run_script, synthetic


class FitMetrics(L.Callback):
    """What the fit left in ``trainer.callback_metrics``."""

    names: set[str] = set()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.names = set(trainer.callback_metrics)


def test_the_declared_metrics_are_those_a_fit_logs_and_returns(tmp_path, synthetic_dir):
    cfg = make_cfg(
        tmp_path, synthetic_dir, "callbacks.checkpoint.monitor=train/loss_epoch",
        "callbacks.checkpoint.mode=min",
    )  # fmt: skip
    seen = FitMetrics()
    train(cfg, callbacks=[seen])
    assert {name for name in seen.names if name.startswith(NAMESPACES)} == set(FIT_METRICS)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert set(result["metrics"]) == set(FINAL_METRICS)
    # a training metric is monitorable at the epoch's end: the best epoch by it was kept
    assert list((tmp_path / "run" / "checkpoints").glob("best-epoch*.ckpt"))


def test_a_training_metric_is_watched_with_no_validation_at_all(tmp_path, synthetic_dir):
    """A checkpoint and early stopping wait for a validation only for a metric not there yet."""
    cfg = make_cfg(
        tmp_path, synthetic_dir, "trainer.limit_val_batches=0", "callbacks=early_stopping",
        "callbacks.early_stopping.monitor=train/loss_epoch", "callbacks.early_stopping.mode=min",
        "callbacks.checkpoint.monitor=train/loss_epoch", "callbacks.checkpoint.mode=min",
    )  # fmt: skip
    train(cfg)
    (best,) = (tmp_path / "run" / "checkpoints").glob("best-epoch*.ckpt")
    assert best.name == "best-epoch01.ckpt"  # the second epoch's loss is the lower
    last = torch.load(best.parent / "last.ckpt", weights_only=True)["callbacks"]
    stopping = last["EarlyStopping{'monitor': 'train/loss_epoch', 'mode': 'min'}"]
    assert stopping["best_score"] < float("inf") and stopping["wait_count"] == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["callbacks.checkpoint.monitor=val/accuracy"],
         "callbacks.checkpoint.monitor=val/accuracy: a fit logs no such metric; give one of "
         "val/acc, val/loss, train/acc"),
        (["optimized_metric=test/accuracy"],
         "optimized_metric=test/accuracy: a run returns no such metric; give one of val/acc, "
         "val/loss, test/acc, test/loss"),
        (["optimized_metric=test/acc", "callbacks=early_stopping"],  # no test in a fit
         "callbacks.early_stopping.monitor=test/acc: a fit logs no such metric"),
        (["optimized_metric=val/loss", "callbacks=early_stopping"],
         "callbacks.early_stopping.monitor=val/loss with callbacks.early_stopping.mode=max takes "
         "the highest val/loss for the best: set callbacks.early_stopping.mode=min"),
        (["callbacks.checkpoint.monitor=train/loss_epoch"],
         "callbacks.checkpoint.monitor=train/loss_epoch with callbacks.checkpoint.mode=max takes "
         "the highest train/loss_epoch for the best: set callbacks.checkpoint.mode=min"),
    ],
)  # fmt: skip
def test_a_name_never_logged_or_a_mode_for_the_worst_is_refused(overrides, message):
    with pytest.raises(MonitorError) as refused:
        check_monitors(compose_config(overrides))
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize(
    "overrides",
    [
        [],  # the defaults
        ["optimized_metric=val/loss", "callbacks=early_stopping", "callbacks.early_stopping.mode=min"],
        ["callbacks.checkpoint.monitor=val/loss", "~callbacks.checkpoint.mode"],  # Lightning's min
        ["callbacks.checkpoint.monitor=lr-AdamW"],  # a name of Lightning's LearningRateMonitor
        ["callbacks.checkpoint.monitor=time/epoch_seconds", "callbacks.checkpoint.mode=max"],
    ],
)  # fmt: skip
def test_what_lazytrain_logs_or_does_not_own_passes(overrides):
    check_monitors(compose_config(overrides))


def test_the_cli_refuses_a_mistyped_monitor_in_one_line_before_training(tmp_path, synthetic_dir):
    run = tmp_path / "run"
    proc = run_script(
        "train.py", *synthetic(tmp_path, synthetic_dir), "callbacks.checkpoint.monitor=val/accuracy",
        f"hydra.run.dir={run}", cwd=tmp_path,
    )  # fmt: skip
    assert_refused(
        proc, "MonitorError: callbacks.checkpoint.monitor=val/accuracy: a fit logs no such"
    )
    assert not list(run.glob("events*")) and not (run / "checkpoints").exists()


def test_a_search_for_the_worst_is_refused_before_its_sweep_directory_exists(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_script(
        "train.py", "-m", "hparams_search=optuna", "optimized_metric=val/loss",
        f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert_refused(
        proc,
        "error: MonitorError: optimized_metric=val/loss with hydra.sweeper.direction=maximize "
        "takes the highest val/loss for the best: set hydra.sweeper.direction=minimize",
    )
    assert not sweep.exists()
    search = compose_config(["hparams_search=optuna", "optimized_metric=val/loss"], hydra=True)
    search.hydra.sweeper.direction = "minimize"
    check_search_direction(search)  # what the line says to do
