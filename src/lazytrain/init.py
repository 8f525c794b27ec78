"""Initialization schemes and ``apply_init``: the dry run that makes them possible.

A lazy layer has no shape until it sees data, so an init applied before the first forward pass is
either a silent no-op (``type(m) == nn.Linear`` is False for ``LazyLinear``) or an error
(``isinstance`` matches, the parameter is uninitialized). ``apply_init`` therefore runs the model
once on a sample batch — in eval mode, without grad, under a seeded RNG — checks that every
parameter exists, and only then applies the scheme to each concrete Linear/Conv layer.

Each scheme is a function ``scheme(layer, generator, **options)``; configs bind the options with
``_partial_: true``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd
from torch.nn.parameter import is_lazy

from lazytrain.shapes import (
    ShapeReport,
    check_output,
    count_parameters,
    parameter_table,
    trace_forward,
)

log = logging.getLogger(__name__)

InitScheme = Callable[[nn.Module, torch.Generator], None]
INIT_LAYERS = (nn.Linear, _ConvNd)


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
        raise ValueError(f"xavier distribution must be 'uniform' or 'normal', got {distribution!r}")
    _zero_bias(layer)


def normal(
    layer: nn.Module, generator: torch.Generator, std: float = 0.01, mean: float = 0.0
) -> None:
    """Weights from N(mean, std²), biases zero (D2L's ``init_normal``)."""
    if std <= 0:
        raise ValueError(f"normal init needs std > 0, got {std}")
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
        raise ValueError(
            f"kaiming distribution must be 'uniform' or 'normal', got {distribution!r}"
        )
    fn(layer.weight, mode=mode, nonlinearity=nonlinearity, generator=generator)
    _zero_bias(layer)


def default(layer: nn.Module, generator: torch.Generator) -> None:
    """torch's own ``reset_parameters`` (drawn from the RNG that ``apply_init`` seeds)."""
    layer.reset_parameters()


def xavier_bound(layer: nn.Module, gain: float = 1.0) -> float:
    """The Xavier-uniform bound ``gain·sqrt(6 / (fan_in + fan_out))`` of a layer's weight."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
    return gain * math.sqrt(6.0 / (fan_in + fan_out))


def uninitialized(net: nn.Module) -> list[str]:
    """Names of parameters and buffers that are still lazy."""
    tensors = [*net.named_parameters(), *net.named_buffers()]
    return [name for name, t in tensors if is_lazy(t)]


def apply_init(
    net: nn.Module,
    inputs: torch.Tensor,
    init: InitScheme,
    seed: int = 0,
    num_classes: int | None = None,
) -> ShapeReport | None:
    """Materialize ``net`` with a dry run on ``inputs``, then apply ``init`` to every Linear/Conv.

    With ``num_classes``, the output must be ``(N, num_classes)`` logits, else nothing is inited.

    Idempotent: a model without uninitialized parameters is left untouched (returns None), so
    validate, test, resume and checkpoint loading never re-initialize trained weights.
    Deterministic: the same ``seed`` gives bit-identical weights whatever the sample's batch size,
    and the global RNG (data order, dropout) is left exactly as it was.
    Returns what the dry run saw: parameter shapes before and after, each layer's output shape.
    """
    if not uninitialized(net):
        log.info("model is already materialized; apply_init leaves its weights alone")
        return None
    if inputs.shape[0] < 2:
        raise ValueError(
            f"the dry-run sample needs at least 2 examples (got shape {list(inputs.shape)}); "
            "increase sample_size"
        )
    before = parameter_table(net)
    device = next(net.parameters()).device
    inputs = inputs.to(device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    was_training = net.training
    with torch.random.fork_rng(devices=cuda), torch.no_grad():
        torch.manual_seed(seed)
        net.eval()  # BatchNorm must not learn from the sample, Dropout must not draw from the RNG
        try:
            out, traces = trace_forward(net, inputs)
        finally:
            net.train(was_training)
        if num_classes is not None:
            check_output(tuple(out.shape), inputs.shape[0], num_classes)
        missing = uninitialized(net)
        if missing:
            raise RuntimeError(
                f"the dry run did not reach {', '.join(missing)}: every lazy layer must be used in "
                "forward() for its shape to be inferred"
            )
        generator = torch.Generator(device=device).manual_seed(seed)
        layers = [m for m in net.modules() if isinstance(m, INIT_LAYERS)]
        for layer in layers:
            init(layer, generator)
    log.info("materialized %d layers and applied %s", len(layers), _scheme_name(init))
    return ShapeReport(
        before=before,
        after=parameter_table(net),
        layers=traces,
        input_shape=tuple(inputs.shape),
        output_shape=tuple(out.shape),
        total_params=count_parameters(net),
    )


def _scheme_name(init: InitScheme) -> str:
    func = getattr(init, "func", init)
    options = getattr(init, "keywords", {})
    args = ", ".join(f"{k}={v}" for k, v in options.items())
    return f"{getattr(func, '__name__', repr(func))}({args})"
