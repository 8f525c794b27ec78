"""scripts/eval.py: a checkpoint evaluates to the numbers training reported, anywhere."""

from __future__ import annotations

import shutil

from .helpers import assert_refused, read_events, run_script


def test_eval_reproduces_the_final_test_and_reports_per_class(mlp_run, real_data_root, tmp_path):
    trained_run = shutil.copytree(mlp_run, tmp_path / "run")  # eval.py appends to the run
    best = next((trained_run / "checkpoints").glob("best-*.ckpt"))
    proc = run_script("eval.py", f"ckpt_path={best}", f"data.root={real_data_root}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained_acc = read_events(trained_run).scalars["test/acc"][-1][1]
    assert f"test accuracy {trained_acc:.2%}" in proc.stdout
    assert "| Trouser |" in proc.stdout and "| **9** |" in proc.stdout
    png = trained_run / "eval" / f"{best.stem}-confusion_matrix.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = read_events(trained_run)
    assert abs(events.scalars["eval/test_acc"][-1][1] - trained_acc) < 1e-6
    assert "eval/report" in events.texts


def test_eval_needs_a_checkpoint(tmp_path):
    proc = run_script("eval.py", f"ckpt_path={tmp_path / 'missing.ckpt'}", cwd=tmp_path)
    assert proc.returncode == 1 and "give an existing checkpoint" in proc.stderr


def test_checkpoint_of_another_architecture_names_parameter_and_shapes(
    mlp_run, real_data_root, tmp_path
):
    proc = run_script(
        "train.py", f"ckpt_path={mlp_run / 'checkpoints' / 'last.ckpt'}", "model.hidden=[128]",
        f"data.root={real_data_root}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    assert_refused(
        proc,
        "CheckpointMismatchError",
        "net.1.weight: (256, 784) in the file, (128, 784) in the model",
    )
    assert not (tmp_path / "run" / "checkpoints").exists()
