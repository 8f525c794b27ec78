"""What a run leaves out of its record: said in one line at its start, and kept in its
``result.json`` so that compare.py lists it as "not recorded", not as running, incomplete or
failed.

``trainer.fast_dev_run`` runs a batch or a few of each loop to check that the pipeline runs;
Lightning then suppresses logging and checkpointing, so lazytrain starts no tracker at all (no
partial event file, no MLflow run left open). A run without any logger (``logger=[]``) keeps its
checkpoints but writes no curves; one with ``+trainer.enable_checkpointing=false`` the reverse.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

CURVES = "TensorBoard or other tracker"
CHECKPOINTS = "checkpoints"


def fast_dev_run(cfg: DictConfig) -> bool:
    return bool(OmegaConf.select(cfg, "trainer.fast_dev_run"))


def not_recorded(cfg: DictConfig) -> list[str]:
    """What this run will not record: ``[]`` for a run recorded in full."""
    if fast_dev_run(cfg):
        return [CURVES, CHECKPOINTS]
    return [part for part, why in _switched_off(cfg).items() if why]


def say_not_recorded(cfg: DictConfig, skipped: list[str]) -> None:
    """The one line a run that skips part of its record prints at its start."""
    if not skipped:
        return
    if fast_dev_run(cfg):
        why = f"trainer.fast_dev_run={cfg.trainer.fast_dev_run} checks that the pipeline runs"
    else:
        why = "; ".join(why for why in _switched_off(cfg).values() if why)
    log.warning("not recorded: no %s: %s", " and no ".join(skipped), why)


def _switched_off(cfg: DictConfig) -> dict[str, str]:
    """Each part of the record, with what turned it off ("" where nothing did)."""
    checkpoints = OmegaConf.select(cfg, "trainer.enable_checkpointing") is False
    return {
        CURVES: ""
        if cfg.get("logger")
        else "no logger is configured (logger=[tensorboard] records)",
        CHECKPOINTS: "+trainer.enable_checkpointing=false" if checkpoints else "",
    }
