"""Evaluate a checkpoint on its data's test set (Fashion-MNIST, or data=image_folder data.root=DIR):
test loss and accuracy, per-class accuracy and the confusion matrix, the classes by name — printed,
saved as a PNG and added to the run's TensorBoard (and to its MLflow run, if it has one).
Writes nothing but <run>/eval/ and one event file in the run directory.

    python scripts/eval.py ckpt_path=outputs/runs/<run>/checkpoints/last.ckpt
    python scripts/eval.py ckpt_path=... data.root=/elsewhere trainer.accelerator=cpu
    python scripts/eval.py ckpt_path=... data=image_folder data.root=DIR   # a run on your images
    python scripts/eval.py ckpt_path=... trusted_targets=[mypkg.models]  # a model from elsewhere

The model is rebuilt only from allowlisted targets (src/lazytrain/trust.py) plus trusted_targets.
"""

import sys
from pathlib import Path

from lazytrain.command_line import script_config


def main(args: list[str]) -> None:
    from lazytrain.console import quiet

    quiet()
    cfg = script_config(args, __doc__)
    if not cfg.ckpt_path or not Path(cfg.ckpt_path).is_file():
        sys.exit(
            f"error: give an existing checkpoint: ckpt_path=<run>/checkpoints/last.ckpt (got {cfg.ckpt_path})"
        )
    from hydra.utils import instantiate

    from lazytrain.evaluate import evaluate, log_evaluation, plot_confusion
    from lazytrain.job import USER_ERRORS, user_error_line
    from lazytrain.trackers import TrackerError, add_to_mlflow_run

    ckpt = Path(cfg.ckpt_path)
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    try:  # a file that is no checkpoint, does not fit its own model, or asks for untrusted code
        evaluation = evaluate(
            ckpt,
            instantiate(cfg.data),
            accelerator=cfg.trainer.accelerator,
            trusted_targets=list(cfg.get("trusted_targets") or []),
        )
    except USER_ERRORS as err:
        sys.exit(f"error: {user_error_line(err)}")
    figure = plot_confusion(evaluation, run_dir / "eval" / f"{ckpt.stem}-confusion_matrix.png")
    log_evaluation(evaluation, run_dir, figure)
    print(evaluation.markdown())
    print(f"\nconfusion matrix: {figure}")
    try:
        if run_id := add_to_mlflow_run(evaluation.trackers, [figure]):
            print(f"added to MLflow run {run_id}")
    except TrackerError as err:  # the evaluation stands; only its copy in MLflow is missing
        print(f"warning: not added to the run's MLflow run: {err}")


if __name__ == "__main__":
    main(sys.argv[1:])  # as typed: data.root=~/Données is quoted for Hydra's grammar there
