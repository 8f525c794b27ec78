"""Compare runs: read every run's TensorBoard events under a directory, group the runs of one
configuration (its seeds and repeats), rank the groups, and write a markdown leaderboard, a CSV
and a plot.

TensorBoard shows curves, but not "which config wins, by how much, over how many seeds", nor
which jobs of a sweep crashed before they wrote anything. Runs are read as TensorBoard reads
them (``EventAccumulator``, symlinked directories followed), so this works on any directory
TensorBoard would show, while a sweep is still running too.

Two runs are one configuration when their saved configurations (``.hydra/config.yaml``) agree
but for the seeds and what is not the experiment (paths, hardware, views:
:func:`lazytrain.config_keys.in_configuration`); ``init=xavier`` (the default) and no override
are the same. Labels are made of overrides: a group's label is the overrides its runs
share, less those every run shares (listed once); two groups never share a label.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
import os
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from lazytrain import lineage_file as lineage
from lazytrain.config_keys import flatten, in_configuration
from lazytrain.event_files import read_events
from lazytrain.run_dir import read_result
from lazytrain.selection import Where, select

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FINISHED, INCOMPLETE, FAILED = "finished", "running/incomplete", "failed"
NOT_RECORDED = "not recorded"  # fast_dev_run, or no logger: result.json says what is missing
STATUSES = (FINISHED, INCOMPLETE, FAILED, NOT_RECORDED)
EVENTS_GLOB = "events.out.tfevents.*"
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: 10x faster on 300 runs
# Hydra's job log format: "[2024-05-01 12:00:00,123][lazytrain.train][ERROR] - message"
ERROR_LINE = re.compile(r"\[ERROR\] - (.*)")


@dataclass
class Run:
    """One run directory and what its events say."""

    name: str
    status: str
    overrides: list[str] | None = None  # None: no .hydra/overrides.yaml
    # .hydra/config.yaml flattened to dotted keys, its configuration only; None: none saved
    config: dict[str, object] | None = None
    # every key of .hydra/config.yaml and the config-group choices: what --where and --diff read
    settings: dict[str, object] | None = None
    model: str | None = None  # the model config chosen (hparams, written at the end of a run)
    hardware: str | None = None  # "NVIDIA H100 80GB HBM3", "CPU, 2 cores" (ditto)
    params: int | None = None
    best_val_acc: float | None = None
    test_acc: float | None = None
    epochs: int = 0  # training epochs ended (validation may run only every n of them)
    wall_seconds: float | None = None  # time/run_seconds; unfinished: the sum of its epochs
    epoch_seconds: float | None = None  # median over epochs: the first one's warm-up is an outlier
    val_curve: dict[int, float] = field(default_factory=dict)  # epoch (from 1) -> its val/acc
    note: str = ""  # a failed run's error, or an incomplete run's last logged error
    code: str | None = None  # the commit its code was at, "+dirty" when changed (lineage.json)
    data: str | None = None  # the digest of the data it trained on (lineage.json)
    tags: list[str] = field(default_factory=list)


@dataclass
class Group:
    """The runs of one configuration (seeds, repeats); statistics over the finished ones."""

    key: tuple[str, ...]
    label: str
    runs: list[Run]

    @property
    def config(self) -> dict[str, object] | None:
        return self.runs[0].config

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

    @property
    def wall_seconds(self) -> float | None:
        times = [r.wall_seconds for r in self.finished if r.wall_seconds is not None]
        return statistics.median(times) if times else None

    def mixed(self, attribute: str) -> list[str]:
        """The known values of a run attribute when this group's runs differ in it, else []."""
        values = sorted({getattr(r, attribute) for r in self.runs} - {None})
        return values if len(values) > 1 else []

    def distinct(self, attribute: str) -> str:
        """The different values of a run attribute in this group, joined: ``"–"`` for none."""
        values = sorted({getattr(r, attribute) for r in self.runs} - {None})
        return ", ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in values) or "–"

    @property
    def status(self) -> str:
        counts = {s: sum(r.status == s for r in self.runs) for s in STATUSES}
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
    """The run's own command-line overrides (a resume's are in ``.hydra/resumed-*/``)."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    return [str(o) for o in yaml.safe_load(path.read_text()) or []]


def _yaml(path: Path) -> dict | None:
    try:
        loaded = yaml.load(path.read_text(), Loader=YAML_LOADER)
    except (OSError, yaml.YAMLError):
        return None
    return loaded if isinstance(loaded, dict) else None


def read_setup(run_dir: Path) -> dict[str, dict[str, object] | None]:
    """What the run was started with (``.hydra/config.yaml``; a resume keeps it), as ``Run``'s
    ``config`` (dotted keys less seeds, paths, hardware, views and labels:
    :func:`lazytrain.config_keys.in_configuration`) and ``settings`` (every key, and the
    config-group choices from ``.hydra/hydra.yaml``: ``{"model": "lazy_cnn"}``); ``None``s if
    there is no readable config."""
    config = _yaml(run_dir / ".hydra" / "config.yaml")
    if config is None:
        return {"config": None, "settings": None}
    hydra = _yaml(run_dir / ".hydra" / "hydra.yaml") or {}
    choices = ((hydra.get("hydra") or {}).get("runtime") or {}).get("choices") or {}
    settings = flatten(config)
    return {
        "config": {k: v for k, v in settings.items() if in_configuration(k)},
        "settings": settings | {k: v for k, v in choices.items() if not k.startswith("hydra/")},
    }


def read_lineage(run_dir: Path) -> dict[str, Any]:
    """The run's code, data and tags from its ``lineage.json`` (none for runs made before it)."""
    record = lineage.read(run_dir)
    return {
        "code": lineage.code_label(record),
        "data": lineage.data_label(record),
        "tags": [str(t) for t in (record or {}).get("tags") or []],
    }


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
    ea = read_events(str(run_dir), size_guidance={"scalars": 0, "histograms": 1})
    scalars = {tag: ea.Scalars(tag) for tag in ea.Tags()["scalars"]}
    val = sorted(scalars.get("val/acc", []), key=lambda e: e.step)
    # Epochs end at the steps of train/acc; validation logs at its epoch's step, and may run only
    # every n epochs (check_val_every_n_epoch): its points are placed by step, not counted.
    ends = sorted(e.step for e in scalars.get("train/acc", []))
    val_curve = {
        (bisect.bisect_left(ends, e.step) if ends else i) + 1: e.value for i, e in enumerate(val)
    }
    test = scalars.get("test/acc", [])
    epoch_seconds = scalars.get("time/epoch_seconds", [])
    run_seconds = scalars.get("time/run_seconds", [])
    if run_seconds:  # process start to test accuracy, resumed processes included
        wall = run_seconds[-1].value
    elif epoch_seconds:  # an unfinished run: its epochs so far
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
        **read_lineage(run_dir),
        **read_setup(run_dir),
        model=hparams.get("model"),
        hardware=hparams.get("hardware"),
        params=None if params is None else int(params),
        best_val_acc=max(val_curve.values(), default=None),
        test_acc=test[-1].value if test else None,
        epochs=max(len(ends), len(val)),
        wall_seconds=wall,
        epoch_seconds=statistics.median(e.value for e in epoch_seconds) if epoch_seconds else None,
        val_curve=val_curve,
        note="" if status == FINISHED else last_error(run_dir / "train.log"),
    )


def read_eventless_run(run_dir: Path, name: str) -> Run:
    """A job directory without events: a run that said it would not record (its result.json
    holds its final metrics), or a job that died before training."""
    result = read_result(run_dir) or {}
    if skipped := result.get("not_recorded"):
        status, note = NOT_RECORDED, "no " + " and no ".join(skipped)
    else:
        status = FAILED
        note = last_error(run_dir / "train.log") or "no events, no ERROR line in train.log"
    return Run(
        name,
        status,
        read_overrides(run_dir),
        test_acc=result.get("metrics", {}).get("test/acc"),
        note=note,
        **read_lineage(run_dir),
        **read_setup(run_dir),
    )


def walk_dirs(root: Path) -> list[Path]:
    """``root`` and every directory under it, symlinks followed as TensorBoard follows them, but
    each real directory once: under its real path where it has one below ``root``, else under
    the first link that reaches it (so a link to an ancestor cannot loop)."""
    seen: set[str] = set()
    found: list[Path] = []
    tops = [root]
    while tops:
        links: list[Path] = []
        for top in tops:
            for current, dirnames, _ in os.walk(top):  # does not descend into links: see below
                if os.path.realpath(current) in seen:
                    dirnames.clear()
                    continue
                seen.add(os.path.realpath(current))
                found.append(Path(current))
                dirnames.sort()
                links += [Path(current, d) for d in dirnames if os.path.islink(Path(current, d))]
        tops = links  # walked after every real directory, level by level
    return sorted(found)


def find_runs(root: Path) -> list[Run]:
    """Every run under ``root``: a directory with an event file, or a Hydra job directory
    (``.hydra/`` and ``train.log``) without one, i.e. a job that died before training."""
    root = Path(root)
    runs = []
    for directory in walk_dirs(root):
        name = root.name if directory == root else directory.relative_to(root).as_posix()
        if any(directory.glob(EVENTS_GLOB)):
            runs.append(read_run(directory, name))
        elif (directory / ".hydra").is_dir() and (directory / "train.log").is_file():
            runs.append(read_eventless_run(directory, name))
    return runs


def override_key(override: str) -> str:
    return override.lstrip("+~").split("=")[0]


def label_overrides(run: Run) -> set[str]:
    """The overrides that name the run's configuration: not ``seed``, not paths."""
    return {o for o in run.overrides or [] if in_configuration(override_key(o))}


def group_key(run: Run) -> tuple[str, ...]:
    """What makes two runs one configuration: the saved configuration where there is one, else
    the overrides (less seeds, paths, hardware and views); a run with neither is a group of its own."""
    if run.config is not None:
        return ("config", json.dumps(run.config, sort_keys=True, default=str))
    if run.overrides is None:
        return ("run", run.name)
    return ("overrides", *sorted(label_overrides(run)))


def ordered(overrides: set[str]) -> list[str]:
    """By key, so that a config group's choice comes before its fields: ``init=normal``,
    ``init.std=0.05``."""
    return sorted(overrides, key=lambda o: (override_key(o), o))


def join(overrides: set[str]) -> str:
    return ",".join(ordered(overrides))


def config_value(config: dict[str, object], key: str) -> str:
    if key not in config:
        return "(absent)"
    v = config[key]
    return v if isinstance(v, str) else json.dumps(v, default=str)


def unique_labels(groups: Sequence[Group]) -> None:
    """Make the labels unique, in place. Groups that would share a label are different
    configurations whose overrides do not tell them apart (their conf/ files changed between
    runs, or some runs saved no ``.hydra/config.yaml``): each gets the config values that differ
    between them, and where those are not known, its first run's directory."""
    by_label: dict[str, list[Group]] = {}
    for g in groups:
        by_label.setdefault(g.label, []).append(g)
    for label, same in by_label.items():
        if len(same) < 2:
            continue
        configs = [g.config for g in same if g.config is not None]
        keys = sorted({k for c in configs for k in c})
        differ = [k for k in keys if len({config_value(c, k) for c in configs}) > 1]
        for g in same:
            if g.config is not None and differ:
                g.label = (
                    f"{label} [{', '.join(f'{k}={config_value(g.config, k)}' for k in differ)}]"
                )
            elif g.config is None:
                g.label = f"{label} [{min(r.name for r in g.runs)}]"
    while True:  # ends: run names are unique, each pass tells the groups that collide apart
        counts: dict[str, int] = {}
        for g in groups:
            counts[g.label] = counts.get(g.label, 0) + 1
        if all(n == 1 for n in counts.values()):
            return
        for g in groups:
            if counts[g.label] > 1:
                g.label += f" [{min(r.name for r in g.runs)}]"


def sort_key(group: Group) -> tuple[float, float, str]:
    test, val = group.test_acc[0], group.val_acc[0]
    return (
        -test if test is not None else math.inf,
        -val if val is not None else math.inf,
        group.label,
    )


def common_overrides(runs: Sequence[Run]) -> list[str]:
    """The overrides every run has (every run with ``.hydra/overrides.yaml``)."""
    known = [set(r.overrides) for r in runs if r.overrides is not None]
    return ordered(set.intersection(*known)) if known else []


def group_runs(runs: Sequence[Run]) -> tuple[list[Group], list[str]]:
    """Groups of one configuration each, best mean test/acc first, and the overrides every run
    has (listed once instead of on every row).

    A group's label is the overrides all its runs share (less seeds, paths, hardware and views), less the common
    ones: ``init=normal,model=lazy_cnn``. No two groups share a label (:func:`unique_labels`).
    """
    by_key: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        by_key.setdefault(group_key(run), []).append(run)
    common = common_overrides(runs)
    groups = []
    for key, members in by_key.items():
        known = [label_overrides(r) for r in members if r.overrides is not None]
        if not known:
            label = members[0].name
        else:
            shared = set.intersection(*known)
            label = join(shared - set(common)) or (
                "(common overrides only)" if common else "(defaults)"
            )
        groups.append(Group(key, label, members))
    unique_labels(groups)
    return sorted(groups, key=sort_key), common


def pct(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def markdown(
    root: Path,
    runs: Sequence[Run],
    groups: Sequence[Group],
    common: list[str],
    where: Sequence[Where] = (),
) -> str:
    """The leaderboard (groups) and every run with its status, as markdown."""
    counts = {s: sum(r.status == s for r in runs) for s in STATUSES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    selected = " where " + ", ".join(f"`{w}`" for w in where) if where else ""
    lines = [f"**Leaderboard** of `{root}`{selected}: {len(runs)} runs ({summary})", ""]
    if common:
        unknown = sum(r.overrides is None for r in runs)
        of = f" (the {len(runs) - unknown} runs with .hydra/overrides.yaml)" if unknown else ""
        lines += [f"Common overrides{of}: " + " ".join(f"`{o}`" for o in common), ""]
    lines += [
        "Accuracies in %, mean ± std over the seeds of a group's finished runs (n).",
        "",
        "| rank | group | model | n | test acc | best val acc | params | epochs | s / epoch "
        "| s / run | hardware | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rank, g in enumerate(groups, 1):
        epochs = sorted({r.epochs for r in g.finished})
        lines.append(
            f"| {rank} | {g.label} | {g.distinct('model')} | {g.n} | {pct(*g.test_acc)} "
            f"| {pct(*g.val_acc)} | {g.distinct('params')} "
            f"| {', '.join(map(str, epochs)) or '–'} | {seconds(g.epoch_seconds)} "
            f"| {seconds(g.wall_seconds)} | {g.distinct('hardware')} | {g.status} |"
        )
    for g in groups:
        for attribute, what in (("code", "commits"), ("data", "data digests")):
            if g.mixed(attribute):
                lines += [
                    "",
                    f"Warning: group `{g.label}` mixes {what} "
                    + ", ".join(f"`{v}`" for v in g.mixed(attribute))
                    + ": its runs are one configuration, but not made by the same "
                    + ("code" if attribute == "code" else "data")
                    + " (see the runs' lineage.json).",
                ]
    merged = [g.label for g in groups if len({frozenset(label_overrides(r)) for r in g.runs}) > 1]
    if merged:
        lines += [
            "",
            "Runs with different overrides but the same configuration (`.hydra/config.yaml` "
            "less seeds, paths, hardware and views; e.g. a default set explicitly) are one group, "
            "labelled by the "
            "overrides they share: " + ", ".join(f"`{label}`" for label in merged) + ".",
        ]
    lines += [
        "",
        "| run | status | params | best val acc | test acc | epochs | wall s | code | tags | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in groups:
        for r in sorted(g.runs, key=lambda r: r.name):
            params = f"{r.params:,}" if r.params is not None else "–"
            epochs = r.epochs if r.status not in (FAILED, NOT_RECORDED) else "–"
            lines.append(
                f"| {r.name} | {r.status} | {params} | {pct(r.best_val_acc)} | {pct(r.test_acc)} "
                f"| {epochs} | {seconds(r.wall_seconds)} | {r.code or '–'} "
                f"| {', '.join(r.tags) or '–'} | {r.note.replace('|', '/')} |"
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
                "code": r.code,
                "data": r.data,
                "tags": " ".join(r.tags),
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


LEGEND_WIDTH, LEGEND_LINES = 40, 3  # characters per line of a legend entry, lines per entry
LINE_STYLES = ("-", "--", "-.", ":")  # after the 10 colours, so that 40 groups stay apart


def shorten(label: str, width: int = LEGEND_WIDTH, lines: int = LEGEND_LINES) -> str:
    """A label wrapped after its commas into at most ``lines`` lines of ``width`` characters:
    an override longer than a line keeps its start and end around ``…``, and what does not fit
    ends in ``…``."""
    wrapped = [""]
    for part in re.split(r"(?<=,)", label):
        if len(part) > width:
            part = part[: width // 2 - 1] + "…" + part[-(width - width // 2) :]
        if wrapped[-1] and len(wrapped[-1]) + len(part) > width:
            wrapped.append("")
        wrapped[-1] += part
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1] + "…"
    return "\n".join(wrapped).replace("$", r"\$")  # no mathtext


def figure(groups: Sequence[Group]) -> Figure:
    """val/acc per epoch: one line per group (mean over its runs), shaded from min to max.

    Every run with val/acc points counts, running ones too: the plot is for watching a sweep.
    The legend sits right of the axes, one entry per group: its rank in the leaderboard (which
    keeps entries apart however labels are shortened), its label shortened, its number of runs.
    The figure widens for the legend, and grows taller where the legend is taller than the
    axes: the axes never shrink (no "constrained_layout not applied")."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = 8.0, 5.0  # inches, without the legend
    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    shown = sum(any(r.val_curve for r in g.runs) for g in groups)
    alpha = 0.2 if shown <= 8 else 0.08  # many bands over each other turn grey
    for rank, g in enumerate(groups, 1):
        curves = [r.val_curve for r in g.runs if r.val_curve]
        if not curves:
            continue
        epochs = sorted(set().union(*curves))  # where any run validated
        at = [[100 * c[e] for c in curves if e in c] for e in epochs]
        mean = [statistics.fmean(v) for v in at]
        style = {"color": f"C{(rank - 1) % 10}", "ls": LINE_STYLES[(rank - 1) // 10 % 4]}
        label = f"{rank}. {shorten(g.label)} (n={len(curves)})"
        lows, highs = [min(v) for v in at], [max(v) for v in at]
        if len(epochs) == 1:  # validated once (at its last epoch): a dot and a min-max bar
            ax.plot(epochs, mean, marker="o", markersize=6, label=label, **style)
            ax.vlines(epochs, lows, highs, alpha=0.5, **style)
            continue
        ax.plot(epochs, mean, marker="o", markersize=3, label=label, **style)
        ax.fill_between(epochs, lows, highs, alpha=alpha, lw=0, **style)
    ax.set(xlabel="epoch", ylabel="val/acc (%)", title="val/acc: mean over seeds, min–max band")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.xaxis.get_major_locator().set_params(integer=True)
        legend = fig.legend(
            loc="outside right upper", fontsize="small", title="rank. group (n runs)",
            title_fontsize="small", alignment="left",
        )  # fmt: skip
        box = legend.get_window_extent(fig.canvas.get_renderer())
        fig.set_size_inches(width + box.width / fig.dpi, max(height, box.height / fig.dpi + 0.3))
    else:
        ax.text(0.5, 0.5, "no val/acc logged yet", ha="center", transform=ax.transAxes)
    return fig


def plot(path: Path, groups: Sequence[Group]) -> None:
    figure(groups).savefig(path)


def compare(root: Path, out: Path | None = None, where: Sequence[Where] = ()) -> str:
    """Read, group and rank the runs under ``root`` (those matching every ``where``); write
    ``leaderboard.csv`` and ``compare.png`` into ``out`` (default ``root``); return the markdown
    leaderboard."""
    root = Path(root)
    runs = find_runs(root)
    if not runs:
        raise FileNotFoundError(f"no runs under {root} (no {EVENTS_GLOB}, no .hydra/ + train.log)")
    if where:
        runs = select(runs, where, {r.name: r.settings for r in runs if r.settings is not None})
        if not runs:
            shown = " ".join(f"--where {w}" for w in where)
            raise FileNotFoundError(f"no run under {root} matches {shown}")
    groups, common = group_runs(runs)
    out = Path(out) if out is not None else root
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "leaderboard.csv", groups)
    plot(out / "compare.png", groups)
    return markdown(root, runs, groups, common, where)
