"""Trainer features a user switches on from the command line, checked for what each promises with
lazy models and lazytrain's on-device data, not only that the run exits 0."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from lazytrain.compare import EVENTS_GLOB, FINISHED, NOT_RECORDED, find_runs
from lazytrain.datamodule import ImageDataModule
from lazytrain.recording import CURVES
from lazytrain.run_dir import read_result

from .helpers import (
    assert_refused,
    make_cfg,
    quiet_trainer,
    read_events,
    run_script,
    synthetic,
    train_run,
)

RECIPE = "experiment=cnn_recipe"  # augmentation on: crop, flip, erasing


def train_batches(
    tmp_path, synthetic_dir, **trainer
) -> tuple[list[list[torch.Tensor]], ImageDataModule]:
    """Two epochs of the training loader, as a Trainer with ``trainer`` settings gets them, and
    the data module."""
    datamodule = instantiate(make_cfg(tmp_path, synthetic_dir, RECIPE).data)
    datamodule.trainer = quiet_trainer(tmp_path, **trainer)
    datamodule.setup("fit")
    return [[x for x, _ in datamodule.train_dataloader()] for _ in range(2)], datamodule


def test_overfit_batches_gives_the_same_batches_in_order_without_augmentation(
    tmp_path, synthetic_dir
):
    (first, again), datamodule = train_batches(tmp_path, synthetic_dir, overfit_batches=2)
    images = datamodule.normalization(datamodule._on["train_x"])
    size = datamodule.batch_size
    assert all(torch.equal(x, images[i * size : (i + 1) * size]) for i, x in enumerate(first[:2]))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    # without it: shuffled and augmented, as training is
    (plain, _), _ = train_batches(tmp_path, synthetic_dir)
    assert not torch.equal(plain[0], images[:size])


def test_runs_that_skip_recording_say_so_and_compare_lists_them_as_not_recorded(
    tmp_path, synthetic_dir
):
    """fast_dev_run and a run without a logger beside a recorded run: each says in one line what
    it leaves out, leaves nothing half-written, and compare.py tells the three apart."""
    common = [*synthetic(tmp_path, synthetic_dir), "trainer.max_epochs=1"]
    runs = tmp_path / "runs"
    printed = {}
    for name, switch in [
        ("fdr", "trainer.fast_dev_run=true"),
        ("nolog", "logger=[]"),
        ("full", "seed=0"),
    ]:
        proc = run_script("train.py", *common, switch, f"hydra.run.dir={runs / name}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        printed[name] = [line for line in proc.stdout.splitlines() if "not recorded" in line]
        # nothing to view in TensorBoard: the start block does not offer it
        assert ("view it: tensorboard" in proc.stdout) == (name == "full"), proc.stdout[-3000:]
    assert len(printed["fdr"]) == 1 and "no checkpoints" in printed["fdr"][0]
    assert "trainer.fast_dev_run=True" in printed["fdr"][0]
    assert len(printed["nolog"]) == 1 and "no logger" in printed["nolog"][0]
    assert printed["full"] == []
    # fast_dev_run: no tracker started, so no partial event file; no checkpoint either
    assert sorted(p.name for p in (runs / "fdr").iterdir()) == [
        ".hydra", "lineage.json", "result.json", "train.log"
    ]  # fmt: skip
    assert not any((runs / "nolog").glob(EVENTS_GLOB))
    assert (runs / "nolog" / "checkpoints" / "last.ckpt").is_file()
    assert read_result(runs / "nolog")["not_recorded"] == [CURVES]

    status = {r.name: r.status for r in find_runs(runs)}
    assert status == {"fdr": NOT_RECORDED, "nolog": NOT_RECORDED, "full": FINISHED}
    table = run_script("compare.py", str(runs), cwd=tmp_path).stdout
    assert "3 runs (1 finished, 2 not recorded)" in table
    assert "| fdr | not recorded |" in table and "no checkpoints" in table


def test_early_stopping_stops_and_a_resumed_run_keeps_its_patience(tmp_path, synthetic_dir):
    """min_delta=1.0: no epoch after the first improves val/acc, so patience 2 stops a run after
    its third epoch. Stopped after two and resumed, it stops there too: its count was kept."""
    stopping = [
        *synthetic(tmp_path, synthetic_dir), "callbacks=[early_stopping,rich]",
        "callbacks.early_stopping.patience=2", "callbacks.early_stopping.min_delta=1.0",
    ]  # fmt: skip
    for name in ("straight", "resumed"):
        (tmp_path / name).mkdir()
    straight = train_run(tmp_path / "straight", *stopping, "trainer.max_epochs=10")
    resumed = train_run(tmp_path / "resumed", *stopping, "trainer.max_epochs=2")
    proc = run_script("train.py", f"resume={resumed}", "trainer.max_epochs=10", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "did not improve in the last 2 records" in proc.stdout
    steps = [
        [step for step, _ in read_events(run).scalars["val/acc"]] for run in (straight, resumed)
    ]
    epoch = steps[0][0]
    assert steps == [[epoch, 2 * epoch, 3 * epoch]] * 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.precision=16-mixed", "float16 mixed precision needs a CUDA device"),
        ("+trainer.profiler=simplest", "trainer.profiler=simplest is not a Lightning profiler"),
        (
            "+trainer.barebones=true",
            "trainer.barebones=true forbids the loggers, checkpoints and "
            "metric logging a lazytrain run is made of",
        ),
    ],
)
def test_a_trainer_argument_the_run_cannot_honour_is_refused_before_anything_is_written(
    tmp_path, synthetic_dir, override, message
):
    run = tmp_path / "run"
    proc = run_script(
        "train.py", *synthetic(tmp_path, synthetic_dir), override, f"hydra.run.dir={run}",
        cwd=tmp_path,
    )  # fmt: skip
    assert_refused(proc, message)
    assert sorted(p.name for p in run.iterdir()) == [".hydra", "train.log"]
