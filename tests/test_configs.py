"""Every shipped config composes and builds: models materialize, recipes instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

from lazytrain.augment import Augment
from lazytrain.train import build_model

from .conftest import CONF

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


def test_grid_preset_sweeps_models_and_inits(cfg_factory):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("train", overrides=["experiment=grid"], return_hydra_config=True)
    assert dict(cfg.hydra.sweeper.params) == {"model": "lazy_mlp,lazy_cnn", "init": "xavier,normal"}
