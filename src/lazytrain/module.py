"""The LightningModule: a lazy network, materialized and initialized in ``__init__``.

Materializing in ``__init__`` — not in ``setup()`` or ``configure_model()`` — is what makes every
later consumer safe: the optimizer, the model summary, loggers, ``deepcopy`` by SWA/EMA callbacks,
``ddp_spawn``'s pickling and DDP's wrap all see concrete parameters, and since ``apply_init`` is
idempotent nothing is ever re-initialized. Hyperparameters are plain containers and the network is
rebuilt from them, so checkpoints load with ``weights_only=True``; a checkpoint's targets are
checked against an allowlist before anything is built (:mod:`lazytrain.trust`).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics.classification import MulticlassAccuracy

from lazytrain.checkpoints import CheckpointError, CheckpointMismatchError, read_checkpoint
from lazytrain.distributed import leave_process_group_at_exit
from lazytrain.dry_run import ShapeReport, apply_init, uninitialized
from lazytrain.init import InitScheme
from lazytrain.models import build_net
from lazytrain.trust import check_targets


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stops, its last good checkpoint stays."""


class LazyClassifier(L.LightningModule):
    """Classifier around any lazy ``net`` declared by a Hydra config (``model``)."""

    def __init__(
        self,
        model: dict[str, Any],
        init: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        test_time_flip: bool = False,
        bias_lr_factor: float = 1.0,
        num_classes: int = 10,
        input_shape: Sequence[int] = (1, 28, 28),
        seed: int = 0,
        sample: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["sample"])
        self.net: nn.Module = build_net(model, num_classes)
        if sample is None:
            # Rebuilding from a checkpoint: only the shape matters, the weights load after.
            sample = torch.zeros(2, *input_shape)
        self.shape_report = self.materialize(sample, instantiate(init))
        self._channels_last = channels_last
        if channels_last:  # after the dry run: a lazy parameter has no layout yet
            self.net.to(memory_format=torch.channels_last)
        # torchmetrics for evaluation; training accuracy is a plain on-device count (a
        # torchmetrics update costs 5x more, per step).
        self.val_acc, self.test_acc = (
            MulticlassAccuracy(num_classes, average="micro", validate_args=False) for _ in range(2)
        )
        self._reset_epoch_sums()
        self._restored_rng: dict[str, torch.Tensor] = {}

    def materialize(self, inputs: torch.Tensor, init: InitScheme) -> ShapeReport | None:
        """:func:`~lazytrain.dry_run.apply_init` on the net: dry-run ``inputs``, check the
        logits' shape, apply ``init`` — once (a materialized net is left alone)."""
        hp = self.hparams
        return apply_init(self.net, inputs, init, seed=hp.seed, num_classes=hp.num_classes)

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name around every hook call, ~50 times per training step;
        # nn.Module.__setattr__'s parameter/buffer/module checks make that a measurable cost.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path | IO[bytes],
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        *,
        trusted_targets: Sequence[str] = (),
        **kwargs: Any,
    ) -> LazyClassifier:
        """Lightning's ``load_from_checkpoint``, safe for a checkpoint from elsewhere: the file is
        read once with ``weights_only=True`` (:func:`read_checkpoint`) and its hyperparameters are
        rebuilt by :meth:`from_checkpoint` (allowlisted targets only, plus ``trusted_targets``).
        The model is built on the CPU and moved to ``map_location`` if that names a device."""
        if weights_only is False:
            raise ValueError("LazyClassifier checkpoints load only with weights_only=True")
        if hparams_file is not None:
            raise ValueError("hparams_file is not supported: give hyperparameters as keywords")
        checkpoint = read_checkpoint(checkpoint_path)
        model = cls.from_checkpoint(
            checkpoint,
            trusted_targets=trusted_targets,
            source=f"checkpoint {checkpoint_path}",
            strict=strict,
            **kwargs,
        )
        if isinstance(map_location, str | torch.device):
            model = model.to(map_location)
        return model

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: dict[str, Any],
        trusted_targets: Sequence[str] = (),
        source: str = "the checkpoint",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> LazyClassifier:
        """The model a loaded checkpoint describes, with its weights. Every ``_target_`` in its
        hyperparameters is checked (:func:`lazytrain.trust.check_targets`) before anything is
        built; ``kwargs`` override hyperparameters, as in Lightning. Weights that do not fit are a
        :class:`CheckpointMismatchError`, a file with no hyperparameters a :class:`CheckpointError`."""
        hparams = checkpoint.get("hyper_parameters")
        required = ("model", "init", "optimizer")
        if not isinstance(hparams, dict) or any(k not in {**hparams, **kwargs} for k in required):
            raise CheckpointError(
                f"{source} holds no model, init and optimizer hyperparameters: not a lazytrain checkpoint"
            )
        check_targets(hparams, trusted_targets, source)
        names = inspect.signature(cls.__init__).parameters
        model = cls(**{k: v for k, v in hparams.items() if k in names and k != "self"} | kwargs)
        model.on_load_checkpoint(checkpoint)
        try:
            model.load_state_dict(
                checkpoint["state_dict"], strict=model.strict_loading if strict is None else strict
            )
        except RuntimeError as err:
            raise CheckpointMismatchError(
                f"{source} does not fit the model its hyperparameters describe: "
                + " ".join(str(err).split())
            ) from err
        return model

    def digest(self) -> str:
        """sha256 of the weights: equal digests, bit-identical models (across runs and ranks)."""
        h = hashlib.sha256()
        for name, tensor in self.net.state_dict().items():
            h.update(name.encode())
            h.update(
                tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            )
        return h.hexdigest()[:16]

    @property
    def lr(self) -> float:
        """The configured learning rate; settable, so ``Tuner(trainer).lr_find(model)`` works."""
        return self.hparams.optimizer["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.hparams.optimizer["lr"] = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self._layout(x))

    def evaluation_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The logits validation, test and ``scripts/eval.py`` score: with ``test_time_flip``
        the mean of the image's and its mirror image's (clothes look alike mirrored, and the
        training flips them too), which costs a second forward pass."""
        x = self._layout(x)
        logits = self.net(x)
        if self.hparams.test_time_flip:
            logits = (logits + self.net(x.flip(-1))) / 2
        return logits

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """Batches in the net's memory format (a no-op for a single channel, as Fashion-MNIST's)."""
        if self._channels_last and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def setup(self, stage: str) -> None:
        # In every rank (ddp_spawn's workers too), once its process group exists.
        leave_process_group_at_exit()

    def on_train_epoch_start(self) -> None:
        self._reset_epoch_sums()  # (not called for an epoch resumed mid-way: the sums are loaded)

    def on_train_start(self) -> None:
        # A checkpoint is restored before the strategy moves the model to its device.
        self._loss_sum, self._correct, self._first_bad_step = (
            t.to(self.device) for t in (self._loss_sum, self._correct, self._first_bad_step)
        )
        rng, self._restored_rng = self._restored_rng, {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # This epoch's running sums so far: an epoch resumed mid-way logs the same train/*
        # metrics as an uninterrupted one; the global RNG for the same reason (Dropout).
        checkpoint["epoch_sums"] = {
            "loss": self._loss_sum.cpu(), "correct": self._correct.cpu(),
            "seen": self._seen, "first_bad_step": self._first_bad_step.cpu(),
        }  # fmt: skip
        checkpoint["rng"] = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            checkpoint["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        sums = checkpoint.get("epoch_sums")
        if sums is not None:
            self._loss_sum, self._correct = sums["loss"], sums["correct"]
            self._seen, self._first_bad_step = sums["seen"], sums["first_bad_step"]
        self._restored_rng = checkpoint.get("rng", {})  # applied when training continues

    def _reset_epoch_sums(self) -> None:
        # Running sums on the device: no per-step sync, and no per-step self.log (each costs
        # about as much as a small model's whole step); logged every N steps and per epoch.
        self._loss_sum = torch.zeros((), device=self.device)
        self._correct = torch.zeros((), device=self.device, dtype=torch.long)
        self._seen = 0
        self._first_bad_step = torch.full((), -1, device=self.device, dtype=torch.long)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        logits = self.net(self._layout(x))
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        with torch.no_grad():
            self._loss_sum += loss * len(y)
            self._correct += (logits.argmax(1) == y).sum()
            self._seen += len(y)
            # Remember the first non-finite step on the device; checked without a per-step sync.
            bad = ~torch.isfinite(loss) & (self._first_bad_step < 0)
            self._first_bad_step = torch.where(bad, self.global_step, self._first_bad_step)
        # On the steps Lightning writes to the loggers (counted over the run, not the epoch), so
        # each point lands at its own step and none is dropped at an epoch's end.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self._check_finite()
            # sync_dist: under DDP the loss of the global batch, the same on every rank (one
            # all-reduce every log_every_n_steps; free on one device).
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, sync_dist=True)
            # the schedule as it is applied, step by step (warm-up, decay)
            self.log(
                "train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False
            )
        return loss

    def on_validation_epoch_start(self) -> None:
        self._check_finite()  # before validation, so no checkpoint is written from bad weights

    def _check_finite(self) -> None:
        step = int(self._first_bad_step)
        if step >= 0:
            raise NonFiniteLossError(
                f"the training loss became NaN or infinite at step {step} (epoch "
                f"{self.current_epoch}); the run stopped and its last good checkpoint is kept. "
                "Lower optimizer.lr, or add gradient clipping: trainer.gradient_clip_val=1.0"
            )

    def train_epoch_metrics(self) -> dict[str, torch.Tensor | float]:
        """This epoch's training loss and accuracy so far (this rank)."""
        seen = max(self._seen, 1)
        return {
            "train/loss_epoch": self._loss_sum / seen,
            "train/acc": self._correct.float() / seen,
        }

    def on_train_epoch_end(self) -> None:
        self._check_finite()
        for name, value in self.train_epoch_metrics().items():
            # not on the progress bar: shown all next epoch, it would read as that epoch's loss
            self.log(name, value, sync_dist=True)

    def _evaluate(
        self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, acc: MulticlassAccuracy
    ):
        x, y = batch
        logits = self.evaluation_logits(x)
        acc.update(logits, y)
        # sync_dist: the mean over every rank's shard (synced once per epoch, not per step; free
        # on one device). The accuracy is a torchmetrics Metric, which syncs itself.
        loss = F.cross_entropy(logits, y)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", sync_dist=True)
        self.log(f"{stage}/acc", acc, prog_bar=stage == "val")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_acc)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_acc)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        optimizer, schedule = self.build_optimizer(self._estimated_steps)
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def _estimated_steps(self) -> int:
        steps = int(self.trainer.estimated_stepping_batches)
        # Lightning#20550: estimating sets up the training loader before a checkpoint's loop
        # state is restored, and fit then reuses it: the loader's saved batch position would
        # never be loaded (a mid-epoch resume would replay the epoch from its start). Let fit
        # set the loader up again, after the restore.
        self.trainer.fit_loop._combined_loader = None
        return steps

    def build_optimizer(
        self, total_steps: Callable[[], int]
    ) -> tuple[torch.optim.Optimizer, LRScheduler | None]:
        """The configured optimizer, and the schedule over ``total_steps()`` optimizer steps if
        one is configured (a plain loop gets exactly what Lightning gets)."""
        lazy = uninitialized(self)
        if lazy:  # an optimizer over lazy parameters trains, but the configured init never ran
            raise RuntimeError(
                f"configure_optimizers reached with uninitialized parameters: {lazy}"
            )
        options = dict(self.hparams.optimizer)
        decay = float(options.get("weight_decay", 0.0))
        # Weight decay on matrices and kernels only: decaying biases and norm scales hurts. Those
        # 1-D parameters may also take a larger learning rate (bias_lr_factor; airbench trains
        # BatchNorm's biases at a higher one).
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        if self.hparams.bias_lr_factor != 1.0:
            groups[1]["lr"] = float(options["lr"]) * self.hparams.bias_lr_factor
        optimizer = instantiate(options)([g for g in groups if g["params"]])
        if not self.hparams.scheduler:
            return optimizer, None
        return optimizer, instantiate(self.hparams.scheduler)(optimizer, total_steps=total_steps())
