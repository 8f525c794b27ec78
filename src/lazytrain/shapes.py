"""What the dry run sees: parameter shapes before and after it, each layer's output shape, and a
readable error when a layer does not fit its input.

Lazy models only fail at the first forward pass, mid-stack, with errors such as ``mat1 and mat2
shapes cannot be multiplied``. Tracing the forward pass with hooks lets us name the layer, its
input shape and what it expected instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.parameter import is_lazy


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
    if isinstance(module, _ConvNd) and not is_lazy(module.weight):
        return f"{module.in_channels} channels in dimension 1"
    if isinstance(module, _BatchNorm) and not is_lazy(module.weight):
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
