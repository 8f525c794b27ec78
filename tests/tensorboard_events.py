"""Read back what a run wrote to TensorBoard, as TensorBoard itself would."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2


@dataclass
class Events:
    scalars: dict[str, list[tuple[int, float]]]
    histogram_steps: dict[str, list[int]]
    texts: dict[str, str]
    hparams: dict[str, object]
    hparam_metrics: list[str]
    hparam_names: list[str]  # in the experiment summary's order: TensorBoard's column order


def read_events(run_dir: Path) -> Events:
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    ea.Reload()
    tags = ea.Tags()
    scalars = {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in tags["scalars"]}
    histograms = {t: [e.step for e in ea.Histograms(t)] for t in tags["histograms"]}
    texts = {
        t.removesuffix("/text_summary"): ea.Tensors(t)[0].tensor_proto.string_val[0].decode()
        for t in tags["tensors"]
        if t.endswith("/text_summary")
    }
    hparams: dict[str, object] = {}
    metrics: list[str] = []
    names: list[str] = []
    try:
        hparam_contents = ea.PluginTagToContent("hparams")
    except KeyError:  # an interrupted run has no hparams summary yet
        hparam_contents = {}
    for tag, content in hparam_contents.items():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if tag.endswith("session_start_info"):
            for key, value in data.session_start_info.hparams.items():
                hparams[key] = getattr(value, value.WhichOneof("kind"))
        if tag.endswith("experiment"):
            metrics = [m.name.tag for m in data.experiment.metric_infos]
            names = [h.name for h in data.experiment.hparam_infos]
    return Events(scalars, histograms, texts, hparams, metrics, names)
