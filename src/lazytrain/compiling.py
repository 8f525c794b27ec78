"""``compile=true``: ``torch.compile`` of the materialized net, after the dry run and the init.

Compiling needs concrete shapes: a lazy parameter cannot be traced, so the net is compiled only
once the dry run has materialized it. ``Module.compile()`` compiles in place, so the checkpoint's
keys stay the plain net's (``torch.compile(net)`` would prefix each with ``_orig_mod.``): a
compiled run's checkpoint evaluates and resumes without compile, and the other way round.
"""

from __future__ import annotations

from torch import nn

# torch.compile's documented modes (``compile=true`` is "default")
MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class CompileError(ValueError):
    """``compile=`` is neither a switch nor one of torch.compile's modes."""


def compile_mode(setting: bool | str | None) -> str | None:
    """The torch.compile mode ``compile=`` asks for; None for no compile."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return "default"
    if setting in MODES:
        return setting
    raise CompileError(
        f"compile={setting} is not a torch.compile mode: give compile=true, compile=false or "
        f"compile=<mode> with a mode of {', '.join(MODES)}"
    )


def compile_net(net: nn.Module, setting: bool | str | None) -> nn.Module:
    """``net`` compiled in place as ``compile=`` asks (checked first), or left as it is."""
    mode = compile_mode(setting)
    if mode is not None:
        net.compile(mode=mode)
    return net
