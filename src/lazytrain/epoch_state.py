"""What a training epoch accumulates between logging steps, kept exact across a resume.

The epoch's loss and accuracy are running sums on the device (no per-step sync, no per-step
``self.log``: each costs about as much as a small model's whole step), and the first non-finite
step is remembered there too. A checkpoint taken mid-epoch holds them, and the global RNG
(Dropout draws from it), so an epoch resumed mid-way logs the same ``train/*`` metrics as an
uninterrupted one. Their place in a checkpoint: ``epoch_sums`` and ``rng``.
"""

from __future__ import annotations

from typing import Any

import torch


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stops, its last good checkpoint stays."""


class EpochState:
    """This rank's running sums of the current epoch, its first bad step, and the RNG to restore."""

    def __init__(self) -> None:
        self.reset(torch.device("cpu"))
        self._restored_rng: dict[str, torch.Tensor] = {}

    def reset(self, device: torch.device) -> None:
        """A new epoch (not called for an epoch resumed mid-way: its sums are loaded)."""
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen = 0
        self.first_bad_step = torch.full((), -1, device=device, dtype=torch.long)

    @torch.no_grad()
    def update(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, step: int) -> None:
        """Add one training step: no host sync, whatever the loss."""
        self.loss_sum += loss * len(y)
        self.correct += (logits.argmax(1) == y).sum()
        self.seen += len(y)
        bad = ~torch.isfinite(loss) & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(bad, step, self.first_bad_step)

    def check_finite(self, epoch: int) -> None:
        """Stop with :class:`NonFiniteLossError` if a loss so far was NaN or infinite, naming the
        first such step (a host sync: called on logging steps and at epoch ends only)."""
        step = int(self.first_bad_step)
        if step >= 0:
            raise NonFiniteLossError(
                f"the training loss became NaN or infinite at step {step} (epoch {epoch}); the "
                "run stopped and its last good checkpoint is kept. Lower optimizer.lr, or add "
                "gradient clipping: trainer.gradient_clip_val=1.0"
            )

    def metrics(self) -> dict[str, torch.Tensor]:
        """This epoch's training loss and accuracy so far."""
        seen = max(self.seen, 1)
        return {"train/loss_epoch": self.loss_sum / seen, "train/acc": self.correct.float() / seen}

    def start_training(self, device: torch.device) -> None:
        """Where training (re)starts: the sums on the model's device (a checkpoint is restored
        before the strategy moves the model) and a restored RNG state applied."""
        self.loss_sum, self.correct, self.first_bad_step = (
            t.to(device) for t in (self.loss_sum, self.correct, self.first_bad_step)
        )
        rng, self._restored_rng = self._restored_rng, {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], device)

    def state_dict(self, device: torch.device) -> dict[str, Any]:
        """The checkpoint's ``epoch_sums`` and ``rng`` entries (CPU tensors)."""
        rng = {"torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        sums = {
            "loss": self.loss_sum.cpu(), "correct": self.correct.cpu(),
            "seen": self.seen, "first_bad_step": self.first_bad_step.cpu(),
        }  # fmt: skip
        return {"epoch_sums": sums, "rng": rng}

    def load_state_dict(self, checkpoint: dict[str, Any]) -> None:
        """From a checkpoint (older ones may hold neither entry); the RNG is applied by
        :meth:`start_training`, when training continues."""
        sums = checkpoint.get("epoch_sums")
        if sums is not None:
            self.loss_sum, self.correct = sums["loss"], sums["correct"]
            self.seen, self.first_bad_step = sums["seen"], sums["first_bad_step"]
        self._restored_rng = checkpoint.get("rng", {})
