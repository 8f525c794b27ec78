"""The real CLI on real Fashion-MNIST for a few batches, and what landed in TensorBoard."""

from __future__ import annotations

import itertools

import pytest
import torch

from lazytrain import hparams_table
from lazytrain.hparams_table import TABLE_FILE
from lazytrain.module import LazyClassifier

from .helpers import (
    CNN_PARAMS,
    EPOCH_ENDS,
    FEW_BATCHES,
    MLP_PARAMS,
    STEP_LOGS,
    WITH_INIT,
    assert_refused,
    read_events,
    run_script,
)

BAD_MODEL = """\
_target_: torch.nn.Sequential
_args_:
  - {_target_: torch.nn.Flatten}
  - {_target_: torch.nn.LazyLinear, out_features: 256}
  - {_target_: torch.nn.ReLU}
  - {_target_: torch.nn.Linear, in_features: 64, out_features: 10}
"""


def test_run_directory_holds_config_log_events_and_checkpoints(mlp_run):
    assert (mlp_run / ".hydra" / "config.yaml").is_file()
    assert (mlp_run / ".hydra" / "overrides.yaml").is_file()
    assert len(list(mlp_run.glob("events.out.tfevents.*"))) == 1
    assert (mlp_run / "checkpoints" / "last.ckpt").is_file()
    assert list((mlp_run / "checkpoints").glob("best-epoch*.ckpt"))


def test_train_log_holds_lightning_lines_too(mlp_run):
    log = (mlp_run / "train.log").read_text()
    assert "[lazytrain.dry_run]" in log and "materialized" in log
    assert "[lightning.pytorch" in log and "`Trainer.fit` stopped" in log
    assert "| `1.weight` | uninitialized | [256, 784] |" in log


def test_scalars_reach_tensorboard(mlp_run):
    events = read_events(mlp_run)
    s = events.scalars
    # Every point at the optimizer steps taken when it was measured: the epoch's metrics, the
    # validation and the weight statistics of one moment at the same step; no `epoch` staircase.
    assert [step for step, _ in s["train/loss_step"]] == STEP_LOGS
    for tag in ("train/loss_epoch", "train/acc", "val/loss", "val/acc", "weights/1.weight/std"):
        assert [step for step, _ in s[tag]] == EPOCH_ENDS or tag.startswith("weights"), tag
    assert [step for step, _ in s["weights/1.weight/std"]] == WITH_INIT
    assert "epoch" not in s
    assert len(s["test/loss"]) == len(s["test/acc"]) == 1
    # the learning rate where it is applied: warm-up, then the cosine decay to 0
    lr = [value for _, value in s["train/lr"]]
    assert [step for step, _ in s["train/lr"]] == STEP_LOGS
    assert all(a > b for a, b in itertools.pairwise(lr)) and lr[-1] >= 0.0
    assert 0.5 < s["test/acc"][0][1] <= 1.0  # 16 AdamW steps on the real data already learn


def test_shape_table_reaches_tensorboard(mlp_run):
    text = read_events(mlp_run).texts["parameter_shapes"]
    assert "| `1.weight` | uninitialized | [256, 784] |" in text
    assert "| `3.bias` | uninitialized | [10] |" in text
    assert "| 1 | Linear | [32, 784] | [32, 256] | 200,960 |" in text


def test_histograms_at_step_zero_are_the_initial_weights(mlp_run):
    events = read_events(mlp_run)
    assert set(events.histogram_steps) == {
        f"weights/{n}" for n in ("1.weight", "1.bias", "3.weight", "3.bias")
    }
    for steps in events.histogram_steps.values():
        assert steps == WITH_INIT


def test_hparams_row_holds_what_defines_the_experiment(mlp_run):
    events = read_events(mlp_run)
    h = events.hparams
    assert h["model"] == "lazy_mlp" and h["init"] == "xavier"
    assert h["model.hidden"] == "[256]" and h["optimizer.lr"] == 0.001
    assert h["params"] == MLP_PARAMS and h["seed"] == 0 and "bias_lr_factor" in h
    plumbing = [
        k for k in h if "_target_" in k or "_partial_" in k or k.startswith(("callbacks", "logger"))
    ]
    assert not plumbing and "data.root" not in h and "trainer.default_root_dir" not in h
    table = hparams_table.columns(hparams_table.read_table(mlp_run.parent / TABLE_FILE))
    assert {m.name.tag for m in table.experiment.metric_infos} >= {
        "val/acc", "val/loss", "test/acc", "test/loss", "time/run_seconds"
    }  # fmt: skip
    assert "hp_metric" not in events.scalars
    # the whole run's wall time: start-up, both epochs, the test
    ((_, run_seconds),) = events.scalars["time/run_seconds"]
    assert sum(v for _, v in events.scalars["time/epoch_seconds"]) < run_seconds < 300


def test_checkpoints_load_weights_only_into_a_fresh_model(mlp_run):
    for path in (mlp_run / "checkpoints").glob("*.ckpt"):
        model = LazyClassifier.load_from_checkpoint(path, weights_only=True)
        assert model.net[1].weight.shape == (256, 784)
        assert torch.load(path, weights_only=True)["hyper_parameters"]["seed"] == 0


def test_shape_mismatch_stops_before_anything_is_written(real_data_root, tmp_path):
    conf = tmp_path / "myconf" / "model"
    conf.mkdir(parents=True)
    (conf / "bad.yaml").write_text(BAD_MODEL)
    run_dir = tmp_path / "run"
    proc = run_script(
        "train.py", f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "model=bad",
        f"data.root={real_data_root}", f"hydra.run.dir={run_dir}", cwd=tmp_path,
    )  # fmt: skip
    message = "ShapeMismatchError: layer 3 (Linear) got input of shape [32, 256], but it expects last dimension 64"
    assert_refused(proc, message)
    assert message in (run_dir / "train.log").read_text()  # the reason stays with the run
    assert not list(run_dir.glob("events.*")) and not (run_dir / "checkpoints").exists()
    assert not (run_dir / "hparams.yaml").exists()


def test_shapes_script_prints_the_tables(real_data_root, tmp_path):
    proc = run_script("shapes.py", "model=lazy_cnn", f"data.root={real_data_root}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "| `0.weight` | uninitialized | [6, 1, 5, 5] |" in proc.stdout
    assert "| 6 | Flatten | [32, 16, 5, 5] | [32, 400] | 0 |" in proc.stdout
    assert f"**Parameters** ({CNN_PARAMS:,} in total)" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # writes nothing


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+model.num_classes=7",  # a model that disagrees with the data
         "error: ShapeMismatchError: model output has shape [32, 7], expected [32, 10]"),
        ("model.hidden=[0]", "error: ValueError: hidden sizes must be positive integers, got [0] "
         "(in lazytrain.models.lazy_mlp)"),
        ("data.batch_size=0", "error: DataError: data.batch_size=0: give a positive whole number "
         "of images (in lazytrain.datamodule.FashionMNISTDataModule)"),
    ],
)  # fmt: skip
def test_shapes_script_fails_readably(real_data_root, tmp_path, override, message):
    proc = run_script(
        "shapes.py", "model=lazy_mlp", override, f"data.root={real_data_root}", cwd=tmp_path
    )
    assert_refused(proc, message)
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("script", ["eval.py", "shapes.py"])
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model=transformer", "config error: In 'train': Could not find 'model/transformer'; "
         "Available options in 'model': lazy_cnn, lazy_convnet, lazy_layers, lazy_mlp, lazy_resnet"),
        ("model.hidden=[512", "config error: no viable alternative at input '[512'; See https://hydra.cc/"),
        ("foo.bar=1", "config error: Could not override 'foo.bar'; To append to your config use "
         "+foo.bar=1"),
    ],
)  # fmt: skip
def test_scripts_refuse_a_mistyped_override_in_one_line(script, override, message, tmp_path):
    """Hydra's own handling (one message, no traceback) serves train.py only: eval.py and
    shapes.py compose the config themselves."""
    proc = run_script(script, override, cwd=tmp_path)
    assert_refused(proc, message)
    assert len(proc.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script", ["eval.py", "shapes.py"])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_scripts_print_their_usage(script, flag, tmp_path):
    proc = run_script(script, flag, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    assert f"python scripts/{script} " in proc.stdout  # the docstring's examples


@pytest.mark.gpu
def test_trains_on_the_gpu_in_bf16_mixed(real_data_root, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_script(
        "train.py", f"data.root={real_data_root}", f"hydra.run.dir={run_dir}", "trainer=gpu",
        "trainer.precision=bf16-mixed", *FEW_BATCHES, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    events = read_events(run_dir)
    assert "CPU" not in events.hparams["hardware"]  # the GPU's name
    assert 0.5 < events.scalars["test/acc"][0][1] <= 1.0


@pytest.mark.slow
def test_multirun_grid_writes_one_named_run_per_combination(real_data_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_script(
        "train.py", "-m", "model=lazy_mlp,lazy_cnn", "init=xavier,normal", f"data.root={real_data_root}",
        f"hydra.sweep.dir={sweep}",
        *FEW_BATCHES, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == [
        "init=normal,model=lazy_cnn",
        "init=normal,model=lazy_mlp",
        "init=xavier,model=lazy_cnn",
        "init=xavier,model=lazy_mlp",
    ]
    for name in runs:
        assert len(list((sweep / name).glob("events.out.tfevents.*"))) == 1
        events = read_events(sweep / name)
        assert events.hparams["init"] == name.split(",")[0].split("=")[1]
        assert "val/acc" in events.scalars
