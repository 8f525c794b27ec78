"""Every shipped config composes and builds: models materialize, recipes instantiate."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from hydra.utils import instantiate

from lazytrain.augment import Augment
from lazytrain.config import compose_config
from lazytrain.config_keys import (
    LENGTH,
    NOT_THE_EXPERIMENT,
    in_configuration,
    in_hparams,
    run_name_patterns,
)
from lazytrain.speedruns import SPEEDRUNS as SPEEDRUN_TABLE
from lazytrain.train import model_and_data, train

from .helpers import CONF, read_events
from .probes import HostSyncProbe

MODELS = sorted(p.stem for p in (Path(CONF) / "model").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (Path(CONF) / "experiment").glob("*.yaml"))  # recipes
SPEEDRUNS = sorted(p.stem for p in (Path(CONF) / "speedrun").glob("*.yaml"))
# every recipe and speedrun, as its command-line choice
RECIPES = [f"experiment={e}" for e in EXPERIMENTS] + [f"speedrun={s}" for s in SPEEDRUNS]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("init", ["xavier", "normal", "kaiming", "default"])
def test_every_model_and_init_builds(cfg_factory, model, init):
    cfg = cfg_factory(f"model={model}", f"init={init}")
    built, _ = model_and_data(cfg)
    assert built.shape_report.output_shape == (cfg.sample_size, 10)


def test_every_speedrun_races_a_shipped_recipe():
    # the table bench.py and gpu_check.py run from names every speedrun config, and only those
    assert sorted(SPEEDRUN_TABLE) == SPEEDRUNS
    assert {reference for reference, _ in SPEEDRUN_TABLE.values()} <= set(EXPERIMENTS)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipes_build_model_schedule_and_augmentation(cfg_factory, recipe):
    cfg = cfg_factory(recipe)
    datamodule = instantiate(cfg.data)
    mlp = cfg.model._target_.endswith("lazy_mlp")  # flips and shifts do not help an MLP here
    assert isinstance(datamodule.augment, Augment) or mlp
    model, _ = model_and_data(cfg)
    assert model.hparams.scheduler["_target_"].startswith("lazytrain.schedules.")
    assert model.hparams.label_smoothing == 0.1


@pytest.mark.parametrize(
    "recipe",
    [
        *RECIPES,
        "model=lazy_mlp callbacks.progress_bar.refresh_rate=1",  # the bar, refreshed every step
        "model=lazy_layers",
        "ema_decay=0.9",
        "trainer=gpu model=lazy_cnn",
    ],
)
def test_recipes_train_end_to_end_without_a_host_sync_between_logging_steps(cfg_factory, recipe):
    """Three optimizer steps per recipe, speedrun, model outside them, EMA and trainer=gpu's
    settings (on the CPU), at full size, through
    ``train``: the ResNet recipe is too slow to train on a CPU, so this is its proof that
    schedule, augmentation and the residual net work together; the hparams row records the
    hardware. On the steps that log nothing, nothing makes the host wait for the device, from
    the end of one step to the end of the next (fetching and augmenting included): each such
    operation is named by its line (``tests/probes.py``)."""
    cfg = cfg_factory(
        *recipe.split(),
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "trainer.log_every_n_steps=50",
    )
    probe = HostSyncProbe()
    assert math.isfinite(train(cfg, callbacks=[probe]))
    assert probe.windows == 2 and not probe.found, "\n".join(probe.found)
    events = read_events(Path(cfg.output_dir))
    assert events.hparams["hardware"] == f"CPU, {len(os.sched_getaffinity(0))} cores"
    assert events.hparams["params"] > 0
    assert [step for step, _ in events.scalars["test/acc"]] == [3]


def hydra_config(*overrides: str):
    return compose_config([*overrides, "output_dir=."], hydra=True)


def test_grid_preset_sweeps_models_and_inits():
    cfg = hydra_config("sweep=grid")
    assert dict(cfg.hydra.sweeper.params) == {"model": "lazy_mlp,lazy_cnn", "init": "xavier,normal"}
    assert cfg.hydra.mode.name == "MULTIRUN"


def test_a_recipe_combines_with_a_sweep_and_a_launcher_on_one_command_line():
    cfg = hydra_config("experiment=convnet_recipe", "sweep=seeds", "launcher=slurm")
    assert cfg.model._target_ == "lazytrain.models.lazy_convnet"  # the recipe
    assert cfg.optimizer.lr == 0.0005 and cfg.data.augment.crop_padding == 2
    assert dict(cfg.hydra.sweeper.params) == {"seed": "0,1,2"}  # the sweep
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")  # the launcher
    assert cfg.trainer.strategy == "ddp"


def test_config_groups_hold_one_kind_of_thing_each():
    """Recipes and speedruns set what is trained, sweeps what a multirun varies, launchers where
    it runs."""
    for recipe in RECIPES:
        cfg = hydra_config(recipe)
        assert cfg.hydra.mode is None or cfg.hydra.mode.name == "RUN", recipe
    for sweep in sorted(p.stem for p in (Path(CONF) / "sweep").glob("*.yaml")):
        cfg = hydra_config(f"sweep={sweep}")
        assert cfg.hydra.sweeper.params and cfg.hydra.mode.name == "MULTIRUN", sweep
    for launcher in sorted(p.stem for p in (Path(CONF) / "launcher").glob("*.yaml")):
        cfg = hydra_config(f"launcher={launcher}")
        assert "BasicLauncher" not in cfg.hydra.launcher._target_, launcher
        assert not cfg.hydra.sweeper.params, launcher


def test_the_number_of_classes_comes_from_the_data(cfg_factory):
    cfg = cfg_factory("model=lazy_cnn")
    assert "num_classes" not in cfg.model
    model, data = model_and_data(cfg)
    assert model.net[-1].out_features == data.num_classes == 10


def test_run_names_leave_out_exactly_what_config_keys_says_is_not_the_experiment():
    """One definition: conf/hydra's exclude_keys is config_keys.run_name_patterns(), and the
    HPARAMS row, compare.py's groups and resume= ask config_keys too."""
    dirname = hydra_config().hydra.job.config.override_dirname
    assert sorted(dirname.exclude_keys) == sorted(run_name_patterns())
    for key in (*NOT_THE_EXPERIMENT, "callbacks.progress_bar.refresh_rate", "logger.name"):
        assert not in_hparams(key) and not in_configuration(key), key
    for key in ("model.hidden", "optimizer.lr", "data.batch_size", *LENGTH):
        assert in_hparams(key) and in_configuration(key), key
    assert in_hparams("seed") and not in_configuration("seed")  # a group spans its seeds


def test_resolving_the_config_touches_no_disk(tmp_path):
    """The Optuna study's URL names the sweep directory; resolving it creates nothing (the run
    directory's checks create it, once they pass, before the sweeper opens the study)."""
    sweep = tmp_path / "sweep"
    cfg = compose_config(["hparams_search=optuna", f"hydra.sweep.dir={sweep}"], hydra=True)
    assert cfg.hydra.sweeper.storage == f"sqlite:///{sweep / 'optuna.db'}"
    assert list(tmp_path.iterdir()) == []
