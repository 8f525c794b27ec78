"""``compare.py --diff RUN_A RUN_B``: how two runs differ, side by side — their settings (every
configuration key and group choice), their lineage (code, versions, data, command, host) and
their results — listing only what differs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lazytrain import compare
from lazytrain import lineage_file as lineage
from lazytrain.config_keys import flatten

ABSENT = "(absent)"
RESULTS = ("status", "test_acc", "best_val_acc", "epochs", "params", "wall_seconds", "note")


def _shown(value: Any) -> str:
    if value is ABSENT:
        return ABSENT
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "/").replace("\n", " ")


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(key, a's, b's)`` for every key whose values differ, in key order."""
    rows = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, ABSENT), b.get(key, ABSENT)
        if va != vb:
            rows.append((key, _shown(va), _shown(vb)))
    return rows


def _lineage(run_dir: Path) -> dict[str, Any]:
    record = lineage.read(run_dir) or {}
    return {k: v for k, v in flatten(record).items() if k != "resumed"} | {
        "resumed": len(record.get("resumed", [])),
    }


def diff(a: Path, b: Path) -> str:
    """The markdown tables of what differs between runs ``a`` and ``b``."""
    runs = {}
    for path in (a, b):
        if not (Path(path) / ".hydra").is_dir() and not any(Path(path).glob(compare.EVENTS_GLOB)):
            raise FileNotFoundError(f"{path} is not a run directory (no .hydra/, no event file)")
        runs[path] = compare.read_run(Path(path), Path(path).name)
    ra, rb = runs[a], runs[b]
    sections = [
        ("settings", ra.settings or {}, rb.settings or {}),
        ("lineage", _lineage(a), _lineage(b)),
        ("results", {k: getattr(ra, k) for k in RESULTS}, {k: getattr(rb, k) for k in RESULTS}),
    ]
    lines = [f"**Diff** of `{a}` (A) and `{b}` (B)", ""]
    for title, va, vb in sections:
        rows = differences(va, vb)
        lines.append(f"{title}: " + (f"{len(rows)} differ" if rows else "the same"))
        if rows:
            lines += ["", "| key | A | B |", "|---|---|---|"]
            lines += [f"| {key} | {x} | {y} |" for key, x, y in rows]
        lines.append("")
    return "\n".join(lines)
