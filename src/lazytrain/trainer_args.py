"""Trainer arguments as a command line gives them, made to do what they say before Lightning sees
them (``conf/trainer`` passes the rest straight through).

- ``trainer.precision=16-mixed`` where training runs on the CPU: Lightning would train in
  bf16-mixed instead, with a warning, while the run records 16-mixed. Refused in one line.
- ``+trainer.profiler=simple`` (or ``advanced``, ``pytorch``): Lightning's profiler of that name
  prints its report into the log only; here it writes ``fit-profile.txt`` and
  ``test-profile.txt`` into the run directory, as ``debug=profiler`` does.
- ``+trainer.max_time={days:1,hours:12}``: Hydra gives a ``DictConfig``, Lightning wants a dict
  (``instantiate(..., _convert_="all")`` in :mod:`lazytrain.train`).
- ``+trainer.enable_progress_bar=false``, ``+trainer.enable_checkpointing=false``: Lightning
  refuses either beside a progress bar or checkpoint callback, and ``conf/callbacks`` configures
  both; the switch drops them instead (no checkpoints: said as not recorded).
- ``+trainer.barebones=true``: it forbids the loggers, checkpoints and ``self.log`` a run is made
  of. Refused in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, ProgressBar
from lightning.pytorch.profilers import AdvancedProfiler, PyTorchProfiler, SimpleProfiler
from omegaconf import DictConfig

FP16_AMP = ("16-mixed", "16", 16)
SWITCHED_OFF = {"enable_progress_bar": ProgressBar, "enable_checkpointing": Checkpoint}
PROFILERS = {"simple": SimpleProfiler, "advanced": AdvancedProfiler, "pytorch": PyTorchProfiler}


class TrainerArgumentError(ValueError):
    """A Trainer argument this run cannot honour."""


def on_the_cpu(trainer: DictConfig) -> bool:
    accelerator = trainer.get("accelerator", "auto")
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def trainer_arguments(trainer: DictConfig, run_dir: Path) -> dict[str, Any]:
    """What to pass to ``Trainer`` beside ``trainer``'s own config, once it is checked: before
    anything is written, so a refusal leaves nothing behind."""
    check_precision(trainer)
    check_not_barebones(trainer)
    return profiler_writing_to(trainer, run_dir)


def switched_on(trainer: DictConfig, callbacks: Sequence[Callback]) -> list[Callback]:
    """``callbacks`` less those the Trainer's own switches turn off."""
    off = tuple(kind for switch, kind in SWITCHED_OFF.items() if trainer.get(switch) is False)
    return [callback for callback in callbacks if not isinstance(callback, off)]


def check_not_barebones(trainer: DictConfig) -> None:
    if trainer.get("barebones"):
        raise TrainerArgumentError(
            "trainer.barebones=true forbids the loggers, checkpoints and metric logging a "
            "lazytrain run is made of; lazytrain's own overhead is already within a few percent "
            "of Lightning's bare Trainer (scripts/bench.py). For a quick check of the pipeline "
            "give debug=fdr; to train without records, logger=[] +trainer.enable_checkpointing=false"
        )


def check_precision(trainer: DictConfig) -> None:
    if trainer.get("precision") in FP16_AMP and on_the_cpu(trainer):
        raise TrainerArgumentError(
            f"trainer.precision={trainer.precision}: float16 mixed precision needs a CUDA "
            "device, and this run trains on the CPU; give trainer.precision=bf16-mixed (the "
            "CPU's mixed precision) or trainer.precision=32-true"
        )


def profiler_writing_to(trainer: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The ``profiler`` argument for a profiler named by a string, writing into ``run_dir``;
    nothing to add for none, or for one configured in full (``_target_`` and its own path)."""
    name = trainer.get("profiler")
    if not isinstance(name, str):
        return {}
    if name not in PROFILERS:
        raise TrainerArgumentError(
            f"trainer.profiler={name} is not a Lightning profiler: give one of "
            f"{', '.join(PROFILERS)}, e.g. +trainer.profiler=simple, or debug=profiler"
        )
    return {"profiler": PROFILERS[name](dirpath=run_dir, filename="profile")}
