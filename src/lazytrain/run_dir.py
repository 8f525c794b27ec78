"""The run directory: where a run writes, checked before anything is written there.

Hydra creates the run (or sweep) directory and its ``.hydra/`` before the job's code runs, so
the checks that must leave nothing behind — an output path that cannot be a directory, a
``resume=`` of a directory that holds no run — run as a Hydra callback (``conf/hydra``), which
Hydra calls before it creates anything. Once the checks pass, it also creates the sweep
directory when the sweeper opens a SQLite study there before Hydra would create it (Optuna's).
"""

from __future__ import annotations

import os
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


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
        storage = str(config.hydra.sweeper.get("storage") or "")
        if storage.startswith("sqlite:///"):
            Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)

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
