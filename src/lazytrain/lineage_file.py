"""A run's ``lineage.json`` read back (written by :mod:`lazytrain.lineage`): without Lightning,
so that compare.py starts in a fraction of a second."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FILE = "lineage.json"


def read(run_dir: Path) -> dict[str, Any] | None:
    """A run's ``lineage.json``, or None (none written, or unreadable)."""
    try:
        lineage = json.loads((Path(run_dir) / FILE).read_text())
    except (OSError, ValueError):
        return None
    return lineage if isinstance(lineage, dict) else None


def code_label(lineage: dict[str, Any] | None) -> str | None:
    """``"3f2a9c1d"``, ``"3f2a9c1d+dirty"``: the commit a run's code was at; None if unknown."""
    code = (lineage or {}).get("code") or {}
    if not code.get("commit"):
        return None
    return code["commit"][:8] + ("+dirty" if code.get("dirty") else "")


def data_label(lineage: dict[str, Any] | None) -> str | None:
    """The data digest a run trained on; None if unknown."""
    return ((lineage or {}).get("data") or {}).get("digest") or None
