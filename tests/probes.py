"""Probes for the tests: callbacks a run is given (through the real CLI, or ``train(cfg,
callbacks=...)``) that write down what a run did inside, where no file of the run says it.

    python scripts/train.py ... +callbacks.probe._target_=tests.probes.CompileProbe
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import lightning as L
import torch

from lazytrain.compat import OperatorMode


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


class HostSyncProbe(L.Callback):
    """Records every operation that would make the host wait for the device, or copy host data
    to it, from the end of one training step to the end of the next — fetching, normalizing and
    augmenting the next batch included — on the steps that log nothing:

    - ``aten._local_scalar_dense``: what ``.item()``, ``float(t)``, ``int(t)``, ``if t:`` dispatch;
    - ``aten.lift_fresh``: a tensor made from Python data (``torch.tensor(0.3)``), then moved;
    - a copy between devices (seen on a GPU only).

    Each record names the innermost line outside torch that asked for it. The optimizers' step
    counters stay on the host by design (torch keeps Adam's there unless fused or capturable, and
    reads them with ``torch.optim.optimizer._get_value``): those reads are not recorded."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.windows = 0
        self._mode: _SyncCounter | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self.found.extend(self._mode.found)
            self._mode, self.windows = None, self.windows + 1
        next_logs = (trainer.global_step + 1) % trainer.log_every_n_steps == 0
        if not next_logs and not trainer.is_last_batch:
            self._mode = _SyncCounter()
            self._mode.__enter__()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._mode is not None:  # (an epoch cut short by limit_train_batches)
            self._mode.__exit__(None, None, None)
            self._mode = None


class _SyncCounter(OperatorMode):
    SYNC = torch.ops.aten._local_scalar_dense.default
    HOST_DATA = (torch.ops.aten.lift_fresh.default, torch.ops.aten.lift_fresh_copy.default)
    COPIES = (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default)

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func == self.SYNC or func in self.HOST_DATA or self._between_devices(func, args, out):
            frames = traceback.extract_stack()
            if not any(f.name == "_get_value" and "/torch/optim/" in f.filename for f in frames):
                self.found.append(f"{func}: {_caller(frames)}")
        return out

    def _between_devices(self, func, args, out) -> bool:
        if func not in self.COPIES or not isinstance(out, torch.Tensor):
            return False
        source = args[1] if func == torch.ops.aten.copy_.default else args[0]
        return isinstance(source, torch.Tensor) and source.device != out.device


def _caller(frames: list[traceback.FrameSummary]) -> str:
    """The innermost line outside torch (and this file), and the torch file it went through."""
    outside = [
        f for f in frames if "/torch/" not in f.filename and not f.filename.endswith("probes.py")
    ]
    f = outside[-1]
    via = [g.filename for g in frames if "/torch/" in g.filename]
    return f"{f.filename}:{f.lineno} ({f.line})" + (f" via {via[-1]}" if via else "")
