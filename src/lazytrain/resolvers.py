"""The resolvers ``conf/`` names (``${lazytrain.if:...}``, ``${lazytrain.run_name:...}`` ...),
registered when lazytrain is imported, so that composing the config from Python needs no script.
Resolving a config only computes values: nothing here touches the disk."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lazytrain.config_keys import run_name_patterns


def _if(cond: object, then: object, otherwise: object) -> object:
    """``resume=<dir>`` runs in <dir>, writing its .hydra/ under a new name."""
    return then if cond else otherwise


def _sqlite(path: str) -> str:
    """conf/hparams_search/optuna.yaml: the study's database in the sweep directory (an absolute
    URL; :class:`lazytrain.run_dir.CheckRunDir` creates the directory before the sweeper opens it)."""
    return f"sqlite:///{Path(path).resolve()}"


def run_name(overrides: list[str], dirname: DictConfig) -> str:
    """conf/hydra/default.yaml: a sweep job's directory name, which TensorBoard shows as the run's
    name. Hydra's ``override_dirname`` (same separators, sorted overrides) with two changes:
    ``exclude_keys`` may hold patterns (``trainer.limit_*``), and a float of more than 6
    significant digits, as Optuna samples them (``0.0012345678901234567``), shows 4 of them. The
    exact values stay in ``.hydra/overrides.yaml`` and the run's HPARAMS row."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if any(fnmatchcase(override.key_or_group, p) for p in dirname.exclude_keys):
            continue
        line = override.input_line
        value = None if override.is_delete() else override.value()
        if isinstance(value, float):
            mantissa = override.get_value_element_as_str().lower().split("e")[0]
            if len(re.sub(r"\D", "", mantissa).lstrip("0")) > 6:
                line = f"{line.split('=', 1)[0]}={value:.4g}"
        lines.append(line)
    return re.sub("=", dirname.kv_sep, dirname.item_sep.join(sorted(lines)))


OmegaConf.register_new_resolver("lazytrain.if", _if, replace=True)
OmegaConf.register_new_resolver("lazytrain.run_name", run_name, replace=True)
OmegaConf.register_new_resolver("lazytrain.not_in_run_names", run_name_patterns, replace=True)
OmegaConf.register_new_resolver("lazytrain.sqlite", _sqlite, replace=True)
