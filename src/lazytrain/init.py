"""Initialization schemes: what ``conf/init/*.yaml`` name, applied by
:func:`lazytrain.dry_run.apply_init` to every concrete Linear/Conv layer after the dry run.

Each scheme is a function ``scheme(layer, generator, **options)``; configs bind the options with
``_partial_: true``. A scheme only ever sees materialized layers, so it may read shapes and fans.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from lazytrain.compat import ConvLayer, fans
from lazytrain.config import ConfigValueError

InitScheme = Callable[[nn.Module, torch.Generator], None]
INIT_LAYERS = (nn.Linear, ConvLayer)


def _zero_bias(layer: nn.Module) -> None:
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


def xavier(
    layer: nn.Module, generator: torch.Generator, distribution: str = "uniform", gain: float = 1.0
) -> None:
    """Glorot & Bengio (2010): keeps activation variance across layers; biases zero."""
    if distribution == "uniform":
        nn.init.xavier_uniform_(layer.weight, gain=gain, generator=generator)
    elif distribution == "normal":
        nn.init.xavier_normal_(layer.weight, gain=gain, generator=generator)
    else:
        raise ConfigValueError(f"init.distribution={distribution}: give uniform or normal")
    _zero_bias(layer)


def normal(
    layer: nn.Module, generator: torch.Generator, std: float = 0.01, mean: float = 0.0
) -> None:
    """Weights from N(mean, std²), biases zero (D2L's ``init_normal``)."""
    if std <= 0:
        raise ConfigValueError(f"init.std={std}: the normal init needs std > 0, e.g. 0.01")
    nn.init.normal_(layer.weight, mean=mean, std=std, generator=generator)
    _zero_bias(layer)


def kaiming(
    layer: nn.Module,
    generator: torch.Generator,
    distribution: str = "normal",
    nonlinearity: str = "relu",
    mode: str = "fan_in",
) -> None:
    """He et al. (2015) for ReLU networks; biases zero."""
    fn = {"normal": nn.init.kaiming_normal_, "uniform": nn.init.kaiming_uniform_}.get(distribution)
    if fn is None:
        raise ConfigValueError(f"init.distribution={distribution}: give normal or uniform")
    fn(layer.weight, mode=mode, nonlinearity=nonlinearity, generator=generator)
    _zero_bias(layer)


def default(layer: nn.Module, generator: torch.Generator) -> None:
    """torch's own ``reset_parameters`` (drawn from the RNG that ``apply_init`` seeds)."""
    layer.reset_parameters()


def xavier_bound(layer: nn.Module, gain: float = 1.0) -> float:
    """The Xavier-uniform bound ``gain·sqrt(6 / (fan_in + fan_out))`` of a layer's weight."""
    fan_in, fan_out = fans(layer.weight)
    return gain * math.sqrt(6.0 / (fan_in + fan_out))
