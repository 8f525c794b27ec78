"""The feature matrix: each Trainer feature a user switches on from the command line, on each
model family — the built-in lazy MLP, LeNet, BatchNorm convnet, a YAML layer list, and a user's
own lazy ``nn.Module`` from a package outside lazytrain — each run checked for what the feature
promises (steps, validation points, dtypes, logged curves), not only for finishing."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.tuner import Tuner
from lightning.pytorch.utilities.model_summary import get_human_readable_count
from omegaconf import OmegaConf

from lazytrain.digests import weights_digest
from lazytrain.train import model_and_data, train

from .helpers import make_cfg, quiet_trainer, read_events

pytestmark = pytest.mark.slow
EPOCHS = 2
USER_PACKAGE = "matrix_user_models"
USER_MODULE = '''
from torch import nn


class TinyNet(nn.Module):
    """A user's own lazy module: no Sequential, a forward of its own, LazyBatchNorm."""

    def __init__(self, num_classes: int = 10, channels: int = 4):
        super().__init__()
        self.conv = nn.LazyConv2d(channels, 3, padding=1)
        self.norm = nn.LazyBatchNorm2d()
        self.head = nn.LazyLinear(num_classes)

    def forward(self, x):
        x = self.norm(self.conv(x)).relu()
        return self.head(nn.functional.max_pool2d(x, 4).flatten(1))
'''
FAMILIES = {
    "lazy_mlp": ["model=lazy_mlp", "model.hidden=[32]"],
    "lazy_cnn": ["model=lazy_cnn"],
    "lazy_convnet": ["model=lazy_convnet", "model.channels=[4,8]", "model.convs_per_block=1"],
    "lazy_layers": ["model=lazy_layers"],
    "user_module": [],  # conf's model replaced by the user's own (below)
}


class Ran:
    """What a finished run left: its events, its last checkpoint, its batches per epoch, and
    what it logged and printed."""

    def __init__(self, run: Path, batches: int, logged: str) -> None:
        self.run = run
        self.events = read_events(run).scalars
        path = run / "checkpoints" / "last.ckpt"
        self.last = torch.load(path, weights_only=True) if path.is_file() else None
        self.batches = batches
        self.logged = logged

    def steps(self, tag: str) -> list[int]:
        return [step for step, _ in self.events[tag]]


def dtype(expected: torch.dtype) -> Callable[[Ran], None]:
    def check(ran: Ran) -> None:
        floats = {t.dtype for t in ran.last["state_dict"].values() if t.is_floating_point()}
        assert floats == {expected}
        assert all(math.isfinite(v) for _, v in ran.events["train/loss_epoch"])

    return check


def global_step(expected: Callable[[int], int]) -> Callable[[Ran], None]:
    def check(ran: Ran) -> None:
        assert ran.last["global_step"] == expected(ran.batches)

    return check


def validated_at(expected: Callable[[int], list[int]]) -> Callable[[Ran], None]:
    def check(ran: Ran) -> None:
        assert ran.steps("val/acc") == expected(ran.batches)

    return check


def logged(*tags: str) -> Callable[[Ran], None]:
    def check(ran: Ran) -> None:
        assert all(len(ran.events[tag]) >= EPOCHS for tag in tags)

    return check


def trained(ran: Ran) -> None:
    assert ran.last["global_step"] == EPOCHS * ran.batches
    assert all(math.isfinite(v) for _, v in ran.events["train/loss_epoch"])


def averaged(ran: Ran) -> None:
    """SWA: trained, then, for a net with BatchNorm, Lightning's one more epoch that recomputes
    the averaged net's running statistics (its one optimizer call updates no weight)."""
    batchnorm = any(key.endswith("running_mean") for key in ran.last["state_dict"])
    assert ran.last["global_step"] == EPOCHS * ran.batches + batchnorm
    assert all(math.isfinite(v) for _, v in ran.events["train/loss_epoch"])


def unvalidated(why: str, steps: Callable[[int], int]) -> Callable[[Ran], None]:
    """A fit that ended before its first validation: no best checkpoint, and the run says why
    and what the test scores, in place of Lightning's warning that blames the module."""

    def check(ran: Ran) -> None:
        assert ran.last["global_step"] == steps(ran.batches)
        assert [p.name for p in (ran.run / "checkpoints").iterdir()] == ["last.ckpt"]
        said = f"no best checkpoint by val/acc: {why}; the test scores the last step's weights"
        assert said in ran.logged and "could not find the monitored key" not in ran.logged
        assert "test/acc" in ran.events

    return check


def no_step_logs(ran: Ran) -> None:
    """log_every_n_steps=0: Lightning's "never within an epoch"; the epochs' curves remain."""
    trained(ran)
    assert "train/loss_step" not in ran.events and "train/lr" not in ran.events
    assert len(ran.events["train/loss_epoch"]) == len(ran.events["val/acc"]) == EPOCHS


def unsaved(ran: Ran) -> None:
    """+trainer.enable_checkpointing=false: the configured checkpoints dropped, said at the start
    and kept in result.json; trained, validated and tested all the same."""
    assert ran.last is None and not (ran.run / "checkpoints").exists()
    said = "not recorded: no checkpoints: +trainer.enable_checkpointing=false"
    assert said in ran.logged
    result = json.loads((ran.run / "result.json").read_text())
    assert result["not_recorded"] == ["checkpoints"]
    assert len(ran.events["val/acc"]) == EPOCHS and "test/acc" in ran.events


def stopped_in_time(ran: Ran) -> None:
    """max_time: stopped by the clock long before its 10,000 epochs, checkpointed and tested."""
    assert 0 < ran.last["global_step"] < 10_000 * ran.batches
    assert "test/acc" in ran.events


def profiled(ran: Ran) -> None:
    """The profiler's report in the run directory, naming the training step."""
    assert "training_step" in (ran.run / "fit-profile.txt").read_text()
    trained(ran)


def summarized(ran: Ran) -> None:
    """ModelSummary counts the materialized parameters: those the checkpoint holds (no lazy
    parameter left uncounted), the BatchNorm statistics aside."""
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    params = sum(t.numel() for k, t in ran.last["state_dict"].items() if not k.endswith(buffers))
    # Lightning's table (logged) or, with Rich installed, Rich's (printed)
    plain, rich = r"^(.+?)\s+Trainable params\s*$", r"^Trainable params: (.+?)\s*$"
    (count,) = re.findall(plain, ran.logged, re.M) + re.findall(rich, ran.logged, re.M)
    assert params > 0 and count == get_human_readable_count(params).strip()
    trained(ran)


stopped_at_5 = unvalidated(
    "the fit stopped at step 5, before its first validation (validate sooner with "
    "trainer.val_check_interval=<steps>)",
    lambda b: 5,
)
CALLBACK = "+callbacks.{0}._target_=lightning.pytorch.callbacks.{1}"
FEATURES: dict[str, tuple[list[str], Callable[[Ran], None]]] = {
    "64-true": (["trainer.precision=64-true"], dtype(torch.float64)),
    "bf16-true": (["trainer.precision=bf16-true"], dtype(torch.bfloat16)),
    "bf16-mixed": (["trainer.precision=bf16-mixed"], dtype(torch.float32)),
    "accumulate": (["trainer.accumulate_grad_batches=2"], global_step(lambda b: EPOCHS * b // 2)),
    "clip-norm": (["trainer.gradient_clip_val=0.5"], trained),
    "clip-value": (
        ["trainer.gradient_clip_val=0.5", "+trainer.gradient_clip_algorithm=value"],
        trained,
    ),
    "val-twice-an-epoch": (
        ["trainer.val_check_interval=0.5"],
        validated_at(lambda b: [b // 2, b, b + b // 2, 2 * b]),
    ),
    "val-every-2nd-epoch": (["trainer.check_val_every_n_epoch=2"], validated_at(lambda b: [2 * b])),
    "val-every-3rd-epoch": (  # of 2: never
        ["trainer.check_val_every_n_epoch=3"],
        unvalidated(
            "the fit stopped at step 16, before its first validation (it validates every 3 "
            "epochs: trainer.check_val_every_n_epoch=3)",
            lambda b: EPOCHS * b,
        ),
    ),
    "sanity-check-all": (  # before training; its scores are no validation of the run
        ["+trainer.num_sanity_val_steps=-1"],
        validated_at(lambda b: [b, 2 * b]),
    ),
    "model-summary": (["trainer.enable_model_summary=true"], summarized),
    "max_steps": (["trainer.max_steps=5"], stopped_at_5),  # inside the first epoch
    "max_steps-early-stopping": (  # Lightning's EarlyStopping fails there: "not available"
        ["trainer.max_steps=5", "callbacks=early_stopping"],
        stopped_at_5,
    ),
    "no-validation": (
        ["trainer.limit_val_batches=0"],
        unvalidated("no validation ran (trainer.limit_val_batches is 0)", lambda b: EPOCHS * b),
    ),
    "limit_train_batches": (["trainer.limit_train_batches=3"], global_step(lambda b: 3 * EPOCHS)),
    "no-step-logs": (["trainer.log_every_n_steps=0"], no_step_logs),
    "no-progress-bar": (["+trainer.enable_progress_bar=false"], trained),
    "no-checkpointing": (["+trainer.enable_checkpointing=false"], unsaved),
    "swa": (["callbacks=swa"], averaged),
    "deterministic": (["trainer.deterministic=true"], trained),
    "benchmark": (["trainer.benchmark=true"], trained),
    "max_time": (["+trainer.max_time={seconds:1}", "trainer.max_epochs=10000"], stopped_in_time),
    "advanced-profiler": (["+trainer.profiler=advanced"], profiled),  # by name
    "lr-monitor": (
        [CALLBACK.format("lr", "LearningRateMonitor")],
        logged("lr-AdamW/pg1", "lr-AdamW/pg2"),  # weights; biases and norm scales
    ),
}


@pytest.fixture(scope="module")
def user_package(tmp_path_factory):
    """The user's own module, importable from a directory outside lazytrain."""
    where = tmp_path_factory.mktemp("user_package")
    (where / f"{USER_PACKAGE}.py").write_text(USER_MODULE)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(where))
        yield


@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("family", FAMILIES)
def test_feature_on_family(
    family, feature, tmp_path, synthetic_dir, user_package, caplog, capsys, recwarn
):
    overrides, check = FEATURES[feature]
    cfg = make_cfg(
        tmp_path, synthetic_dir, f"trainer.max_epochs={EPOCHS}", *FAMILIES[family], *overrides
    )
    if family == "user_module":
        cfg.model = OmegaConf.create({"_target_": f"{USER_PACKAGE}.TinyNet"})
    with caplog.at_level(logging.INFO):
        train(cfg)
    datamodule = instantiate(cfg.data)
    datamodule.trainer = quiet_trainer(tmp_path)
    datamodule.setup("fit")
    shown = caplog.text + capsys.readouterr().out + "\n".join(str(w.message) for w in recwarn)
    check(Ran(Path(cfg.output_dir), len(datamodule.train_dataloader()), shown))


@pytest.mark.parametrize("family", FAMILIES)
def test_tuners_run_on_the_materialized_net_and_leave_its_init(
    family, tmp_path, synthetic_dir, user_package
):
    """Lightning's LearningRateFinder and BatchSizeFinder fit trial steps and restore the state
    they started from: the net stays the one built and initialized once, by the dry run, and
    no trial-trained weight is left in it (the weights' digest is the init's)."""
    cfg = make_cfg(tmp_path, synthetic_dir, *FAMILIES[family])
    if family == "user_module":
        cfg.model = OmegaConf.create({"_target_": f"{USER_PACKAGE}.TinyNet"})
    model, datamodule = model_and_data(cfg)
    initial = weights_digest(model.net)
    Tuner(quiet_trainer(tmp_path)).lr_find(model, datamodule=datamodule, num_training=8)
    assert weights_digest(model.net) == initial
    tuner = Tuner(quiet_trainer(tmp_path))
    size = tuner.scale_batch_size(model, datamodule=datamodule, max_trials=2, steps_per_trial=2)
    assert size == datamodule.batch_size == 4  # 2, then 4: both fit
    assert weights_digest(model.net) == initial
    trainer = quiet_trainer(tmp_path)
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step == 4 and weights_digest(model.net) != initial
