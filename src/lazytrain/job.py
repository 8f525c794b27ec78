"""A training job as a process: what Hydra, Lightning's DDP launcher and a multirun do to the
process around :func:`lazytrain.train.train`, and how a job ends (a user's mistake is one readable
line and exit status 1; a SIGTERM or Ctrl-C is status 143).

``scripts/train.py`` calls :func:`main`; everything here protects the pipeline from the process it
runs in, and the next job of a multirun from this one.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, read_write

from lazytrain import console, progress
from lazytrain.checkpoints import CheckpointError, CheckpointMismatchError
from lazytrain.compiling import CompileError
from lazytrain.config import ConfigValueError
from lazytrain.disk_full import disk_full, full_file, out_of_space, threads_quiet_on_full_disk
from lazytrain.distributed import leave_process_group
from lazytrain.dry_run import ShapeMismatchError
from lazytrain.epoch_state import NonFiniteLossError
from lazytrain.images import DataError
from lazytrain.lineage import LabelError
from lazytrain.monitors import MonitorError
from lazytrain.recording import CURVES, not_recorded
from lazytrain.resume import Continuation, ResumeError, continue_in_place
from lazytrain.run_dir import RunExistsError, record_failure
from lazytrain.trackers import TrackerError
from lazytrain.train import train
from lazytrain.trainer_args import TrainerArgumentError
from lazytrain.trust import UntrustedTargetError

log = logging.getLogger(__name__)

# Mistakes in a config or on disk: reported as one readable line, not as a traceback.
USER_ERRORS = (
    ShapeMismatchError,
    DataError,
    InstantiationException,
    ResumeError,
    RunExistsError,
    CheckpointError,
    CheckpointMismatchError,
    NonFiniteLossError,
    UntrustedTargetError,
    LabelError,
    TrackerError,
    CompileError,
    TrainerArgumentError,
    MonitorError,
    ConfigValueError,
)


def main(cfg: DictConfig) -> float:
    """One job of ``scripts/train.py``: train ``cfg`` and return the metric sweepers optimize.

    A user error is logged (console and ``train.log``) and exits with status 1; in a multirun
    the sweep goes on with its next job and exits 1 at its end, naming each failed job."""
    progress.start_job_clock()
    console.quiet()
    threads_quiet_on_full_disk()
    no_gpu_probe_per_step()
    try:
        with process_state_restored():
            route_lightning_logs()
            choices, overrides = command_line()
            found = Continuation()
            if HydraConfig.get().mode == RunMode.MULTIRUN and not cfg.get("resume"):
                found = continue_in_place(cfg, choices, overrides)
                if found.recorded is not None:
                    return found.recorded
            point_ddp_children_at_this_run(cfg.get("resume"))
            announce_run(cfg)
            return train(cfg, choices, overrides, restart=found.restart)
    except SIGTERMException:  # a SystemExit with status 0: a scheduler must see the job stopped
        sys.exit(128 + signal.SIGTERM)
    except USER_ERRORS as err:
        return refused(cfg, user_error_line(err))
    except Exception as err:  # a full disk (a DiskFullError, or however a writer reported it)
        if not out_of_space(err):
            raise
        return refused(cfg, f"DiskFullError: {disk_full(full_file(err), cfg.output_dir)}")


def user_error_line(err: Exception) -> str:
    """A user error in one line (for train.py, eval.py and shapes.py alike). A value refused by a
    config's constructor reaches us wrapped by Hydra ("Error in call to target 'X':", then the
    error's repr on a line of its own): the refusal itself is said, naming the innermost target
    it came from."""
    where = ""
    while isinstance(err, InstantiationException) and isinstance(err.__cause__, Exception):
        target = re.match(r"Error in call to target '([^']+)'", str(err))
        where = f" (in {target.group(1)})" if target else where
        err = err.__cause__
    return f"{type(err).__name__}: {' '.join(str(err).split())}{where}"


def refused(cfg: DictConfig, line: str) -> float:
    """A job stopped by a user error or a full disk: ``line`` logged (console and train.log),
    exit status 1; in a multirun the sweep goes on with its next job and exits 1 at its end,
    listing this one (run_dir.CheckRunDir.on_multirun_end), and its sweeper sees a failed trial."""
    log.error("%s", line)
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        sys.exit(1)
    if rank_zero_only.rank == 0:
        record_failure(hydra_cfg.sweep.dir, cfg.output_dir, line)
    return float("nan")


def no_gpu_probe_per_step() -> None:
    """Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` (so that a CUDA check never
    poisons a later fork), and Adam's ``step`` checks for an accelerator on every step: with a
    CUDA build of torch on a machine without a GPU that is an uncached NVML probe, 0.13 ms a step
    on 2 cores (about 3% of a small model's step). Where NVML finds no GPU there is nothing a fork
    could inherit, so torch's cheap runtime check may answer instead."""
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and not torch.cuda.is_available():
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


@contextmanager
def process_state_restored() -> Iterator[None]:
    """Leave the process as the job found it: Lightning's DDP launcher sets ``LOCAL_RANK``,
    ``MASTER_PORT``, ``WORLD_SIZE``... in ``os.environ`` and leaves a process group behind, which
    would make the next job of a multirun believe it is an externally launched rank."""
    environ = dict(os.environ)
    try:
        yield
    finally:
        leave_process_group()
        os.environ.clear()
        os.environ.update(environ)


def route_lightning_logs() -> None:
    """Send Lightning's log lines and all warnings through the root logger, so Hydra's
    ``train.log`` holds them and the console shows them above the progress bar (Lightning gives
    its loggers their own stderr handler and stops propagation)."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    console.warnings_to_log()


def point_ddp_children_at_this_run(resume: str | None) -> None:
    """Lightning's ``ddp`` launcher starts ranks >= 1 by re-running this script with
    ``sys.argv[1:]`` and ``hydra.run.dir=<HydraConfig run.dir>``. In a multirun that would start
    a whole sweep per rank, in a directory of its own (Lightning#18145, hydra#2070). Give the
    children this job's own overrides and its actual output directory instead, so every rank
    trains the same configuration and only rank 0 writes the run's outputs; ``resume`` when the
    job continues its run in place."""
    hydra_cfg = HydraConfig.get()
    with read_write(hydra_cfg.run):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    overrides = list(hydra_cfg.overrides.task)
    if resume and not any(o.startswith("resume=") for o in overrides):  # a continued sweep's job
        overrides.append(f"resume={resume}")
    sys.argv = [sys.argv[0], *overrides]


def announce_run(cfg: DictConfig) -> None:
    """The console's start block (rank 0): the run directory, and TensorBoard on the sweep's
    directory in a multirun, so its runs are compared side by side."""
    if rank_zero_only.rank != 0:
        return
    hydra_cfg = HydraConfig.get()
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    logdir = hydra_cfg.sweep.dir if sweep else cfg.output_dir
    console.announce_run(cfg.output_dir, None if CURVES in not_recorded(cfg) else logdir)


def command_line() -> tuple[dict[str, str], list[str]]:
    """This job's config-group choices and command-line overrides."""
    hydra_cfg = HydraConfig.get()
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")}
    return {k: v for k, v in choices.items() if v}, list(hydra_cfg.overrides.task)
