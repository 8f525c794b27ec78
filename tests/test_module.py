"""The LightningModule against traps 4–11 of docs/lazy-traps.md: optimizer, stages, copies,
checkpoints, summaries."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, StochasticWeightAveraging
from lightning.pytorch.tuner import Tuner
from lightning.pytorch.utilities.model_summary import ModelSummary
from torch import nn

from lazytrain.digests import weights_digest
from lazytrain.dry_run import apply_init, uninitialized
from lazytrain.models import to_channels_last
from lazytrain.module import LazyClassifier
from lazytrain.train import model_and_data

from .helpers import CNN_PARAMS, quiet_trainer


def test_trap4_optimizer_sees_only_concrete_parameters(cfg_factory):
    model, _ = model_and_data(cfg_factory("~scheduler"))  # a schedule needs a trainer's step count
    optimizer = model.configure_optimizers()
    decay, no_decay = optimizer.param_groups
    assert [p.ndim for p in decay["params"]] == [2, 2] and decay["weight_decay"] == 0.01
    assert [p.ndim for p in no_decay["params"]] == [1, 1] and no_decay["weight_decay"] == 0.0
    model.extra = nn.LazyLinear(3)
    with pytest.raises(
        RuntimeError, match=r"uninitialized parameters: \['extra.weight', 'extra.bias'\]"
    ):
        model.configure_optimizers()


def test_sgd_from_config(cfg_factory):
    model, _ = model_and_data(cfg_factory("optimizer=sgd", "optimizer.lr=0.05", "~scheduler"))
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["lr"] == 0.05


def test_trap5_validate_and_test_never_reinitialize(cfg_factory, tmp_path):
    model, datamodule = model_and_data(cfg_factory())
    initial = weights_digest(model.net)
    t = quiet_trainer(tmp_path)
    t.fit(model, datamodule=datamodule)
    trained = weights_digest(model.net)
    assert trained != initial
    t.validate(model, datamodule=datamodule)
    t.test(model, datamodule=datamodule)
    assert weights_digest(model.net) == trained
    apply_init(
        model.net, datamodule.dry_run_sample(8), lambda layer, g: nn.init.zeros_(layer.weight)
    )
    assert weights_digest(model.net) == trained


def test_trap6_deepcopy_and_weight_averaging(cfg_factory, tmp_path):
    with pytest.raises(Exception):  # noqa: B017 - the trap itself: deepcopy of a lazy BN fails
        copy.deepcopy(nn.LazyBatchNorm2d())
    model, datamodule = model_and_data(
        cfg_factory("model=lazy_convnet", "model.channels=[4,8]", "model.convs_per_block=1")
    )
    clone = copy.deepcopy(model)
    assert weights_digest(clone.net) == weights_digest(model.net)
    swa = StochasticWeightAveraging(swa_lrs=1e-3, swa_epoch_start=1)
    quiet_trainer(tmp_path, max_epochs=2, callbacks=[swa]).fit(model, datamodule=datamodule)
    assert swa._average_model is not None


@pytest.fixture
def trained(cfg_factory, tmp_path):
    """A model fitted for one short epoch with a checkpoint; returns (model, datamodule, path)."""
    cfg = cfg_factory("model=lazy_convnet", "model.channels=[4,8]", "model.convs_per_block=1")
    model, datamodule = model_and_data(cfg)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    quiet_trainer(tmp_path, callbacks=[checkpoint], enable_checkpointing=True).fit(
        model, datamodule=datamodule
    )
    return model.eval(), datamodule, tmp_path / "ckpt" / "last.ckpt"


def test_trap7_8_checkpoint_holds_plain_hparams_and_loads_weights_only(trained):
    _, _, path = trained
    raw = torch.load(path, weights_only=True)
    hparams = raw["hyper_parameters"]
    assert (
        type(hparams["model"]) is dict
        and hparams["model"]["_target_"] == "lazytrain.models.lazy_convnet"
    )
    assert "sample" not in hparams and "net" not in hparams
    loaded = LazyClassifier.load_from_checkpoint(path, weights_only=True)
    assert isinstance(loaded, LazyClassifier)


def test_trap10_loaded_model_is_concrete_and_predicts_identically(trained):
    model, datamodule, path = trained
    loaded = LazyClassifier.load_from_checkpoint(path, weights_only=True).eval()
    assert not [
        type(m).__name__ for m in loaded.net.modules() if type(m).__name__.startswith("Lazy")
    ]
    assert "Conv2d(1, 4" in repr(loaded.net)
    x = datamodule.dry_run_sample(16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert weights_digest(loaded.net) == weights_digest(model.net)


def test_trap5_validate_after_loading_keeps_the_loaded_weights(trained, tmp_path):
    _, datamodule, path = trained
    loaded = LazyClassifier.load_from_checkpoint(path, weights_only=True)
    before = weights_digest(loaded.net)
    quiet_trainer(tmp_path).validate(loaded, datamodule=datamodule)
    assert weights_digest(loaded.net) == before


def test_checkpoint_from_another_architecture_names_the_parameter(trained, cfg_factory):
    _, _, path = trained
    other, _ = model_and_data(
        cfg_factory("model=lazy_convnet", "model.channels=[4,16]", "model.convs_per_block=1")
    )
    state = torch.load(path, weights_only=True)["state_dict"]
    with pytest.raises(RuntimeError, match=r"size mismatch for net\.4\.weight"):
        other.load_state_dict(state)


def test_trap9_lr_find_writes_a_loadable_checkpoint(cfg_factory, tmp_path):
    """lr_find saves a checkpoint before its first step (and deletes it after): keep a copy and
    load it into a fresh model, weights only, with every shape concrete and the init's weights."""
    model, datamodule = model_and_data(cfg_factory())
    initial = weights_digest(model.net)
    saved: list[Path] = []

    class KeepCopies(L.Callback):
        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            saved.append(tmp_path / f"copy{len(saved)}.ckpt")
            torch.save(checkpoint, saved[-1])

    tuner = Tuner(quiet_trainer(tmp_path, max_epochs=3, callbacks=[KeepCopies()]))
    result = tuner.lr_find(model, datamodule=datamodule, num_training=8, early_stop_threshold=None)
    assert len(result.results["lr"]) == 8 and saved
    loaded = LazyClassifier.load_from_checkpoint(saved[0], weights_only=True)
    assert weights_digest(loaded.net) == initial
    assert not uninitialized(loaded)


def test_trap11_summary_counts_the_real_parameters(cfg_factory):
    model, _ = model_and_data(cfg_factory("model=lazy_cnn"))
    real = sum(p.numel() for p in model.parameters())
    assert real == CNN_PARAMS  # counted from the layers LeNet declares
    assert ModelSummary(model).total_parameters == real


@pytest.mark.parametrize("precision", ["bf16-true", "64-true", "bf16-mixed"])
def test_trap16_precisions_and_gradient_clipping_train(cfg_factory, tmp_path, precision):
    model, datamodule = model_and_data(
        cfg_factory("model=lazy_convnet", "model.channels=[4,8]", "model.convs_per_block=1")
    )
    initial = weights_digest(model.net)
    t = quiet_trainer(tmp_path, precision=precision, gradient_clip_val=0.5, log_every_n_steps=1)
    t.fit(model, datamodule=datamodule)
    assert weights_digest(model.net) != initial
    assert torch.isfinite(t.callback_metrics["train/loss_epoch"])


def test_channels_last_lays_out_kernels_and_batches_and_computes_the_same(cfg_factory, tmp_path):
    small = ("model=lazy_convnet", "model.channels=[4,8]", "model.convs_per_block=1")
    plain, datamodule = model_and_data(cfg_factory(*small))
    nhwc, _ = model_and_data(cfg_factory(*small, "channels_last=true"))
    kernels = [p for p in nhwc.net.parameters() if p.ndim == 4]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    assert weights_digest(plain.net) == weights_digest(
        nhwc.net
    )  # the same init, only laid out differently
    # 3 channels: a layout change that is not a no-op; the net sees its batch in NHWC
    seen = []
    conv = to_channels_last(nn.Conv2d(3, 4, 3))
    conv.register_forward_pre_hook(lambda _, args: seen.append(args[0].stride()))
    x = torch.randn(8, 3, 28, 28)
    conv(x)
    assert seen == [x.contiguous(memory_format=torch.channels_last).stride()] != [x.stride()]
    sample = datamodule.dry_run_sample(8)
    torch.testing.assert_close(nhwc.eval()(sample), plain.eval()(sample))
    quiet_trainer(tmp_path).fit(nhwc.train(), datamodule=datamodule)
    assert weights_digest(nhwc.net) != weights_digest(plain.net)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)  # kept
