"""Every private name ``lazytrain.compat`` reaches, on the installed Lightning, Hydra, TensorBoard
and torch: each test fails naming the attribute when an upgrade moves it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.profilers import PassThroughProfiler
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.writer import FileWriter

from lazytrain import compat, event_files

from .helpers import quiet_trainer


def present(owner: object, name: str, user: str) -> None:
    assert hasattr(owner, name), (
        f"{getattr(owner, '__qualname__', type(owner).__qualname__)}.{name} is gone from this "
        f"version: lazytrain.compat.{user} needs another way"
    )


class Tiny(compat.CheapHooks):
    """A real LightningModule on random data, recording what Lightning names its hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)
        self.hook_names: list[str] = []

    def training_step(self, batch, batch_idx):
        self.hook_names.append(self._current_fx_name)
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.randn(12, 4), torch.randint(0, 2, (12,)))
        return torch.utils.data.DataLoader(data, batch_size=4)


def test_current_fx_name_is_a_plain_attribute_lightning_sets_around_each_hook(tmp_path):
    present(L.LightningModule(), "_current_fx_name", "CheapHooks")
    model = Tiny()
    quiet_trainer(tmp_path, limit_train_batches=3, limit_val_batches=0).fit(model)
    assert model.hook_names == ["training_step"] * 3
    assert "_current_fx_name" in vars(model)  # set past nn.Module's checks


class Dispatched(PassThroughProfiler):
    """The actions Lightning wraps in its profiler: one per hook it dispatches to a callback."""

    def __init__(self) -> None:
        super().__init__()
        self.actions: list[str] = []

    def start(self, action_name: str) -> None:
        self.actions.append(action_name)


class EveryBatch(L.Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, *args) -> None:
        self.batches += 1


class AtFitStart(L.Callback):
    def __init__(self) -> None:
        self.fits = 0

    def on_fit_start(self, *args) -> None:
        self.fits += 1


class TinyCountingBatches(Tiny):
    def on_train_batch_end(self, *args) -> None:
        self.hook_names.append(self._current_fx_name)


def test_a_per_batch_hook_set_to_none_is_not_dispatched(tmp_path):
    every_batch, at_fit_start, profiler = EveryBatch(), AtFitStart(), Dispatched()
    trainer = quiet_trainer(
        tmp_path, limit_train_batches=3, callbacks=[every_batch, at_fit_start], profiler=profiler
    )
    compat.skip_unimplemented_hooks(trainer.callbacks)
    model = TinyCountingBatches()  # a CheapHooks: its own unimplemented hooks are skipped too
    trainer.fit(model)
    assert every_batch.batches == 3 and at_fit_start.fits == 1  # what they implement still runs
    assert model.hook_names == ["training_step", "on_train_batch_end"] * 3
    per_batch = [
        a
        for a in profiler.actions
        if a.startswith(("[Callback]", "[LightningModule]"))
        and a.rpartition(".")[2] in compat.PER_BATCH_HOOKS
    ]
    each_step = [
        "[Callback]EveryBatch.on_train_batch_end",
        "[LightningModule]TinyCountingBatches.on_train_batch_end",
    ]
    assert per_batch == each_step * 3, per_batch
    assert "[Callback]AtFitStart.on_train_epoch_start" in profiler.actions  # other hooks as before
    assert "[LightningModule]TinyCountingBatches.on_train_epoch_start" in profiler.actions


def test_fit_loop_combined_loader_and_batch_progress(tmp_path):
    trainer = quiet_trainer(tmp_path, limit_train_batches=3, limit_val_batches=0)
    present(trainer.fit_loop, "_combined_loader", "estimated_stepping_batches")
    present(trainer.fit_loop.epoch_loop, "batch_progress", "batches_completed")
    trainer.fit(Tiny())
    assert compat.batches_completed(trainer) == 3
    assert trainer.fit_loop._combined_loader is not None
    assert compat.estimated_stepping_batches(trainer) == 3
    assert trainer.fit_loop._combined_loader is None


def test_model_checkpoint_saves_through_save_checkpoint(tmp_path):
    present(ModelCheckpoint, "_save_checkpoint", "NotifyingCheckpoint")

    class Recording(compat.NotifyingCheckpoint):
        def saving(self, trainer, filepath):
            assert not Path(filepath).exists()  # before the save
            self.saves.append(("saving", trainer.global_step, filepath))

        def saved(self, trainer, filepath):
            assert Path(filepath).is_file()
            self.saves.append(("saved", trainer.global_step, filepath))

    checkpoint = Recording(
        dirpath=tmp_path / "ckpt",
        filename="e{epoch}",
        save_top_k=-1,
        auto_insert_metric_name=False,
    )
    checkpoint.saves = []
    trainer = quiet_trainer(
        tmp_path, max_epochs=2, limit_val_batches=0, enable_checkpointing=True,
        callbacks=[checkpoint],
    )  # fmt: skip
    trainer.fit(Tiny())
    assert [(when, step) for when, step, _ in checkpoint.saves] == [
        ("saving", 3),
        ("saved", 3),
        ("saving", 6),
        ("saved", 6),
    ]
    assert all((tmp_path / "ckpt" / name).is_file() for name in ("e0.ckpt", "e1.ckpt"))
    now = str(tmp_path / "now.ckpt")
    checkpoint.save_now(trainer, now)
    assert checkpoint.saves[-2:] == [("saving", 6, now), ("saved", 6, now)]


def test_tensorboard_logger_experiment_and_the_writers_event_file(tmp_path):
    logger = TensorBoardLogger(tmp_path, name="", version="")
    present(logger, "_experiment", "started_experiment")
    assert compat.started_experiment(logger) is None  # nothing created yet
    experiment = logger.experiment
    assert compat.started_experiment(logger) is experiment
    with SummaryWriter(str(tmp_path / "w")) as writer:
        present(writer, "_get_file_writer", "file_writer")
        assert isinstance(compat.file_writer(writer), FileWriter)


def test_hydra_locate_resolves_targets():
    from hydra._internal import utils

    present(utils, "_locate", "locate")
    assert compat.locate("torch.nn.LazyLinear") is nn.LazyLinear


def test_a_net_compiled_in_place_is_called_eagerly_for_a_while():
    net = nn.Linear(4, 2)
    net.compile()
    present(net, "_compiled_call_impl", "eager_calls")
    compiled = net._compiled_call_impl
    assert compiled is not None
    with compat.eager_calls(net):
        traced = torch.jit.trace(net, torch.zeros(1, 4))  # refused through the compiled call
    assert net._compiled_call_impl is compiled
    assert torch.equal(traced(torch.ones(1, 4)), net.forward(torch.ones(1, 4)))


def test_torch_layer_bases_and_fans():
    present(nn.init, "_calculate_fan_in_and_fan_out", "fans")
    assert compat.fans(torch.empty(3, 5)) == (5, 3)
    assert compat.fans(torch.empty(8, 4, 3, 3)) == (36, 72)
    convs = (nn.Conv1d(1, 1, 1), nn.LazyConv2d(1, 1), nn.ConvTranspose3d(1, 1, 1))
    norms = (nn.BatchNorm1d(1), nn.LazyBatchNorm2d(), nn.SyncBatchNorm(1))
    assert all(isinstance(m, compat.ConvLayer) for m in convs)
    assert all(isinstance(m, compat.BatchNormLayer) for m in norms)
    assert not isinstance(nn.LayerNorm(1), compat.BatchNormLayer | compat.ConvLayer)


def test_event_reader_checksums_at_c_speed_compute_the_same_crc(tmp_path, monkeypatch):
    """lazytrain.event_files replaces the stub reader's CRC-32C (by the name masked_crc32c calls)."""
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow

    present(pywrap_tensorflow, "crc32c", "(event_files) fast_checksums")
    present(pywrap_tensorflow, "masked_crc32c", "(event_files) fast_checksums")
    data = bytes(range(256)) * 40 + b"lazytrain"
    monkeypatch.setattr(pywrap_tensorflow, "crc32c", pywrap_tensorflow.crc32c)  # undone after
    python = pywrap_tensorflow.masked_crc32c(data)
    assert event_files.fast_checksums(), "google-crc32c's C implementation is not installed"
    assert pywrap_tensorflow.crc32c is event_files.google_crc32c.value
    assert pywrap_tensorflow.masked_crc32c(data) == python
    writer = SummaryWriter(str(tmp_path))  # and a real event file still reads back
    writer.add_scalar("val/acc", 0.5, 3)
    writer.close()
    read = event_files.read_events(str(tmp_path), {"scalars": 0})
    assert [(e.step, e.value) for e in read.Scalars("val/acc")] == [(3, 0.5)]


def test_mlflow_tracking_store_registry_takes_a_sqlite_builder():
    tracking = pytest.importorskip("mlflow.tracking._tracking_service.utils")
    present(tracking, "_tracking_store_registry", "sqlite_artifacts_beside_database")
    present(tracking._tracking_store_registry, "register", "sqlite_artifacts_beside_database")


def test_hydra_builds_the_sweeper_from_the_config_its_callbacks_were_given():
    """``set_sweeper_trials`` changes the config in ``on_multirun_start``; the sweeper sees it only
    while Hydra instantiates the sweeper from that same object, after the callbacks ran."""
    from hydra._internal.hydra import Hydra

    source = inspect.getsource(Hydra.multirun)
    assert re.search(r"on_multirun_start\(config=cfg\b.*instantiate_sweeper\(\s*config=cfg\b", source, re.S), (
        "Hydra.multirun no longer builds the sweeper from its callbacks' config after them: "
        "lazytrain.compat.set_sweeper_trials needs another way"
    )  # fmt: skip


def test_an_operator_mode_sees_each_host_sync():
    seen = []

    class Seeing(compat.OperatorMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    with Seeing():
        float(torch.ones(2).sum())
    assert torch.ops.aten._local_scalar_dense.default in seen, (
        "torch.utils._python_dispatch.TorchDispatchMode no longer sees .item(): "
        "lazytrain.compat.OperatorMode needs another way"
    )


def test_weight_averaging_keeps_its_model_and_swa_its_schedule_state():
    from lightning.pytorch.callbacks import EMAWeightAveraging, StochasticWeightAveraging

    swa = StochasticWeightAveraging(swa_lrs=0.01)
    for name in ("_initialized", "_scheduler_state"):
        present(swa, name, "swa_schedule_state")
    assert compat.swa_schedule_state(swa) == (False, False)
    ema = EMAWeightAveraging()
    present(ema, "_average_model", "average_model")
    assert compat.average_model(ema) is None  # built at fit's setup
