"""A first layer fitted to the data instead of learned: the principal axes of the dry run's sample.

An MLP's first layer on raw pixels does most of a step's arithmetic (784 inputs into every hidden
unit, forward and for its weight gradient). Projecting each flattened image onto the sample's
first ``components`` principal axes first hands the next layer a few decorrelated inputs instead:
a smaller matmul, and no gradient for the projection at all. For Fashion-MNIST, 160 of 784 axes
give a 512-wide MLP its accuracy in fewer epochs (``speedrun=mlp_89``); whitening them (unit
variance along each) fitted the training set faster still and generalized worse, so the axes keep
the data's variances.

The projection is lazy like the layers it feeds: :class:`LazyPCA` takes its input size and its
axes from the first batch it sees, the dry run's sample (``sample_size`` images, the first of the
training split: no randomness, the same axes on every rank and in every rerun; a larger sample gives
other axes, so ``sample_size`` is part of the experiment). They are buffers, not parameters: no
optimizer, init scheme or weight decay touches them, and a checkpoint holds them, so a resumed or
reloaded model projects exactly as the trained one did.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedBuffer

from lazytrain.dry_run import ShapeMismatchError


class PCA(nn.Module):
    """``x ↦ axes · (x.flatten(1) − mean)``: a fixed linear map (the ``weight`` and ``bias``
    buffers; the bias folds the mean in), fitted by :meth:`fit`."""

    def __init__(self, in_features: int, components: int) -> None:
        super().__init__()
        self.in_features, self.components = in_features, components
        self.register_buffer("weight", torch.zeros(components, in_features))
        self.register_buffer("bias", torch.zeros(components))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.flatten(1), self.weight, self.bias)

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """The first principal axes of ``x`` (rows: examples), in float64, each signed so that
        its largest entry is positive: the same sample always gives the same map."""
        flat = x.flatten(1).double()
        mean = flat.mean(0)
        centered = flat - mean
        _, axes = torch.linalg.eigh(centered.T @ centered)  # ascending variance
        axes = axes.flip(1)[:, : self.components]
        largest = axes.gather(0, axes.abs().argmax(0, keepdim=True))
        weight = (axes * torch.where(largest < 0, -1.0, 1.0)).T
        self.weight.copy_(weight)
        self.bias.copy_(-(weight @ mean))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, components={self.components}"


class LazyPCA(LazyModuleMixin, PCA):
    """:class:`PCA` whose input size and axes come from the first batch it sees: the dry run's
    sample, which must hold at least ``components`` images (``sample_size``)."""

    cls_to_become = PCA
    weight: UninitializedBuffer
    bias: UninitializedBuffer

    def __init__(self, components: int) -> None:
        if int(components) != components or components <= 0:
            raise ValueError(f"PCA components must be a positive integer, got {components!r}")
        super().__init__(0, int(components))
        self.weight = UninitializedBuffer()
        self.bias = UninitializedBuffer()

    def initialize_parameters(self, x: torch.Tensor) -> None:  # type: ignore[override]
        if not self.has_uninitialized_params():
            return
        rows, values = len(x), x[0].numel()
        if values < self.components:
            raise ShapeMismatchError(
                f"PCA(components={self.components}) cannot keep more axes than its inputs have "
                f"values ({values}): set at most {values} components"
            )
        if rows < self.components:
            raise ShapeMismatchError(
                f"PCA(components={self.components}) is fitted on the dry run's sample of {rows} "
                f"inputs and needs at least {self.components}: set "
                f"sample_size={max(8192, self.components)}, or fewer components"
            )
        self.in_features = values
        self.weight.materialize((self.components, values), dtype=x.dtype)
        self.bias.materialize((self.components,), dtype=x.dtype)
        self.fit(x)
