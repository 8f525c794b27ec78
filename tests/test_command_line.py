"""Paths with letters beyond ASCII (``/data/über``, ``~/Données``), typed as a person types
them: train, resume and eval work; what Hydra cannot read is refused in one line showing how
to quote it."""

from __future__ import annotations

import shutil

import pytest

from lazytrain.command_line import readable_overrides

from .helpers import assert_refused, evaluate_copy, read_events, run_script, synthetic


def test_plain_values_are_quoted_and_the_rest_left_as_typed():
    typed = [
        "hydra.run.dir=/data/über/a",
        "data.root=~/Données",
        "model=lazy_cnn",
        "-m",
        "seed=0,1",
    ]
    assert readable_overrides(typed) == [
        "hydra.run.dir='/data/über/a'", "data.root='~/Données'", "model=lazy_cnn", "-m", "seed=0,1",
    ]  # fmt: skip
    assert readable_overrides(["hydra.run.dir='/data/über/a'"]) == ["hydra.run.dir='/data/über/a'"]
    with pytest.raises(
        SystemExit, match=r"data.search_dirs=\[/data/über\]: .*'ü' only inside quotes"
    ):
        readable_overrides(["data.search_dirs=[/data/über]"])


@pytest.mark.slow
def test_train_resume_and_eval_in_a_directory_named_with_umlauts(tmp_path, synthetic_dir):
    home = tmp_path / "Données über"
    data = [o for o in synthetic(tmp_path, synthetic_dir) if not o.startswith("data.root=")]
    data.append(f"data.root={home / 'données'}")
    run = home / "läufe"
    home.mkdir()
    proc = run_script(
        "train.py", *data, "trainer.max_epochs=1", f"hydra.run.dir={run}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = run_script("train.py", f"resume={run}", "trainer.max_epochs=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    epoch = read_events(run).scalars["val/acc"][0][0]
    assert [s for s, _ in read_events(run).scalars["val/acc"]] == [epoch, 2 * epoch]
    _, _, printed = evaluate_copy(run, home / "évaluation", *data)
    assert "test accuracy" in printed
    # a list holding such a path: one line that shows the quoting
    proc = run_script("train.py", f"data.search_dirs=[{home}]", cwd=tmp_path)
    assert_refused(proc, "only inside quotes", f"\"data.search_dirs=['{home}']\"")
    shutil.rmtree(home)
