"""The trackers beside TensorBoard (``logger=[tensorboard,csv,mlflow]``), read back from what
landed: the CSV file and the MLflow store hold TensorBoard's curves at its steps, MLflow's params
are the HPARAMS row, a stopped run resumes into the same MLflow run with the same curves as one
never stopped, a sweep is one experiment (continued, not doubled), and a tracker that cannot work
is refused in one line before anything trains."""

from __future__ import annotations

import csv
import signal
import socket
from pathlib import Path

import pytest

from lazytrain.compat import sqlite_artifacts_beside_database

from .helpers import (
    FEW_BATCHES,
    assert_refused,
    evaluate_copy,
    read_events,
    run_script,
    synthetic,
    train_run,
)

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra: pip install -e '.[mlflow]'")
from mlflow.tracking import MlflowClient  # noqa: E402

ALL = "logger=[tensorboard,csv,mlflow]"
FAULT = "+callbacks.fault._target_=tests.faults.SignalAt"
Curves = dict[str, list[tuple[int, float]]]


def store(cwd: Path) -> MlflowClient:
    """The MLflow store a run from ``cwd`` writes by default (``<project_dir>/mlflow.db``), opened
    as lazytrain opens it (MLflow's own default would make ``./mlruns`` where pytest runs)."""
    sqlite_artifacts_beside_database()
    return MlflowClient(f"sqlite:///{cwd / 'outputs' / 'mlflow.db'}")


def mlflow_runs(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, [e.name for e in client.search_experiments()]
    return client.search_runs([found.experiment_id], order_by=["attributes.start_time"])


def mlflow_curves(client: MlflowClient, run_id: str) -> Curves:
    metrics = client.get_run(run_id).data.metrics
    return {
        key: [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))]
        for key in metrics
    }  # fmt: skip


def csv_curves(run_dir: Path) -> Curves:
    with (run_dir / "metrics.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    keys = [k for k in rows[0] if k != "step"]
    return {k: [(int(r["step"]), float(r[k])) for r in rows if r[k]] for k in keys}


def tensorboard_curves(run_dir: Path) -> Curves:
    """What the loggers got (weight statistics go to TensorBoard only: histograms' companions)."""
    return {k: v for k, v in read_events(run_dir).scalars.items() if not k.startswith("weights/")}


def same(a: Curves, b: Curves, skip: str = "\0") -> bool:
    """Equal keys, steps and values to float32 (TensorBoard keeps float32, MLflow and CSV more)."""
    a = {k: v for k, v in a.items() if not k.startswith(skip)}
    b = {k: v for k, v in b.items() if not k.startswith(skip)}
    return a.keys() == b.keys() and all(
        [s for s, _ in a[k]] == [s for s, _ in b[k]]
        and all(x == pytest.approx(y, rel=1e-6) for (_, x), (_, y) in zip(a[k], b[k], strict=True))
        for k in a
    )


def as_tensorboard(value: str) -> object:
    """An MLflow param (always a string) as TensorBoard's HPARAMS row holds it."""
    if value in ("True", "False"):
        return float(value == "True")
    try:
        return float(value)
    except ValueError:
        return value


NEW_STORE_NOISE = (
    "alembic",
    "Running upgrade",
    "MLflow database tables",
    "Creating it.",
    "INFO  [",
)


def test_every_tracker_holds_tensorboards_curves_and_mlflow_the_whole_run(tmp_path, synthetic_dir):
    run = train_run(
        tmp_path, *synthetic(tmp_path, synthetic_dir), *FEW_BATCHES, ALL,
        "tags=[baseline,wide]", 'notes="a wider try"',
    )  # fmt: skip
    shown = tensorboard_curves(run)
    assert {"train/loss_step", "val/acc", "test/acc"} <= shown.keys()
    assert same(csv_curves(run), shown)
    # A new store's migration (Alembic's fileConfig) left the job's logging as it was: its own
    # lines to the end, in train.log and on the terminal, and none of the migration's.
    for seen in ((run / "train.log").read_text(), (tmp_path / "console.txt").read_text()):
        assert "final metrics: " in seen and "[lazytrain.progress][INFO] - epoch 1 " in seen
        assert not [noise for noise in NEW_STORE_NOISE if noise in seen], seen[-3000:]

    client = store(tmp_path)
    (found,) = mlflow_runs(client, "runs")  # a single run without a recipe
    assert found.info.status == "FINISHED" and found.info.run_name == "run"
    assert same(mlflow_curves(client, found.info.run_id), shown)
    # its params are the HPARAMS row, and select it as compare.py --where would
    row = read_events(run).hparams
    assert {k: as_tensorboard(v) for k, v in found.data.params.items()} == row
    assert [r.info.run_id for r in client.search_runs([found.info.experiment_id], "params.model = 'lazy_mlp' and tags.baseline = 'true'")] == [found.info.run_id]  # fmt: skip
    tags = found.data.tags
    assert tags["wide"] == "true" and tags["mlflow.note.content"] == "a wider try"
    assert tags["lazytrain.run_dir"] == str(run)
    files = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert files == {"config.yaml", "parameter_shapes.md", "lineage.json"}
    shapes = Path(mlflow.artifacts.download_artifacts(run_id=found.info.run_id, artifact_path="parameter_shapes.md", tracking_uri=client.tracking_uri, dst_path=str(tmp_path / "dl")))  # fmt: skip
    assert "| `1.weight` | uninitialized | [256, 784] |" in shapes.read_text()
    assert shapes.read_text() == read_events(run).texts["parameter_shapes"]  # TensorBoard's table
    # everything beside the database, nothing where the command ran
    assert (tmp_path / "outputs" / "mlflow-artifacts").is_dir() and not (
        tmp_path / "mlruns"
    ).exists()

    # eval.py adds its figure to the same MLflow run
    _, _, printed = evaluate_copy(run, tmp_path / "eval")
    assert f"added to MLflow run {found.info.run_id}" in printed
    added = {a.path for a in client.list_artifacts(found.info.run_id, "eval")}
    assert added and all(p.endswith(".png") for p in added)


@pytest.mark.slow
def test_a_stopped_run_resumes_into_the_same_mlflow_run_with_a_straight_runs_curves(
    tmp_path, synthetic_dir
):
    data = [*synthetic(tmp_path, synthetic_dir), *FEW_BATCHES, ALL]
    for cwd in ("straight", "stopped"):
        (tmp_path / cwd).mkdir()
    straight = train_run(tmp_path / "straight", *data)
    stopped = tmp_path / "stopped" / "run"
    proc = run_script(
        "train.py", *data, f"hydra.run.dir={stopped}", FAULT, "+callbacks.fault.step=11",
        "+callbacks.fault.signal=SIGTERM", cwd=tmp_path / "stopped",
    )  # fmt: skip
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
    client = store(tmp_path / "stopped")
    (first,) = mlflow_runs(client, "runs")
    assert first.info.status == "FAILED"  # stopped, and says so until it is resumed
    proc = run_script(
        "train.py", f"resume={stopped}", "trusted_targets=[tests.faults]", cwd=tmp_path / "stopped"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    (resumed,) = mlflow_runs(client, "runs")  # the same run, continued
    assert resumed.info.run_id == first.info.run_id and resumed.info.status == "FINISHED"
    straight_client = store(tmp_path / "straight")
    (reference,) = mlflow_runs(straight_client, "runs")
    assert same(
        mlflow_curves(client, resumed.info.run_id),
        mlflow_curves(straight_client, reference.info.run_id),
        skip="time/",
    )
    assert same(csv_curves(stopped), csv_curves(straight), skip="time/")
    assert resumed.data.params == reference.data.params


@pytest.mark.slow
def test_a_sweep_is_one_experiment_and_its_continuation_adds_only_what_ran_again(
    tmp_path, synthetic_dir
):
    """Job 2 killed before its first checkpoint: the continued sweep skips job 1 (no new MLflow
    run), runs job 2 from scratch, and ends the killed attempt's run as KILLED."""
    sweep_dir = tmp_path / "S"
    command = [
        "train.py", "-m", *synthetic(tmp_path, synthetic_dir), *FEW_BATCHES, ALL, "seed=0,1",
        "trusted_targets=[tests.faults]", f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    kill = [FAULT, "+callbacks.fault.step=2", "+callbacks.fault.signal=SIGKILL", "+callbacks.fault.seed=1"]  # fmt: skip
    proc = run_script(*command, *kill, cwd=tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    proc = run_script(*command, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    runs = mlflow_runs(store(tmp_path), str(sweep_dir))
    states = [(Path(r.data.tags["lazytrain.run_dir"]).name[-6:], r.info.status) for r in runs]
    assert states == [("seed=0", "FINISHED"), ("seed=1", "KILLED"), ("seed=1", "FINISHED")]
    for found in (runs[0], runs[2]):
        job = Path(found.data.tags["lazytrain.run_dir"])
        assert same(mlflow_curves(store(tmp_path), found.info.run_id), tensorboard_curves(job))


@pytest.mark.slow
def test_under_ddp_only_rank_zero_writes_one_mlflow_run(tmp_path, synthetic_dir):
    """Two ranks, one MLflow run: rank 1 neither opens a run of its own nor logs to rank 0's,
    and the run holds TensorBoard's (rank 0's, synced) curves."""
    run = train_run(
        tmp_path, *synthetic(tmp_path, synthetic_dir), "trainer=ddp", "trainer.accelerator=cpu",
        "trainer.max_epochs=1", "logger=[tensorboard,mlflow]",
    )  # fmt: skip
    client = store(tmp_path)
    (found,) = mlflow_runs(client, "runs")
    assert found.info.status == "FINISHED"
    assert same(mlflow_curves(client, found.info.run_id), tensorboard_curves(run))
    assert "MEMBER: 2/2" in (run / "train_ddp_process_1.log").read_text()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["logger=[csv]"], "give logger=[tensorboard,csv]"),
        (
            [ALL, f"logger.mlflow.tracking_uri=http://127.0.0.1:{closed_port()}"],
            "does not answer",
        ),
        ([ALL, "logger.mlflow.tracking_uri=sqlite:////proc/no/mlflow.db"], "give a writable"),
    ],
    ids=["no-tensorboard", "server-down", "unwritable-store"],
)
def test_a_tracker_that_cannot_work_is_refused_before_training(
    tmp_path, synthetic_dir, overrides, message
):
    run = tmp_path / "run"
    proc = run_script(
        "train.py", *synthetic(tmp_path, synthetic_dir), *overrides, f"hydra.run.dir={run}",
        cwd=tmp_path,
    )  # fmt: skip
    assert_refused(proc, message)
    said = (proc.stdout + proc.stderr).splitlines()
    assert len([line for line in said if message in line]) == 1, said
    assert not (run / "checkpoints").exists()
