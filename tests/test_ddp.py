"""Traps 1–3: lazy models under DistributedDataParallel, 2 CPU processes over gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
