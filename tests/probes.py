"""Probes for the tests: callbacks a run is given through the real CLI that write down what a
run did inside, where no file of the run says it.

    python scripts/train.py ... +callbacks.probe._target_=tests.probes.CompileProbe
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch


class CompileProbe(L.Callback):
    """Writes ``compile_probe.json`` in the run directory: whether TorchDynamo traced the net
    during this process's fit. A forward hook asks ``torch.compiler.is_compiling()``: true only
    while the hook is being traced into a compiled graph, never when the net runs eagerly."""

    def __init__(self) -> None:
        self.traced = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.net.register_forward_hook(self._record)

    def _record(self, *_) -> None:
        if torch.compiler.is_compiling():
            self.traced = True

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        out = Path(trainer.default_root_dir) / "compile_probe.json"
        out.write_text(json.dumps({"traced": self.traced}))
