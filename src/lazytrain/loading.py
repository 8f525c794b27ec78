"""A model rebuilt from a checkpoint safely: the file read once with ``weights_only=True``, every
``_target_`` of its hyperparameters checked against the allowlist (:mod:`lazytrain.trust`)
before anything is built, the lazy net rebuilt and dry-run from those hyperparameters, then the
weights loaded. ``LazyClassifier.load_from_checkpoint`` and ``scripts/eval.py`` both go through it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import lightning as L
import torch

from lazytrain.checkpoints import CheckpointError, CheckpointMismatchError, read_checkpoint
from lazytrain.trust import check_targets

Module = TypeVar("Module", bound=L.LightningModule)
REQUIRED = ("model", "init", "optimizer")


def model_from_checkpoint(
    cls: type[Module],
    checkpoint: dict[str, Any],
    trusted_targets: Sequence[str] = (),
    source: str = "the checkpoint",
    strict: bool | None = None,
    **kwargs: Any,
) -> Module:
    """The ``cls`` model a loaded checkpoint describes, with its weights; ``kwargs`` override
    hyperparameters, as in Lightning. Weights that do not fit are a
    :class:`CheckpointMismatchError`, a file with no hyperparameters a :class:`CheckpointError`."""
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or any(k not in {**hparams, **kwargs} for k in REQUIRED):
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


def load_from_checkpoint(
    cls: type[Module],
    checkpoint_path: str | Path | IO[bytes],
    map_location: Any = None,
    hparams_file: str | Path | None = None,
    strict: bool | None = None,
    weights_only: bool | None = None,
    *,
    trusted_targets: Sequence[str] = (),
    **kwargs: Any,
) -> Module:
    """Lightning's ``load_from_checkpoint`` for a checkpoint from elsewhere: built on the CPU
    with :func:`model_from_checkpoint`, then moved to ``map_location`` if that names a device."""
    if weights_only is False:
        raise ValueError("LazyClassifier checkpoints load only with weights_only=True")
    if hparams_file is not None:
        raise ValueError("hparams_file is not supported: give hyperparameters as keywords")
    model = model_from_checkpoint(
        cls,
        read_checkpoint(checkpoint_path),
        trusted_targets=trusted_targets,
        source=f"checkpoint {checkpoint_path}",
        strict=strict,
        **kwargs,
    )
    if isinstance(map_location, str | torch.device):
        model = model.to(map_location)
    return model
