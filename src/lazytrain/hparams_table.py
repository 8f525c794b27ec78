"""One HPARAMS table over every run of a project, whatever model family each run is.

TensorBoard takes the table's columns from the first experiment summary it finds under its
logdir, and from nothing else: were each run to write its own (as ``add_hparams`` and
Lightning do), a sweep mixing ``lazy_mlp`` and ``lazy_cnn`` would lose ``model.channels`` or
``model.hidden``, whichever run came second. So each run writes only its own values (session
start and end), and the columns go to one summary file at the top of the project's output tree
(``tensorboard --logdir outputs``), the union of every run's, updated as each run ends.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import metadata, plugin_data_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

# TensorBoard reads any file with "tfevents" in its name; compare.py and the loggers only
# ``events.out.tfevents.*``, so this file is no run of its own to them.
TABLE_FILE = "lazytrain.hparams.tfevents"
LOCK_FILE = ".lazytrain.hparams.lock"
# TensorBoard sorts the columns by `differs`, then by name, and ticks the first five: mark the
# five a person compares first (one run cannot know what differs across a project).
SHOWN_FIRST = ("model", "init", "optimizer.lr", "seed", "hardware")
log = logging.getLogger(__name__)


def table_dir(run_dir: Path, project_dir: Path) -> Path:
    """Where the table listing ``run_dir`` lives: the project's output tree when the run lies
    inside it, else the directory holding the run (a sweep's, or a ``hydra.run.dir`` elsewhere)."""
    run_dir, project_dir = Path(run_dir).resolve(), Path(project_dir).resolve()
    return project_dir if run_dir.is_relative_to(project_dir) else run_dir.parent


def add_columns(directory: Path, experiment: Summary) -> None:
    """Merge a run's experiment summary (its hparams and metrics) into the table in
    ``directory``. Runs that end at once (parallel jobs, two sweeps) take turns on a lock; the
    file is replaced whole, so a reader never sees half of one. A table that cannot be written
    costs a warning, not the run: the run's own values are already in its event file."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = directory / TABLE_FILE
            table = merged(read_table(path), experiment)
            # no "tfevents" in its name: TensorBoard must never read a half-written table
            temporary = directory / f".lazytrain.hparams.{os.getpid()}.tmp"
            write_table(temporary, table)
            os.replace(temporary, path)
    except OSError as err:
        log.warning("HPARAMS columns not added to %s: %s", directory / TABLE_FILE, err)


def columns(summary: Summary) -> plugin_data_pb2.HParamsPluginData:
    return plugin_data_pb2.HParamsPluginData.FromString(
        summary.value[0].metadata.plugin_data.content
    )


def read_table(path: Path) -> Summary | None:
    """The table's experiment summary, None when there is none yet."""
    if not path.is_file():
        return None
    for event in EventFileLoader(str(path)).Load():
        for value in event.summary.value:
            if value.tag == metadata.EXPERIMENT_TAG:
                return Summary(value=[value])
    return None


def merged(table: Summary | None, experiment: Summary) -> Summary:
    """The table with the run's columns it lacked added after its own (a column's type is the
    one it was first written with)."""
    result = Summary()
    result.CopyFrom(table if table is not None else experiment)
    data = columns(result)
    have = {info.name for info in data.experiment.hparam_infos}
    metrics = {(m.name.group, m.name.tag) for m in data.experiment.metric_infos}
    new = columns(experiment).experiment
    data.experiment.hparam_infos.extend(i for i in new.hparam_infos if i.name not in have)
    data.experiment.metric_infos.extend(
        m for m in new.metric_infos if (m.name.group, m.name.tag) not in metrics
    )
    for info in data.experiment.hparam_infos:
        info.differs = info.name in SHOWN_FIRST
    result.value[0].metadata.plugin_data.content = data.SerializeToString()
    return result


def write_table(path: Path, table: Summary) -> None:
    with path.open("wb") as out:
        records = RecordWriter(out)
        now = time.time()
        records.write(Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        records.write(Event(wall_time=now, step=0, summary=table).SerializeToString())
        records.flush()
        os.fsync(out.fileno())
