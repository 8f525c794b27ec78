"""The configuration, composed from Python as ``scripts/train.py`` composes it: for the other
scripts (eval, shapes, bench) and the tests, so that none of them repeats Hydra's set-up; and
the error a value outside what it may be is refused with."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

CONF = Path(__file__).resolve().parents[2] / "conf"
T = TypeVar("T")


class ConfigValueError(ValueError):
    """A config value outside what it may be (``label_smoothing=2``, ``init.std=-1``), or one the
    configured callable refuses (``optimizer.lr=-1``): a user error, said in one line."""


def refusing(group: str, config: Mapping[str, Any], build: Callable[[], T]) -> T:
    """``build()``, with the ``ValueError`` by which a configured callable refuses a value (torch's
    ``Invalid learning rate: -1``) as a :class:`ConfigValueError` naming the group's values."""
    try:
        return build()
    except ValueError as err:
        values = ", ".join(f"{group}.{k}={v}" for k, v in config.items() if not k.startswith("_"))
        raise ConfigValueError(f"{group} ({values}): {err}: give a value it accepts") from err


def compose_config(overrides: Sequence[str] = (), hydra: bool = False) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``; with ``hydra`` also Hydra's own node (sweeper,
    launcher, run names), as a command line would see it."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def group_option(group: str, name: str) -> dict[str, Any]:
    """``conf/<group>/<name>.yaml`` as Hydra merges it when chosen: the options of the same group
    its defaults list names first, then its own keys (interpolations left as written)."""
    node = OmegaConf.load(CONF / group / f"{name}.yaml")
    merged = OmegaConf.create()
    for entry in node.pop("defaults", None) or []:
        if isinstance(entry, str) and entry != "_self_":
            merged = OmegaConf.merge(merged, group_option(group, entry))
    return OmegaConf.to_container(OmegaConf.merge(merged, node), resolve=False)
