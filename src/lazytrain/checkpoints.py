"""Checkpoints that survive faults: atomic writes, saves only of what was trained, and readable
refusals of files that are not checkpoints or do not fit the model.

The rule: a checkpoint is replaced only by a newer state of the same run. A write goes to a
temporary file beside the target, is fsynced and renamed over it (a SIGKILL at any moment leaves
the old or the new file whole); an interruption saves only what the fit loop trained past the
last save, and only at a batch boundary; a failure before training started saves nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lazytrain.atomic_write import atomic_write
from lazytrain.compat import NotifyingCheckpoint, skip_hooks
from lazytrain.exact_resume import drop_stale_rank_windows, save_rank_window
from lazytrain.monitors import WaitsForValidation

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A file given as a checkpoint is not one (or not one lazytrain can load safely)."""


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's parameters or optimizer state do not fit the configured model."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` of a checkpoint, written with :func:`atomic_write` (Lightning's
    own writer truncates the old file first: a kill mid-write leaves neither)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        atomic_write(Path(path), lambda f: torch.save(checkpoint, f))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's contents, loaded with ``weights_only=True`` (no pickled code runs); a file
    that is not a checkpoint is a :class:`CheckpointError` that says so."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"{path} does not exist") from err
    except Exception as err:  # also KeyError (a text file), IndexError ... from torch's reader
        # torch's message suggests weights_only=False: never the right advice for a file from elsewhere
        first = (str(err).strip().splitlines() or [""])[0]
        reason = "" if "weights" in first.lower() or not first else f": {first[:120]}"
        raise CheckpointError(
            f"{path} is not a loadable checkpoint ({type(err).__name__}{reason}); it is truncated, "
            "corrupted or not a lazytrain/Lightning checkpoint. It is not loaded with pickle's code "
            "execution (weights_only=True), by design"
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path} is a torch file but not a Lightning checkpoint (no state_dict)"
        )
    return checkpoint


def check_fits(
    checkpoint: dict[str, Any],
    path: str | Path,
    module: L.LightningModule,
    optimizer: torch.optim.Optimizer,
) -> None:
    """Refuse, before anything is written, a checkpoint whose weights (or optimizer state) do
    not fit ``module``: every key present on both sides with the same shape, and the optimizer
    state loadable into ``optimizer``, the configured one over ``module``."""
    expected = module.state_dict()
    saved = checkpoint["state_dict"]
    missing, unexpected = (
        sorted(expected.keys() - saved.keys()),
        sorted(saved.keys() - expected.keys()),
    )
    shapes = [
        f"{k}: {tuple(saved[k].shape)} in the file, {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if k in saved and tuple(saved[k].shape) != tuple(v.shape)
    ]
    problems = [
        f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
        for what, keys in (("missing", missing), ("unexpected", unexpected))
        if keys
    ] + shapes[:3]
    if problems:
        raise CheckpointMismatchError(
            f"{path} does not fit the configured model ({'; '.join(problems)}): give the model "
            "config it was trained with"
        )
    states = checkpoint.get("optimizer_states") or []
    if states:
        # torch loads another optimizer's state without complaint and fails at the first step
        # (SGD after AdamW: KeyError: 'momentum'); compare the options and the groups instead.
        saved = states[0].get("param_groups", [])
        options = set().union(*(group.keys() for group in saved))
        lacking = sorted(set(optimizer.defaults) - options)
        sizes = (
            [len(g["params"]) for g in saved],
            [len(g["params"]) for g in optimizer.param_groups],
        )
        if lacking or sizes[0] != sizes[1]:
            raise CheckpointMismatchError(
                f"{path} holds the state of another optimizer than {type(optimizer).__name__} "
                f"({'no ' + ', '.join(lacking) if lacking else f'parameter groups {sizes[0]}'}): "
                "give the optimizer config it was trained with"
            )


class ModelCheckpoint(WaitsForValidation, NotifyingCheckpoint):
    """Lightning's ``ModelCheckpoint`` without its per-step costs, same files and same state.

    Lightning names every callback by its ``state_key`` at each hook call, about a dozen times a
    training step, and ``ModelCheckpoint`` rebuilds that key from its settings every time; the
    settings are fixed in ``__init__``, so it is built once. Its per-batch hook is dispatched only
    when it saves by step or time (an epoch-based checkpoint has nothing to do per batch).

    A fit that ends before its first validation has nothing to rank by a validation metric: it
    waits for one (:class:`~lazytrain.monitors.WaitsForValidation`), then says once that there is
    no best checkpoint and what the test scores.
    """

    def __init__(
        self,
        *args: Any,
        every_n_train_steps: int | None = None,
        train_time_interval: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            *args,
            every_n_train_steps=every_n_train_steps,
            train_time_interval=train_time_interval,
            **kwargs,
        )
        if not every_n_train_steps and train_time_interval is None:
            skip_hooks(self, "on_train_batch_end")  # nothing to do per batch

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.monitor is None or self.best_model_path or trainer.fast_dev_run:
            return
        if trainer.is_global_zero:
            log.warning(
                "no best checkpoint by %s: %s; the test scores the last step's weights",
                self.monitor, no_validation(trainer),
            )  # fmt: skip

    @property
    def state_key(self) -> str:
        key = self.__dict__.get("_state_key")
        if key is None:
            key = self.__dict__["_state_key"] = super().state_key
        return key

    def saving(self, trainer: L.Trainer, filepath: str) -> None:
        save_rank_window(trainer, filepath)  # (each DDP rank's own, see exact_resume)

    def saved(self, trainer: L.Trainer, filepath: str) -> None:
        drop_stale_rank_windows(trainer, filepath)


def no_validation(trainer: L.Trainer) -> str:
    """Why a fit ended without a validation, and the setting that would have validated."""
    if not sum(trainer.num_val_batches or [0]):
        return "no validation ran (trainer.limit_val_batches is 0)"
    every = trainer.check_val_every_n_epoch
    sooner = (
        f"it validates every {every} epochs: trainer.check_val_every_n_epoch={every}"
        if every and every > 1
        else "validate sooner with trainer.val_check_interval=<steps>"
    )
    return f"the fit stopped at step {trainer.global_step}, before its first validation ({sooner})"


def best_score(callback: LightningModelCheckpoint) -> float:
    """The monitored value of ``callback``'s best checkpoint. A ``ddp_spawn`` fit trains in worker
    processes and hands the main process back the best checkpoint's path but not its score; then
    it is read from that file, which holds the callback's state as of its own save."""
    if callback.best_model_score is not None:
        return float(callback.best_model_score)
    state = read_checkpoint(callback.best_model_path)["callbacks"][callback.state_key]
    return float(state["best_model_score"])


class LastCheckpoint(ModelCheckpoint):
    """``checkpoints/last.ckpt``: the run's latest state, written after every epoch and when the
    run is interrupted (Ctrl-C, SIGTERM from a scheduler), so ``resume=<run dir>`` continues from
    there.

    An interruption stops at the end of a batch (Ctrl-C is handled as Lightning handles SIGTERM;
    a second Ctrl-C stops at once, saving nothing), so the saved weights, optimizer, schedule,
    batch position and logger step belong together. Nothing is saved for a failure before
    training started, for a non-finite loss, or when nothing was trained since the last save.

    (``ModelCheckpoint(save_last=True)`` is not enough: since Lightning 2.6 it refreshes
    ``last.ckpt`` only in epochs that also saved a top-k checkpoint.)
    """

    def __init__(self, dirpath: str | Path, **kwargs) -> None:
        super().__init__(
            dirpath=dirpath,
            filename="last",
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
            **kwargs,
        )
        self._saved_step: int | None = None  # None: training has not started in this process
        self._interrupted = False
        self._previous_sigint: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._saved_step = trainer.global_step  # what last.ckpt holds (or the start: nothing new)
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._interrupted:  # the second Ctrl-C: stop now, as Python would
            raise KeyboardInterrupt
        self._interrupted = True
        log.warning("Ctrl-C: stopping after this batch (press again to stop at once)")
        # Lightning's own SIGTERM handling stops the fit loop at the end of the batch, where the
        # weights, optimizer, schedule, loader position and logger steps agree.
        os.kill(os.getpid(), signal.SIGTERM)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        # Lightning saves at a validation's end instead when validation does not come every
        # epoch (trainer.check_val_every_n_epoch=2): the epochs between would end unsaved.
        unsaved = self._saved_step is not None and trainer.global_step > self._saved_step
        if unsaved and not trainer.fast_dev_run:  # (fast_dev_run records no checkpoint)
            self.save_now(trainer, str(Path(self.dirpath) / f"last{self.FILE_EXTENSION}"))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_sigint()

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def saved(self, trainer: L.Trainer, filepath: str) -> None:
        super().saved(trainer, filepath)
        self._saved_step = trainer.global_step

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_sigint()
        # SIGTERM (and a first Ctrl-C) stop at the end of a batch; a KeyboardInterrupt (a second
        # Ctrl-C) can land mid-step, so its state is never saved.
        if not isinstance(exception, SIGTERMException) or self._saved_step is None:
            return
        name = "Ctrl-C" if self._interrupted else type(exception).__name__
        path = Path(self.dirpath) / f"last{self.FILE_EXTENSION}"
        if trainer.global_step <= self._saved_step:
            log.warning(
                "%s at step %d: nothing trained since %s was saved; it is left as it is",
                name, trainer.global_step, path,
            )  # fmt: skip
        else:
            self.save_now(trainer, str(path))
            log.warning("%s at step %d: saved %s", name, trainer.global_step, path)
        if path.is_file():
            log.warning(
                "continue with: python scripts/train.py resume=%s", Path(self.dirpath).parent
            )
