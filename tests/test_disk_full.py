"""A disk that fills up: one line that says so and names what to do, the checkpoints saved
before left whole, and the run continued once there is space. A real full disk: a 3 MiB tmpfs
(as root, as CI runs)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from lazytrain.atomic_write import atomic_write
from lazytrain.disk_full import DiskFullError

from .helpers import assert_refused, read_events, run_script, synthetic


@pytest.fixture
def small_disk(tmp_path: Path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)]
    proc = subprocess.run(mount, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_checkpoint_that_does_not_fit_is_refused_by_name_and_the_old_one_kept(small_disk):
    path = small_disk / "last.ckpt"
    old = {"state_dict": {"w": torch.arange(10.0)}}
    atomic_write(path, lambda f: torch.save(old, f))
    too_big = {"state_dict": {"w": torch.zeros(1_000_000)}}  # 4 MB on a 3 MiB disk
    with pytest.raises(DiskFullError, match=f"no space left on the device while writing {path}"):
        atomic_write(path, lambda f: torch.save(too_big, f))
    assert torch.equal(
        torch.load(path, weights_only=True)["state_dict"]["w"], old["state_dict"]["w"]
    )
    assert sorted(p.name for p in small_disk.iterdir()) == ["last.ckpt"]  # no temporary file left


@pytest.mark.slow
def test_a_run_that_fills_its_disk_stops_in_one_line_and_continues_once_freed(
    small_disk, tmp_path, synthetic_dir
):
    run = small_disk / "run"
    proc = run_script(
        "train.py", *synthetic(tmp_path, synthetic_dir), "model.hidden=[32]",
        "trainer.max_epochs=3", f"hydra.run.dir={run}",
        "+callbacks.fault._target_=tests.faults.FillDiskAt", "+callbacks.fault.step=12",
        cwd=tmp_path, merge=True,
    )  # fmt: skip
    assert_refused(proc, "DiskFullError: no space left on the device", f"resume={run}")
    assert "Exception in thread" not in proc.stdout  # the writer thread's error: said once
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert 0 < saved["global_step"] <= 12
    (small_disk / "filler").unlink()
    proc = run_script("train.py", f"resume={run}", "trusted_targets=[tests.faults]", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    epoch = saved["global_step"]  # the fault comes after the first epoch's checkpoint
    assert [s for s, _ in read_events(run).scalars["val/acc"]] == [epoch, 2 * epoch, 3 * epoch]
