"""The run directory: where a run writes, checked before anything is written there.

Hydra creates the run (or sweep) directory and its ``.hydra/`` before the job's code runs, so
the checks that must leave nothing behind — an output path that cannot be a directory, a
``resume=`` of a directory that holds no run — run as a Hydra callback (``conf/hydra``), which
Hydra calls before it creates anything. Once the checks pass, it also creates the sweep
directory when the sweeper opens a SQLite study there before Hydra would create it (Optuna's).
"""

from __future__ import annotations

import json
import os
import sys
import time
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lazytrain.atomic_write import atomic_write


class RunExistsError(ValueError):
    """The output directory already holds a run that this one would mix into or overwrite."""


RESULT = "result.json"  # written last by a run that finished: its metrics, and how long it ran
NEW, INTERRUPTED, UNSAVED, FINISHED = "new", "interrupted", "unsaved", "finished"


def holds_run(directory: Path) -> bool:
    """A directory holds a run once it has TensorBoard events or checkpoints."""
    directory = Path(directory)
    return any(directory.glob("events.out.tfevents.*")) or (directory / "checkpoints").exists()


def run_state(directory: str | Path) -> str:
    """``new`` (nothing trained there yet), ``finished`` (its ``result.json`` was written),
    ``interrupted`` (it has a ``last.ckpt`` to continue from) or ``unsaved`` (it was stopped
    before its first checkpoint: some events, nothing to continue from)."""
    directory = Path(directory)
    if not holds_run(directory):
        return NEW
    if (directory / RESULT).is_file():
        return FINISHED
    return INTERRUPTED if (directory / "checkpoints" / "last.ckpt").is_file() else UNSAVED


def read_result(directory: str | Path) -> dict[str, Any] | None:
    try:
        result = json.loads((Path(directory) / RESULT).read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


FAILED_JOBS = "failed_jobs.jsonl"  # in a sweep's directory: one line per job refused or failed


def record_failure(sweep_dir: str | Path, job_dir: str | Path, message: str) -> None:
    """Note a sweep job's one-line failure for :meth:`CheckRunDir.on_multirun_end` (appended:
    jobs in other processes, of a parallel or SLURM launcher, write their own lines)."""
    line = json.dumps({"time": time.time(), "job": str(job_dir), "error": message}) + "\n"
    with open(Path(sweep_dir) / FAILED_JOBS, "a") as f:
        f.write(line)


def failures_since(sweep_dir: str | Path, start: float) -> list[dict[str, Any]]:
    try:
        lines = (Path(sweep_dir) / FAILED_JOBS).read_text().splitlines()
    except OSError:
        return []
    records = [json.loads(line) for line in lines if line.strip()]
    return [r for r in records if r.get("time", 0) >= start]


def write_result(directory: str | Path, result: dict[str, Any]) -> None:
    """The run's last write: after it, a continued sweep skips the run and returns its metric."""
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    atomic_write(Path(directory) / RESULT, lambda f: f.write(text.encode()))


def check_new_run(directory: Path) -> None:
    """A new run never mixes into (or overwrites) an existing one."""
    if holds_run(directory):
        raise RunExistsError(
            f"{directory} already holds a run; its events and checkpoints are left as they are. "
            f"Continue it with resume={directory}, or choose another hydra.run.dir / hydra.sweep.dir"
        )


def _ddp_child() -> bool:
    return any(os.environ.get(v, "0") != "0" for v in ("LOCAL_RANK", "RANK", "NODE_RANK"))


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
        run_dir = Path(config.hydra.run.dir)
        self._check(config, run_dir, "hydra.run.dir")
        # Before Hydra writes .hydra/ and train.log there: the run's own files stay as they were.
        # DDP's ranks >= 1 are started into rank 0's run directory (job.point_ddp_children_...).
        if not config.get("resume") and not _ddp_child():
            try:
                check_new_run(run_dir)
            except RunExistsError as err:
                _refuse(f"RunExistsError: {err}")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started = time.time()
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
        from lazytrain.monitors import MonitorError, check_search_direction  # imports Lightning
        from lazytrain.optuna_search import is_optuna_search, prepare_study

        if is_optuna_search(config):
            try:
                check_search_direction(config)
            except MonitorError as err:
                _refuse(f"MonitorError: {err} (nothing was created)")
            prepare_study(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """The sweep ran every job it could; those refused or failed are one line each, and the
        command exits 1 (not with the traceback Hydra prints for the first failed job)."""
        failed = failures_since(config.hydra.sweep.dir, getattr(self, "_started", 0.0))
        if failed:
            lines = [f"error: {len(failed)} of the sweep's jobs did not finish:"]
            lines += [f"error: {r['job']}: {r['error']}" for r in failed]
            print("\n".join(lines), file=sys.stderr)
            sys.exit(1)

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
