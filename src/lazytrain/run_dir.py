"""The run directory: where a run writes, checked before anything is written there.

Hydra creates the run (or sweep) directory and its ``.hydra/`` before the job's code runs, so
the checks that must leave nothing behind — an output path that cannot be a directory, a
``resume=`` of a directory that holds no run — run as a Hydra callback (``conf/hydra``), which
Hydra calls before it creates anything. The resolvers ``conf/hydra/default.yaml`` needs live here
too, registered on import, so composing the config from Python needs no script imported.
"""

from __future__ import annotations

import os
import re
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lazytrain.config_keys import run_name_patterns


class RunExistsError(ValueError):
    """The output directory already holds a run that this one would mix into or overwrite."""


def holds_run(directory: Path) -> bool:
    """A directory holds a run once it has TensorBoard events or checkpoints."""
    return any(directory.glob("events.out.tfevents.*")) or (directory / "checkpoints").exists()


def check_new_run(directory: Path) -> None:
    """A new run never mixes into (or overwrites) an existing one."""
    if holds_run(directory):
        raise RunExistsError(
            f"{directory} already holds a run; its events and checkpoints are left as they are. "
            f"Continue it with resume={directory}, or choose another hydra.run.dir / hydra.sweep.dir"
        )


def unwritable(directory: Path) -> str | None:
    """Why ``directory`` cannot be created and written, or None: checked on its nearest existing
    ancestor, so nothing is created to find out."""
    path = directory.absolute()
    while not path.exists():
        if path.is_symlink():  # a dangling link
            return f"{path} is a broken symbolic link"
        path = path.parent
    if not path.is_dir():
        return f"{path} is a file, not a directory"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{path} is not writable by this user"
    return None


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


class CheckRunDir(Callback):
    """Refuse, in one line and before Hydra creates anything, an output directory that cannot
    be written and a ``resume=`` that names no run."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, Path(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, Path(config.hydra.sweep.dir), "hydra.sweep.dir")
        hidden = swept_but_unnamed(config)
        if hidden:
            _refuse(
                f"the sweep varies {', '.join(hidden)}, which run names leave out "
                "(hydra.job.config.override_dirname.exclude_keys): its runs would share one "
                "directory (nothing was created). Name runs by it with hydra.job.config."
                "override_dirname.exclude_keys=[...] without it, or number them with "
                "'hydra.sweep.subdir=${hydra.job.num}'"
            )

    def _check(self, config: DictConfig, directory: Path, key: str) -> None:
        resume = config.get("resume")
        if resume:
            from lazytrain.resume import last_checkpoint

            if not last_checkpoint(resume).is_file():
                _refuse(
                    f"nothing to resume in {resume}: {last_checkpoint(resume)} does not exist "
                    "(nothing was created). Give the directory of a run, e.g. outputs/runs/<time>"
                )
        problem = unwritable(directory)
        if problem:
            _refuse(
                f"cannot write the run's outputs to {directory}: {problem}. Set {key} to a "
                "writable directory"
            )


def swept_but_unnamed(config: DictConfig) -> list[str]:
    """The keys a multirun sweeps over (command line and ``hydra.sweeper.params``) that its run
    names exclude, when runs are named by ``lazytrain.run_name``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra = config.hydra
    if "lazytrain.run_name" not in str(OmegaConf.to_container(hydra.sweep)["subdir"]):
        return []
    parse = OverridesParser.create().parse_overrides
    swept = [o.key_or_group for o in parse(list(hydra.overrides.task)) if o.is_sweep_override()]
    swept += list(hydra.sweeper.get("params") or {})
    exclude = hydra.job.config.override_dirname.exclude_keys
    return sorted({k for k in swept if any(fnmatchcase(k, p) for p in exclude)})


def _if(cond: object, then: object, otherwise: object) -> object:
    """``resume=<dir>`` runs in <dir>, writing its .hydra/ under a new name."""
    return then if cond else otherwise


def _sqlite(path: str) -> str:
    """conf/hparams_search/optuna.yaml: the study's database in the sweep directory, which Hydra
    creates only after the sweeper has opened the study."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
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
