"""Traps 1–3: lazy models under DistributedDataParallel, 2 CPU processes over gloo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from lazytrain.checkpoints import ModelCheckpoint, best_score
from lazytrain.evaluate import load_trained

from .helpers import make_cfg, read_events, run_script, synthetic

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).with_name("ddp_fit.py")
ACCUMULATE = Path(__file__).with_name("ddp_accumulate.py")


def test_trap1_3_ddp_trains_from_identical_weights_on_every_rank(synthetic_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "ddp", str(synthetic_dir), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["world_size"] == 2
    assert report["wrapped"] == "DistributedDataParallel"
    first, second = report["initial"]
    assert first == second  # trap 3: each rank initialized itself, identically
    assert report["final"][0] == report["final"][1] != first  # trained, in sync
    assert report["global_step"] == 3
    metrics = report["metrics"]  # each rank's callback_metrics, gathered: every rank agrees
    logged = {"train/loss_step", "train/loss_epoch", "train/acc", "train/lr", "val/loss", "val/acc"}
    assert logged <= set(metrics)
    assert {k: v for k, v in metrics.items() if v[0] != v[1]} == {}
    assert "sync_dist" not in proc.stdout + proc.stderr  # no Lightning warning about it
    # A gloo group still alive when the interpreter shuts down aborts a finished run now and then
    # (SIGABRT, "terminate called without an active exception"): every rank left it before.
    exits = [json.loads((tmp_path / f"exit_rank{r}.json").read_text()) for r in range(2)]
    assert exits == [{"left_group": True}] * 2


def accumulate(mode: str, data: Path, work: Path) -> tuple[dict, str]:
    """One 2-process fit of ``tests/ddp_accumulate.py``: its report, and what it printed."""
    proc = subprocess.run(
        [sys.executable, str(ACCUMULATE), mode, str(data), str(work)], capture_output=True,
        text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=work,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((work / f"{mode}.json").read_text()), proc.stderr


def test_a_ddp_checkpoint_inside_an_accumulation_window_resumes_exactly(synthetic_dir, tmp_path):
    """Under DDP every rank accumulates its own gradients until the window's last batch: a
    checkpoint inside the window keeps each rank's (rank 0's in the file, the others' beside it),
    and the resume from it ends bit-identical to the straight run. Without rank 1's file, the
    resume says in one line that the window's step is not exact, and trains on."""
    straight, printed = accumulate("straight", synthetic_dir, tmp_path)
    assert "not exact" not in printed
    resumed, printed = accumulate("resumed", synthetic_dir, tmp_path)
    assert "not exact" not in printed
    # saved after batch 3 (1 step + half a window), rank 1's gradients in a file named after it
    assert straight["mid_window_files"] == [".last.ckpt.rank1-window1.1.pt", "last.ckpt"]
    assert straight["files_at_the_end"] == ["last.ckpt"]  # the window closed: its file dropped
    assert resumed["global_step"] == straight["global_step"] == 3
    assert resumed["checksum"] == straight["checksum"]

    lost = tmp_path / "lost"
    (lost / "mid-window").mkdir(parents=True)
    shutil.copy(tmp_path / "mid-window" / "last.ckpt", lost / "mid-window")
    inexact, printed = accumulate("resumed", synthetic_dir, lost)
    (line,) = [line for line in printed.splitlines() if "not exact" in line]
    assert "rank 1 resumes its accumulation window with rank 0's gradients (no " in line
    assert inexact["global_step"] == 3 and inexact["checksum"] != straight["checksum"]


def test_cli_multirun_with_ddp_runs_each_job_once_and_only_rank_zero_writes(
    synthetic_dir, tmp_path
):
    """Hydra multirun x Lightning DDP: without care, each rank >= 1 re-runs the whole sweep in a
    directory of its own. Here: 2 jobs x 2 ranks, 2 run directories, identical initial weights."""
    sweep = tmp_path / "sweep"
    proc = run_script(
        "train.py", "-m", "trainer=ddp", "trainer.accelerator=cpu", "model.hidden=[32],[64]",
        f"data.root={tmp_path / 'data'}", f"data.search_dirs=[{synthetic_dir}]", "data.download=false",
        "data.val_size=128", "data.batch_size=64", "trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0",
        f"hydra.sweep.dir={sweep}", "hydra.job.config.override_dirname.exclude_keys=[trainer,trainer.accelerator,data.root,data.search_dirs,data.download,data.val_size,data.batch_size,trainer.max_epochs,callbacks.progress_bar.refresh_rate]",
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == ["model.hidden=[32]", "model.hidden=[64]"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "sweep"]  # nothing stray
    for name in runs:
        run = sweep / name
        assert len(list(run.glob("events.out.tfevents.*"))) == 1
        assert (run / "checkpoints" / "last.ckpt").is_file()
        digests = [
            re.search(r"initial weights sha256:(\w+) \(rank (\d)\)", log.read_text()).groups()
            for log in (run / "train.log", run / "train_ddp_process_1.log")
        ]
        assert [rank for _, rank in digests] == ["0", "1"]
        assert digests[0][0] == digests[1][0]  # trap 3, through the real CLI
        assert "MEMBER: 2/2" in (run / "train_ddp_process_1.log").read_text()
        assert (run / ".hydra" / "config.yaml").is_file() and not (
            run / ".hydra" / "train_ddp_process_1"
        ).exists()


def test_cli_ddp_ranks_agree_on_the_metrics_and_rank_zero_reports_them(synthetic_dir, tmp_path):
    """Synced metrics, reported once: one ``final metrics`` line (rank 0's), no Lightning warning
    about ``sync_dist``, and ``val/loss`` in TensorBoard is the loss over the whole validation
    set, not over rank 0's half of it."""
    run = tmp_path / "run"
    data = [
        f"data.root={tmp_path / 'data'}", f"data.search_dirs=[{synthetic_dir}]", "data.download=false",
        "data.val_size=128", "data.batch_size=64", "data.eval_batch_size=128",
    ]  # fmt: skip
    switches = [  # the speedruns'
        "ema_decay=0.9", "test_time_flip=true", "bias_lr_factor=2", "model.pca=16", "sample_size=256",
    ]  # fmt: skip
    proc = run_script(
        "train.py", "trainer=ddp", "trainer.accelerator=cpu", *data, "trainer.max_epochs=1", *switches,
        "callbacks.progress_bar.refresh_rate=0", f"hydra.run.dir={run}", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    logs = [(run / name).read_text() for name in ("train.log", "train_ddp_process_1.log")]
    assert [log.count("final metrics:") for log in logs] == [1, 0]
    assert "sync_dist" not in proc.stdout + proc.stderr + "".join(logs)

    model, _ = load_trained(run / "checkpoints" / "last.ckpt")  # the weights validation ran with
    datamodule = instantiate(make_cfg(tmp_path, synthetic_dir).data)  # the same data overrides
    datamodule.setup("validate")
    with torch.no_grad():
        batches = datamodule.val_dataloader()
        logits = [(model.evaluation_logits(x), y) for x, y in batches]  # EMA weights, flipped
        losses = [F.cross_entropy(z, y, reduction="sum") for z, y in logits]
    expected = float(torch.stack(losses).sum()) / 128
    events = read_events(run)
    assert events.scalars["val/loss"][-1][1] == pytest.approx(expected, rel=1e-5)
    # The per-epoch log line shows what TensorBoard got: the training loss over both ranks.
    shown = re.search(r"epoch 0 \(.*train/loss_epoch ([\d.]+)", logs[0]).group(1)
    assert shown == f"{events.scalars['train/loss_epoch'][-1][1]:.4g}"  # 4 significant digits


def test_trap2_cli_ddp_spawn_run_exits_0_and_sweepers_get_its_best_score(synthetic_dir, tmp_path):
    """``ddp_spawn`` fits in worker processes, each cloning every parameter as it starts (a lazy
    one would fail there), which hand the main process back the best checkpoint's path but not
    its score: the score a sweeper gets is read from that file."""
    run = tmp_path / "run"
    proc = run_script(
        "train.py", "trainer=ddp", "trainer.strategy=ddp_spawn", *synthetic(tmp_path, synthetic_dir),
        "trainer.max_epochs=2", f"hydra.run.dir={run}", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (run / "train.log").read_text().count("final metrics:") == 1
    (best,) = (run / "checkpoints").glob("best-epoch*.ckpt")
    # what the main process holds after a ddp_spawn fit: the configured callback, a path, no score
    callback = ModelCheckpoint(monitor="val/acc", mode="max")
    callback.best_model_path = str(best)
    assert callback.best_model_score is None
    val_acc = [acc for _, acc in read_events(run).scalars["val/acc"]]
    assert len(val_acc) == 2 and best_score(callback) == pytest.approx(max(val_acc))
