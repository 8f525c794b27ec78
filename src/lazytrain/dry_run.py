"""The dry run: one forward pass on a sample batch that gives every lazy layer its shape, then the
configured init — and what that pass saw (parameter shapes before and after, each layer's output).

A lazy layer has no shape until it sees data, so an init applied before the first forward pass is
either a silent no-op (``type(m) == nn.Linear`` is False for ``LazyLinear``) or an error
(``isinstance`` matches, the parameter is uninitialized). :func:`apply_init` therefore runs the
model once on a sample batch — in eval mode, without grad, under a seeded RNG — checks the logits'
shape and that every parameter exists, and only then applies the scheme (:mod:`lazytrain.init`).

Lazy models fail only at that first pass, mid-stack, with errors such as ``mat1 and mat2 shapes
cannot be multiplied``; tracing the pass with hooks lets us name the layer, its input shape and
what it expected instead (:class:`ShapeMismatchError`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from lazytrain.compat import BatchNormLayer, ConvLayer
from lazytrain.init import INIT_LAYERS, InitScheme

log = logging.getLogger(__name__)


class ShapeMismatchError(ValueError):
    """A layer of the configured model does not fit the shape that reaches it."""


@dataclass(frozen=True)
class LayerTrace:
    """One module's forward call during the dry run."""

    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int


def shape_str(shape: tuple[int, ...] | torch.Size) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def count_parameters(net: nn.Module) -> int:
    """Number of parameters; uninitialized ones count as 0 (``numel()`` on them raises)."""
    return sum(0 if is_lazy(p) else p.numel() for p in net.parameters())


def parameter_table(net: nn.Module) -> list[tuple[str, str]]:
    """``(name, shape)`` for every parameter, ``uninitialized`` while it is still lazy."""
    return [
        (name, "uninitialized" if is_lazy(p) else shape_str(p.shape))
        for name, p in net.named_parameters()
    ]


def _expects(module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear) and not is_lazy(module.weight):
        return f"last dimension {module.in_features}"
    if isinstance(module, ConvLayer) and not is_lazy(module.weight):
        return f"{module.in_channels} channels in dimension 1"
    if isinstance(module, BatchNormLayer) and not is_lazy(module.weight):
        return f"{module.num_features} channels in dimension 1"
    return None


def _kind(module: nn.Module) -> str:
    return type(module).__name__


def _input_shape(args: tuple) -> tuple[int, ...]:
    first = args[0] if args else None
    return tuple(first.shape) if isinstance(first, torch.Tensor) else ()


def trace_forward(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[LayerTrace]]:
    """Run ``net(x)`` recording every leaf module's input and output shape.

    On failure, raises :class:`ShapeMismatchError` naming the innermost module that was running.
    The caller chooses the mode and grad context (the dry run uses eval + no_grad).
    """
    running: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    traces: list[LayerTrace] = []

    def pre_hook(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            running.append((name, module, _input_shape(args)))

        return hook

    def post_hook(name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            _, _, in_shape = running.pop()
            if not any(module.children()) and isinstance(output, torch.Tensor):
                params = sum(p.numel() for p in module.parameters(recurse=False))
                traces.append(
                    LayerTrace(name, _kind(module), in_shape, tuple(output.shape), params)
                )

        return hook

    handles = []
    for name, module in net.named_modules():
        label = name or "model"
        # prepend: run before a lazy module's own hook, so a failing materialization is named too.
        handles.append(module.register_forward_pre_hook(pre_hook(label), prepend=True))
        handles.append(module.register_forward_hook(post_hook(label)))
    try:
        out = net(x)
    except ShapeMismatchError:
        raise
    except (RuntimeError, ValueError, IndexError) as err:
        if not running:
            raise
        name, module, in_shape = running[-1]
        expects = _expects(module)
        expected = f", but it expects {expects}" if expects else ""
        hint = ""
        if expects and not type(module).__name__.startswith("Lazy"):
            hint = (
                f"; declare it lazily (e.g. nn.Lazy{_kind(module)}) so its input size is inferred"
            )
        raise ShapeMismatchError(
            f"layer {name} ({_kind(module)}) got input of shape {shape_str(in_shape)}{expected}"
            f"{hint}. [{module!r}: {err}]"
        ) from err
    finally:
        for h in handles:
            h.remove()
    return out, traces


def check_output(shape: tuple[int, ...], batch: int, num_classes: int) -> None:
    """The classifier must map ``(N, ...)`` to ``(N, num_classes)`` logits."""
    if tuple(shape) == (batch, num_classes):
        return
    hint = ""
    if len(shape) > 2:
        hint = " Is an nn.Flatten() missing before the first LazyLinear?"
    elif len(shape) == 2:
        hint = (
            f" The last layer should have {num_classes} outputs, e.g. nn.LazyLinear({num_classes})."
        )
    raise ShapeMismatchError(
        f"model output has shape {shape_str(shape)}, expected [{batch}, {num_classes}] "
        f"(batch, classes).{hint}"
    )


@dataclass(frozen=True)
class ShapeReport:
    """Everything the dry run taught us about a model, renderable as markdown."""

    before: list[tuple[str, str]]
    after: list[tuple[str, str]]
    layers: list[LayerTrace]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    total_params: int

    def markdown(self) -> str:
        before = dict(self.before)
        rows = [f"| `{n}` | {before.get(n, '—')} | {s} |" for n, s in self.after]
        params = "\n".join(
            ["| parameter | before dry run | after dry run |", "|---|---|---|", *rows]
        )
        layer_rows = [
            f"| {t.name} | {t.kind} | {shape_str(t.input_shape)} | {shape_str(t.output_shape)} "
            f"| {t.params:,} |"
            for t in self.layers
        ]
        layers = "\n".join(
            ["| layer | type | input | output | params |", "|---|---|---|---|---|", *layer_rows]
        )
        return (
            f"**Parameters** ({self.total_params:,} in total)\n\n{params}\n\n"
            f"**Layer outputs** for a sample of shape {shape_str(self.input_shape)}\n\n{layers}\n"
        )


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
    if inputs.shape[0] < 2:  # a BatchNorm in training mode needs 2 for its batch statistics
        raise ShapeMismatchError(
            f"the dry-run sample needs at least 2 examples (got shape {list(inputs.shape)}): "
            "set sample_size=32"
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
