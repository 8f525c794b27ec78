"""lazytrain's weight histograms are TensorBoard's own, bucket for bucket."""

from __future__ import annotations

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import make_histogram

from lazytrain.histograms import add_histogram, histogram_fields


@pytest.fixture
def writer(tmp_path):
    writer = SummaryWriter(tmp_path)
    yield writer
    writer.close()


def lowest_edges(writer: SummaryWriter) -> torch.Tensor:
    """Values exactly on bucket edges: the first (included) and zero."""
    bins = writer.default_bins
    return torch.tensor([bins[0], bins[700], bins[701], 0.0], dtype=torch.float64)


def highest_edges(writer: SummaryWriter) -> torch.Tensor:
    """Values exactly on bucket edges: the last (included: the last bucket is closed)."""
    bins = writer.default_bins
    return torch.tensor([bins[900], bins[-1]], dtype=torch.float64)


VALUES = {
    "weights": lambda w: torch.randn(256, 784, generator=torch.Generator().manual_seed(0)) * 0.05,
    "zeros": lambda w: torch.zeros(10),  # a bias at init: every value on the edge 0
    "lowest edges": lowest_edges,
    "highest edges": highest_edges,
    "magnitudes": lambda w: torch.tensor([-3.0, 1e-13, 0.0, 2.5e5, -1e-11]),
    "bfloat16": lambda w: (torch.randn(64, 32) * 0.1).bfloat16(),
    "non-finite": lambda w: torch.tensor([1.0, math.nan, math.inf, -2.0, -math.inf]),
}


@pytest.mark.parametrize("name", VALUES)
def test_the_fields_are_those_of_tensorboards_make_histogram(writer, name):
    values = VALUES[name](writer)
    expected = make_histogram(values.double().numpy(), writer.default_bins)
    fields = histogram_fields(values, writer.default_bins)
    assert fields is not None
    assert fields["bucket_limits"] == list(expected.bucket_limit)
    assert fields["bucket_counts"] == list(expected.bucket)
    assert fields["num"] == expected.num
    for key in ("min", "max", "sum", "sum_squares"):
        want = getattr(expected, key)
        assert fields[key] == pytest.approx(want, rel=1e-12, nan_ok=True), key


def test_written_histograms_read_back_as_add_histograms(tmp_path, writer):
    weights = torch.randn(128, 64) * 0.02
    add_histogram(writer, "ours", weights, 3)
    writer.add_histogram("tensorboards", weights, 3)
    writer.flush()
    events = EventAccumulator(str(tmp_path), size_guidance={"histograms": 0})
    events.Reload()
    (ours,), (theirs,) = events.Histograms("ours"), events.Histograms("tensorboards")
    assert ours.step == theirs.step == 3
    assert ours.histogram_value.bucket_limit == theirs.histogram_value.bucket_limit
    assert ours.histogram_value.bucket == theirs.histogram_value.bucket
    assert ours.histogram_value.num == theirs.histogram_value.num == weights.numel()


def test_nothing_is_written_where_no_value_is_finite(tmp_path, writer):
    # TensorBoard's own raises "The histogram is empty"; a diverged run is stopping anyway
    add_histogram(writer, "diverged", torch.full((4, 4), math.nan), 1)
    writer.flush()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert events.Tags()["histograms"] == []
