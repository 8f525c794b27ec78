"""Traps 1–3: lazy models under DistributedDataParallel, 2 CPU processes over gloo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import run_script

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).with_name("ddp_fit.py")


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_ddp_trains_from_identical_weights_on_every_rank(strategy, synthetic_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), strategy, str(synthetic_dir), str(tmp_path)],
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
