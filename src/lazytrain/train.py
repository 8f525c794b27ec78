"""The pipeline, in the order it runs: config → data → dry-run sample → model (dry run + init) →
Lightning fit → test → the HPARAMS row in TensorBoard (and the other trackers); returns the
metric sweepers optimize.

Everything that can fail on a bad config (data, shapes, a checkpoint that does not fit) fails
before a tracker, the trainer or a checkpoint touches the run directory. Process concerns (logs,
DDP re-launch, exit codes) are :mod:`lazytrain.job`'s; ``train`` runs as well from plain Python.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from lazytrain.averaging import EMA
from lazytrain.checkpoints import AtomicCheckpointIO, best_score, check_fits
from lazytrain.compat import skip_unimplemented_hooks
from lazytrain.compiling import compile_net
from lazytrain.config import ConfigValueError
from lazytrain.config_keys import LENGTH
from lazytrain.console import print_config_tree
from lazytrain.datamodule import ImageDataModule
from lazytrain.digests import weights_digest
from lazytrain.exact_resume import LAST_VALIDATION, validation_metrics
from lazytrain.hparams_table import table_dir
from lazytrain.lineage import Lineage, labels
from lazytrain.module import LazyClassifier
from lazytrain.monitors import check_monitors
from lazytrain.recording import CURVES, not_recorded, say_not_recorded
from lazytrain.resume import RunConfig, start
from lazytrain.run_dir import check_new_run, write_result
from lazytrain.trackers import make_loggers, tracker_callbacks
from lazytrain.tracking import hparams_row, log_hparams, tensorboard_writer
from lazytrain.trainer_args import switched_on, trainer_arguments

log = logging.getLogger(__name__)


def train(
    cfg: DictConfig,
    choices: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
    callbacks: Sequence[L.Callback] = (),
    restart: bool = False,
) -> float:
    """Train and test one configuration; return ``cfg.optimized_metric`` (its best epoch).

    ``choices`` are the config-group choices (``model: lazy_cnn``) and ``overrides`` the command
    line's, for the HPARAMS row and for ``resume=``; ``callbacks`` are added to the config's.
    ``restart``: the run directory holds a run stopped before its first checkpoint (a continued
    sweep's job), trained again from the start, its old events purged in TensorBoard."""
    begin = start(cfg, choices or {}, overrides)  # with resume=<dir>: the run's own configuration
    cfg = begin.cfg
    check_monitors(cfg)
    if not isinstance(cfg.seed, int):
        raise ConfigValueError(f"seed={cfg.seed}: give a whole number, e.g. seed=0")
    if cfg.get("resume"):
        step = begin.checkpoint.get("global_step", 0)
        log.info("resuming %s from %s (step %d)", cfg.resume, begin.ckpt_path, step)
    tags, notes = labels(cfg.get("tags"), cfg.get("notes"))
    trainer_extras = trainer_arguments(cfg.trainer, Path(cfg.output_dir))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model, datamodule = model_and_data(cfg)
    # the configured optimizer, built now: a value it refuses is refused before anything is
    # written (not in the fit's set-up), and a checkpoint's optimizer state is checked against it
    optimizer, _ = model.build_optimizer(lambda: 1)
    compile_net(model.net, cfg.get("compile"))  # after the dry run and init
    if begin.checkpoint is not None:
        check_fits(begin.checkpoint, begin.ckpt_path, model, optimizer)

    output_dir = Path(cfg.output_dir)
    # Ranks >= 1 of a DDP job join the run rank 0 is writing; only rank 0 checks.
    if not cfg.get("resume") and not restart and rank_zero_only.rank == 0:
        check_new_run(output_dir)
    if cfg.get("print_config") and rank_zero_only.rank == 0:
        print_config_tree(cfg, output_dir)
    # Continuing: TensorBoard drops what an interrupted process logged past the checkpoint.
    purge = begin.checkpoint["global_step"] + 1 if cfg.get("resume") else None
    skipped = not_recorded(cfg)
    say_not_recorded(cfg, skipped)
    no_tracker = CURVES in skipped  # fast_dev_run starts none: no partial event file
    loggers = [] if no_tracker else make_loggers(cfg, begin.checkpoint, 0 if restart else purge)
    configured = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        _convert_="all",  # plain containers: Lightning checks max_time={...} for a dict
        **trainer_extras,
        logger=loggers or False,
        callbacks=[
            *switched_on(cfg.trainer, configured),
            RunConfig(cfg, begin.choices),
            Lineage(output_dir, tags, notes, resumed=bool(cfg.get("resume")) or restart),
            *tracker_callbacks(loggers, cfg, begin.choices, tags, notes),
            *([EMA(cfg.ema_decay)] if cfg.get("ema_decay") else []),
            *callbacks,
        ],
        plugins=[AtomicCheckpointIO()],
    )
    skip_unimplemented_hooks(trainer.callbacks)
    trainer.fit(model, datamodule=datamodule, ckpt_path=begin.ckpt_path, weights_only=True)

    # A resume of a run stopped after its last epoch validates nothing: its checkpoint holds
    # the last validation's metrics, which a straight run would report.
    final = dict(begin.checkpoint.get(LAST_VALIDATION, {})) if cfg.get("resume") else {}
    final.update(validation_metrics(trainer))
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    tested = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
    final.update({k: float(v) for k, v in tested[0].items()} if tested else {})
    if trainer.global_rank == 0:  # the metrics are synced: every rank holds the same ones
        record(cfg, begin.choices, model, trainer, final)
    for logger in loggers:
        if hasattr(logger, "close"):
            logger.close()
    if trainer.global_rank == 0:
        log.info("final metrics: %s (outputs in %s)", final, output_dir)
    if best and checkpoint.monitor == cfg.optimized_metric:  # sweepers optimize the best epoch
        final[cfg.optimized_metric] = best_score(checkpoint)
    value = final.get(cfg.optimized_metric, float("nan"))
    if trainer.global_rank == 0:
        write_result(output_dir, finished_result(cfg, value, final, skipped))
    return value


def record(
    cfg: DictConfig,
    choices: Mapping[str, str],
    model: LazyClassifier,
    trainer: L.Trainer,
    final: Mapping[str, float],
) -> None:
    """The run's HPARAMS row, with its final metrics, into TensorBoard and the project's table."""
    row = hparams_row(cfg, choices, model, trainer)
    if (writer := tensorboard_writer(trainer)) is not None:
        table = table_dir(Path(cfg.output_dir), Path(cfg.project_dir))
        log_hparams(writer, row, {k: final[k] for k in sorted(final)}, table)


def finished_result(
    cfg: DictConfig, value: float, final: Mapping[str, float], skipped: Sequence[str] = ()
) -> dict[str, Any]:
    """``result.json``: what a continued sweep returns for this run instead of training it again,
    as long as it asks for the same length (longer: the run is resumed and extended); and what
    the run did not record, for compare.py."""
    return {
        "optimized_metric": cfg.optimized_metric,
        "value": value,
        "metrics": dict(final),
        "length": {key: OmegaConf.select(cfg, key) for key in LENGTH},
        **({"not_recorded": list(skipped)} if skipped else {}),
    }


def model_and_data(cfg: DictConfig) -> tuple[LazyClassifier, ImageDataModule]:
    """The configured data module and the model materialized on its dry-run sample: what
    training, ``scripts/shapes.py``, the bench and the tests all start from."""
    datamodule: ImageDataModule = instantiate(cfg.data)
    sample = datamodule.dry_run_sample(cfg.sample_size)  # reads (or first fetches) the data
    return build_model(cfg, sample, datamodule.num_classes), datamodule


def build_model(cfg: DictConfig, sample: torch.Tensor, num_classes: int) -> LazyClassifier:
    """The configured lazy net, materialized by a dry run on ``sample`` and initialized (once,
    seeded: every DDP rank builds the same weights). Logs the weights' digest and what the dry
    run saw."""
    plain = OmegaConf.to_container(cfg, resolve=True)  # checkpoints hold no omegaconf objects
    model = LazyClassifier(
        model=plain["model"],
        init=plain["init"],
        optimizer=plain["optimizer"],
        scheduler=plain.get("scheduler"),
        label_smoothing=cfg.get("label_smoothing", 0.0),
        channels_last=cfg.get("channels_last", False),
        test_time_flip=cfg.get("test_time_flip", False),
        bias_lr_factor=cfg.get("bias_lr_factor", 1.0),
        num_classes=num_classes,
        input_shape=tuple(sample.shape[1:]),
        sample_size=len(sample),
        seed=cfg.seed,
        sample=sample,
    )
    log.info(
        "initial weights sha256:%s (rank %s)",
        weights_digest(model.net),
        os.environ.get("LOCAL_RANK", 0),
    )
    if model.shape_report is not None:
        report = model.shape_report
        log.info("dry run on %s:\n%s", list(report.input_shape), report.markdown())
    return model
