"""scripts/bench.py runs end to end on a tiny setting and prints its table (a smoke test: the
numbers themselves are a benchmark's business, never a test's)."""

from __future__ import annotations

import re

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
