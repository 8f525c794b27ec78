"""scripts/bench.py runs end to end on a tiny setting and prints its table (a smoke test: the
numbers themselves are a benchmark's business, never a test's)."""

from __future__ import annotations

import re

import pytest

from .helpers import run_script


def test_bench_prints_its_table(real_data_root, tmp_path):
    proc = run_script(
        "bench.py", "--models", "lazy_mlp", "--rounds", "1", "--limit-batches", "3",
        "--startup-runs", "1", "--device", "cpu", "--data-root", str(real_data_root), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = re.search(
        r"^\| lazy_mlp \| ([\d,]+) .*\| ([\d,]+) .*\| ([\d,]+) .*\| ([\d.]+) \| ([\d.]+) \| (\d+) ms \|$",
        proc.stdout,
        re.M,
    )
    assert row, proc.stdout[-2000:]
    assert re.search(
        r"first training step \(`python scripts/train.py`\): median [\d.]+ s", proc.stdout
    )
    assert list(tmp_path.iterdir()) == []  # a benchmark writes nothing but its output


@pytest.mark.slow
def test_time_to_accuracy_races_each_speedrun_against_its_recipe(real_data_root, tmp_path):
    few = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
    proc = run_script(
        "bench.py", "--time-to-accuracy", "--seeds", "1", "--device", "cpu",
        "--data-root", str(real_data_root), "--extra", *few, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"^seed 0: mlp_recipe [\d.]+% in [\d.]+ s$", proc.stdout, re.M)
    assert re.search(r"^seed 0: speedrun_89 [\d.]+% in [\d.]+ s$", proc.stdout, re.M)
    row = r"^\| `speedrun_89` \| ≥ 89.5 \| [\d.]+ \| [\d.]+ s \| `mlp_recipe` \| [\d.]+ \| [\d.]+ s \| [\d.]+× \|$"
    assert re.search(row, proc.stdout, re.M), proc.stdout[-2000:]
    assert list(tmp_path.iterdir()) == []
