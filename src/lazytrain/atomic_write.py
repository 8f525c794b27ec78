"""Files written whole or not at all: what a reader (or a process killed at any moment) sees is
the old file or the new one, never a mix, and a full disk says so in one line."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from lazytrain.disk_full import writes_to_full_disk_raised


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """``write(file)`` into a temporary file beside ``path``, fsync, rename over ``path``, fsync
    the directory. A full disk is a :class:`~lazytrain.disk_full.DiskFullError` naming ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with writes_to_full_disk_raised(path) as sink, tmp.open("wb") as f:
            write(sink(f))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
