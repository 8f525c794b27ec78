"""TensorBoard views beyond scalars: the HPARAMS columns shown first, per-layer weight statistics
and the model graph, from one short real CLI run; the graph's failure path on its own."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from lazytrain import tracking
from lazytrain.module import LazyClassifier

from .helpers import WITH_INIT, read_events

MLP = {"_target_": "lazytrain.models.lazy_mlp", "hidden": [256]}
XAVIER = {"_target_": "lazytrain.init.xavier", "_partial_": True}
ADAMW = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3}


def accumulator(run_dir: Path) -> EventAccumulator:
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def test_hparams_default_columns_are_the_ones_people_compare(mlp_run):
    """TensorBoard sorts the HPARAMS columns by `differs`, then by name, and shows the first
    five: run its own sort on what the run wrote."""
    from tensorboard.plugins.hparams import backend_context, metadata

    run_dir = mlp_run
    ea = accumulator(run_dir)
    content = ea.PluginTagToContent("hparams")[metadata.EXPERIMENT_TAG]
    experiment = metadata.parse_experiment_plugin_data(content)
    backend_context._sort_and_reduce_to_hparams_limit(experiment)
    shown = [info.name for info in experiment.hparam_infos][:5]
    assert shown == ["hardware", "init", "model", "optimizer.lr", "seed"]


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
