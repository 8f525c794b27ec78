"""Evaluate a checkpoint anywhere: rebuild the lazy model from its own hyperparameters, load the
weights with ``weights_only=True`` (building only allowlisted targets: :mod:`lazytrain.trust`),
restore the data's state it was trained with (class names, normalization) and report test
metrics, per-class accuracy and the confusion matrix (printed, as a PNG, and in the run's
TensorBoard), the classes named as the data names them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.tensorboard import SummaryWriter

from lazytrain.checkpoints import read_checkpoint
from lazytrain.datamodule import ImageDataModule
from lazytrain.images import DataError
from lazytrain.loading import model_from_checkpoint
from lazytrain.module import LazyClassifier
from lazytrain.trackers import IDS_KEY as TRACKERS_KEY


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    confusion: torch.Tensor  # [true class, predicted class] counts
    step: int
    classes: tuple[str, ...]  # in label order
    trackers: Mapping[str, Any] = field(default_factory=dict)  # where the run was tracked

    @property
    def per_class(self) -> torch.Tensor:
        return self.confusion.diag() / self.confusion.sum(1).clamp(min=1)

    def markdown(self) -> str:
        rows = [
            f"| {name} | {acc:.2%} | {int(n)} |"
            for name, acc, n in zip(
                self.classes, self.per_class.tolist(), self.confusion.sum(1).tolist(), strict=True
            )
        ]
        head = "| | " + " | ".join(str(i) for i in range(len(self.classes))) + " |"
        matrix = [head, "|---" * (len(self.classes) + 1) + "|"]
        matrix += [
            f"| **{i}** | " + " | ".join(str(int(v)) for v in row) + " |"
            for i, row in enumerate(self.confusion)
        ]
        return "\n".join(
            [
                f"test loss {self.loss:.4f}, test accuracy {self.accuracy:.2%} (step {self.step})",
                "",
                "| class | accuracy | examples |",
                "|---|---|---|",
                *rows,
                "",
                "Confusion matrix (rows: true class, columns: predicted; classes in the order above, from 0):",
                "",
                *matrix,
            ]
        )


def load_trained(
    ckpt_path: str | Path,
    device: torch.device | str = "cpu",
    trusted_targets: Sequence[str] = (),
    datamodule: ImageDataModule | None = None,
) -> tuple[LazyClassifier, dict[str, Any]]:
    """The model a checkpoint holds, and the checkpoint: the file is read once, no pickled
    objects are executed, and only allowlisted targets (plus ``trusted_targets``) are built.
    Given a ``datamodule``, the data must fit the model, and the state the checkpoint recorded
    of it (class names, normalization; Lightning restores it only where it loads the checkpoint
    itself) is restored into it."""
    checkpoint = read_checkpoint(ckpt_path)
    source = f"checkpoint {ckpt_path}"
    model = model_from_checkpoint(LazyClassifier, checkpoint, trusted_targets, source=source)
    if datamodule is not None:
        trained = (model.hparams.num_classes, list(model.hparams.input_shape))
        if trained != (datamodule.num_classes, list(datamodule.input_shape)):
            raise DataError(
                f"{source} holds a model of {trained[0]} classes of {trained[1]} images, the data "
                f"has {datamodule.num_classes} classes of {list(datamodule.input_shape)} images: "
                "give the data it was trained on (data=..., data.root=...)"
            )
        state = checkpoint.get(type(datamodule).__qualname__)
        if state is not None:  # checkpoints from before the data had a state have none
            datamodule.load_state_dict(state)
    return model.to(device).eval(), checkpoint


def evaluate(
    ckpt_path: str | Path,
    datamodule: ImageDataModule,
    accelerator: str = "auto",
    trusted_targets: Sequence[str] = (),
) -> Evaluation:
    """Test metrics through Lightning (the same code path as training's final test) and the
    confusion matrix from one pass over the test set."""
    model, checkpoint = load_trained(
        ckpt_path, trusted_targets=trusted_targets, datamodule=datamodule
    )
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    n = datamodule.num_classes
    confusion = torch.zeros(n, n, dtype=torch.long)
    with torch.no_grad():
        for x, y in datamodule.test_dataloader():
            logits = model.evaluation_logits(x.to(model.device))
            pairs = y.cpu() * n + logits.argmax(1).cpu()
            confusion += torch.bincount(pairs, minlength=n * n).view(n, n)
    accuracy = confusion.diag().sum().item() / confusion.sum().item()
    if abs(accuracy - metrics["test/acc"]) > 1e-6:  # two views of one model must agree
        raise RuntimeError(
            f"confusion-matrix accuracy {accuracy} != Lightning's test/acc {metrics['test/acc']}"
        )
    return Evaluation(
        loss=metrics["test/loss"],
        accuracy=metrics["test/acc"],
        confusion=confusion,
        step=int(checkpoint.get("global_step", 0)),
        classes=datamodule.classes,
        trackers=checkpoint.get(TRACKERS_KEY, {}),
    )


def plot_confusion(evaluation: Evaluation, path: Path) -> Path:
    """The confusion matrix as a PNG, counts in the cells (an object-oriented figure, as in
    ``compare.plot``: no pyplot state, no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6), layout="tight")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(evaluation.confusion, cmap="Blues")
    classes = evaluation.classes
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=f"test accuracy {evaluation.accuracy:.2%}")
    top = evaluation.confusion.max().item()
    for i, row in enumerate(evaluation.confusion.tolist()):
        for j, v in enumerate(row):
            color = "white" if v > top / 2 else "black"
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color=color)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def log_evaluation(evaluation: Evaluation, log_dir: Path, figure_path: Path) -> None:
    """Append ``scripts/eval.py``'s result to the run's TensorBoard, at the checkpoint's step: the
    confusion matrix as an image, the tables as text, the accuracy as a scalar."""
    import numpy as np
    from PIL import Image

    with SummaryWriter(str(log_dir)) as writer:
        image = np.asarray(Image.open(figure_path).convert("RGB"))
        writer.add_image("eval/confusion_matrix", image, evaluation.step, dataformats="HWC")
        writer.add_text("eval/report", evaluation.markdown(), evaluation.step)
        writer.add_scalar("eval/test_acc", evaluation.accuracy, evaluation.step)
