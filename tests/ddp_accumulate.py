"""A 2-process DDP fit (gloo) with ``accumulate_grad_batches=2`` whose checkpoint is taken inside
an accumulation window, by the validation after batch 3, then resumed from that checkpoint.

Run by test_ddp.py as a subprocess, twice, because Lightning's ``ddp`` launcher re-runs
``sys.argv`` (one fit per process):
    python tests/ddp_accumulate.py straight DATA_DIR WORK_DIR   # keeps a copy of that checkpoint
    python tests/ddp_accumulate.py resumed DATA_DIR WORK_DIR    # continues from the copy
Rank 0 writes ``<mode>.json``: the final weights' checksum and the files beside the checkpoints.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import lightning as L
import torch
from helpers import make_cfg  # this script's directory is on sys.path

from lazytrain.checkpoints import LastCheckpoint
from lazytrain.train import model_and_data

MID_WINDOW = 3  # batches: the validation after the third saves inside the second window


class KeepMidWindowCheckpoint(L.Callback):
    """At the batch after the mid-window save, each rank copies the files it wrote for it (what a
    stop there would have left): rank 0 the checkpoint, every other rank its window file."""

    def __init__(self, source: Path, copy: Path) -> None:
        self.source, self.copy = source, copy

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx != MID_WINDOW:
            return
        self.copy.mkdir(exist_ok=True)
        mine = "last.ckpt" if trainer.global_rank == 0 else f".*rank{trainer.global_rank}-*"
        for path in self.source.glob(mine):
            shutil.copy(path, self.copy / path.name)


def checksum(module: torch.nn.Module) -> float:
    return float(torch.stack([p.detach().double().sum() for p in module.parameters()]).sum())


def main(mode: str, data_dir: str, work_dir: str) -> None:
    work = Path(work_dir)
    cfg = make_cfg(work, Path(data_dir), "data.batch_size=32", "model.hidden=[16]")
    model, datamodule = model_and_data(cfg)
    checkpoints, copy = work / f"{mode}-checkpoints", work / "mid-window"
    callbacks = [LastCheckpoint(checkpoints)]
    if mode == "straight":
        callbacks.append(KeepMidWindowCheckpoint(checkpoints, copy))
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, limit_train_batches=6,
        accumulate_grad_batches=2, val_check_interval=MID_WINDOW, limit_val_batches=1,
        logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=callbacks, default_root_dir=work,
    )  # fmt: skip
    trainer.fit(
        model, datamodule=datamodule, ckpt_path=copy / "last.ckpt" if mode == "resumed" else None
    )
    trainer.strategy.barrier()  # every rank's files written and dropped
    if trainer.global_rank == 0:
        report = {
            "checksum": checksum(model),
            "global_step": trainer.global_step,
            "mid_window_files": sorted(p.name for p in copy.iterdir()),
            "files_at_the_end": sorted(p.name for p in checkpoints.iterdir()),
        }
        (work / f"{mode}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
