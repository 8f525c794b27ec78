"""Runs that survive: exact resume, interruption, non-finite losses, clear refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lazytrain.checkpoints import LastCheckpoint, NonFiniteLossError

from .conftest import ROOT, run_script
from .tensorboard_events import read_events
from .test_module import setup, trainer


def synthetic(tmp_path: Path, synthetic_dir: Path) -> list[str]:
    return [
        f"data.root={tmp_path / 'data'}",
        f"data.search_dirs=[{synthetic_dir}]",
        "data.download=false",
        "data.val_size=128",
        "data.batch_size=64",
        "trainer.accelerator=cpu",
        "trainer.log_every_n_steps=2",
        "callbacks.progress_bar.refresh_rate=0",
    ]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def train(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    proc = run_script("train.py", *overrides, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, synthetic_dir):
    # Without a schedule: one spanning the planned steps would stretch when max_epochs grows.
    data = [*synthetic(tmp_path, synthetic_dir), "~scheduler"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(tmp_path, *data, f"hydra.run.dir={straight}", "trainer.max_epochs=2")
    train(tmp_path, *data, f"hydra.run.dir={split}", "trainer.max_epochs=1")
    proc = train(tmp_path, *data, f"resume={split}", "trainer.max_epochs=2")
    assert f"resuming {split}" in proc.stdout
    a, b = weights(straight), weights(split)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # one run, one continuous curve, its original config untouched
    val = read_events(split).scalars["val/acc"]
    assert [step for step, _ in val] == [
        step for step, _ in read_events(straight).scalars["val/acc"]
    ]
    assert (split / ".hydra" / "overrides.yaml").read_text().count("max_epochs=1") == 1
    assert list((split / ".hydra").glob("resumed-*/config.yaml"))


@pytest.fixture
def short_run(tmp_path, synthetic_dir) -> tuple[list[str], Path]:
    """A finished 2-batch run on the synthetic data: its overrides and its directory."""
    data = synthetic(tmp_path, synthetic_dir)
    run = tmp_path / "run"
    train(
        tmp_path,
        *data,
        f"hydra.run.dir={run}",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
    )
    return data, run


def test_resume_refuses_another_experiment_and_missing_runs(tmp_path, short_run):
    data, run = short_run
    before = sorted(p.name for p in run.rglob("*"))
    proc = run_script("train.py", *data, f"resume={run}", "model.hidden=[32]", cwd=tmp_path)
    assert proc.returncode == 1
    assert "ResumeError: this command's settings for model differ from the run" in proc.stdout
    assert "trainer.max_epochs=1" in proc.stdout  # the overrides to repeat
    assert {p for p in before} <= {p.name for p in run.rglob("*")}
    proc = run_script("train.py", *data, f"resume={tmp_path / 'nowhere'}", cwd=tmp_path)
    assert proc.returncode == 1 and "nothing to resume in" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_last_checkpoint_and_the_run_resumes(tmp_path, synthetic_dir, sig):
    data = synthetic(tmp_path, synthetic_dir)
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        *data,
        f"hydra.run.dir={run}",
        "trainer.max_epochs=500",
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + 120
    for line in proc.stdout:  # wait until training is under way
        if "epoch 1 (step" in line or time.time() > deadline:
            break
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert (
        f"{'KeyboardInterrupt' if sig == signal.SIGINT else 'SIGTERMException'} at step"
        in (run / "train.log").read_text()
    )
    interrupted_at = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert interrupted_at > 0
    assert "val/acc" in read_events(run).scalars  # events flushed
    train(tmp_path, *data, f"resume={run}", "trainer.max_epochs=4")
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 3


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    cfg_factory, tmp_path
):
    model, datamodule = setup(
        cfg_factory("optimizer=sgd", "optimizer.lr=1e12", "optimizer.momentum=0")
    )
    ckpt_dir = tmp_path / "ckpt"
    ckpt_dir.mkdir()
    (ckpt_dir / "last.ckpt").write_bytes(b"the last good checkpoint")
    callback = LastCheckpoint(dirpath=ckpt_dir)
    t = trainer(
        tmp_path,
        callbacks=[callback],
        enable_checkpointing=True,
        max_epochs=3,
        limit_train_batches=8,
        log_every_n_steps=1,
    )
    with pytest.raises(
        NonFiniteLossError,
        match=r"became NaN or infinite at step \d+ \(epoch 0\).*gradient_clip_val",
    ):
        t.fit(model, datamodule=datamodule)
    assert (ckpt_dir / "last.ckpt").read_bytes() == b"the last good checkpoint"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=transformer"], "Could not find 'model/transformer'"),
        (["init=orthogonal"], "Available options in 'init'"),
        (["optimizer=lion"], "Available options in 'optimizer'"),
        (["model.hidden=[0]"], "hidden sizes must be positive integers, got [0]"),
        (["model=lazy_cnn", "model.channels=[6,-1]"], "channels must be positive integers"),
        (["data.search_dirs=[]", "data.root=EMPTY"], "Fashion-MNIST not found"),
    ],
)
def test_bad_input_is_refused_before_training_with_the_fix(overrides, message, tmp_path):
    overrides = [o.replace("EMPTY", str(tmp_path / "empty")) for o in overrides]
    run_dir = tmp_path / "run"
    proc = run_script(
        "train.py", *overrides, "data.download=false", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert proc.returncode == 1
    assert message in proc.stdout + proc.stderr
    assert not list(run_dir.glob("events.*")) and not (run_dir / "checkpoints").exists()


def test_unwritable_output_directory_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    proc = run_script("train.py", f"hydra.run.dir={blocker / 'run'}", cwd=tmp_path)
    assert proc.returncode != 0
    assert f"Not a directory: '{blocker / 'run'}'" in proc.stderr
    assert blocker.read_text() == "keep me"


def test_unwritable_data_root_is_refused(tmp_path, synthetic_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    from lazytrain.data import DataError, FashionMNIST

    with pytest.raises(DataError, match="set data.root to a writable directory"):
        FashionMNIST.load(blocker / "data", [str(synthetic_dir)], download=False)
    assert blocker.read_text() == "keep me"
    assert os.path.isfile(blocker)


def test_a_new_run_never_mixes_into_an_existing_one(tmp_path, short_run):
    data, run = short_run
    kept = {p: p.read_bytes() for p in [*run.glob("events.*"), *run.glob("checkpoints/*")]}
    proc = run_script(
        "train.py", *data, f"hydra.run.dir={run}", "trainer.max_epochs=1", cwd=tmp_path
    )
    assert proc.returncode == 1
    assert (
        f"RunExistsError: {run} already holds a run" in proc.stdout
        and f"resume={run}" in proc.stdout
    )
    assert {p: p.read_bytes() for p in [*run.glob("events.*"), *run.glob("checkpoints/*")]} == kept
