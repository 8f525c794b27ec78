"""Every run says where it came from (code, versions, data, command, host) and what a person
called it (tags, notes): in lineage.json, in TensorBoard and in compare.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from lazytrain import compare, lineage
from lazytrain.digests import files_digest
from lazytrain.fashion_mnist import FILES, raw_dir

from .helpers import ROOT, assert_refused, read_events, run_script, synthetic

JOB = "data.batch_size=64,data.val_size=128,seed={}"  # a job's directory in the sweep
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def test_git_state_names_the_commit_and_a_digest_of_the_changes(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    assert lineage.git_state(repo) == {"repository": str(repo), "commit": None, "dirty": False}
    (repo / "model.py").write_text("hidden = 256\n")
    git(repo, "add", "model.py")
    git(repo, "commit", "-qm", "first")
    clean = lineage.git_state(repo / ".")
    assert clean == {"repository": str(repo), "commit": git(repo, "rev-parse", "HEAD"),
                     "dirty": False}  # fmt: skip
    (repo / "model.py").write_text("hidden = 512\n")
    changed = lineage.git_state(repo)
    (repo / "model.py").write_text("hidden = 1024\n")
    changed_again = lineage.git_state(repo)
    assert changed["dirty"] and changed["commit"] == clean["commit"]
    assert changed["diff_sha256"] != changed_again["diff_sha256"]  # which change, not only that
    (repo / "model.py").write_text("hidden = 256\n")
    (repo / "new_layer.py").write_text("")  # untracked, not ignored: the code differs too
    assert lineage.git_state(repo)["dirty"]
    (repo / ".gitignore").write_text("new_layer.py\n.gitignore\n")
    assert lineage.git_state(repo) == clean


def test_outside_a_checkout_or_without_git_there_is_no_code_state(tmp_path, monkeypatch):
    assert lineage.git_state(tmp_path) is None
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all
    assert lineage.git_state(ROOT) is None


@pytest.mark.parametrize(
    ("tags", "notes", "expected"),
    [(None, None, ([], "")), ("baseline", 3, (["baseline"], "3")), ([1, "b"], "x", (["1", "b"], "x"))],
)  # fmt: skip
def test_labels_are_a_list_of_words_and_a_line_of_text(tags, notes, expected):
    assert lineage.labels(tags, notes) == expected


def test_labels_that_are_not_words_are_refused_in_one_line_before_anything_is_written(tmp_path):
    run = tmp_path / "run"
    proc = run_script("train.py", *synthetic(tmp_path, tmp_path), "tags=[[a,b]]",
                      f"hydra.run.dir={run}", cwd=tmp_path)  # fmt: skip
    assert_refused(proc, "tags=[['a', 'b']] is not a list of words: give tags=[baseline,lr-study]")
    assert not run.exists() or not list(run.glob("*.ckpt")) and not list(run.glob("events*"))
    assert not (run / "lineage.json").exists()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path) -> Path:
    """Two seeds of one configuration, tagged and noted, through the real CLI multirun."""
    cwd = tmp_path_factory.mktemp("lineage")
    proc = run_script(
        "train.py", "-m", *synthetic(cwd, synthetic_dir), "trainer.max_epochs=1",
        "trainer.limit_train_batches=2", "seed=0,1", "tags=[baseline,lr-study]",
        "notes='wider hidden layer'", f"hydra.sweep.dir={cwd / 'sweep'}", cwd=cwd,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return cwd / "sweep"


def test_every_job_records_code_versions_data_and_command(sweep):
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())  # named without tags or notes
    assert jobs == [JOB.format(0), JOB.format(1)]
    record = json.loads((sweep / JOB.format(1) / "lineage.json").read_text())
    head = git(ROOT, "rev-parse", "HEAD")
    assert record["code"]["repository"] == str(ROOT) and record["code"]["commit"] == head
    assert record["code"]["dirty"] == bool(git(ROOT, "status", "--porcelain"))
    assert record["versions"]["torch"] == torch.__version__ and "lightning" in record["versions"]
    raw = raw_dir(sweep.parent / "data")
    assert record["data"] == {
        "source": str(raw.resolve()), "digest": files_digest(raw / name for name in FILES),
        "images": {"train": 640, "test": 320},
    }  # fmt: skip
    assert record["command"].startswith("train.py ") and "seed=1" in record["command"]
    assert "seed=0" not in record["command"]  # the job's own command, not the sweep's
    assert f"hydra.sweep.dir={sweep}" in record["hydra_overrides"]
    assert record["host"] == os.uname().nodename and record["hardware"].startswith("CPU, ")
    assert record["tags"] == ["baseline", "lr-study"] and record["notes"] == "wider hidden layer"


def test_lineage_and_labels_reach_tensorboard(sweep):
    events = read_events(sweep / JOB.format(0))
    text = events.texts["lineage"]
    assert f"| commit | {git(ROOT, 'rev-parse', 'HEAD')[:8]}" in text
    assert "| tags | baseline, lr-study |" in text and "| notes | wider hidden layer |" in text
    assert events.hparams["tags"] == "[baseline, lr-study]"
    assert events.hparams["notes"] == "wider hidden layer"


def test_a_resume_keeps_the_first_record_and_appends_its_own(sweep, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(sweep / JOB.format(0), run)
    first = json.loads((run / "lineage.json").read_text())
    proc = run_script("train.py", f"resume={run}", "trainer.max_epochs=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((run / "lineage.json").read_text())
    (resumed,) = record.pop("resumed")
    assert record == first
    assert resumed["command"].startswith("train.py resume=") and resumed["tags"] == first["tags"]
    assert resumed["started"] >= first["started"]


def test_compare_shows_code_and_tags_and_warns_when_a_group_mixes_commits(sweep, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(sweep, project)
    table = compare.compare(project)
    code = lineage.code_label(lineage.read(project / JOB.format(0)))
    assert f"| {code} | baseline, lr-study |" in table and "Warning" not in table
    # The same configuration made by other code (a copy of a run made on another commit):
    other = project / JOB.format(1) / "lineage.json"
    record = json.loads(other.read_text())
    record["code"].update(commit="0123456789abcdef", dirty=False)
    other.write_text(json.dumps(record))
    table = compare.compare(project)
    assert "| 01234567 | baseline, lr-study |" in table
    assert "mixes commits " + ", ".join(f"`{c}`" for c in sorted([code, "01234567"])) in table
    rows = (project / "leaderboard.csv").read_text()
    assert "01234567" in rows and "baseline lr-study" in rows


@pytest.fixture(scope="module")
def project(sweep: Path, synthetic_dir: Path) -> Path:
    """A project tree: the tagged sweep beside a CNN run of other tags, as a user's outputs/."""
    cwd = sweep.parent
    proc = run_script(
        "train.py", *synthetic(cwd, synthetic_dir), "trainer.max_epochs=1",
        "trainer.limit_train_batches=2", "model=lazy_cnn", "tags=[cnn]",
        f"hydra.run.dir={cwd / 'cnn'}", cwd=cwd,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return cwd


@pytest.mark.parametrize(
    ("wheres", "selected"),
    [
        (["tags=baseline"], ["sweep/" + JOB.format(0), "sweep/" + JOB.format(1)]),
        (["tags=cnn"], ["cnn"]),
        (["model=lazy_mlp", "seed=1"], ["sweep/" + JOB.format(1)]),  # a default choice, too
        (["optimizer.lr=1e-3"], ["cnn", "sweep/" + JOB.format(0), "sweep/" + JOB.format(1)]),
        (["model.channels=16", "tags=cnn"], ["cnn"]),  # a list setting that contains the value
    ],
)  # fmt: skip
def test_where_selects_runs_by_any_setting_choice_or_tag(project, tmp_path, wheres, selected):
    args = [arg for w in wheres for arg in ("--where", w)]
    proc = run_script("compare.py", str(project), "--out", str(tmp_path), *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(" | ")[0].lstrip("| ") for line in proc.stdout.splitlines()]
    assert (
        sorted(r for r in rows if r in ("cnn", *(f"sweep/{JOB.format(s)}" for s in (0, 1))))
        == selected
    )
    assert ", ".join(f"`{w}`" for w in wheres) in proc.stdout.splitlines()[0]


def test_where_refuses_a_key_no_run_has_and_a_selection_of_nothing(project, tmp_path):
    proc = run_script("compare.py", str(project), "--where", "sed=1", cwd=tmp_path)
    assert_refused(proc, "--where sed=1: no run has the setting 'sed'; did you mean seed?")
    proc = run_script("compare.py", str(project), "--where", "tags=nothing", cwd=tmp_path)
    assert_refused(proc, f"no run under {project} matches --where tags=nothing")
    proc = run_script("compare.py", str(project), "--where", "tags", cwd=tmp_path)
    assert_refused(proc, "--where 'tags' is not KEY=VALUE")
    assert not (project / "leaderboard.csv").exists()  # refused before anything is written


def test_diff_prints_only_what_differs_side_by_side(project, tmp_path):
    a, b = project / "sweep" / JOB.format(0), project / "cnn"
    proc = run_script("compare.py", "--diff", str(a), str(b), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "| model | lazy_mlp | lazy_cnn |" in out  # the choice
    assert "| model.hidden | [256] | [120, 84] |" in out
    assert "| model.channels | (absent) | [6, 16] |" in out
    assert "| tags | ['baseline', 'lr-study'] | ['cnn'] |" in out
    assert "| notes | wider hidden layer | None |" in out
    assert "| lineage.command |" not in out and "| command | train.py " in out
    assert "| params | " in out and "| test_acc | " in out  # results
    assert "optimizer.lr" not in out and "code.commit" not in out  # the same in both: not listed
    proc = run_script("compare.py", "--diff", str(a), str(tmp_path), cwd=tmp_path)
    assert_refused(proc, f"{tmp_path} is not a run directory")
