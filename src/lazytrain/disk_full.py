"""A full disk, said in one line: which file could not be written, and that what was saved
before is whole (every checkpoint is written beside the old one and renamed over it).

torch's checkpoint writer turns the ``OSError: [Errno 28] No space left on device`` of a
``write`` into ``RuntimeError: [enforce fail at inline_container.cc] . unexpected pos``, which no
longer says why; TensorBoard's event writer and the log files raise the OSError itself.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class DiskFullError(OSError):
    """The device filled up while ``filename`` was written (however its writer reported it)."""

    def __init__(self, filename: str | Path) -> None:
        super().__init__(errno.ENOSPC, "No space left on device", str(filename))

    def __str__(self) -> str:
        return disk_full(self.filename)


class _RecordingWrites:
    """A file's ``write`` and ``flush`` (all torch's writer calls), remembering the OSError one
    raised."""

    def __init__(self, file: Any) -> None:
        self.file, self.error = file, None

    def write(self, data: bytes) -> int:
        return self._recording(self.file.write, data)

    def flush(self) -> None:
        self._recording(self.file.flush)

    def _recording(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except OSError as err:
            self.error = err
            raise


def chained(error: BaseException | None) -> Iterator[BaseException]:
    """``error`` and the errors it was raised from or while handling."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def out_of_space(error: BaseException | None) -> bool:
    return any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in chained(error))


def full_file(error: BaseException) -> str | None:
    """The file a full disk could not take, where the error names it."""
    return next((e.filename for e in chained(error) if getattr(e, "filename", None)), None)


@contextmanager
def writes_to_full_disk_raised(path: Path) -> Iterator[Callable[[Any], _RecordingWrites]]:
    """Wrap the file that ``path``'s content is written to (``sink(f)``); a write that failed
    for want of space, however the writer reported it, is re-raised as :class:`DiskFullError`
    naming ``path``."""
    sinks: list[_RecordingWrites] = []

    def sink(file: Any) -> _RecordingWrites:
        sinks.append(_RecordingWrites(file))
        return sinks[-1]

    try:
        yield sink
    except Exception as err:
        if out_of_space(err) or any(out_of_space(s.error) for s in sinks):
            raise DiskFullError(path) from err
        raise


def disk_full(path: str | Path | None, run_dir: str | Path | None = None) -> str:
    """The line a full disk is reported with."""
    where = f"while writing {path}" if path else "while writing the run"
    resume = f"resume={run_dir}" if run_dir else "resume=<its run directory>"
    return (
        f"no space left on the device {where}. The checkpoints saved before are whole (each "
        f"is written beside the last and renamed over it); free space there, then continue "
        f"with {resume}"
    )


def threads_quiet_on_full_disk() -> None:
    """A background writer that meets a full disk (TensorBoard's event-file thread) prints no
    traceback: its writer hands the error to the main thread at the next write, which reports
    it in one line. Other thread errors are printed as always. Idempotent."""
    if getattr(threading.excepthook, "quiet_on_full_disk", False):
        return
    default = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not out_of_space(args.exc_value):
            default(args)

    hook.quiet_on_full_disk = True  # type: ignore[attr-defined]
    threading.excepthook = hook
