"""TensorBoard's weight histograms, binned by torch on the weights' device.

``SummaryWriter.add_histogram`` copies the values to the host as float64 numpy and bins them with
``np.histogram`` over TensorBoard's 1,549 default buckets (exponential, 10% apart), which sorts
every value first: each epoch, inside the epoch, for every parameter. Here each value's bucket is
found by binary search over the same edges where the values are (``torch.bucketize``, in float64:
exact on the edges), by the same rule (left edge in, right edge out, the last bucket closed), and
only the counts and five statistics come back to the host. The histogram is then trimmed to its
occupied buckets exactly as ``make_histogram`` trims it, so TensorBoard draws the same picture
(``tests/test_histograms.py`` compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter


def add_histogram(writer: SummaryWriter, tag: str, values: torch.Tensor, step: int) -> None:
    """What ``writer.add_histogram(tag, values, step)`` writes; nothing where no value is finite
    (a diverged run, about to stop on its non-finite loss)."""
    fields = histogram_fields(values, writer.default_bins)
    if fields is not None:
        writer.add_histogram_raw(tag, **fields, global_step=step)


def histogram_fields(values: torch.Tensor, bins: Sequence[float]) -> dict[str, Any] | None:
    """``add_histogram_raw``'s arguments for ``values`` over the bucket edges ``bins``: the
    occupied buckets, with one empty bucket before them for the leftmost edge (TensorBoard keeps
    only right edges); None if no value falls in any bucket."""
    values = values.detach().flatten().double()
    edges = torch.tensor(bins, dtype=torch.float64, device=values.device)
    # edges[i] <= value < edges[i + 1] is bucket i: bucketize counts the edges <= value; below
    # the first edge is -1, above the last edge (or NaN) is len(edges) - 1, and a value on the
    # last edge closes the last bucket.
    bucket = torch.bucketize(values, edges, right=True) - 1
    bucket = torch.where(values == edges[-1], len(edges) - 2, bucket)
    counts = torch.bincount(bucket + 1, minlength=len(edges) + 1)[1:-1].cpu()
    occupied = counts.nonzero().flatten().tolist()
    if not occupied:
        return None
    first, last = occupied[0], occupied[-1]
    low, high, total, squares = torch.stack(
        [values.min(), values.max(), values.sum(), values.dot(values)]
    ).tolist()
    return {
        "min": low,
        "max": high,
        "num": values.numel(),
        "sum": total,
        "sum_squares": squares,
        "bucket_limits": list(bins[first : last + 2]),
        "bucket_counts": [0, *counts[first : last + 1].tolist()],
    }
