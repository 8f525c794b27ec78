"""Overrides as a person types them, made readable to Hydra before it parses them, and the
config a script composes from them, with one line for a mistake.

Hydra's override grammar reads only ASCII outside quotes: ``hydra.run.dir=/data/über/a`` or
``data.root=~/Données`` end in ``LexerNoViableAltException`` and a hint about
``HYDRA_FULL_ERROR``. A plain value (one path or word) holding such a letter can only be a string,
so it is quoted the Hydra way (``hydra.run.dir='/data/über/a'``); a list, a sweep or an
interpolation with one is refused in one line that shows the quoting.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from hydra.errors import HydraException
from omegaconf import DictConfig

from lazytrain.config import compose_config

# Hydra's own syntax in a value: a list, a dict, a sweep, a function, an interpolation.
_STRUCTURE = re.compile(r"[\[\]{}(),$]")
_ITEM = re.compile(r"[^\[\]{}(),]*[^\[\]{}(),\s]")  # an item of a structured value


def readable_overrides(args: Sequence[str]) -> list[str]:
    """``args`` with each plain non-ASCII value quoted; :class:`SystemExit` (one line) for a
    structured one Hydra cannot read."""
    readable = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or value.isascii() or arg.startswith("-") or "'" in value or '"' in value:
            readable.append(arg)  # nothing to quote, or quoted by the user already
        elif not _STRUCTURE.search(value):
            readable.append(f"{key}='{value}'")
        else:
            quoted = _ITEM.sub(lambda m: f"'{m.group(0).strip()}'", value)
            raise SystemExit(
                f"error: {arg}: Hydra reads letters such as {_first_non_ascii(value)!r} only "
                f"inside quotes; quote each item the Hydra way and the whole override for the "
                f'shell: "{key}={quoted}"'
            )
    return readable


def _first_non_ascii(text: str) -> str:
    return next(c for c in text if not c.isascii())


def make_readable() -> None:
    """:func:`readable_overrides` applied to this process's command line, for Hydra to parse."""
    sys.argv[1:] = readable_overrides(sys.argv[1:])


def script_config(args: Sequence[str], usage: str | None) -> DictConfig:
    """The config that ``scripts/eval.py`` or ``scripts/shapes.py`` runs with, from its command
    line as typed (Hydra's own ``--help`` and error handling serve ``train.py`` only): ``-h`` or
    ``--help`` prints ``usage`` and exits; a mistake Hydra finds (an unknown option or key, an
    override it cannot parse) exits with one line, Hydra's message condensed."""
    if {"-h", "--help"} & set(args):
        print(usage)
        raise SystemExit(0)
    try:
        return compose_config([*readable_overrides(args), "output_dir=."])
    except HydraException as err:
        raise SystemExit(f"config error: {condensed(err)}") from None


def condensed(err: Exception) -> str:
    """Hydra's multi-line message on one line: a list of options joined, the config search path
    and the parser's caret left out."""
    text = str(err).split("\nConfig search path:")[0]
    # "Available options in 'model':\n\tlazy_cnn\n\tlazy_convnet" -> "...: lazy_cnn, lazy_convnet"
    text = re.sub(r"\n\t", ", ", re.sub(r":\n\t", ": ", text))
    lines = [line.strip() for line in text.splitlines() if line.strip() not in ("", "^")]
    return "; ".join([line.rstrip(".") for line in lines[:-1]] + lines[-1:])
