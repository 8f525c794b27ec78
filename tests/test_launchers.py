"""Scaling out uses Hydra's launchers as they are: submitit locally here, SLURM by preset."""

from __future__ import annotations

import pytest

from lazytrain.config import compose_config

from .helpers import read_events, run_script

pytest.importorskip(
    "hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[dev]' brings it"
)


@pytest.mark.slow
def test_submitit_local_runs_jobs_in_their_own_processes(real_data_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_script(
        "train.py", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
        f"hydra.sweep.dir={sweep}", "model.hidden=[32],[64]", f"data.root={real_data_root}",
        "trainer.max_epochs=1", "trainer.limit_train_batches=4", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert runs == [f"model.hidden=[{h}]" for h in (32, 64)]  # named by what the sweep varies
    for name in runs:
        assert "test/acc" in read_events(sweep / name).scalars


def test_slurm_preset_asks_one_task_per_device_on_every_node():
    cfg = compose_config(["launcher=slurm", "trainer.num_nodes=2", "trainer.devices=8"], hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 8, 8)
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.accelerator == "gpu"
