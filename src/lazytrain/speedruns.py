"""The speed records: each speedrun (``conf/speedrun``), the recipe it races (``conf/experiment``)
and the test accuracy it must reach — one table for ``scripts/bench.py`` (which times each pair)
and ``scripts/gpu_check.py`` (which runs each on a GPU)."""

from __future__ import annotations

from typing import NamedTuple


class Speedrun(NamedTuple):
    reference: str  # the recipe it races, conf/experiment/<reference>.yaml
    target: float  # test accuracy, a fraction


SPEEDRUNS: dict[str, Speedrun] = {
    "mlp_89": Speedrun("mlp_recipe", 0.895),
    "cnn_91": Speedrun("cnn_recipe", 0.91),
    "convnet_93": Speedrun("convnet_recipe", 0.935),  # 30+ min a pair on a CPU
    "convnet_94": Speedrun("convnet_recipe", 0.94),  # shares convnet_93's reference run
}
