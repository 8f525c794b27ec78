"""scripts/eval.py: a checkpoint evaluates to the numbers training reported, anywhere."""

from __future__ import annotations

from .helpers import assert_refused, evaluate_copy, read_events, run_script


def test_eval_reproduces_the_final_test_and_reports_per_class(mlp_run, real_data_root, tmp_path):
    trained_run, best, printed = evaluate_copy(mlp_run, tmp_path, f"data.root={real_data_root}")
    trained_acc = read_events(trained_run).scalars["test/acc"][-1][1]
    assert f"test accuracy {trained_acc:.2%}" in printed
    assert "| Trouser |" in printed and "| **9** |" in printed
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
