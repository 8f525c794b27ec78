"""What a person sees in the terminal: log lines never glued to the progress bar, a start block
naming the run and the TensorBoard command, no third-party noise (train.py, eval.py), per-job
timing and short run names in a multirun, and train.log free of progress-bar fragments."""

from __future__ import annotations

import io
import logging
import re
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rich.console import Console
from rich.progress import Progress

from lazytrain.console import ConsoleHandler
from lazytrain.resolvers import run_name

from .helpers import run_script, synthetic

NOISE = ("💡", "Tip:", "litlogger", "litmodels", "limit_", "was configured so", "LeafSpec",
         "_pytree", "TPU available", "to estimate number of stepping batches")  # fmt: skip
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LOG_RECORD = re.compile(r"\]\[(lazytrain|lightning|py\.warnings)[\w.]*\]\[[A-Z]+\] - ")
FIRST_STEP = re.compile(r"first training step ([\d.]+) s after job start")  # scripts/bench.py's


def console(script: str, *args: str, cwd: Path, fresh: bool = False) -> str:
    """A script's stdout and stderr as one stream, as a terminal shows them."""
    proc = run_script(script, *args, cwd=cwd, merge=True, fresh=fresh)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def shown_lines(output: str) -> list[str]:
    """What stays on screen of each line: the text after its last carriage return, no colors."""
    return [ANSI.sub("", line.split("\r")[-1]) for line in output.split("\n")]


def assert_quiet(output: str) -> None:
    assert not [n for n in NOISE if n in output], [
        line for line in shown_lines(output) if any(n in line for n in NOISE)
    ]


def with_progress_bar(tmp_path: Path, synthetic_dir: Path) -> list[str]:
    data = [o for o in synthetic(tmp_path, synthetic_dir) if "progress_bar" not in o]
    return [*data, "trainer.limit_train_batches=3", "callbacks.progress_bar.refresh_rate=1"]


# Lightning's warning for an epoch shorter than trainer.log_every_n_steps, from its data setup,
# which runs twice a fit: the train_console run (3 batches, a log every 5) shows it once.
SHORT_EPOCH = "The number of training batches (3) is smaller than the logging interval"


@pytest.fixture(scope="module")
def train_console(synthetic_dir, tmp_path_factory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("console")
    output = console(
        "train.py", *with_progress_bar(cwd, synthetic_dir), "trainer.max_epochs=2",
        "trainer.log_every_n_steps=5", f"hydra.run.dir={cwd / 'run'}", cwd=cwd,
    )  # fmt: skip
    return cwd / "run", output


def test_train_console_is_quiet_and_log_lines_stand_alone(train_console):
    run, output = train_console
    assert_quiet(output)
    assert "Epoch 1: 100%" in output  # the bar was drawn...
    lines = shown_lines(output)
    records = [line for line in lines if LOG_RECORD.search(line)]
    assert len(records) >= 6, lines
    glued = [line for line in records if not re.match(r"\[\d\d:\d\d:\d\d\]\[", line)]
    assert not glued  # ...and no log record was written after its text on the same line
    assert "epoch 1 (step 6, " in output and FIRST_STEP.search(output)
    assert sum(SHORT_EPOCH in line for line in records) == 1  # a warning once, on its own line


def test_train_console_starts_with_the_run_and_how_to_view_it(train_console):
    run, output = train_console
    first = shown_lines(output)[:2]
    assert first[0].endswith("[lazytrain.console][INFO] - run directory: run"), first
    assert first[1] == "  view it: tensorboard --logdir run --host 127.0.0.1"


def test_train_log_holds_log_lines_only(train_console):
    run, _ = train_console
    log = (run / "train.log").read_text()
    assert "run directory: " in log and "epoch 1 (step 6, " in log
    assert log.count(SHORT_EPOCH) == 1
    for fragment in ("\r", "\x1b[", "it/s", "Epoch 0:", "Sanity Checking", "█"):
        assert fragment not in log, fragment
    assert_quiet(log)


def test_eval_console_is_quiet(train_console, synthetic_dir, tmp_path):
    run, _ = train_console
    data = [o for o in synthetic(tmp_path, synthetic_dir) if o.startswith(("data.", "trainer."))]
    output = console(
        "eval.py", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", *data, cwd=tmp_path
    )
    assert "test accuracy" in output
    assert_quiet(output)


@pytest.mark.slow
def test_multirun_times_each_job_and_names_runs_by_what_they_vary(synthetic_dir, tmp_path):
    sweep = tmp_path / "sweep"
    output = console(
        "train.py", "-m", *with_progress_bar(tmp_path, synthetic_dir), "trainer.max_epochs=1",
        "seed=0,1", "optimizer.lr=0.0012345678901234567", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
        fresh=True,  # the first job's clock starts with the process
    )  # fmt: skip
    assert_quiet("\n".join(line for line in output.split("\n") if "[HYDRA]" not in line))
    names = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    # no paths, trainer.limit_*, trainer.accelerator or callbacks.*; Optuna-like floats shortened
    varied = "data.batch_size=64,data.val_size=128,optimizer.lr=0.001235"
    assert names == [f"{varied},seed=0", f"{varied},seed=1"]
    assert output.count("  view it: tensorboard --logdir sweep --host 127.0.0.1") == 2
    first, second = (float(s) for s in FIRST_STEP.findall(output))
    assert second < first  # the second job's clock starts with that job, not with the process


def test_a_sweep_over_a_key_runs_are_not_named_by_is_refused(tmp_path):
    proc = run_script(
        "train.py", "-m", "trainer.limit_train_batches=2,4", f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "the sweep varies trainer.limit_train_batches, which run names leave out" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_run_names_round_machine_made_floats_and_skip_patterns():
    dirname = OmegaConf.create(
        {"kv_sep": "=", "item_sep": ",", "exclude_keys": ["trainer.limit_*", "callbacks.*"]}
    )
    overrides = [
        "optimizer.lr=0.0012345678901234567", "init.std=0.05", "model.hidden=[512,256]",
        "trainer.limit_train_batches=0.1", "+callbacks.x._target_=a.B", "~scheduler",
        "optimizer.weight_decay=1.2345678901234e-05", "trainer.max_steps=10",
    ]  # fmt: skip
    assert run_name(overrides, dirname) == (
        "init.std=0.05,model.hidden=[512,256],optimizer.lr=0.001235,"
        "optimizer.weight_decay=1.235e-05,trainer.max_steps=10,~scheduler"
    )


def test_log_lines_stand_above_richs_progress_bar(monkeypatch):
    """callbacks=rich: while Rich's live bar is drawn (on a terminal), each record is printed
    on a line of its own above it, not after the bar's text."""
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stdout", screen)  # the stream Hydra gives the console handler
    handler = ConsoleHandler(stream=sys.stdout)
    handler.setFormatter(logging.Formatter("[%(name)s] - %(message)s"))
    logger = logging.getLogger("lazytrain.tests.rich_bar")
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "propagate", False)
    terminal = Console(file=screen, force_terminal=True, width=100)
    with Progress(console=terminal, auto_refresh=False) as progress:
        task = progress.add_task("Epoch 0", total=3)
        for step in range(3):
            progress.advance(task)
            progress.refresh()
            logger.warning("epoch %d ended", step)
    logger.removeHandler(handler)
    records = [line for line in shown_lines(screen.getvalue()) if "ended" in line]
    assert records == [f"[lazytrain.tests.rich_bar] - epoch {step} ended" for step in range(3)]


def test_print_config_shows_the_resolved_tree_and_keeps_it(synthetic_dir, tmp_path):
    run = tmp_path / ("a-directory-name-longer-than-a-terminal-line-" * 3) / "run"
    output = console(
        "train.py", *synthetic(tmp_path, synthetic_dir), "print_config=true", "model.hidden=[48]",
        "trainer.max_epochs=1", f"hydra.run.dir={run}", cwd=tmp_path,
    )  # fmt: skip
    kept = (run / "config_tree.txt").read_text()
    assert kept.startswith("config (resolved)") and kept.rstrip() in output
    # interpolations resolved, and a long value on one line (wrapped, it could not be copied)
    assert "${" not in kept and f"default_root_dir: {run}\n" in kept
    assert "├── model" in kept and "- 48" in kept
