"""scripts/compare.py: runs read back from their events, grouped over seeds, ranked; a real sweep
(and a crashed job) end to end; the sweep presets (grid_seeds, parallel, optuna)."""

from __future__ import annotations

import csv
import os
import re
import shutil
import statistics
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from matplotlib.image import imread
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

from lazytrain.compare import (
    FAILED,
    FINISHED,
    INCOMPLETE,
    LEGEND_LINES,
    LEGEND_WIDTH,
    Group,
    Run,
    compare,
    figure,
    find_runs,
    group_runs,
    label_overrides,
    shorten,
)
from lazytrain.config import compose_config
from lazytrain.tracking import log_hparams

from .helpers import CNN_PARAMS, FEW_BATCHES, MLP_PARAMS, read_events, run_script

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JOBLIB_MISSING = "hydra-joblib-launcher missing: pip install -e '.[sweep]'"
OPTUNA_MISSING = "hydra-optuna-sweeper missing: pip install -e '.[optuna]'"
SHAPE_ERROR = "ShapeMismatchError: layer 3 (Linear) got input of shape [32, 256]"


def fake_run(
    root: Path,
    overrides: list[str] | None,
    val: list[float],
    test: float | None = None,
    params: int = 1000,
    name: str | None = None,
    hardware: str = "CPU, 2 cores",
    config: str | None = None,
) -> Path:
    """A run directory as train.py leaves it: overrides (and the saved config, YAML), val/acc
    and time per epoch (a slow first epoch), test/acc, the run's time and the hparams row at the
    end."""
    run_dir = root / (name or ",".join(sorted(overrides or [])))
    if overrides is not None:
        (run_dir / ".hydra").mkdir(parents=True)
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if config is not None:
        (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        (run_dir / ".hydra" / "config.yaml").write_text(config)
    with SummaryWriter(run_dir) as writer:
        for epoch, acc in enumerate(val, 1):
            writer.add_scalar("val/acc", acc, 10 * epoch)
            writer.add_scalar("time/epoch_seconds", 3.0 if epoch == 1 else 1.5, 10 * epoch)
        if test is not None:
            writer.add_scalar("test/acc", test, 10 * len(val))
            # the whole run: its epochs plus 4 s of start-up and test
            writer.add_scalar("time/run_seconds", 1.5 * len(val) + 5.5, 10 * len(val))
            model = next((o.split("=")[1] for o in overrides or [] if o.startswith("model=")), None)
            row = {"params": params, "hardware": hardware} | ({"model": model} if model else {})
            log_hparams(writer, row, {"test/acc": test}, root)
    return run_dir


def failed_run(root: Path, name: str, overrides: list[str], *errors: str) -> None:
    """What Hydra leaves of a job that died before training: .hydra/ and train.log, no events."""
    run_dir = root / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    lines = ["[2024-05-01 12:00:00,000][lazytrain.train][INFO] - dry run on [32, 1, 28, 28]"]
    lines += [f"[2024-05-01 12:00:01,000][lazytrain.train][ERROR] - {e}" for e in errors]
    (run_dir / "train.log").write_text("\n".join(lines) + "\n")


@pytest.fixture
def sweep(tmp_path) -> Path:
    """model a over 3 seeds, model b over 2 finished seeds and one still running, a crashed c."""
    common = ["trainer.max_epochs=3"]
    for seed, test in enumerate([0.80, 0.82, 0.84]):
        fake_run(tmp_path, ["model=a", f"seed={seed}", *common], [0.7, 0.8, test + 0.01], test)
    for seed, test in enumerate([0.85, 0.87]):
        overrides = ["model=b", f"seed={seed}", *common]
        fake_run(tmp_path, overrides, [0.6, test - 0.01], test, 2000, hardware="NVIDIA H100")
    fake_run(tmp_path, ["model=b", "seed=2", *common], [0.5])
    name = "model=c,seed=0,trainer.max_epochs=3"
    failed_run(tmp_path, name, ["model=c", "seed=0", *common], "DataError: first", SHAPE_ERROR)
    return tmp_path


def test_runs_are_read_with_their_status(sweep):
    runs = {r.name: r for r in find_runs(sweep)}
    assert len(runs) == 7
    a0 = runs["model=a,seed=0,trainer.max_epochs=3"]
    assert (a0.status, a0.epochs, a0.params) == (FINISHED, 3, 1000)
    assert (a0.model, a0.hardware) == ("a", "CPU, 2 cores")
    assert a0.best_val_acc == pytest.approx(0.81) and a0.test_acc == pytest.approx(0.80)
    assert a0.wall_seconds == pytest.approx(10.0)  # time/run_seconds: start to test accuracy
    assert a0.epoch_seconds == pytest.approx(1.5)  # their median: the slow first epoch is noise
    running = runs["model=b,seed=2,trainer.max_epochs=3"]
    assert (running.status, running.epochs, running.test_acc) == (INCOMPLETE, 1, None)
    assert running.wall_seconds == pytest.approx(3.0)  # unfinished: the sum of its epochs
    assert (running.model, running.hardware, running.params) == (None, None, None)  # no hparams yet
    crashed = runs["model=c,seed=0,trainer.max_epochs=3"]
    assert crashed.status == FAILED and crashed.note == SHAPE_ERROR  # the last ERROR line


def test_validation_every_n_epochs_counts_and_plots_at_its_epochs(tmp_path):
    """check_val_every_n_epoch=2 (speedrun=cnn_91 validates once, at its last epoch): 4 epochs
    trained, validated after epochs 2 and 4, not "2 epochs" plotted at 1 and 2."""
    with SummaryWriter(tmp_path / "run") as writer:
        for epoch in range(1, 5):
            writer.add_scalar("train/acc", 0.5 + epoch / 10, 10 * epoch)
            if epoch % 2 == 0:
                writer.add_scalar("val/acc", 0.6 + epoch / 10, 10 * epoch)
        writer.add_scalar("test/acc", 0.95, 40)
    (run,) = find_runs(tmp_path)
    assert run.epochs == 4 and run.best_val_acc == pytest.approx(1.0)
    assert run.val_curve == pytest.approx({2: 0.8, 4: 1.0})
    fig = figure([Group(("run",), "run", [run])])
    assert list(fig.axes[0].lines[0].get_xdata()) == [2, 4]


def test_groups_over_seeds_rank_by_mean_test_acc(sweep):
    groups, common = group_runs(find_runs(sweep))
    assert common == ["trainer.max_epochs=3"]
    assert [g.label for g in groups] == ["model=b", "model=a", "model=c"]
    b, a, c = groups
    assert (b.n, len(b.runs), a.n, c.n) == (2, 3, 3, 0)  # the running seed is not in b's mean
    assert a.test_acc == pytest.approx((0.82, 0.02))
    assert b.test_acc == pytest.approx((0.86, statistics.stdev([0.85, 0.87])))
    assert a.val_acc == pytest.approx((0.83, 0.02))
    assert c.test_acc == (None, None)
    assert b.status == "2 finished, 1 running/incomplete" and c.status == "1 failed"


def test_a_tie_on_test_acc_goes_to_val_acc_and_one_seed_has_no_std(tmp_path):
    fake_run(tmp_path, ["model=a"], [0.70], 0.80)
    fake_run(tmp_path, ["model=b"], [0.75], 0.80)
    groups, _ = group_runs(find_runs(tmp_path))
    assert [g.label for g in groups] == ["model=b", "model=a"]
    assert groups[0].test_acc == pytest.approx((0.80, None))


def test_a_run_without_overrides_is_its_own_group(tmp_path):
    fake_run(tmp_path, None, [0.7], 0.7, name="copied-run")
    fake_run(tmp_path, ["seed=0"], [0.8], 0.8)
    fake_run(tmp_path, ["seed=1"], [0.9], 0.9)
    groups, _ = group_runs(find_runs(tmp_path))
    assert [(g.label, g.n) for g in groups] == [("(defaults)", 2), ("copied-run", 1)]


def test_leaderboard_csv_and_plot(sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    text = compare(sweep, out)
    assert text.startswith(
        f"**Leaderboard** of `{sweep}`: 7 runs (5 finished, 1 running/incomplete, 1 failed)\n"
    )
    assert "Common overrides: `trainer.max_epochs=3`" in text
    assert (
        "| 1 | model=b | b | 2 | 86.00 ± 1.41 | 85.00 ± 1.41 | 2,000 | 2 | 2.2 | 8.5 | NVIDIA H100 "
        "| 2 finished, 1 running/incomplete |" in text
    )  # s / epoch: the median over the finished runs' medians (3.0 and 1.5 each); s / run theirs
    # of time/run_seconds
    assert (
        "| 2 | model=a | a | 3 | 82.00 ± 2.00 | 83.00 ± 2.00 | 1,000 | 3 | 1.5 | 10.0 | CPU, 2 cores "
        "| 3 finished |" in text
    )
    assert "| 3 | model=c | – | 0 | – | – | – | – | – | – | – | 1 failed |" in text
    assert (
        f"| model=c,seed=0,trainer.max_epochs=3 | failed | – | – | – | – | – | – | – | {SHAPE_ERROR} |"
        in text
    )
    assert (
        "| model=b,seed=2,trainer.max_epochs=3 | running/incomplete | – | 50.00 | – | 1 | 3.0 |"
        in text
    )

    with (out / "leaderboard.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["rank"], r["group"], r["status"]) for r in rows] == [
        ("1", "model=b", FINISHED), ("1", "model=b", FINISHED), ("1", "model=b", INCOMPLETE),
        ("2", "model=a", FINISHED), ("2", "model=a", FINISHED), ("2", "model=a", FINISHED),
        ("3", "model=c", FAILED),
    ]  # fmt: skip
    b0 = rows[0]
    assert b0["run"] == "model=b,seed=0,trainer.max_epochs=3" and float(
        b0["test_acc"]
    ) == pytest.approx(0.85)
    assert b0["group_n"] == "2" and float(b0["group_test_acc_mean"]) == pytest.approx(0.86)
    assert (b0["model"], b0["hardware"], float(b0["epoch_seconds"])) == ("b", "NVIDIA H100", 2.25)
    assert rows[2]["test_acc"] == "" and rows[6]["note"] == SHAPE_ERROR
    assert rows[6]["overrides"] == "model=c seed=0 trainer.max_epochs=3"

    png = out / "compare.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    height, width = imread(png).shape[:2]
    assert height == 600 and width > 960  # 8 x 5 inches at 120 dpi, and the legend on the right
    assert not (sweep / "leaderboard.csv").exists()  # --out, not the sweep, got the files


def test_cli_prints_the_leaderboard_and_fails_on_an_empty_dir(sweep, tmp_path_factory):
    proc = run_script("compare.py", str(sweep), cwd=sweep)
    assert proc.returncode == 0, proc.stderr
    assert "| 1 | model=b | b | 2 | 86.00 ± 1.41 |" in proc.stdout
    assert (sweep / "leaderboard.csv").is_file() and (sweep / "compare.png").is_file()
    empty = tmp_path_factory.mktemp("empty")
    proc = run_script("compare.py", str(empty), cwd=empty)
    assert proc.returncode == 1 and f"error: no runs under {empty}" in proc.stderr


def labels_name_exactly_what_is_not_common(groups: list[Group], common: list[str]) -> None:
    """Unique labels; each is the overrides (but seed and paths) its runs share, less the
    common ones; groups of runs whose overrides differ are one configuration (asserted by the
    callers)."""
    assert len({g.label for g in groups}) == len(groups), [g.label for g in groups]
    for g in groups:
        shared = set.intersection(*(label_overrides(r) for r in g.runs)) - set(common)
        assert g.label.split(" [")[0] in (
            ",".join(sorted(shared, key=lambda o: (o.split("=")[0], o))),
            "(defaults)" if not shared and not common else "(common overrides only)",
        )


# The mix: a grid_seeds sweep cut to 2 epochs, and two runs made by hand.
GRID = [
    [f"model={m}", f"init={i}", f"seed={s}", "sweep=grid_seeds", "trainer.max_epochs=2"]
    for m in ("lazy_mlp", "lazy_cnn")
    for i in ("xavier", "normal")
    for s in (0, 1)
]
BY_HAND = [["model=lazy_cnn", "init=normal", "init.std=0.05"], ["optimizer=sgd"]]


def test_common_means_every_run_and_labels_tell_configurations_apart():
    runs = [Run(",".join(o), FINISHED, o, test_acc=0.5) for o in GRID + BY_HAND]
    groups, common = group_runs(runs)
    assert common == []  # init.std=0.05 and optimizer=sgd were one run's only: not common
    assert sorted(g.label for g in groups) == [
        "init=normal,init.std=0.05,model=lazy_cnn",  # by key: init's choice before init.std
        # the sweep preset ran them (sweep=grid_seeds): not part of what they are
        "init=normal,model=lazy_cnn,trainer.max_epochs=2",
        "init=normal,model=lazy_mlp,trainer.max_epochs=2",
        "init=xavier,model=lazy_cnn,trainer.max_epochs=2",
        "init=xavier,model=lazy_mlp,trainer.max_epochs=2",
        "optimizer=sgd",
    ]
    assert sorted(g.n for g in groups) == [1, 1, 2, 2, 2, 2]  # the sweep's two seeds each
    labels_name_exactly_what_is_not_common(groups, common)

    shared = ["data.root=/data", "trainer.max_epochs=2"]  # where every run has them, they are
    runs = [Run(str(i), FINISHED, [*o, *shared]) for i, o in enumerate(BY_HAND + [["seed=1"]])]
    groups, common = group_runs(runs)
    assert common == shared
    assert sorted(g.label for g in groups) == [
        "(common overrides only)", "init=normal,init.std=0.05,model=lazy_cnn", "optimizer=sgd",
    ]  # fmt: skip


def composed(*overrides: str) -> str:
    """conf/train.yaml composed with these overrides, saved as Hydra saves .hydra/config.yaml."""
    return OmegaConf.to_yaml(compose_config(overrides))


def test_runs_of_one_configuration_are_one_group_whatever_their_overrides(tmp_path):
    """init=xavier is the default: no override, init=xavier, another seed or data root are one
    configuration (the saved configs agree but for seed and paths); init=normal is not."""
    defaults, normal = composed(), composed("init=normal")
    fake_run(tmp_path, [], [0.80], 0.80, name="a", config=defaults)
    fake_run(tmp_path, ["seed=1"], [0.82], 0.82, name="b", config=composed("seed=1"))
    xavier = composed("init=xavier", "data.root=/elsewhere", "output_dir=/x")
    fake_run(
        tmp_path, ["init=xavier", "data.root=/elsewhere"], [0.84], 0.84, name="c", config=xavier
    )
    fake_run(tmp_path, ["init=normal"], [0.7], 0.7, name="d", config=normal)
    fake_run(
        tmp_path,
        ["init=normal", "seed=3"],
        [0.7],
        0.72,
        name="e",
        config=composed("init=normal", "seed=3"),
    )
    runs = find_runs(tmp_path)
    groups, common = group_runs(runs)
    assert common == []
    assert [(g.label, [r.name for r in g.runs]) for g in groups] == [
        ("(defaults)", ["a", "b", "c"]), ("init=normal", ["d", "e"]),
    ]  # fmt: skip
    assert groups[0].test_acc == pytest.approx((0.82, 0.02))
    labels_name_exactly_what_is_not_common(groups, common)
    text = compare(tmp_path)
    assert "the same configuration (`.hydra/config.yaml` less seeds, paths, hardware" in text


def test_runs_that_differ_only_in_what_is_not_the_experiment_are_one_group(tmp_path):
    """Hardware, the evaluation batch, logging, a callback's switch: lazytrain.config_keys
    says they do not make another experiment, for compare.py as for run names and HPARAMS."""
    fake_run(tmp_path, [], [0.80], 0.80, name="a", config=composed())
    elsewhere = [
        "trainer.accelerator=cpu", "trainer.devices=1", "data.eval_batch_size=512",
        "trainer.log_every_n_steps=5", "callbacks.tracking.histograms=false",
    ]  # fmt: skip
    fake_run(tmp_path, elsewhere, [0.82], 0.82, name="b", config=composed(*elsewhere))
    longer = ["trainer.max_epochs=40"]  # how long it trains is part of the experiment
    fake_run(tmp_path, longer, [0.84], 0.84, name="c", config=composed(*longer))
    groups, _ = group_runs(find_runs(tmp_path))
    assert sorted([r.name for r in g.runs] for g in groups) == [["a", "b"], ["c"]]


def test_same_overrides_on_different_configurations_get_different_labels(tmp_path):
    """conf/ edited between two runs of model=lazy_cnn, and one run without a saved config:
    three configurations, three labels, none of them a bare model=lazy_cnn shared by two."""
    cnn = composed("model=lazy_cnn")
    wider = cnn.replace("  channels:\n  - 6\n  - 16\n", "  channels:\n  - 8\n  - 32\n")
    assert wider != cnn
    for name, config in (("old", cnn), ("new", wider), ("copied", None)):
        fake_run(tmp_path, ["model=lazy_cnn"], [0.8], 0.8, name=name, config=config)
    fake_run(tmp_path, ["model=lazy_mlp"], [0.8], 0.8, name="mlp", config=composed())
    groups, _ = group_runs(find_runs(tmp_path))
    assert sorted(g.label for g in groups) == [
        "model=lazy_cnn [copied]",
        "model=lazy_cnn [model.channels=[6, 16]]",
        "model=lazy_cnn [model.channels=[8, 32]]",
        "model=lazy_mlp",
    ]


def test_symlinked_runs_are_read_once_and_links_do_not_loop(tmp_path):
    root, elsewhere = tmp_path / "outputs", tmp_path / "elsewhere"
    fake_run(root / "multirun" / "sweep", ["seed=0"], [0.8], 0.8)
    fake_run(elsewhere, ["seed=1"], [0.9], 0.9)
    (root / "linked").symlink_to(elsewhere / "seed=1")  # a run kept elsewhere, linked in
    (root / "latest").symlink_to(root / "multirun" / "sweep")  # the same sweep a second way
    (root / "multirun" / "up").symlink_to(root)  # a loop
    (root / "dangling").symlink_to(tmp_path / "gone")
    names = ["linked", "multirun/sweep/seed=0"]  # a run reachable twice keeps its real path
    assert [r.name for r in find_runs(root)] == names
    (tmp_path / "outputs-link").symlink_to(root)  # the directory given is a link itself
    assert [r.name for r in find_runs(tmp_path / "outputs-link")] == names


def test_shortened_labels_fit_and_stay_apart_in_the_legend():
    label = "model=lazy_cnn,init=normal,init.std=0.05,optimizer.lr=0.003,ckpt_path=" + "/x" * 40
    short = shorten(label)
    assert short == (
        "model=lazy_cnn,init=normal,\n"
        "init.std=0.05,optimizer.lr=0.003,\n"
        "ckpt_path=/x/x/x/x/…/x/x/x/x/x/x/x/x/x/x"
    )  # lines of 40 characters at most; the path keeps its start and end
    assert shorten("a=$1") == r"a=\$1"  # no mathtext
    long = ",".join(f"optimizer.param{i}={i}" for i in range(20))
    lines = shorten(long).splitlines()
    assert len(lines) == LEGEND_LINES and lines[-1].endswith("…")
    assert all(len(line) <= LEGEND_WIDTH for line in lines)

    curve = {1: 0.5, 2: 0.6, 3: 0.7}
    groups = [
        Group((str(i),), f"{long},optimizer.lr={i}", [Run(str(i), FINISHED, val_curve=curve)])
        for i in range(24)
    ]  # 24 labels that only differ past what the legend shows
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = figure(groups)
        fig.canvas.draw()
    assert not [str(w.message) for w in caught]  # e.g. "constrained_layout not applied"
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(set(texts)) == 24 and texts[0].startswith("1. optimizer.param0=0,")
    ax = fig.axes[0].get_window_extent()
    legend = fig.legends[0].get_window_extent()
    assert ax.width / fig.dpi >= 5 and ax.height / fig.dpi >= 3.5  # not squashed
    assert legend.x0 >= ax.x1 and legend.y0 >= 0  # outside the axes, inside the figure
    assert legend.x1 <= fig.bbox.width and legend.y1 <= fig.bbox.height


def hydra_config(*overrides: str):
    return compose_config(overrides, hydra=True).hydra


def test_grid_seeds_preset_sweeps_model_init_and_seed():
    hydra = hydra_config("sweep=grid_seeds")
    assert hydra.mode.name == "MULTIRUN"
    assert dict(hydra.sweeper.params) == {
        "model": "lazy_mlp,lazy_cnn",
        "init": "xavier,normal",
        "seed": "0,1,2",
    }


def test_parallel_preset_uses_the_joblib_launcher():
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason=JOBLIB_MISSING)
    hydra = hydra_config("launcher=parallel")
    assert hydra.mode.name == "MULTIRUN"
    assert hydra.launcher._target_.endswith("JoblibLauncher") and hydra.launcher.n_jobs == 2


def real_multirun(data_root: Path, cwd: Path, *overrides: str) -> tuple[Path, str]:
    """``train.py -m`` on real Fashion-MNIST for a few batches into ``cwd/sweep``; the sweep
    directory and the command's output."""
    sweep = cwd / "sweep"
    proc = run_script(
        "train.py", "-m", *overrides, f"data.root={data_root}", f"hydra.sweep.dir={sweep}",
        *FEW_BATCHES, cwd=cwd,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return sweep, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def real_sweep(real_data_root, tmp_path_factory) -> Path:
    """2 models x 2 seeds on real Fashion-MNIST for a few batches, plus a job that crashed."""
    cwd = tmp_path_factory.mktemp("compare")
    sweep, _ = real_multirun(real_data_root, cwd, "model=lazy_mlp,lazy_cnn", "seed=0,1")
    failed_run(sweep, "model=bad,seed=0", ["model=bad", "seed=0", *FEW_BATCHES], SHAPE_ERROR)
    return sweep


@pytest.mark.slow
def test_compare_a_real_sweep(real_sweep, tmp_path):
    proc = run_script("compare.py", str(real_sweep), "--out", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert ": 5 runs (4 finished, 1 failed)" in text
    cuda = torch.cuda.is_available()  # accelerator=auto
    hardware = (
        torch.cuda.get_device_name() if cuda else f"CPU, {len(os.sched_getaffinity(0))} cores"
    )
    assert "`trainer.max_epochs=2`" in text.split("Common overrides:")[1].splitlines()[0]
    with (tmp_path / "leaderboard.csv").open() as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    assert set(rows) == {
        "model=lazy_cnn,seed=0", "model=lazy_cnn,seed=1", "model=lazy_mlp,seed=0",
        "model=lazy_mlp,seed=1", "model=bad,seed=0",
    }  # fmt: skip
    for model, params in (("lazy_mlp", str(MLP_PARAMS)), ("lazy_cnn", str(CNN_PARAMS))):
        seeds = [rows[f"model={model},seed={s}"] for s in (0, 1)]
        events = [read_events(real_sweep / r["run"]).scalars for r in seeds]
        tests = [e["test/acc"][-1][1] for e in events]
        for row, test, scalars in zip(seeds, tests, events, strict=True):
            assert (row["status"], row["params"], row["epochs"]) == (FINISHED, params, "2")
            assert (row["model"], row["hardware"]) == (model, hardware)
            assert float(row["test_acc"]) == pytest.approx(test)
            # the whole run (start-up, two epochs, test), as the run itself recorded it
            ((_, run_seconds),) = scalars["time/run_seconds"]
            assert float(row["wall_seconds"]) == pytest.approx(run_seconds, abs=1e-3)
            epochs = sum(v for _, v in scalars["time/epoch_seconds"])
            assert 0 < float(row["epoch_seconds"]) < epochs < run_seconds
        assert float(seeds[0]["group_test_acc_mean"]) == pytest.approx(statistics.fmean(tests))
        assert float(seeds[0]["group_test_acc_std"]) == pytest.approx(statistics.stdev(tests))
        n, mean = seeds[0]["group_n"], 100 * statistics.fmean(tests)
        assert f"| model={model} | {model} | {n} | {mean:.2f} ± " in text
        assert re.search(
            rf"\| {int(params):,} \| 2 \| [\d.]+ \| [\d.]+ \| {hardware} \| 2 finished \|", text
        )
    assert (rows["model=bad,seed=0"]["status"], rows["model=bad,seed=0"]["rank"]) == (FAILED, "3")
    assert f"| model=bad,seed=0 | failed | – | – | – | – | – | – | – | {SHAPE_ERROR} |" in text
    ranked = sorted({(int(r["rank"]), r["group"]) for r in rows.values()})
    means = [float(rows[f"{g},seed=0"]["group_test_acc_mean"]) for _, g in ranked[:2]]
    assert means == sorted(means, reverse=True)
    assert (tmp_path / "compare.png").read_bytes()[:8] == PNG_SIGNATURE


def real_run(data_root: Path, run_dir: Path, *overrides: str) -> Path:
    """``train.py`` (a single run) on real Fashion-MNIST for a few batches into ``run_dir``."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    proc = run_script(
        "train.py", *overrides, f"data.root={data_root}", f"hydra.run.dir={run_dir}",
        *FEW_BATCHES, cwd=run_dir.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return run_dir


@pytest.mark.slow
def test_compare_sweeps_and_single_runs_mixed(real_data_root, real_sweep, tmp_path):
    """outputs/ as a user has it: a sweep (2 models x 2 seeds, a crashed job), two runs by hand
    with other overrides, one of them kept elsewhere and linked in, the sweep linked twice."""
    outputs = tmp_path / "outputs"
    shutil.copytree(real_sweep, outputs / "multirun" / "sweep")
    real_run(real_data_root, outputs / "runs" / "std", "init=normal", "init.std=0.05")
    real_run(real_data_root, tmp_path / "elsewhere" / "sgd", "optimizer=sgd")
    (outputs / "sgd").symlink_to(tmp_path / "elsewhere" / "sgd")
    (outputs / "latest").symlink_to(outputs / "multirun" / "sweep")
    (outputs / "multirun" / "sweep" / "up").symlink_to(outputs)

    runs = find_runs(outputs)
    sweep = [
        f"multirun/sweep/model={m},seed={s}"
        for m in ("bad", "lazy_cnn", "lazy_mlp")
        for s in (0, 1)
    ]
    assert [r.name for r in runs] == [*sweep[:1], *sweep[2:], "runs/std", "sgd"]  # each once
    groups, common = group_runs(runs)
    # data.root is on every run but the crashed one, which failed_run made without it
    assert (
        common == sorted(FEW_BATCHES) == sorted(set.intersection(*(set(r.overrides) for r in runs)))
    )
    assert {g.label: [r.name for r in g.runs] for g in groups} == {
        "model=lazy_mlp": sweep[4:],
        "model=lazy_cnn": sweep[2:4],
        "init=normal,init.std=0.05": ["runs/std"],
        "optimizer=sgd": ["sgd"],
        "model=bad": sweep[:1],
    }
    labels_name_exactly_what_is_not_common(groups, common)
    # three configurations of lazy_mlp: their saved configs differ (init, optimizer)
    configs = {g.label: g.config for g in groups}
    assert configs["init=normal,init.std=0.05"]["init.std"] == 0.05
    assert configs["optimizer=sgd"]["optimizer._target_"] == "torch.optim.SGD"
    assert (
        len(
            {
                str(configs[k])
                for k in ("model=lazy_mlp", "init=normal,init.std=0.05", "optimizer=sgd")
            }
        )
        == 3
    )

    out = tmp_path / "report"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = compare(outputs, out)
    assert not [str(w.message) for w in caught if "layout" in str(w.message)]
    assert ": 7 runs (6 finished, 1 failed)" in text
    assert "Common overrides: " + " ".join(f"`{o}`" for o in sorted(FEW_BATCHES)) in text
    assert "| sgd | finished |" in text and "| runs/std | finished |" in text
    with (out / "leaderboard.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["run"] for r in rows) == sorted(r.name for r in runs)
    assert imread(out / "compare.png").shape[0] == 600  # the legend fits beside the axes


def test_optuna_preset_searches_lr_and_weight_decay():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason=OPTUNA_MISSING)
    hydra = hydra_config("hparams_search=optuna")
    assert (
        hydra.sweeper._target_.endswith("OptunaSweeper") and hydra.sweeper.direction == "maximize"
    )
    assert set(hydra.sweeper.params) == {"optimizer.lr", "optimizer.weight_decay"}
