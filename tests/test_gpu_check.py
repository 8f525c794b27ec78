"""``scripts/gpu_check.py`` as a user without a GPU runs it: every step on the CPU, shrunk, into
one results file (what a lent GPU would fill with its numbers)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lazytrain.speedruns import SPEEDRUNS

from .helpers import ROOT, read_events

pytestmark = pytest.mark.slow


def test_the_gpu_check_runs_every_step_into_one_results_file(real_data_root, tmp_path):
    out = tmp_path / "check"
    shrunk = [
        f"data.root={real_data_root}", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "data.batch_size=32",
        "data.eval_batch_size=64",
    ]  # fmt: skip
    bench = f"--bench-args=--rounds 1 --limit-batches 2 --startup-runs 0 --models lazy_mlp --data-root {real_data_root}"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--out", str(out),
         "--device", "cpu", "--budget", "900", "--max-seeds", "1", bench, "--extra", *shrunk],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = (out / "results.md").read_text()
    assert "failed" not in results and "stopped" not in results, results
    assert results.startswith("# GPU check: CPU (no GPU here)")
    assert "## gpu-marked tests" in results and " skipped" in results  # no GPU: each skipped
    for batch in (256, 1024):
        bench_table = results.split(f"## bench, batch {batch}")[1].split("##")[0]
        assert f"Batch {batch}," in bench_table and "| lazy_mlp |" in bench_table
    runs = sorted(p.name for p in (out / "runs").iterdir() if p.is_dir())
    assert runs == sorted([*SPEEDRUNS, "default", "resnet-0"])
    for name in runs:  # each row is what its run recorded
        events = read_events(out / "runs" / name).scalars
        acc, seconds = 100 * events["test/acc"][-1][1], events["time/run_seconds"][-1][1]
        assert f"{acc:.2f}" in results and f"{seconds:.1f} s" in results, name
    assert "mean of 1 seeds" in results
