"""The terminal as a person reads it while a job runs: log lines on lines of their own above the
progress bar (never glued to it), a short block at the start naming the run directory and how to
view it, and none of the third-party lines that say nothing about this run.

Shared by ``scripts/train.py`` (through :mod:`lazytrain.job`), ``scripts/eval.py`` and
``scripts/bench.py``. Importing it is cheap (no torch, no Lightning): Hydra's logging config
(``conf/hydra/default.yaml``) names :class:`ConsoleHandler` before the job's code runs.
"""

from __future__ import annotations

import logging
import re
import shlex
import sys
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

# Lightning's log lines that say nothing about the run, by logger and message (``rank_zero_info``
# logs under the module's own name, in lightning.pytorch and lightning.fabric alike).
_LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)
_LIGHTNING_NOISE = re.compile(
    "|".join(
        (
            r"💡 Tip: ",  # product tips: litlogger, litmodels
            # conf/trainer/default.yaml states Lightning's defaults (so they can be overridden
            # without a '+'); Lightning announces every explicit 1.0. An explicit 1 (one batch)
            # or 0.25 is still announced.
            r"`Trainer\((limit_(train|val|test|predict)_batches|val_check_interval)=1\.0\)` was configured so ",
            r"(TPU|HPU) available: False, using: 0 ",  # the accelerators this machine has not
            r"Loading `train_dataloader` to estimate number of stepping batches\.$",  # internals
        )
    )
)


class _DropLightningNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _LIGHTNING_NOISE.match(record.getMessage()) is None


class _OneLineWarning(logging.Filter):
    """``logging.captureWarnings`` logs the formatted warning with its trailing newline."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = record.getMessage().rstrip(), None
        return True


_DROP_LIGHTNING_NOISE = _DropLightningNoise()
_ONE_LINE_WARNING = _OneLineWarning()


def quiet() -> None:
    """Drop the third-party noise, each by its source and exact message; every other log line and
    warning stays. Idempotent; called by every entry point (and by ``train.run``, so Hydra's
    launcher workers are covered too)."""
    for name in _LIGHTNING_LOGGERS:
        logging.getLogger(name).addFilter(_DROP_LIGHTNING_NOISE)  # once: filters are a set
    # torch >= 2.10 deprecates LeafSpec, which Lightning's own _pytree still builds every step.
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.",
    )


def warnings_to_log() -> None:
    """Warnings as log records (``py.warnings``): on the console above the progress bar, and in
    ``train.log`` with the rest of the run's story."""
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addFilter(_ONE_LINE_WARNING)


class ConsoleHandler(logging.StreamHandler):
    """The console handler of Hydra's job logging, aware of tqdm's progress bars: the bars are
    cleared, the record is written on a line of its own, and the bars are drawn again below it
    (``tqdm.write``'s way). ``train.log`` keeps Hydra's plain file handler, so no bar reaches it."""

    def emit(self, record: logging.LogRecord) -> None:
        if "tqdm" not in sys.modules:  # no bar can exist
            super().emit(record)
            return
        from tqdm import tqdm

        try:
            with tqdm.external_write_mode(file=self.stream):
                super().emit(record)
        except Exception:  # as any handler: a broken console never stops the run
            self.handleError(record)


def shown(path: str | Path) -> str:
    """A path as a person types it: relative to the working directory when inside it, quoted
    for the shell when needed (a sweep's run names hold '=', ',' and brackets)."""
    path = Path(path).absolute()
    try:
        text = str(path.relative_to(Path.cwd()))
    except ValueError:
        text = str(path)
    return shlex.quote(text)


def announce_run(run_dir: str | Path, logdir: str | Path | None) -> None:
    """The start block: where this run writes and the command that shows it in TensorBoard
    (none for a run that writes nothing there, ``logdir=None``)."""
    if logdir is None:
        log.info("run directory: %s", shown(run_dir))
        return
    log.info(
        "run directory: %s\n  view it: tensorboard --logdir %s --host 127.0.0.1",
        shown(run_dir),
        shown(logdir),
    )
