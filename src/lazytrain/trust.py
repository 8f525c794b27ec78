"""Which callables a checkpoint may make us build.

A checkpoint's hyperparameters are Hydra configs (``_target_`` dotted paths) that rebuild the
model, so a checkpoint from elsewhere would choose what code runs (``builtins.open``, ``torch.save``
...) — even with ``weights_only=True``, which only guards unpickling. Rebuilding from a checkpoint
therefore instantiates only allowlisted targets (``ALLOWED``) plus those the user trusts
(``trusted_targets=[...]``); :func:`check_targets` refuses anything else before anything is
called. Configs and the command line are the user's own and stay fully trusted (not checked).
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf

from lazytrain.compat import locate

# Hydra 1.3.8 has only a blocklist (hydra/_internal/target_policy.py), no allowlist: hence this walk.

# Dotted prefixes (a trailing "." admits names strictly below it; no trailing "." admits that exact
# name and names below it), matched by whole components: "torch.nn." admits neither "torch.nnx.Foo"
# nor "torch.nn" itself. Both the written target and what it resolves to must be admitted, so a
# re-export such as "torch.nn.modules.module.torch.save" (that is torch.serialization.save) fails.
ALLOWED: tuple[str, ...] = (
    # layers and the pure functions of torch.nn.init / torch.nn.functional (harmless even with
    # _partial_); the subpackages in EXCLUDED are not layers
    "torch.nn.",
    # optimizers and their learning-rate schedules (lr_scheduler), nothing that writes files
    "torch.optim.",
    "lazytrain.models.",
    "lazytrain.pca.LazyPCA",
    "lazytrain.init.",
    "lazytrain.schedules.",
    "lazytrain.augment.Augment",
    "lazytrain.datamodule.FashionMNISTDataModule",
    "lazytrain.datamodule.ImageFolderDataModule",
)
# Under ALLOWED but not admitted by it (trusted_targets can still admit them): they rewire given
# modules or optimizers, dispatch callables, start threads or processes, or compile code.
EXCLUDED: tuple[str, ...] = (
    "torch.nn.modules.module.",  # nn.Module itself and global hook registration
    "torch.nn.utils.",  # parametrize, prune, weight_norm, stateless.functional_call ...
    "torch.nn.parallel.",  # DataParallel threads, DistributedDataParallel process groups
    "torch.nn.attention.",  # flex_attention compiles (generates and caches code)
    "torch.nn.backends.",
    "torch.optim.optimizer.",  # the Optimizer base and global step-hook registration
    "torch.optim.swa_utils.",  # AveragedModel / update_bn drive a given model and loader
)
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


class UntrustedTargetError(ValueError):
    """A checkpoint asks to build a callable outside the allowlist (or something unverifiable)."""


def _under(name: str, prefix: str) -> bool:
    if prefix.endswith("."):
        return name.startswith(prefix)
    return name == prefix or name.startswith(prefix + ".")


def _admitted(name: str, trusted: Sequence[str], *, top_level: bool = True) -> bool:
    """``name`` is under a user-trusted prefix, or under ``ALLOWED`` and not ``EXCLUDED`` with no
    private component (and, for a resolved name, ``top_level``: no method of a class)."""
    parts = name.split(".")
    if any(_under(name, p) for p in trusted):
        return not any(p.startswith("__") for p in parts)
    return (
        top_level
        and any(_under(name, p) for p in ALLOWED)
        and not any(_under(name, p) for p in EXCLUDED)
        and not any(p.startswith("_") for p in parts)
    )


def _module_prefix(name: str) -> str:
    """The longest already-imported module that ``name`` lies in (nothing is imported to find
    out), else ``name`` without its last component."""
    parts = name.split(".")
    for n in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:n]) in sys.modules:
            return ".".join(parts[:n])
    return ".".join(parts[:-1]) or name


def _check_target(target: Any, path: str, trusted: Sequence[str], source: str) -> None:
    def refuse(what: str, reason: str, prefix: str | None = None) -> UntrustedTargetError:
        fix = f"; if you trust it, allow it: trusted_targets=[{prefix}] on the command line (or in a config)"
        return UntrustedTargetError(
            f"{source} asks to build {what} at {path or 'the top level'}: {reason}{fix if prefix else ''}"
        )

    if not isinstance(target, str) or not _DOTTED.match(target):
        raise refuse(f"_target_={target!r}", "not a dotted name, refused")
    if not _admitted(target, trusted):
        raise refuse(f"'{target}'", "not an allowed target", _module_prefix(target))
    # Resolve exactly as instantiate will: this imports only modules named by prefixes of the
    # target (just admitted) and only reads attributes; nothing is called.
    try:
        obj = locate(target)
    except Exception as err:
        raise refuse(f"'{target}'", f"it does not resolve ({type(err).__name__})") from None
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not (inspect.isclass(obj) or inspect.isroutine(obj)) or not module or not qualname:
        raise refuse(f"'{target}'", "neither a class nor a function, refused")
    resolved = f"{module}.{qualname}"
    if not _admitted(resolved, trusted, top_level="." not in qualname):
        raise refuse(f"'{target}'", f"that is {resolved}, not an allowed target", module)


def check_targets(tree: Any, trusted: Sequence[str] = (), source: str = "the checkpoint") -> None:
    """Refuse (:class:`UntrustedTargetError`, one line) any ``_target_`` anywhere in ``tree``
    (dicts, lists, tuples, ``_args_``, ``_partial_`` configs, at any depth) that is not allowlisted
    or trusted, and any ``${...}`` interpolation (resolved when instantiating, it could build
    targets this walk never saw). Nothing is called; only the admitted modules are imported."""
    trusted = [trusted] if isinstance(trusted, str) else [str(t) for t in trusted]
    for prefix in trusted:
        if not _DOTTED.match(prefix.removesuffix(".")):
            raise UntrustedTargetError(
                f"trusted_targets entries are dotted module prefixes such as mypkg.models (got {prefix!r})"
            )
    stack: list[tuple[str, Any]] = [("", tree)]
    seen: set[int] = set()
    while stack:
        path, node = stack.pop()
        if OmegaConf.is_config(node):
            node = OmegaConf.to_container(node, resolve=False)  # interpolations stay visible
        if isinstance(node, str):
            if "${" in node:
                raise UntrustedTargetError(
                    f"{source} holds an interpolation at {path or 'the top level'} ({node[:60]!r}); saved "
                    "hyperparameters are resolved values, so it is refused (it cannot be allowed)"
                )
            continue
        if not isinstance(node, dict | list | tuple) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            if "_target_" in node:
                _check_target(node["_target_"], path, trusted, source)
            items = [(f"{path}.{key}" if path else str(key), value) for key, value in node.items()]
            items += [(path, key) for key in node if isinstance(key, str)]  # keys: no ${...}
        else:
            items = [(f"{path}[{i}]", value) for i, value in enumerate(node)]
        stack.extend(reversed(items))
