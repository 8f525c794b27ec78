"""Event files read at C speed, for compare.py over a project's hundreds of runs.

Without TensorFlow installed, TensorBoard's reader checks every record's CRC-32C in pure Python
(tensorboard#4354, open since 2020): three quarters of compare.py's time over 300 runs here.
:func:`fast_checksums` swaps in google-crc32c's C implementation of the same checksum (every
record is still checked). Kept apart from :mod:`lazytrain.compat`, which imports Lightning, so
compare.py starts in a fraction of a second; ``tests/test_compat.py`` checks the name it replaces.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow

try:
    import google_crc32c
except ImportError:  # optional: the pure-Python check stays
    google_crc32c = None


def fast_checksums() -> bool:
    """Make TensorBoard's record reader compute CRC-32C in C; whether it now does."""
    if google_crc32c is None or google_crc32c.implementation != "c":
        return False
    pywrap_tensorflow.crc32c = google_crc32c.value  # masked_crc32c calls it by this name
    return True


def read_events(run_dir: str, size_guidance: dict[str, int]) -> EventAccumulator:
    """The run's events as TensorBoard reads them (in order, a resume's purge applied), without
    its warnings about what a reader of scalars does not look at (runs resumed before lazytrain
    logged the graph once per run hold two)."""
    fast_checksums()
    accumulator = EventAccumulator(run_dir, size_guidance=size_guidance)
    quiet = logging.getLogger("tensorboard")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        accumulator.Reload()
    finally:
        quiet.setLevel(level)
    return accumulator


def scalar_values(run_dir: str | Path, *tags: str) -> list[list[float]]:
    """Each of ``tags``' values in a run's events, in order: what its scalars recorded (the
    whole run's time, the test accuracy, ...) for a script that reports them."""
    accumulator = read_events(str(run_dir), {"scalars": 0})  # every point
    return [[event.value for event in accumulator.Scalars(tag)] for tag in tags]
