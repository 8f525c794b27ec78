"""TensorBoard views beyond scalars: the HPARAMS columns shown first, per-layer weight statistics
and the model graph, from one short real CLI run; the graph's failure path on its own."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2
from torch.utils.tensorboard import SummaryWriter

from lazytrain import hparams_table, tracking
from lazytrain.hparams_table import LOCK_FILE, TABLE_FILE
from lazytrain.module import LazyClassifier

from .helpers import WITH_INIT, read_events

MLP = {"_target_": "lazytrain.models.lazy_mlp", "hidden": [256]}
XAVIER = {"_target_": "lazytrain.init.xavier", "_partial_": True}
ADAMW = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3}


def accumulator(run_dir: Path) -> EventAccumulator:
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def table_columns(directory: Path):
    """The project table's experiment, sorted as TensorBoard sorts it for the HPARAMS tab."""
    from tensorboard.plugins.hparams import backend_context

    experiment = hparams_table.columns(hparams_table.read_table(directory / TABLE_FILE)).experiment
    backend_context._sort_and_reduce_to_hparams_limit(experiment)
    return experiment


def test_hparams_default_columns_are_the_ones_people_compare(mlp_run):
    """TensorBoard sorts the HPARAMS columns by `differs`, then by name, and shows the first
    five: run its own sort on the table the run joined (beside it: the run lies outside the
    project's outputs/). The run itself holds its values, not columns that could hide others."""
    from tensorboard.plugins.hparams import metadata

    experiment = table_columns(mlp_run.parent)
    shown = [info.name for info in experiment.hparam_infos][:5]
    assert shown == ["hardware", "init", "model", "optimizer.lr", "seed"]
    assert {"model.hidden", "params", "optimizer.weight_decay"} <= {
        info.name for info in experiment.hparam_infos
    }
    tags = accumulator(mlp_run).PluginTagToContent("hparams")
    assert metadata.EXPERIMENT_TAG not in tags and metadata.SESSION_START_INFO_TAG in tags


def run_with(directory: Path, row: dict, metrics: dict) -> None:
    with SummaryWriter(directory / "run") as writer:
        tracking.log_hparams(writer, row, metrics, directory)


def test_table_is_the_union_of_every_runs_columns(tmp_path):
    """A CNN's columns join an MLP's (and metrics only one run logged): none is dropped, a
    column keeps the type it was first written with, and a rerun adds nothing twice."""
    run_with(tmp_path, {"model": "lazy_mlp", "model.hidden": "[256]"}, {"val/acc": 0.8})
    run_with(tmp_path, {"model": "lazy_cnn", "model.channels": "[6, 16]"}, {"test/acc": 0.7})
    run_with(tmp_path, {"model": "lazy_cnn", "model.hidden": 3}, {"val/acc": 0.9})
    experiment = table_columns(tmp_path)
    infos = {info.name: info.type for info in experiment.hparam_infos}
    assert sorted(infos) == ["model", "model.channels", "model.hidden"]
    assert infos["model.hidden"] == api_pb2.DATA_TYPE_STRING
    assert sorted(m.name.tag for m in experiment.metric_infos) == ["test/acc", "val/acc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([LOCK_FILE, "run", TABLE_FILE])


def add_one_column(directory: Path, index: int) -> None:
    run_with(directory / f"job{index}", {f"key{index}": index}, {"val/acc": 0.5})
    hparams_table.add_columns(directory, table_for({f"key{index}": index}))


def table_for(row: dict):
    from torch.utils.tensorboard.summary import hparams

    return hparams(row, {"val/acc": 0.5})[0]


def test_runs_that_end_at_once_lose_no_column(tmp_path):
    """Eight processes (parallel jobs of a sweep) add their columns at the same moment. Forked
    from a fresh server that imported this module once (not from pytest, whose torch threads
    a fork must not inherit; not spawned, each importing Lightning anew)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with context.Pool(8) as pool:
        pool.starmap(add_one_column, [(tmp_path, i) for i in range(8)])
    names = {info.name for info in table_columns(tmp_path).hparam_infos}
    assert names == {f"key{i}" for i in range(8)}


def test_unwritable_table_costs_a_warning_not_the_run(tmp_path, caplog):
    (tmp_path / "table").write_text("a file where the table's directory should be")
    hparams_table.add_columns(tmp_path / "table", table_for({"model": "lazy_mlp"}))
    assert "HPARAMS columns not added to" in caplog.text


def test_table_dir_is_the_project_or_beside_the_run(tmp_path):
    project = tmp_path / "outputs"
    assert hparams_table.table_dir(project / "multirun/S/a=1", project) == project.resolve()
    assert hparams_table.table_dir(tmp_path / "S/a=1", project) == (tmp_path / "S").resolve()


def test_weight_stats_at_step_zero_are_the_init(mlp_run):
    run_dir = mlp_run
    scalars = read_events(run_dir).scalars
    weights = {t for t in scalars if t.startswith("weights/")}
    assert weights == {
        f"weights/{n}.weight/{s}" for n in (1, 3) for s in ("mean", "std", "max_abs")
    }
    for tag in weights:
        assert [step for step, _ in scalars[tag]] == WITH_INIT, tag  # init, then each epoch
    # Xavier-uniform on the 784 -> 256 layer: U(-b, b), b = sqrt(6 / 1040), std = b / sqrt(3)
    bound = math.sqrt(6 / (784 + 256))
    assert scalars["weights/1.weight/std"][0][1] == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert bound * 0.99 < scalars["weights/1.weight/max_abs"][0][1] <= bound
    assert abs(scalars["weights/1.weight/mean"][0][1]) < 1e-3
    assert scalars["weights/1.weight/std"][-1][1] != scalars["weights/1.weight/std"][0][1]


def test_graph_of_the_materialized_model(mlp_run):
    run_dir = mlp_run
    output = (mlp_run.parent / "console.txt").read_text()
    ea = accumulator(run_dir)
    assert ea.Tags()["graph"] is True
    ops = {node.op for node in ea.Graph().node}
    assert "aten::linear" in ops and "aten::flatten" in ops
    assert "torch.jit.trace" not in output  # the tracer's deprecation warning is not shown


def small_classifier() -> LazyClassifier:
    return LazyClassifier(MLP, XAVIER, ADAMW, sample=torch.rand(4, 1, 28, 28))


def test_graph_keeps_the_train_mode(tmp_path):
    model = small_classifier()
    model.net.train()
    with SummaryWriter(tmp_path) as writer:
        tracking.log_graph(writer, model)
    assert model.net.training
    assert accumulator(tmp_path).Tags()["graph"] is True


def test_graph_failure_is_a_warning_not_a_crash(tmp_path, monkeypatch):
    model = small_classifier()
    model.net.train()
    # a sample shape the net cannot take: tracing fails inside add_graph
    model.shape_report = dataclasses.replace(model.shape_report, input_shape=(4, 3, 5))
    warnings: list[str] = []
    monkeypatch.setattr(tracking.log, "warning", lambda msg, *args: warnings.append(msg % args))
    with SummaryWriter(tmp_path) as writer:
        tracking.log_graph(writer, model)
    assert len(warnings) == 1 and warnings[0].startswith("model graph not written to TensorBoard")
    assert model.net.training
    assert accumulator(tmp_path).Tags()["graph"] is False
