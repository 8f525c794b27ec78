"""What goes to TensorBoard beyond Lightning's scalars: the shape table, weight histograms and
statistics, the model graph and the run's HPARAMS row with final metrics.

Everything is written into the run's own event file (not ``SummaryWriter.add_hparams``, which
opens a sub-run per call), so one run is one row in TensorBoard, named after the run directory.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

from lazytrain.compat import eager_calls, file_writer, started_experiment
from lazytrain.config_keys import flatten, in_hparams
from lazytrain.dry_run import count_parameters
from lazytrain.histograms import add_histogram
from lazytrain.hparams_table import add_columns

SHAPES_TAG = "parameter_shapes"
log = logging.getLogger(__name__)


class OptimizerSteps:
    """Mixed into every tracker (TensorBoard, CSV, MLflow), so that all of them show a metric at
    the same step: the number of optimizer steps taken when it was measured, as the weight
    statistics are (Lightning's own step puts validation one step before them and the test one
    after), and without the ``epoch`` counter every logger receives (a staircase)."""

    # Set by TensorBoardTracking: the trainer's optimizer-step count.
    steps_taken: Callable[[], int] | None = None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = {k: v for k, v in metrics.items() if k != "epoch"}
        super().log_metrics(metrics, self.steps_taken() if self.steps_taken else step)


class SingleEventFileLogger(OptimizerSteps, TensorBoardLogger):
    """TensorBoardLogger that keeps its event file open between ``fit`` and ``test``.

    Lightning finalizes (closes) the writer after each stage, and the next write opens a second
    event file; one run, one event file is easier to read back and to copy around. ``close()``
    ends it; a failed stage still closes at once so nothing is lost.
    """

    def finalize(self, status: str) -> None:
        if status != "success":
            super().finalize(status)
        elif started_experiment(self) is not None:
            self.experiment.flush()
            self.save()

    def close(self) -> None:
        super().finalize("success")


def hardware(trainer: L.Trainer) -> str:
    """What trained this run, for comparing runs made on different machines: the GPU's name, or
    the CPU cores this process may use; ``"2× ..."`` for several processes (DDP)."""
    device = trainer.strategy.root_device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        name = f"{device.type.upper()}, {cores} cores"
    return f"{trainer.world_size}× {name}" if trainer.world_size > 1 else name


def tensorboard_writer(trainer: L.Trainer) -> SummaryWriter | None:
    """The run's SummaryWriter on rank 0, None elsewhere or without a TensorBoardLogger."""
    if trainer.global_rank != 0:
        return None
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def log_weights(
    writer: SummaryWriter, module: L.LightningModule, step: int, histograms: bool
) -> None:
    """``weights/<name>`` histograms (optional) and ``weights/<name>/{mean,std,max_abs}`` of
    every weight matrix or kernel: at step 0 they show what the init produced (a std off by 10x is
    visible at a glance), later how training moved it."""
    for name, param in module.net.named_parameters():
        weight = param.detach()
        if histograms:
            add_histogram(writer, f"weights/{name}", weight, step)
        if weight.ndim < 2:
            continue
        weight = weight.float()
        std, mean = torch.std_mean(weight)
        stats = torch.stack([mean, std, weight.abs().max()]).tolist()  # one copy to the host
        for stat, value in zip(("mean", "std", "max_abs"), stats, strict=True):
            writer.add_scalar(f"weights/{name}/{stat}", value, step)


def log_graph(writer: SummaryWriter, module: L.LightningModule) -> None:
    """The materialized net in the GRAPHS tab, traced on zeros of the dry run's input shape.

    Tracing is a view, not part of training: a net that does not trace costs a warning, not the
    run. The net's train/eval mode is left as it was.
    """
    report = getattr(module, "shape_report", None)
    if report is None:
        return
    net = module.net
    training = net.training
    try:
        net.eval()
        sample = torch.zeros(report.input_shape, device=module.device, dtype=module.dtype)
        with warnings.catch_warnings():  # add_graph still traces with the deprecated jit.trace
            warnings.filterwarnings(
                "ignore", message=r".*torch\.jit\.trace", category=FutureWarning
            )
            with eager_calls(net):  # a compiled net (compile=true) traces as the plain one
                writer.add_graph(net, sample)
    except Exception as err:  # whatever tracing hits, the run goes on
        log.warning("model graph not written to TensorBoard: %s: %s", type(err).__name__, err)
    finally:
        net.train(training)


class TensorBoardTracking(L.Callback):
    """Shape table and model graph once, weight histograms and statistics right after init
    (step 0) and after every epoch, every metric at the optimizer steps taken."""

    def __init__(self, histograms: bool = True) -> None:
        self.histograms = histograms

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, OptimizerSteps):
                logger.steps_taken = lambda: trainer.global_step

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        report = getattr(pl_module, "shape_report", None)
        if writer is None:
            return
        # Once per run: a resumed one has them in an earlier process's event file (at this hook
        # the checkpoint's step is not restored yet, so global_step cannot tell).
        if len(list(Path(writer.log_dir).glob("events.out.tfevents.*"))) <= 1:
            if report is not None:
                writer.add_text(SHAPES_TAG, report.markdown(), 0)
            log_graph(writer, pl_module)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Runs after the sanity check and before the first optimizer step: the weights are
        # exactly those apply_init produced. A resumed run (global_step > 0) has no step 0.
        writer = tensorboard_writer(trainer)
        if writer is not None and trainer.global_step == 0:
            log_weights(writer, pl_module, 0, self.histograms)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        if writer is not None:
            log_weights(writer, pl_module, trainer.global_step, self.histograms)


def hparams_row(
    cfg: DictConfig, choices: Mapping[str, str], model: L.LightningModule, trainer: L.Trainer
) -> dict[str, Any]:
    """The run's HPARAMS row (:func:`experiment_hparams`): TensorBoard's, and MLflow's params."""
    config = OmegaConf.to_container(cfg, resolve=True)
    return experiment_hparams(config, choices, count_parameters(model), hardware(trainer))


def experiment_hparams(
    config: Mapping[str, Any], choices: Mapping[str, str], params: int, hardware: str
) -> dict[str, Any]:
    """The run's HPARAMS row, by name: the config group choices (``model: lazy_cnn``), the
    settings that define the experiment (``optimizer.lr``, ``model.hidden``, ``seed``, ...), the
    parameter count and the hardware; no ``_target_``/``_partial_``, paths or plumbing."""

    def plumbing(key: str) -> bool:
        return any(p.startswith("_") for p in key.split(".")) or not in_hparams(key)

    row = {k: v for k, v in hparam_values(config).items() if not plumbing(k)}
    # the choices of the groups that define the experiment (trainer=ddp is hardware)
    row.update({k: v for k, v in choices.items() if not plumbing(k)})
    row.update(params=params, hardware=hardware)
    return dict(sorted(row.items()))


def hparam_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config as dotted keys with values TensorBoard accepts: ``{"model.hidden": "[256]"}``,
    ``{"tags": "[baseline, lr-study]"}`` (lists as written on the command line)."""
    return {k: _hparam_value(v) for k, v in flatten(config).items()}


def _hparam_value(value: Any) -> bool | int | float | str:
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(_hparam_value(v)) for v in value) + "]"
    return str(value)


def log_hparams(
    writer: SummaryWriter,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    table: Path,
) -> None:
    """The HPARAMS row of this run (its flattened config and final metrics) into its event file,
    and its columns into the project's table in ``table`` (:mod:`lazytrain.hparams_table`).

    TensorBoard reads each metric's value from the run's scalar of the same tag, so ``metrics``
    name tags that were logged as scalars (e.g. ``val/acc``); the values here only list them.
    """
    experiment, session_start, session_end = hparams_summary(hparam_values(params), dict(metrics))
    events = file_writer(writer)
    for summary in (session_start, session_end):
        events.add_summary(summary)
    writer.flush()
    add_columns(table, experiment)
