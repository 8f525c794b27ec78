"""Content digests: short sha256 names for what a run is made of, so two equal digests mean
bit-identical contents (across runs, ranks and machines)."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def weights_digest(net: nn.Module) -> str:
    """sha256 of a module's ``state_dict`` (names and raw bytes), the first 16 hex digits."""
    h = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
