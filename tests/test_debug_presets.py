"""The ``debug`` presets (conf/debug): each a short run in a project of its own, each checked on
real Fashion-MNIST for what it says it does, not only that it exits 0."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from lazytrain import compat
from lazytrain.config import compose_config
from lazytrain.config_keys import flatten

from .helpers import read_events, run_script

PRESETS = ["default", "fdr", "overfit", "limit", "profiler", "anomaly"]


def debug_run(cwd: Path, data_root: Path, *overrides: str) -> subprocess.CompletedProcess:
    cwd.mkdir()
    return run_script(
        "train.py", f"data.root={data_root}", "callbacks.progress_bar.refresh_rate=0",
        *overrides, f"hydra.run.dir={cwd / 'run'}", cwd=cwd, merge=True,
    )  # fmt: skip


@pytest.mark.parametrize("preset", PRESETS)
def test_every_debug_preset_is_short_tagged_and_kept_apart(preset):
    cfg = compose_config([f"debug={preset}", "output_dir=."])
    assert cfg.project_dir == "outputs/debug" and list(cfg.tags) == ["debug"]
    trainer = flatten(cfg.trainer)
    # no more training steps than one epoch of Fashion-MNIST
    assert trainer["fast_dev_run"] or trainer["max_epochs"] * _batches(trainer) <= EPOCH


EPOCH = 55_000 // 256 + 1  # an epoch's batches: 55k training images at the default batch size


def _batches(trainer: dict) -> int:
    limit = trainer.get("overfit_batches") or trainer["limit_train_batches"]
    return limit if isinstance(limit, int) else EPOCH


@pytest.mark.slow
def test_debug_presets_do_what_they_say(tmp_path, real_data_root):
    # fdr: one batch of each loop, nothing recorded, and it says so
    proc = debug_run(tmp_path / "fdr", real_data_root, "debug=fdr")
    assert proc.returncode == 0 and "not recorded" in proc.stdout, proc.stdout[-3000:]
    assert not (tmp_path / "fdr" / "run" / "checkpoints").exists()

    # overfit: its 2 batches, learnt by heart
    proc = debug_run(tmp_path / "overfit", real_data_root, "debug=overfit")
    assert proc.returncode == 0, proc.stdout[-3000:]
    curve = read_events(tmp_path / "overfit" / "run").scalars["train/acc"]
    assert [step for step, _ in curve][-1] == 2 * 100 and curve[-1][1] == 1.0, curve[-5:]

    # limit: 3 epochs of 20 steps, validated and checkpointed each
    proc = debug_run(tmp_path / "limit", real_data_root, "debug=limit")
    assert proc.returncode == 0, proc.stdout[-3000:]
    run = tmp_path / "limit" / "run"
    assert [step for step, _ in read_events(run).scalars["val/acc"]] == [20, 40, 60]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 60

    # profiler: the report in the run directory, over the 50 training batches
    proc = debug_run(tmp_path / "profiler", real_data_root, "debug=profiler")
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = (tmp_path / "profiler" / "run" / "fit-profile.txt").read_text()
    (batch_line,) = [line for line in report.splitlines() if "run_training_batch" in line]
    assert batch_line.split("|")[3].strip() == "50"
    # per-batch hooks are called only where implemented (compat.skip_unimplemented_hooks): on the
    # progress bar, and on the module only its evaluation batch hooks (their signatures are read)
    actions = {line.split("|")[1].strip() for line in report.splitlines() if line.count("|") > 3}
    per_batch = {
        a
        for a in actions
        if a.startswith(("[Callback]", "[LightningModule]"))
        and a.rpartition(".")[2] in compat.PER_BATCH_HOOKS
    }
    assert per_batch == {
        "[Callback]TQDMProgressBar.on_train_batch_end",
        "[Callback]TQDMProgressBar.on_validation_batch_start",
        "[Callback]TQDMProgressBar.on_validation_batch_end",
        "[LightningModule]LazyClassifier.on_validation_batch_start",
        "[LightningModule]LazyClassifier.on_validation_batch_end",
    }, per_batch
    assert (tmp_path / "profiler" / "run" / "test-profile.txt").is_file()

    # anomaly: the first backward that makes a NaN stops the run, naming the operation
    diverging = ["optimizer=sgd", "optimizer.lr=1e12", "optimizer.momentum=0"]
    proc = debug_run(tmp_path / "anomaly", real_data_root, "debug=anomaly", *diverging)
    assert proc.returncode == 1 and "Traceback of forward call that caused the error" in proc.stdout
    assert "Backward0' returned nan values" in proc.stdout
