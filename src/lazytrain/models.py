"""Lazy architectures, declared by output sizes only.

Every input size (``in_features``, ``in_channels``, ``num_features``) is left for the dry run to
infer, so the same config fits any image size or channel count. Each builder returns a plain
``nn.Sequential`` so that layer indices in shape tables and error messages match ``net[i]``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from hydra.utils import get_object, instantiate
from torch import nn

from lazytrain.pca import LazyPCA

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def build_net(config: Mapping[str, Any], num_classes: int) -> nn.Module:
    """Instantiate a model config (``conf/model``). The number of classes is the data's: a
    builder with a ``num_classes`` argument gets it unless the config sets one (a layer list
    states its last layer's size itself, and the dry run checks it)."""
    takes = "num_classes" in inspect.signature(get_object(config["_target_"])).parameters
    if takes and "num_classes" not in config:
        return instantiate(config, num_classes=num_classes)
    return instantiate(config)


def to_channels_last(net: nn.Module) -> nn.Module:
    """``net`` in NHWC memory layout: its kernels now (after the dry run: a lazy parameter has no
    layout yet) and each 4-D batch on its way in, by a forward pre-hook, so the state dict's keys
    stay the plain net's. A no-op on a single channel, as Fashion-MNIST's."""
    net.to(memory_format=torch.channels_last)
    net.register_forward_pre_hook(_nhwc_batch)
    return net


def _nhwc_batch(net: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    x, *rest = args
    if x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return (x, *rest)


def _with_head(layers: list[nn.Module], num_classes: int) -> nn.Sequential:
    """``layers`` and the classifier's lazy output layer, as one ``nn.Sequential``."""
    return nn.Sequential(*layers, nn.LazyLinear(_sizes([num_classes], "num_classes")[0]))


def _choice(table: dict[str, type[nn.Module]], name: str, what: str) -> type[nn.Module]:
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; choose one of: {', '.join(sorted(table))}")
    return table[name]


def _sizes(values: Sequence[int], what: str) -> list[int]:
    sizes = [int(v) for v in values]
    bad = [v for v in sizes if v <= 0]
    if bad:
        raise ValueError(f"{what} must be positive integers, got {list(values)}")
    return sizes


def lazy_mlp(
    hidden: Sequence[int] = (256,),
    num_classes: int = 10,
    activation: str = "relu",
    dropout: float = 0.0,
    pca: int | None = None,
) -> nn.Sequential:
    """Flatten (→ LazyPCA(pca)) → [LazyLinear(h) → act (→ Dropout)]* → LazyLinear(num_classes)."""
    act = _choice(ACTIVATIONS, activation, "activation")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    layers: list[nn.Module] = [nn.Flatten()]
    if pca is not None:
        layers.append(LazyPCA(pca))
    for width in _sizes(hidden, "hidden sizes"):
        layers += [nn.LazyLinear(width), act()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return _with_head(layers, num_classes)


def lazy_cnn(
    channels: Sequence[int] = (6, 16),
    hidden: Sequence[int] = (120, 84),
    num_classes: int = 10,
    kernel_size: int = 5,
    activation: str = "relu",
    pool: str = "max",
) -> nn.Sequential:
    """LeNet-style: [LazyConv2d(c, k) → act → pool]* → Flatten → [LazyLinear(h) → act]* → head.

    The first convolution pads by ``k // 2`` (LeNet's padding 2 for 28×28 inputs).
    """
    act = _choice(ACTIVATIONS, activation, "activation")
    pool_cls = _choice(POOLS, pool, "pool")
    layers: list[nn.Module] = []
    for i, c in enumerate(_sizes(channels, "channels")):
        padding = kernel_size // 2 if i == 0 else 0
        layers += [nn.LazyConv2d(c, kernel_size, padding=padding), act(), pool_cls(2, 2)]
    layers.append(nn.Flatten())
    for width in _sizes(hidden, "hidden sizes"):
        layers += [nn.LazyLinear(width), act()]
    return _with_head(layers, num_classes)


def lazy_convnet(
    channels: Sequence[int] = (32, 64, 128),
    convs_per_block: int = 2,
    num_classes: int = 10,
    dropout: float = 0.0,
) -> nn.Sequential:
    """VGG-style conv–BN–ReLU blocks with ``LazyBatchNorm2d``, 2×2 max-pool between blocks,
    global average pooling and a lazy linear head."""
    layers: list[nn.Module] = []
    sizes = _sizes(channels, "channels")
    for i, c in enumerate(sizes):
        for _ in range(_sizes([convs_per_block], "convs_per_block")[0]):
            layers += [nn.LazyConv2d(c, 3, padding=1, bias=False), nn.LazyBatchNorm2d(), nn.ReLU()]
        if i < len(sizes) - 1:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return _with_head(layers, num_classes)


class LazyResidualBlock(nn.Module):
    """Two 3×3 conv–BN layers plus a shortcut, every layer lazy. Whether the shortcut must
    project is unknown before the dry run (input channels are not declared), so the first block
    of each stage always projects with a lazy 1×1 conv; later blocks add their input as is."""

    def __init__(self, channels: int, stride: int = 1, project: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.LazyConv2d(channels, 3, stride=stride, padding=1, bias=False),
            nn.LazyBatchNorm2d(),
            nn.ReLU(),
            nn.LazyConv2d(channels, 3, padding=1, bias=False),
            nn.LazyBatchNorm2d(),
        )
        self.shortcut = (
            nn.Sequential(
                nn.LazyConv2d(channels, 1, stride=stride, bias=False), nn.LazyBatchNorm2d()
            )
            if project or stride != 1
            else nn.Identity()
        )
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


def lazy_resnet(
    stages: Sequence[int] = (64, 128, 256),
    blocks_per_stage: int = 2,
    num_classes: int = 10,
) -> nn.Sequential:
    """ResNet for small images: a 3×3 stem, stages of residual blocks (stride 2 from the second
    stage on), global average pooling and a lazy linear head."""
    sizes = _sizes(stages, "stages")
    blocks = _sizes([blocks_per_stage], "blocks_per_stage")[0]
    layers: list[nn.Module] = [
        nn.LazyConv2d(sizes[0], 3, padding=1, bias=False),
        nn.LazyBatchNorm2d(),
        nn.ReLU(),
    ]
    for i, width in enumerate(sizes):
        for b in range(blocks):
            first = b == 0
            layers.append(
                LazyResidualBlock(width, stride=2 if first and i > 0 else 1, project=first)
            )
    return _with_head([*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()], num_classes)
