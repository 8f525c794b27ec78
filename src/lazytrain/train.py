"""``run(cfg)``: config → data → sample batch → dry run + init → Lightning fit → test → metric.

Everything that can fail on a bad config (data, shapes) fails before the logger, the trainer or a
checkpoint touches the run directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lazytrain.datamodule import FashionMNISTDataModule
from lazytrain.module import LazyClassifier
from lazytrain.tracking import log_hparams, tensorboard_writer

log = logging.getLogger(__name__)


def route_lightning_logs() -> None:
    """Send Lightning's log lines through the root logger, so Hydra's ``train.log`` holds them
    (Lightning gives its loggers their own stderr handler and stops propagation)."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def build_model(cfg: DictConfig, datamodule: FashionMNISTDataModule) -> LazyClassifier:
    """Build the lazy net, dry-run it on the first ``sample_size`` training images, init it."""
    plain = OmegaConf.to_container(cfg, resolve=True)  # checkpoints hold no omegaconf objects
    return LazyClassifier(
        model=plain["model"],
        init=plain["init"],
        optimizer=plain["optimizer"],
        num_classes=datamodule.num_classes,
        input_shape=datamodule.input_shape,
        seed=cfg.seed,
        sample=datamodule.sample(cfg.sample_size),
    )


def hparams(cfg: DictConfig, model: LazyClassifier) -> dict[str, Any]:
    """The run's row in TensorBoard's HPARAMS tab: config choices, resolved config, size."""
    params: dict[str, Any] = {}
    if HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
        params.update({k: v for k, v in choices.items() if not k.startswith("hydra") and v})
    params.update(OmegaConf.to_container(cfg, resolve=True))
    params["params"] = sum(p.numel() for p in model.parameters())
    return params


def run(cfg: DictConfig) -> float:
    """Train and test one configuration; return ``cfg.optimized_metric`` for sweepers."""
    if HydraConfig.initialized():
        route_lightning_logs()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule: FashionMNISTDataModule = instantiate(cfg.data)
    model = build_model(cfg, datamodule)
    if model.shape_report is not None:
        log.info(
            "dry run on %s:\n%s",
            list(model.shape_report.input_shape),
            model.shape_report.markdown(),
        )

    output_dir = Path(cfg.output_dir)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    trainer: L.Trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks)
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    final = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    tested = trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
    final.update({k: float(v) for k, v in tested[0].items()} if tested else {})
    writer = tensorboard_writer(trainer)
    if writer is not None:
        log_hparams(writer, hparams(cfg, model), {k: final[k] for k in sorted(final)})
    if hasattr(logger, "close"):
        logger.close()
    log.info("final metrics: %s (outputs in %s)", final, output_dir)
    if best and checkpoint.monitor == cfg.optimized_metric:  # sweepers optimize the best epoch
        final[cfg.optimized_metric] = float(checkpoint.best_model_score)
    return final.get(cfg.optimized_metric, float("nan"))
