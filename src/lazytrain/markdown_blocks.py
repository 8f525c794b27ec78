"""Generated blocks in a markdown file, between ``<!-- name:start -->`` and ``<!-- name:end -->``:
read and replaced in place, the text around them untouched (``scripts/bench.py --write-readme``)."""

from __future__ import annotations

from pathlib import Path


def read_block(path: Path, name: str) -> tuple[str, str, str]:
    """The text before, inside and after block ``name``; a file without it stops the command
    with one line naming the markers."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    content = path.read_text()
    if start not in content or end not in content:
        raise SystemExit(f"{path} has no {start} ... {end} block to update")
    head, rest = content.split(start, 1)
    inside, tail = rest.split(end, 1)
    return f"{head}{start}\n", inside, f"{end}{tail}"


def write_block(path: Path, name: str, text: str) -> None:
    """Replace the contents of block ``name`` with ``text``."""
    head, _, tail = read_block(path, name)
    path.write_text(f"{head}{text}\n{tail}")
