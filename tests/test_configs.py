"""Every shipped config composes and builds: models materialize, recipes instantiate."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from hydra.utils import instantiate

from lazytrain.augment import Augment
from lazytrain.train import build_model, run

from .conftest import CONF
from .tensorboard_events import read_events

MODELS = sorted(p.stem for p in (Path(CONF) / "model").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (Path(CONF) / "experiment").glob("*recipe.yaml"))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("init", ["xavier", "normal", "kaiming", "default"])
def test_every_model_and_init_builds(cfg_factory, model, init):
    cfg = cfg_factory(f"model={model}", f"init={init}")
    built = build_model(cfg, instantiate(cfg.data))
    assert built.shape_report.output_shape == (cfg.sample_size, 10)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_recipes_build_model_schedule_and_augmentation(cfg_factory, experiment):
    cfg = cfg_factory(f"experiment={experiment}")
    datamodule = instantiate(cfg.data)
    assert isinstance(datamodule.augment, Augment) or experiment == "mlp_recipe"
    model = build_model(cfg, datamodule)
    assert model.hparams.scheduler["_target_"].startswith("lazytrain.schedules.")
    assert model.hparams.label_smoothing == 0.1


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_recipes_train_end_to_end(cfg_factory, experiment):
    """Two optimizer steps per recipe at full model size, through ``run``: the ResNet recipe is
    too slow to train on a CPU, so this is its proof that schedule, augmentation and the
    residual net work together; the hparams row records the hardware."""
    cfg = cfg_factory(
        f"experiment={experiment}",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
    )
    assert math.isfinite(run(cfg))
    events = read_events(Path(cfg.output_dir))
    assert events.hparams["hardware"] == f"CPU, {len(os.sched_getaffinity(0))} cores"
    assert events.hparams["params"] > 0
    assert [step for step, _ in events.scalars["test/acc"]] == [2]


def test_grid_preset_sweeps_models_and_inits(cfg_factory):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("train", overrides=["experiment=grid"], return_hydra_config=True)
    assert dict(cfg.hydra.sweeper.params) == {"model": "lazy_mlp,lazy_cnn", "init": "xavier,normal"}
