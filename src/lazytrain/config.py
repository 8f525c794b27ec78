"""The configuration, composed from Python as ``scripts/train.py`` composes it: for the other
scripts (eval, shapes, bench) and the tests, so that none of them repeats Hydra's set-up."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONF = Path(__file__).resolve().parents[2] / "conf"


def compose_config(overrides: Sequence[str] = (), hydra: bool = False) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``; with ``hydra`` also Hydra's own node (sweeper,
    launcher, run names), as a command line would see it."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)
