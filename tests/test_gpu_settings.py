"""``trainer=gpu`` picks what a GPU user would: bf16 mixed precision, a fused optimizer, NHWC
convolutions; ``data.drop_last=true`` keeps every training step one shape (what
``compile=reduce-overhead``'s CUDA graphs want). Each runs here on the CPU
(``trainer.accelerator=cpu``); the ``gpu``-marked tests in test_cli.py run them on a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from lazytrain.train import train

from .helpers import read_events
from .probes import HostSyncProbe

CONVNET = ("model=lazy_convnet", "model.channels=[4,8]", "model.convs_per_block=1")


def test_trainer_gpu_trains_in_bf16_mixed_with_a_fused_optimizer_and_nhwc_kernels(cfg_factory):
    cfg = cfg_factory("trainer=gpu", *CONVNET, "trainer.max_epochs=1")
    assert cfg.trainer.accelerator == "cpu"  # the test's override, after the group's gpu
    train(cfg)
    run = Path(cfg.output_dir)
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert {g["fused"] for g in last["optimizer_states"][0]["param_groups"]} == {True}
    kernels = [t for t in last["state_dict"].values() if t.ndim == 4 and t.shape[1] > 1]
    assert kernels and all(
        t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
        for t in kernels
    )
    hparams = read_events(run).hparams
    assert hparams["trainer.precision"] == "bf16-mixed"
    # kernel choices, not the experiment: the same run on a CPU is comparable with this one
    assert "channels_last" not in hparams and "optimizer.fused" not in hparams


def test_drop_last_makes_every_training_batch_full_and_evaluates_everything(cfg_factory):
    datamodule = instantiate(cfg_factory("data.drop_last=true", "data.batch_size=100").data)
    datamodule.setup("fit")
    train_x = len(datamodule.train_dataloader().y)
    assert [len(y) for _, y in datamodule.train_dataloader()] == [100] * (train_x // 100)
    assert train_x % 100  # (something was left out)
    assert sum(len(y) for _, y in datamodule.val_dataloader()) == datamodule.val_size


@pytest.mark.gpu
@pytest.mark.parametrize("switches", [(), ("compile=reduce-overhead", "data.drop_last=true")])
def test_trainer_gpu_trains_on_the_gpu(cfg_factory, switches):
    """On a GPU for real: nothing makes the host wait for the device between logging steps
    (eager; a compiled step is one graph), and reduce-overhead's CUDA graphs train."""
    cfg = cfg_factory("trainer=gpu", *CONVNET, *switches, "trainer.accelerator=gpu")
    probe = HostSyncProbe() if not switches else None
    train(cfg, callbacks=[probe] if probe else [])
    if probe:
        assert probe.windows > 0 and not probe.found, "\n".join(probe.found)
    events = read_events(Path(cfg.output_dir))
    assert "CPU" not in events.hparams["hardware"]  # the GPU's name
    assert all(torch.isfinite(torch.tensor(v)) for _, v in events.scalars["train/loss_epoch"])
