"""``run(cfg)``: config → data → sample batch → dry run + init → Lightning fit → test → metric.

Everything that can fail on a bad config (data, shapes) fails before the logger, the trainer or a
checkpoint touches the run directory.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, read_write

from lazytrain import console
from lazytrain.checkpoints import (
    AtomicCheckpointIO,
    CheckpointError,
    CheckpointMismatchError,
    NonFiniteLossError,
    check_fits,
)
from lazytrain.data import DataError
from lazytrain.datamodule import FashionMNISTDataModule
from lazytrain.module import LazyClassifier
from lazytrain.resume import ResumeError, RunConfig, start
from lazytrain.run_dir import RunExistsError, check_new_run
from lazytrain.shapes import ShapeMismatchError, count_parameters
from lazytrain.tracking import experiment_hparams, hardware, log_hparams, tensorboard_writer
from lazytrain.trust import UntrustedTargetError

log = logging.getLogger(__name__)


# Mistakes in a config or on disk: reported as one readable line, not as a traceback.
USER_ERRORS = (
    ShapeMismatchError,
    DataError,
    InstantiationException,
    ResumeError,
    RunExistsError,
    CheckpointError,
    CheckpointMismatchError,
    NonFiniteLossError,
    UntrustedTargetError,
)


def route_lightning_logs() -> None:
    """Send Lightning's log lines and all warnings through the root logger, so Hydra's
    ``train.log`` holds them and the console shows them above the progress bar (Lightning gives
    its loggers their own stderr handler and stops propagation)."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    console.warnings_to_log()


def point_ddp_children_at_this_run() -> None:
    """Lightning's ``ddp`` launcher starts ranks >= 1 by re-running this script with
    ``sys.argv[1:]`` and ``hydra.run.dir=<HydraConfig run.dir>``. In a multirun that would start
    a whole sweep per rank, in a directory of its own (Lightning#18145, hydra#2070). Give the
    children this job's own overrides and its actual output directory instead, so every rank
    trains the same configuration and only rank 0 writes the run's outputs."""
    hydra_cfg = HydraConfig.get()
    with read_write(hydra_cfg.run):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]


def build_model(cfg: DictConfig, datamodule: FashionMNISTDataModule) -> LazyClassifier:
    """Build the lazy net, dry-run it on the first ``sample_size`` training images, init it."""
    plain = OmegaConf.to_container(cfg, resolve=True)  # checkpoints hold no omegaconf objects
    return LazyClassifier(
        model=plain["model"],
        init=plain["init"],
        optimizer=plain["optimizer"],
        scheduler=plain.get("scheduler"),
        label_smoothing=cfg.get("label_smoothing", 0.0),
        num_classes=datamodule.num_classes,
        input_shape=datamodule.input_shape,
        seed=cfg.seed,
        sample=datamodule.sample(cfg.sample_size),
    )


@contextmanager
def job_scope() -> Iterator[None]:
    """Leave the process as the job found it: Lightning's DDP launcher sets ``LOCAL_RANK``,
    ``MASTER_PORT``, ``WORLD_SIZE``... in ``os.environ`` and leaves a process group behind, which
    would make the next job of a multirun believe it is an externally launched rank."""
    environ = dict(os.environ)
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        os.environ.clear()
        os.environ.update(environ)


def run(cfg: DictConfig) -> float:
    """Train and test one configuration; return ``cfg.optimized_metric`` for sweepers."""
    console.start_job()
    console.quiet()
    with job_scope():
        return _run(cfg)


def command_line() -> tuple[dict[str, str], list[str]]:
    """This command's config-group choices and overrides (none outside a Hydra app)."""
    if not HydraConfig.initialized():
        return {}, []
    hydra_cfg = HydraConfig.get()
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")}
    return {k: v for k, v in choices.items() if v}, list(hydra_cfg.overrides.task)


def _run(cfg: DictConfig) -> float:
    if HydraConfig.initialized():
        route_lightning_logs()
        point_ddp_children_at_this_run()
    begin = start(cfg, *command_line())  # with resume=<dir>: the run's own configuration
    cfg = begin.cfg
    if HydraConfig.initialized() and rank_zero_only.rank == 0:
        hydra_cfg = HydraConfig.get()
        sweep = hydra_cfg.mode == RunMode.MULTIRUN  # TensorBoard on the sweep compares its runs
        console.announce_run(cfg.output_dir, hydra_cfg.sweep.dir if sweep else cfg.output_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule: FashionMNISTDataModule = instantiate(cfg.data)
    model = build_model(cfg, datamodule)
    log.info("initial weights sha256:%s (rank %s)", model.digest(), os.environ.get("LOCAL_RANK", 0))
    if model.shape_report is not None:
        log.info(
            "dry run on %s:\n%s",
            list(model.shape_report.input_shape),
            model.shape_report.markdown(),
        )
    if begin.checkpoint is not None:
        check_fits(begin.checkpoint, begin.ckpt_path, model)

    output_dir = Path(cfg.output_dir)
    # Ranks >= 1 of a DDP job join the run rank 0 is writing; only rank 0 checks.
    if not cfg.get("resume") and rank_zero_only.rank == 0:
        check_new_run(output_dir)
    # Continuing: TensorBoard drops what an interrupted process logged past the checkpoint.
    purge = {"purge_step": begin.checkpoint["global_step"] + 1} if cfg.get("resume") else {}
    logger = instantiate(cfg.logger, **purge) if cfg.get("logger") else False
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    callbacks.append(RunConfig(cfg, begin.choices))
    trainer: L.Trainer = instantiate(
        cfg.trainer, logger=logger, callbacks=callbacks, plugins=[AtomicCheckpointIO()]
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=begin.ckpt_path, weights_only=True)

    final = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    tested = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
    final.update({k: float(v) for k, v in tested[0].items()} if tested else {})
    writer = tensorboard_writer(trainer)
    if writer is not None:
        log_hparams(
            writer,
            experiment_hparams(
                OmegaConf.to_container(cfg, resolve=True),
                begin.choices,
                count_parameters(model),
                hardware(trainer),
            ),
            {k: final[k] for k in sorted(final)},
        )
    if hasattr(logger, "close"):
        logger.close()
    if trainer.global_rank == 0:  # the metrics are synced: every rank holds the same ones
        log.info("final metrics: %s (outputs in %s)", final, output_dir)
    if best and checkpoint.monitor == cfg.optimized_metric:  # sweepers optimize the best epoch
        final[cfg.optimized_metric] = float(checkpoint.best_model_score)
    return final.get(cfg.optimized_metric, float("nan"))


def main(cfg: DictConfig) -> float:
    """``run`` for the command line: a user error is logged (console and ``train.log``) and exits
    with status 1; in a multirun it is re-raised so Hydra records the job as failed and goes on."""
    try:
        return run(cfg)
    except SIGTERMException:  # a SystemExit with status 0: a scheduler must see the job stopped
        sys.exit(128 + signal.SIGTERM)
    except USER_ERRORS as err:
        log.error("%s: %s", type(err).__name__, err)
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        sys.exit(1)
