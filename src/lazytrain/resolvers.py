"""The resolvers ``conf/`` names (``${lazytrain.if:...}``, ``${lazytrain.run_name:...}`` ...),
registered when lazytrain is imported, so that composing the config from Python needs no script.
Resolving a config only computes values: nothing here writes to the disk."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lazytrain import sqlite_url
from lazytrain.config_keys import run_name_patterns


def _if(cond: object, then: object, otherwise: object) -> object:
    """``resume=<dir>`` runs in <dir>."""
    return then if cond else otherwise


_job_files: dict[tuple[str, str], str] = {}  # one answer per job: ${now:} ticks on


def job_files(resume: object, output_dir: str, now: str) -> str:
    """conf/hydra/default.yaml's ``output_subdir``: where Hydra saves a job's config, relative to
    its directory. ``.hydra`` for a new run; beside the run's own for one that continues in
    place (``resume=``, or a continued sweep's interrupted job): ``.hydra/resumed-<time>``; for
    a continued sweep's finished job, which is skipped: ``.hydra/continued-<time>``, with the
    job's log in it (:func:`job_log`), so that nothing of the finished run is touched."""
    from lazytrain.run_dir import FINISHED, INTERRUPTED, NEW, run_state

    key = (str(resume), output_dir)
    if key not in _job_files:
        state = INTERRUPTED if resume else run_state(output_dir)
        subdirs = {NEW: ".hydra", FINISHED: f".hydra/continued-{now}"}
        _job_files[key] = subdirs.get(state, f".hydra/resumed-{now}")  # interrupted, unsaved
    return _job_files[key]


def job_log(output_dir: str, subdir: str | None, name: str) -> str:
    """The job's log file: ``<run dir>/train.log`` (a resume appends to it), or beside the
    config Hydra saved for a skipped finished job. (DDP's ranks >= 1 save no config:
    ``hydra.output_subdir=null``.)"""
    if subdir and Path(subdir).name.startswith("continued-"):
        return str(Path(output_dir, subdir, f"{name}.log"))
    return str(Path(output_dir, f"{name}.log"))


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
OmegaConf.register_new_resolver("lazytrain.sqlite", sqlite_url.url, replace=True)
OmegaConf.register_new_resolver("lazytrain.job_files", job_files, replace=True)
OmegaConf.register_new_resolver("lazytrain.job_log", job_log, replace=True)
