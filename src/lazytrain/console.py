"""The terminal as a person reads it while a job runs: log lines on lines of their own above the
progress bar (never glued to it), a short block at the start naming the run directory and how to
view it, and none of the third-party lines that say nothing about this run.

Shared by ``scripts/train.py`` (through :mod:`lazytrain.job`), ``scripts/eval.py`` and
``scripts/bench.py``. Importing it is cheap (no torch, no Lightning): Hydra's logging config
(``conf/hydra/default.yaml``) names :class:`ConsoleHandler` before the job's code runs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import shlex
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Third-party log lines that say nothing about this run, by logger and message.
# Lightning's (``rank_zero_info`` logs under the module's own name, in lightning.pytorch and
# lightning.fabric alike):
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
_NOISE = {
    "lightning.pytorch.utilities.rank_zero": _LIGHTNING_NOISE,
    "lightning.fabric.utilities.rank_zero": _LIGHTNING_NOISE,
    # A CUDA build of torch on a machine without a GPU: torch.compile's C++ toolchain lookup
    # found CUDA_HOME but no CUDA runtime, which says nothing about a CPU run.
    "torch.utils.cpp_extension": re.compile(r"No CUDA runtime is found, using CUDA_HOME="),
    # A new MLflow store or experiment: Alembic announces its plugins, MLflow its tables and
    # Lightning (as a warning) the experiment it creates; the migration itself prints through
    # Alembic's own logging config (see logging_kept).
    "alembic.runtime.plugins": re.compile(r"setup plugin "),
    "mlflow.store.db.utils": re.compile(
        r"(Creating initial MLflow database tables|Updating database tables)"
    ),
    "lightning.pytorch.loggers.mlflow": re.compile(
        r"Experiment with name .* not found\. Creating it"
    ),
}


class _Drop(logging.Filter):
    """Drops a logger's records whose message starts with a match of ``noise``."""

    def __init__(self, noise: re.Pattern[str]) -> None:
        super().__init__()
        self.noise = noise

    def filter(self, record: logging.LogRecord) -> bool:
        return self.noise.match(record.getMessage()) is None


class _WarningOnce(logging.Filter):
    """A warning on one line (``logging.captureWarnings`` logs it with its trailing newline), and
    once in a job: Python forgets which warnings it has shown whenever any code changes the
    warning filters, so Lightning's data setup, run twice a fit, would warn twice."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage().rstrip()  # "file:line: Category: message"
        if text in self.shown:
            return False
        self.shown.add(text)
        record.msg, record.args = text, None
        return True


_DROPS = {name: _Drop(noise) for name, noise in _NOISE.items()}
_WARNING_ONCE = _WarningOnce()


def quiet() -> None:
    """Drop the third-party noise, each by its source and exact message; every other log line and
    warning stays. Idempotent; called by every entry point (and by ``train.run``, so Hydra's
    launcher workers are covered too)."""
    for name, drop in _DROPS.items():
        logging.getLogger(name).addFilter(drop)  # once: filters are a set
    # A run's checkpoint directory holds files only when the run resumes (a new run never starts
    # in a used directory: run_dir refuses), so ModelCheckpoint's warning about it says nothing.
    warnings.filterwarnings(
        "ignore",
        message=r"Checkpoint directory .* exists and is not empty\.",
        module=r"lightning\.",
    )
    # torch >= 2.10 deprecates LeafSpec, which Lightning's own _pytree still builds every step.
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.",
    )


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """Around third-party code that configures logging for the whole process: MLflow's first use
    of a new SQLite store runs Alembic's migrations, whose ``env.py`` calls ``fileConfig`` (root
    at WARNING with a stderr handler of its own, every handler closed), after which this job's
    INFO lines, train.log among them, stopped. Every logger's level, handlers, propagation and
    switch are put back as they were (a closed file handler reopens at its next line, appending),
    and what the migration printed on stderr meanwhile is dropped."""
    loggers = [
        logging.getLogger(),
        *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict)),
    ]
    kept = [(lg, lg.level, lg.handlers[:], lg.propagate, lg.disabled) for lg in loggers]
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for logger, level, handlers, propagate, disabled in kept:
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate, logger.disabled = propagate, disabled


def warnings_to_log() -> None:
    """Warnings as log records (``py.warnings``): on the console above the progress bar, and in
    ``train.log`` with the rest of the run's story; each once per job (a sweep's next job in this
    process shows them again, in its own log)."""
    logging.captureWarnings(True)
    _WARNING_ONCE.shown.clear()
    logging.getLogger("py.warnings").addFilter(_WARNING_ONCE)


class ConsoleHandler(logging.StreamHandler):
    """The console handler of Hydra's job logging, aware of progress bars. tqdm's: the bars are
    cleared, the record is written on a line of its own, and the bars are drawn again below it
    (``tqdm.write``'s way). Rich's (``callbacks=rich``): while its live display runs, it proxies
    ``sys.stdout`` to print lines above the bar, so the record goes through that proxy, not to
    the stream beneath it. ``train.log`` keeps Hydra's plain file handler, so no bar reaches it."""

    def emit(self, record: logging.LogRecord) -> None:
        live = sys.stdout
        if getattr(live, "rich_proxied_file", None) is self.stream:
            self.stream = live
            try:
                super().emit(record)
                live.flush()
            finally:
                self.stream = live.rich_proxied_file
            return
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


def print_config_tree(cfg: Any, run_dir: str | Path) -> None:
    """``print_config=true``: the resolved configuration as a tree, one branch per top-level
    group (what this run really uses, interpolations resolved), on the console and in
    ``train.log``, and kept as ``<run dir>/config_tree.txt``."""
    from omegaconf import OmegaConf
    from rich.console import Console
    from rich.tree import Tree

    resolved = OmegaConf.to_container(cfg, resolve=True)
    tree = Tree("config (resolved)")
    plain = {k: v for k, v in resolved.items() if not isinstance(v, dict)}
    for key, value in resolved.items():
        if isinstance(value, dict):
            tree.add(key).add(OmegaConf.to_yaml(value).rstrip())
    tree.add("top level").add(OmegaConf.to_yaml(plain).rstrip())
    # no width to wrap at: a long path must stay one line, to be read or copied whole
    screen = Console(file=io.StringIO(), width=100_000, color_system=None)
    screen.print(tree)
    text = screen.file.getvalue()
    Path(run_dir, "config_tree.txt").write_text(text)
    log.info("config:\n%s", text.rstrip())
