"""scripts/bench.py runs end to end on a tiny setting and prints its table (a smoke test: the
numbers themselves are a benchmark's business, never a test's)."""

from __future__ import annotations

import re
import subprocess

import pytest

from lazytrain.hparams_table import TABLE_FILE

from .helpers import ROOT, run_script


def test_bench_prints_its_table(real_data_root, tmp_path):
    proc = run_script(
        "bench.py", "--models", "lazy_mlp", "--rounds", "1", "--limit-batches", "3",
        "--startup-runs", "1", "--device", "cpu", "--data-root", str(real_data_root), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    speed = r"[\d,]+ \([\d,]+–[\d,]+\)"  # samples/s: median (min–max)
    row = re.search(
        rf"^\| lazy_mlp \| {speed} \| {speed} \| {speed} \| {speed} \| [\d.]+ \| [\d.]+ \| [\d.]+ "
        r"\| \d+ ms \|$",
        proc.stdout,
        re.M,
    )  # (a), (b), (d) bare Lightning, (c) lazytrain, d/b, c/b, c/a, dry run
    assert row, proc.stdout[-2000:]
    startup = re.search(
        r"first training step \(`python scripts/train.py`\): median ([\d.]+) s over 1 starts: "
        r"importing torch and Lightning ([\d.]+) s, lazytrain's share .* ([\d.]+) s\.$",
        proc.stdout,
        re.M,
    )
    assert startup, proc.stdout[-2000:]
    first, imports, ours = map(float, startup.groups())
    assert 0 < imports < first and ours == pytest.approx(first - imports, abs=0.011)
    assert list(tmp_path.iterdir()) == []  # a benchmark writes nothing but its output


@pytest.mark.slow
def test_time_to_accuracy_races_each_speedrun_against_its_recipe(
    real_data_root, tmp_path, tmp_path_factory
):
    readme = tmp_path_factory.mktemp("docs") / "README.md"
    kept = "| `speedrun=cnn_91` | ≥ 91.0 | 3 | 91.60 | 1.0 s | `experiment=cnn_recipe` | 91.70 | 2.0 s | 0.50× | 2026-01-01 |"
    readme.write_text(
        f"# intro\n<!-- speedrun:start -->\nold table\n{kept}\n<!-- speedrun:end -->\nrest\n"
    )
    few = [
        "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
    ]  # fmt: skip
    runs_dir = tmp_path_factory.mktemp("kept") / "runs"
    speedruns = ("mlp_89", "convnet_93", "convnet_94")  # the last two race one recipe
    bench = (
        "bench.py", "--time-to-accuracy", "--speedruns", *speedruns, "--seeds", "1",
        "--device", "cpu", "--data-root", str(real_data_root), "--write-readme", "--readme", str(readme),
        "--keep", str(runs_dir), "--extra", *few,
    )  # fmt: skip
    proc = run_script(*bench, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # each reference recipe runs once, and the speedruns racing it right after it
    recipes = [
        "experiment=mlp_recipe", "speedrun=mlp_89",
        "experiment=convnet_recipe", "speedrun=convnet_93", "speedrun=convnet_94",
    ]  # fmt: skip
    ran = re.findall(r"^seed 0: (\S+) [\d.]+% in [\d.]+ s$", proc.stdout, re.M)
    assert ran == recipes, proc.stdout[-2000:]
    rows = [
        rf"^\| `speedrun={speedrun}` \| ≥ {target} \| 1 \| [\d.]+ \| [\d.]+ s "
        rf"\| `experiment={reference}` \| [\d.]+ \| [\d.]+ s \| [\d.]+× \| \d{{4}}-\d\d-\d\d \|$"
        for speedrun, reference, target in (
            ("mlp_89", "mlp_recipe", "89.5"),
            ("convnet_93", "convnet_recipe", "93.5"),
            ("convnet_94", "convnet_recipe", "94.0"),
        )
    ]
    for row in rows:
        assert re.search(row, proc.stdout, re.M), proc.stdout[-2000:]
    # --write-readme: the block holds the new row, and the row of the speedrun not run is kept
    text = readme.read_text()
    assert text.startswith("# intro\n<!-- speedrun:start -->\nWhole runs") and text.endswith(
        "<!-- speedrun:end -->\nrest\n"
    )
    assert "old table" not in text and kept in text
    assert all(re.search(row, text, re.M) for row in rows)
    assert list(tmp_path.iterdir()) == []

    # --keep: the runs stay, each a whole run that compare.py ranks under its own recipe, and
    # the project's HPARAMS table lists them all
    runs = sorted(p.name for p in runs_dir.iterdir() if p.is_dir())
    assert runs == ["convnet_93-0", "convnet_94-0", "convnet_recipe-0", "mlp_89-0", "mlp_recipe-0"]
    assert (runs_dir / TABLE_FILE).is_file()
    board = run_script(
        "compare.py", str(runs_dir), "--out", str(tmp_path_factory.mktemp("board")), cwd=tmp_path
    )
    assert board.returncode == 0, board.stderr[-3000:]
    for recipe in recipes:
        assert re.search(rf"^\| \d \| {recipe} \|.* 1 finished \|$", board.stdout, re.M)
    # a second bench into the same place is refused before it runs anything; the runs stay
    before = {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*")}
    again = run_script(*bench, cwd=tmp_path)
    assert again.returncode != 0 and f"--keep {runs_dir}: not an empty directory" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*")} == before


@pytest.mark.slow
def test_baseline_runs_the_bench_over_a_revision_and_this_checkout(real_data_root, tmp_path):
    worktrees = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True)
    proc = run_script(
        "bench_baseline.py", "HEAD", "--models", "lazy_mlp", "--rounds", "2",
        "--limit-batches", "2", "--device", "cpu", "--data-root", str(real_data_root), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    speed = r"[\d,]+ \([\d,]+–[\d,]+\)"
    number, sep = r"[\d.]+", r" \| "
    plain = (
        sep.join([r"^\| lazy_mlp", r"\(b\) plain loop", speed, speed, number]) + r" \| \| \| \|$"
    )
    assert re.search(plain, proc.stdout, re.M), proc.stdout[-2000:]
    for loop in ("(d) bare Lightning", "(c) lazytrain"):  # and against their own process's (b)
        row = sep.join([r"^\| lazy_mlp", re.escape(loop), speed, speed, *[number] * 4]) + r" \|$"
        assert re.search(row, proc.stdout, re.M), proc.stdout[-2000:]
    # the baseline's worktree is gone, and nothing was written where it ran
    after = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True)
    assert after.stdout == worktrees.stdout and list(tmp_path.iterdir()) == []


def test_baseline_refuses_what_is_not_a_commit_in_one_line(tmp_path):
    proc = run_script("bench_baseline.py", "no-such-revision", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"bench_baseline: 'no-such-revision' is not a commit of {ROOT}: name one, e.g. HEAD~1"
    ]
