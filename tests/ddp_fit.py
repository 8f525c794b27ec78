"""Fit the real config on 2 CPU processes (gloo) with a DDP strategy (``ddp``); rank 0 writes a JSON report,
and every rank, at its exit, whether it had left its process group by then.

Run by test_ddp.py as a subprocess, because Lightning's ``ddp`` launcher re-runs ``sys.argv``:
    python tests/ddp_fit.py STRATEGY DATA_DIR WORK_DIR
"""

from __future__ import annotations

import atexit
import json
import sys
from pathlib import Path

import lightning as L
import torch
from helpers import make_cfg  # this script's directory is on sys.path

from lazytrain.train import model_and_data


def checksum(module: torch.nn.Module) -> torch.Tensor:
    return torch.stack([p.detach().double().sum() for p in module.parameters()]).sum()


class Report(L.Callback):
    """All-gathers each rank's weight checksum as built (before the DDP wrap) and after fit, and
    each rank's ``callback_metrics`` (what it logged) after fit."""

    def __init__(self, initial: torch.Tensor, out: Path) -> None:
        self.initial, self.out, self.report = initial, out, {}

    def setup(self, trainer, pl_module, stage):
        # Registered before the model's setup hook runs, so this runs after whatever the model
        # arranges for the exit (atexit runs last-in, first-out), still in a whole interpreter.
        atexit.register(self.record_exit, trainer.global_rank)

    def record_exit(self, rank: int) -> None:
        left = not torch.distributed.is_initialized()
        self.out.with_name(f"exit_rank{rank}.json").write_text(json.dumps({"left_group": left}))

    def on_fit_start(self, trainer, pl_module):
        self.report["initial"] = pl_module.all_gather(self.initial).tolist()
        self.report["wrapped"] = type(trainer.strategy.model).__name__

    def on_train_end(self, trainer, pl_module):
        self.report["final"] = pl_module.all_gather(checksum(pl_module)).tolist()
        self.report["global_step"] = trainer.global_step
        self.report["world_size"] = trainer.world_size
        self.report["metrics"] = {  # sorted: every rank gathers the same keys in the same order
            k: pl_module.all_gather(v).tolist() for k, v in sorted(trainer.callback_metrics.items())
        }
        if trainer.global_rank == 0:
            self.out.write_text(json.dumps(self.report))


def main(strategy: str, data_dir: str, work_dir: str) -> None:
    work = Path(work_dir)
    cfg = make_cfg(
        work,
        Path(data_dir),
        "model=lazy_convnet",
        "model.channels=[4,8]",
        "model.convs_per_block=1",
    )
    model, datamodule = model_and_data(cfg)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy=strategy, max_epochs=1, limit_train_batches=3,
        limit_val_batches=1, log_every_n_steps=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[Report(checksum(model), work / "report.json")], default_root_dir=work,
    )  # fmt: skip
    trainer.fit(model, datamodule=datamodule)


if __name__ == "__main__":
    main(*sys.argv[1:])
