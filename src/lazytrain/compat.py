"""The one door to private parts of Lightning, Hydra, TensorBoard and torch.

Each name below reaches something a library does not offer publicly (yet); the comment says what
is missing. ``tests/test_compat.py`` checks each of them on the installed versions and fails
naming the attribute, so an upgrade that moves one breaks a test that says why, not exact resume
or checkpointing in silence. No other module of lazytrain touches a library's ``_private`` name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import lightning as L
import torch
from hydra._internal.utils import _locate
from lightning.pytorch.callbacks import ModelCheckpoint, StochasticWeightAveraging, WeightAveraging
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, open_dict, read_write
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.optim.swa_utils import AveragedModel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.writer import FileWriter

from lazytrain import sqlite_url

# The common base classes of torch's convolutions (1-3d, transposed, lazy) and batch norms
# (1-3d, lazy, sync): no public class or protocol covers each family.
ConvLayer = _ConvNd
BatchNormLayer = _BatchNorm
# The mode that sees every operator torch dispatches (documented, but only under this path): the
# tests' HostSyncProbe counts host syncs with it.
OperatorMode = TorchDispatchMode


class CheapHooks(L.LightningModule):
    """Lightning's hook calls, trimmed where they cost and do nothing (no public switch exists).

    Lightning sets ``_current_fx_name`` around every hook call, about 50 times a training step,
    and ``nn.Module.__setattr__``'s parameter/buffer/module checks make that a measurable cost; it
    is a plain attribute, so it is set as one. The per-batch hooks a subclass leaves at
    ``LightningModule``'s no-op are not called at all (:func:`skip_unimplemented_hooks`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        skip_unimplemented_hooks([self])

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


# The hooks Lightning calls on every callback and on the LightningModule once a training step, and
# on every callback once an evaluation batch (the evaluation loops read the module's own batch
# hooks' signatures, so those stay).
TRAINING_STEP_HOOKS = (
    "on_train_batch_start", "on_train_batch_end", "on_before_backward", "on_after_backward",
    "on_before_optimizer_step", "on_before_zero_grad",
)  # fmt: skip
PER_BATCH_HOOKS = TRAINING_STEP_HOOKS + (
    "on_validation_batch_start", "on_validation_batch_end", "on_test_batch_start",
    "on_test_batch_end", "on_predict_batch_start", "on_predict_batch_end",
)  # fmt: skip


def skip_unimplemented_hooks(hooked: Iterable[L.Callback | L.LightningModule]) -> None:
    """Lightning calls each per-batch hook of every callback and of the module through a
    profiler context (and a callback's ``state_key``), whether it is implemented or not: about
    60 calls a training step for eight callbacks. Each hook a class leaves at ``Callback``'s or
    ``LightningModule``'s no-op is skipped (:func:`skip_hooks`)."""
    for obj in hooked:
        is_callback = isinstance(obj, L.Callback)
        base = L.Callback if is_callback else L.LightningModule
        skip_hooks(
            obj,
            *(
                name
                for name in (PER_BATCH_HOOKS if is_callback else TRAINING_STEP_HOOKS)
                if name not in vars(obj) and getattr(type(obj), name) is getattr(base, name)
            ),
        )


def skip_hooks(hooked: L.Callback | L.LightningModule, *names: str) -> None:
    """Lightning skips a hook that is not callable (its dispatchers check), so each named hook
    is set to ``None`` on this instance."""
    for name in names:
        setattr(hooked, name, None)


def estimated_stepping_batches(trainer: L.Trainer) -> int:
    """``trainer.estimated_stepping_batches``, without its side effect. Lightning#20550: it sets
    the training loader up before a checkpoint's loop state is restored, and fit then reuses it,
    so the loader's saved batch position is never loaded (a mid-epoch resume replays the epoch).
    Dropping the fit loop's ``_combined_loader`` lets fit set it up again, after the restore."""
    steps = int(trainer.estimated_stepping_batches)
    trainer.fit_loop._combined_loader = None
    return steps


def batches_completed(trainer: L.Trainer) -> int:
    """Training batches completed in this epoch, as the fit loop counts them (restored from a
    checkpoint; Lightning offers no public counter of batches within the epoch)."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.completed


class NotifyingCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` with public hooks before and after each save of its own, on every rank.
    Every save it makes (per epoch, per step, on a time interval) passes through its internal
    ``_save_checkpoint``, which also records the file and tells the loggers; nothing public says a
    save happens, or to which file."""

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        self.saving(trainer, filepath)
        super()._save_checkpoint(trainer, filepath)
        self.saved(trainer, filepath)

    def save_now(self, trainer: L.Trainer, filepath: str) -> None:
        """Save as the callback's own schedule would (the same bookkeeping and hook)."""
        self._save_checkpoint(trainer, filepath)

    def saving(self, trainer: L.Trainer, filepath: str) -> None:
        """Called before each save; override it."""

    def saved(self, trainer: L.Trainer, filepath: str) -> None:
        """Called after each save; override it."""


def swa_schedule_state(callback: StochasticWeightAveraging) -> tuple[bool, bool]:
    """Whether Lightning's SWA has built its SWALR schedule, and whether a checkpoint's schedule
    state waits to be loaded into it: what :class:`lazytrain.averaging.SWA` needs to resume
    exactly; the callback exposes neither."""
    return callback._initialized, callback._scheduler_state is not None


def average_model(callback: WeightAveraging) -> AveragedModel | None:
    """The ``AveragedModel`` Lightning's weight averaging builds at fit's setup (no accessor)."""
    return callback._average_model


def started_experiment(logger: TensorBoardLogger) -> SummaryWriter | None:
    """The logger's writer if it has been created: ``logger.experiment`` would create one (and an
    empty event file) just to be flushed."""
    return logger._experiment


def file_writer(writer: SummaryWriter) -> FileWriter:
    """The writer's event file, to add hand-made summaries (the HPARAMS experiment) to it:
    ``SummaryWriter.add_hparams`` writes them into a new subdirectory, a run of its own."""
    return writer._get_file_writer()


@contextlib.contextmanager
def eager_calls(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` called eagerly for a while although ``net.compile()`` compiled it in place:
    ``torch.jit.trace`` (TensorBoard's ``add_graph``) refuses a dynamo-optimized call, and
    ``Module.compile`` keeps the compiled call in ``_compiled_call_impl``, which nothing public
    switches off (``torch.compiler.set_stance("force_eager")`` still goes through it)."""
    compiled = net.__dict__.get("_compiled_call_impl")
    net._compiled_call_impl = None
    try:
        yield net
    finally:
        net._compiled_call_impl = compiled


def locate(path: str) -> Any:
    """The object at a dotted path, exactly as ``hydra.utils.instantiate`` resolves a target;
    ``hydra.utils.get_object`` wraps the same function but logs an error line for every miss."""
    return _locate(path)


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """A weight's fan-in and fan-out as ``torch.nn.init`` computes them for Xavier and Kaiming
    (no public function returns them)."""
    return nn.init._calculate_fan_in_and_fan_out(weight)


def sqlite_artifacts_beside_database() -> None:
    """MLflow's client opens a SQLite store with ``./mlruns`` as its default artifact root and
    creates that directory wherever the command runs; only ``mlflow server`` has a setting for it
    (``--default-artifact-root``). Its store registry (private) is given a builder whose default
    root is ``mlflow-artifacts/`` beside the database. Call it before the first client."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    def store(store_uri: str, artifact_uri: str | None = None) -> SqlAlchemyStore:
        return SqlAlchemyStore(store_uri, artifact_uri or sqlite_artifacts(store_uri))

    _tracking_store_registry.register("sqlite", store)


def sqlite_artifacts(store_uri: str) -> str:
    """Where a SQLite MLflow store's artifacts go: ``mlflow-artifacts/`` beside the database."""
    return (sqlite_url.database(store_uri).parent / "mlflow-artifacts").resolve().as_uri()


def set_sweeper_trials(config: DictConfig, n_trials: int) -> None:
    """How many trials Hydra's Optuna sweeper runs, set from a ``on_multirun_start`` callback:
    Hydra instantiates the sweeper from the very config object its callbacks were given
    (``hydra._internal.hydra.Hydra.multirun``), and no public hook sits between the two."""
    with read_write(config.hydra.sweeper), open_dict(config.hydra.sweeper):
        config.hydra.sweeper.n_trials = n_trials
