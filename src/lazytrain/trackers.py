"""The trackers a run writes to: the ``logger`` config group, a list (``logger=[tensorboard,csv]``,
``logger=[tensorboard,mlflow]``), every tracker showing each metric at TensorBoard's step.

TensorBoard is always one of them: the shape table, weight statistics, lineage and HPARAMS row
go there (:mod:`lazytrain.tracking`). ``csv`` is Lightning's ``metrics.csv`` in the run directory.
``mlflow`` is one MLflow run per job (a local SQLite store by default, or a team's server), with
the HPARAMS row as its params, the tags, and the run's files as artifacts (:class:`MLflowRun`).
A resumed run continues where each tracker allows: TensorBoard and CSV drop what the stopped
process logged past the checkpoint; MLflow continues the same run (its id is in the checkpoint).
"""

from __future__ import annotations

import csv
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from omegaconf import DictConfig, OmegaConf

from lazytrain import sqlite_url
from lazytrain.compat import sqlite_artifacts, sqlite_artifacts_beside_database
from lazytrain.console import logging_kept
from lazytrain.lineage_file import FILE as LINEAGE_FILE
from lazytrain.tracking import OptimizerSteps, hparams_row

IDS_KEY = "trackers"  # in the checkpoint: {"mlflow": {"run_id": ..., "tracking_uri": ...}}
ALWAYS = "tensorboard"


class TrackerError(ValueError):
    """A tracker cannot be used as configured: left out, not installed, or unreachable."""


def make_loggers(
    cfg: DictConfig, checkpoint: Mapping[str, Any] | None, purge_step: int | None
) -> list[Logger]:
    """The configured trackers, checked before anything trains. ``purge_step``: a continued run
    drops what was logged from that step on; ``checkpoint``: the one it continues from (which
    names the MLflow run, and its store, to continue). No ``logger`` at all: no trackers."""
    chosen = cfg.get("logger") or {}
    if chosen and ALWAYS not in chosen:
        others = ",".join(chosen)
        raise TrackerError(
            f"logger=[{others}] leaves out TensorBoard, where lazytrain writes the shapes, weights, "
            f"lineage and HPARAMS row: give logger=[tensorboard,{others}]"
        )
    ids = (checkpoint or {}).get(IDS_KEY, {})
    loggers = []
    for name, node in chosen.items():
        options = {} if purge_step is None else {"purge_step": purge_step}
        options.update(ids.get(name, {}))  # what the tracker needs to continue its run
        loggers.append(instantiate(node, **options))
    return loggers


def tracker_callbacks(
    loggers: Sequence[Logger],
    cfg: DictConfig,
    choices: Mapping[str, str],
    tags: Sequence[str],
    notes: str,
) -> list[L.Callback]:
    """What a tracker records beyond metrics, at the moments of the run that have it."""
    return [
        MLflowRun(logger, cfg, choices, tags, notes)
        for logger in loggers
        if isinstance(logger, MLflowTracker)
    ]


# --- CSV --------------------------------------------------------------------------------------


class CSVTracker(OptimizerSteps, CSVLogger):
    """Lightning's CSV logger writing ``<run dir>/metrics.csv``: a row per logged step.

    Lightning's writer deletes an existing ``metrics.csv`` (and warns about the directory); a
    continued run instead keeps the rows before ``purge_step``, as TensorBoard keeps the events
    before it, so the file of a resumed run reads as one of a run never stopped. Rows are flushed
    at every checkpoint, so what a checkpoint holds, the file holds too."""

    def __init__(self, save_dir: str, purge_step: int | None = None) -> None:
        super().__init__(save_dir, name="", version="")
        path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        self.kept: list[dict[str, str]] = []
        if purge_step is not None and path.is_file():
            with path.open(newline="") as file:
                self.kept = [r for r in csv.DictReader(file) if int(r["step"]) < purge_step]

    @property
    def experiment(self) -> ExperimentWriter:
        with warnings.catch_warnings():  # the run directory is never empty: lazytrain made it
            warnings.filterwarnings("ignore", message=r".*exists and is not empty")
            writer = super().experiment
        if self.kept and isinstance(writer, ExperimentWriter):
            writer.metrics[:0], self.kept = self.kept, []
        return writer

    def log_hyperparams(self, params: Any) -> None:
        """Nothing: TensorBoard's logger writes ``hparams.yaml`` into the same directory."""

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self.save()


# --- MLflow -----------------------------------------------------------------------------------


def check_store(tracking_uri: str) -> None:
    """Refuse, in one line, a store MLflow cannot write to: MLflow not installed, a server that
    does not answer (MLflow's own client retries for minutes), a local database that cannot be
    opened. A local database's directory is created."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise TrackerError(
            "logger=[tensorboard,mlflow] needs MLflow, which is not installed: "
            "pip install -e '.[mlflow]'"
        ) from None
    if tracking_uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=5).close()
        except urllib.error.HTTPError:
            pass  # it answered (behind a login, say): MLflow's client takes it from here
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise TrackerError(
                f"the MLflow tracking server {tracking_uri} does not answer ({reason}): start it, "
                f"or track locally with logger.mlflow.tracking_uri=sqlite:///outputs/mlflow.db"
            ) from None
        return
    try:
        if sqlite_url.database(tracking_uri):
            sqlite_url.make_directory(tracking_uri)
            sqlite_artifacts_beside_database()
        with logging_kept():  # a new store's migration reconfigures logging
            MlflowClient(tracking_uri).search_experiments(max_results=1)
    except Exception as err:  # whatever the store's driver raises, the run has not started
        raise TrackerError(
            f"the MLflow store {tracking_uri} cannot be opened ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}): give a writable "
            f"logger.mlflow.tracking_uri"
        ) from None


def default_experiment() -> str:
    """One MLflow experiment per sweep (its directory: a continued sweep is the same one), per
    recipe (``experiment=``, ``speedrun=``) for single runs, and ``runs`` for the others."""
    if not HydraConfig.initialized():
        return "runs"
    hydra = HydraConfig.get()
    if hydra.mode == RunMode.MULTIRUN:
        return str(hydra.sweep.dir)
    choices = hydra.runtime.choices
    return next((choices[g] for g in ("experiment", "speedrun") if choices.get(g)), "runs")


class MLflowTracker(OptimizerSteps, MLFlowLogger):
    """Lightning's MLflow logger: one MLflow run per lazytrain run, named after its directory.

    A local SQLite store keeps its artifacts beside the database (``mlflow-artifacts/``), not in
    a ``mlruns/`` wherever the command ran. ``run_id`` continues that run (a resume). The run
    stays RUNNING between ``fit`` and ``test`` (Lightning finalizes after each) until
    :meth:`close`; a failed stage ends it as FAILED."""

    def __init__(
        self,
        run_dir: str,
        tracking_uri: str,
        experiment_name: str | None = None,
        purge_step: int | None = None,
        run_id: str | None = None,
    ) -> None:
        check_store(tracking_uri)
        local = sqlite_url.database(tracking_uri) is not None
        super().__init__(
            experiment_name=experiment_name or default_experiment(),
            run_name=Path(run_dir).name,
            tracking_uri=tracking_uri,
            artifact_location=sqlite_artifacts(tracking_uri) if local else None,
            run_id=run_id,
        )
        self.run_dir, self.resumed = str(Path(run_dir).resolve()), run_id is not None
        self.tracking_uri = tracking_uri

    def log_hyperparams(self, params: Any) -> None:
        """Nothing: the run's params are its HPARAMS row (:class:`MLflowRun`), not the
        module's constructor arguments Lightning passes here."""

    def finalize(self, status: str) -> None:
        if status != "success":
            super().finalize(status)

    def close(self) -> None:
        super().finalize("success")


class MLflowRun(L.Callback):
    """What an MLflow run holds beside its metrics, written by rank 0 when fit starts: the
    HPARAMS row as params, the tags (each a tag of its own, ``tags.baseline = 'true'``), the
    notes as the run's description, the run directory, and the resolved config, shape table and
    lineage file as artifacts. Its id goes into every checkpoint, so a resume continues it.

    MLflow keeps a param as first logged: a resume that extends the run (``trainer.max_epochs``)
    keeps the first value there (the HPARAMS row and ``lineage.json`` say what it became)."""

    def __init__(
        self,
        tracker: MLflowTracker,
        cfg: DictConfig,
        choices: Mapping[str, str],
        tags: Sequence[str],
        notes: str,
    ) -> None:
        self.tracker, self.cfg, self.choices = tracker, cfg, choices
        self.tags, self.notes = tags, notes

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        from mlflow.entities import Param, RunTag

        client, run_id = self.tracker.experiment, self.tracker.run_id
        if self.tracker.resumed:
            client.update_run(run_id, status="RUNNING")
        else:
            self._end_killed_attempts()
        logged = client.get_run(run_id).data.params
        row = hparams_row(self.cfg, self.choices, pl_module, trainer)
        params = [Param(k, str(v)) for k, v in row.items() if k not in logged]
        tags = {"lazytrain.run_dir": self.tracker.run_dir, **dict.fromkeys(self.tags, "true")}
        if self.notes:
            tags["mlflow.note.content"] = self.notes
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        for first in range(0, len(params), 100):  # MLflow's limit per call
            client.log_batch(run_id, params=params[first : first + 100])
        client.log_text(run_id, OmegaConf.to_yaml(self.cfg, resolve=True), "config.yaml")
        report = getattr(pl_module, "shape_report", None)
        if report is not None:
            client.log_text(run_id, report.markdown(), "parameter_shapes.md")
        lineage = Path(self.tracker.run_dir) / LINEAGE_FILE
        if lineage.is_file():  # written by lazytrain.lineage.Lineage, earlier in this hook
            client.log_artifact(run_id, str(lineage))

    def _end_killed_attempts(self) -> None:
        """A run started again from scratch (a continued sweep's job killed before its first
        checkpoint) leaves its killed attempt's MLflow run RUNNING: end it as KILLED."""
        client = self.tracker.experiment
        found = client.search_runs(
            [self.tracker.experiment_id],
            f"tags.`lazytrain.run_dir` = '{self.tracker.run_dir}' and attributes.status = 'RUNNING'",
        )
        for run in found:
            if run.info.run_id != self.tracker.run_id:
                client.set_terminated(run.info.run_id, "KILLED")

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.global_rank == 0:
            run = {"run_id": self.tracker.run_id, "tracking_uri": self.tracker.tracking_uri}
            checkpoint.setdefault(IDS_KEY, {})["mlflow"] = run


def add_to_mlflow_run(trackers: Mapping[str, Any], files: Sequence[Path]) -> str | None:
    """``scripts/eval.py``: add ``files`` (under ``eval/``) to the MLflow run a checkpoint names
    in its ``trackers``; that run's id, or None for a run not tracked in MLflow."""
    run = trackers.get("mlflow")
    if run is None:
        return None
    check_store(run["tracking_uri"])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(run["tracking_uri"])
    for path in files:
        client.log_artifact(run["run_id"], str(path), "eval")
    return run["run_id"]
