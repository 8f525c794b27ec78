"""Compare runs: read every run's TensorBoard events under a directory, group runs that differ
only in ``seed``, rank the groups, and write a markdown leaderboard, a CSV and a plot.

TensorBoard shows curves, but not "which config wins, by how much, over how many seeds", nor
which jobs of a sweep crashed before they wrote anything. Runs are read as TensorBoard reads
them (``EventAccumulator``), so this works on any directory TensorBoard would show, while a
sweep is still running too.
"""

from __future__ import annotations

import csv
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

FINISHED, INCOMPLETE, FAILED = "finished", "running/incomplete", "failed"
EVENTS_GLOB = "events.out.tfevents.*"
# Hydra's job log format: "[2024-05-01 12:00:00,123][lazytrain.train][ERROR] - message"
ERROR_LINE = re.compile(r"\[ERROR\] - (.*)")


@dataclass
class Run:
    """One run directory and what its events say."""

    name: str
    status: str
    overrides: list[str] | None = None  # None: no .hydra/overrides.yaml
    model: str | None = None  # the model config chosen (hparams, written at the end of a run)
    hardware: str | None = None  # "NVIDIA H100 80GB HBM3", "CPU, 2 cores" (ditto)
    params: int | None = None
    best_val_acc: float | None = None
    test_acc: float | None = None
    epochs: int = 0
    wall_seconds: float | None = None
    epoch_seconds: float | None = None  # median over epochs: the first one's warm-up is an outlier
    val_acc: list[float] = field(default_factory=list)  # per epoch, in step order
    note: str = ""  # a failed run's error, or an incomplete run's last logged error


@dataclass
class Group:
    """Runs whose overrides are equal but for ``seed``; statistics over the finished ones."""

    key: tuple[str, ...]
    label: str
    runs: list[Run]

    @property
    def finished(self) -> list[Run]:
        return [r for r in self.runs if r.status == FINISHED]

    @property
    def n(self) -> int:
        return len(self.finished)

    @property
    def test_acc(self) -> tuple[float | None, float | None]:
        return mean_std([r.test_acc for r in self.finished if r.test_acc is not None])

    @property
    def val_acc(self) -> tuple[float | None, float | None]:
        return mean_std([r.best_val_acc for r in self.finished if r.best_val_acc is not None])

    @property
    def epoch_seconds(self) -> float | None:
        times = [r.epoch_seconds for r in self.finished if r.epoch_seconds is not None]
        return statistics.median(times) if times else None

    def distinct(self, attribute: str) -> str:
        """The different values of a run attribute in this group, joined: ``"–"`` for none."""
        values = sorted({getattr(r, attribute) for r in self.runs} - {None})
        return ", ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in values) or "–"

    @property
    def status(self) -> str:
        counts = {s: sum(r.status == s for r in self.runs) for s in (FINISHED, INCOMPLETE, FAILED)}
        return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation; no std from a single seed (it would read as 0)."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def last_error(log_file: Path) -> str:
    """The message of the last ERROR line Hydra's job logging wrote, or ``""``."""
    if not log_file.is_file():
        return ""
    matches = ERROR_LINE.findall(log_file.read_text(errors="replace"))
    return matches[-1].strip() if matches else ""


def read_overrides(run_dir: Path) -> list[str] | None:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    return [str(o) for o in yaml.safe_load(path.read_text()) or []]


def read_hparams(ea: EventAccumulator) -> dict[str, float | str]:
    """The run's HPARAMS row; empty until the run has ended (they are written after the test)."""
    try:
        tags = ea.PluginTagToContent("hparams")
    except KeyError:
        return {}
    for tag, content in tags.items():
        if tag.endswith("session_start_info"):
            start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
            return {
                key: getattr(value, value.WhichOneof("kind"))
                for key, value in start.hparams.items()
                if value.WhichOneof("kind") in ("number_value", "string_value")
            }
    return {}


def read_run(run_dir: Path, name: str) -> Run:
    """A run from its event files (several after a resume: TensorBoard reads them in order)."""
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "histograms": 1})
    ea.Reload()
    scalars = {tag: ea.Scalars(tag) for tag in ea.Tags()["scalars"]}
    val = [e.value for e in sorted(scalars.get("val/acc", []), key=lambda e: e.step)]
    test = scalars.get("test/acc", [])
    epoch_seconds = scalars.get("time/epoch_seconds", [])
    if epoch_seconds:
        wall = sum(e.value for e in epoch_seconds)
    else:
        times = [e.wall_time for events in scalars.values() for e in events]
        wall = max(times) - min(times) if times else None
    hparams = read_hparams(ea)
    params = hparams.get("params")
    status = FINISHED if test else INCOMPLETE
    return Run(
        name=name,
        status=status,
        overrides=read_overrides(run_dir),
        model=hparams.get("model"),
        hardware=hparams.get("hardware"),
        params=None if params is None else int(params),
        best_val_acc=max(val) if val else None,
        test_acc=test[-1].value if test else None,
        epochs=len(val),
        wall_seconds=wall,
        epoch_seconds=statistics.median(e.value for e in epoch_seconds) if epoch_seconds else None,
        val_acc=val,
        note="" if status == FINISHED else last_error(run_dir / "train.log"),
    )


def find_runs(root: Path) -> list[Run]:
    """Every run under ``root``: a directory with an event file, or a Hydra job directory
    (``.hydra/`` and ``train.log``) without one, i.e. a job that died before training."""
    root = Path(root)
    runs = []
    for directory in sorted({root, *(p for p in root.rglob("*") if p.is_dir())}):
        name = root.name if directory == root else directory.relative_to(root).as_posix()
        if any(directory.glob(EVENTS_GLOB)):
            runs.append(read_run(directory, name))
        elif (directory / ".hydra").is_dir() and (directory / "train.log").is_file():
            note = last_error(directory / "train.log") or "no events, no ERROR line in train.log"
            runs.append(Run(name, FAILED, read_overrides(directory), note=note))
    return runs


def group_key(run: Run) -> tuple[str, ...]:
    """The overrides minus ``seed=...``; a run without overrides.yaml is a group of its own."""
    if run.overrides is None:
        return (run.name,)
    return tuple(sorted(o for o in run.overrides if o.lstrip("+~").split("=")[0] != "seed"))


def sort_key(group: Group) -> tuple[float, float, str]:
    test, val = group.test_acc[0], group.val_acc[0]
    return (
        -test if test is not None else math.inf,
        -val if val is not None else math.inf,
        group.label,
    )


def group_runs(runs: Sequence[Run]) -> tuple[list[Group], list[str]]:
    """Groups over seeds, best mean test/acc first, and the overrides all runs agree on.

    Labels name only what differs between groups (``init=normal,model=lazy_cnn``); an override
    whose key has one value wherever it is set (data paths, epochs) is returned once instead of
    repeated on every row.
    """
    by_key: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        by_key.setdefault(group_key(run), []).append(run)
    values: dict[str, set[str]] = {}
    for key, members in by_key.items():
        if members[0].overrides is not None:
            for override in key:
                values.setdefault(override.split("=")[0], set()).add(override)
    common = sorted(next(iter(v)) for v in values.values() if len(v) == 1)
    groups = [
        Group(key, ",".join(o for o in key if o not in common) or ",".join(key) or "(defaults)", rs)
        for key, rs in by_key.items()
    ]
    return sorted(groups, key=sort_key), common


def pct(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def markdown(root: Path, runs: Sequence[Run], groups: Sequence[Group], common: list[str]) -> str:
    """The leaderboard (groups) and every run with its status, as markdown."""
    counts = {s: sum(r.status == s for r in runs) for s in (FINISHED, INCOMPLETE, FAILED)}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines = [f"**Leaderboard** of `{root}`: {len(runs)} runs ({summary})", ""]
    if common:
        lines += ["Common overrides: " + " ".join(f"`{o}`" for o in common), ""]
    lines += [
        "Accuracies in %, mean ± std over the seeds of a group's finished runs (n).",
        "",
        "| rank | group | model | n | test acc | best val acc | params | epochs | s / epoch "
        "| hardware | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rank, g in enumerate(groups, 1):
        epochs = sorted({r.epochs for r in g.finished})
        lines.append(
            f"| {rank} | {g.label} | {g.distinct('model')} | {g.n} | {pct(*g.test_acc)} "
            f"| {pct(*g.val_acc)} | {g.distinct('params')} "
            f"| {', '.join(map(str, epochs)) or '–'} | {seconds(g.epoch_seconds)} "
            f"| {g.distinct('hardware')} | {g.status} |"
        )
    lines += [
        "",
        "| run | status | params | best val acc | test acc | epochs | wall s | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in groups:
        for r in sorted(g.runs, key=lambda r: r.name):
            params = f"{r.params:,}" if r.params is not None else "–"
            epochs = r.epochs if r.status != FAILED else "–"
            lines.append(
                f"| {r.name} | {r.status} | {params} | {pct(r.best_val_acc)} | {pct(r.test_acc)} "
                f"| {epochs} | {seconds(r.wall_seconds)} | {r.note.replace('|', '/')} |"
            )
    return "\n".join(lines) + "\n"


def csv_rows(groups: Sequence[Group]) -> list[dict[str, object]]:
    """One row per run, with its group's rank and statistics: easy to filter or re-aggregate."""
    rows = []
    for rank, g in enumerate(groups, 1):
        (test_mean, test_std), (val_mean, val_std) = g.test_acc, g.val_acc
        for r in sorted(g.runs, key=lambda r: r.name):
            row = {
                "rank": rank,
                "group": g.label,
                "run": r.name,
                "status": r.status,
                "model": r.model,
                "hardware": r.hardware,
                "params": r.params,
                "best_val_acc": r.best_val_acc,
                "test_acc": r.test_acc,
                "epochs": r.epochs,
                "wall_seconds": None if r.wall_seconds is None else round(r.wall_seconds, 3),
                "epoch_seconds": None if r.epoch_seconds is None else round(r.epoch_seconds, 3),
                "group_n": g.n,
                "group_test_acc_mean": test_mean,
                "group_test_acc_std": test_std,
                "group_val_acc_mean": val_mean,
                "group_val_acc_std": val_std,
                "overrides": " ".join(r.overrides or []),
                "note": r.note,
            }
            rows.append({k: "" if v is None else v for k, v in row.items()})
    return rows


def write_csv(path: Path, groups: Sequence[Group]) -> None:
    rows = csv_rows(groups)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(path: Path, groups: Sequence[Group]) -> None:
    """val/acc per epoch: one line per group (mean over its runs), shaded from min to max.

    Every run with val/acc points counts, running ones too: the plot is for watching a sweep.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for g in groups:
        curves = [r.val_acc for r in g.runs if r.val_acc]
        if not curves:
            continue
        epochs = range(1, max(map(len, curves)) + 1)
        at = [[100 * c[e - 1] for c in curves if len(c) >= e] for e in epochs]
        mean = [statistics.fmean(v) for v in at]
        ax.plot(epochs, mean, marker="o", markersize=3, label=f"{g.label} (n={len(curves)})")
        ax.fill_between(epochs, [min(v) for v in at], [max(v) for v in at], alpha=0.2, lw=0)
    ax.set(xlabel="epoch", ylabel="val/acc (%)", title="val/acc: mean over seeds, min–max band")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")
        ax.xaxis.get_major_locator().set_params(integer=True)
    else:
        ax.text(0.5, 0.5, "no val/acc logged yet", ha="center", transform=ax.transAxes)
    fig.savefig(path)


def compare(root: Path, out: Path | None = None) -> str:
    """Read, group and rank the runs under ``root``; write ``leaderboard.csv`` and
    ``compare.png`` into ``out`` (default ``root``); return the markdown leaderboard."""
    root = Path(root)
    runs = find_runs(root)
    if not runs:
        raise FileNotFoundError(f"no runs under {root} (no {EVENTS_GLOB}, no .hydra/ + train.log)")
    groups, common = group_runs(runs)
    out = Path(out) if out is not None else root
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "leaderboard.csv", groups)
    plot(out / "compare.png", groups)
    return markdown(root, runs, groups, common)
