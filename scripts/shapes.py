"""Look before you train: build the configured model, dry-run it on the data's sample batch and
print its parameters before and after materialization and each layer's output shape. Writes
nothing but a folder's image cache, and runs no Trainer, so it answers in seconds.

    python scripts/shapes.py model=lazy_cnn
    python scripts/shapes.py model=lazy_mlp model.hidden=[512,256]
    python scripts/shapes.py model=lazy_cnn data=image_folder data.root=DIR   # your own images
"""

import sys

from lazytrain.command_line import script_config


def main(args: list[str]) -> None:
    cfg = script_config(args, __doc__)
    from lazytrain.job import USER_ERRORS, user_error_line  # Lightning's import: after the config
    from lazytrain.train import model_and_data

    try:
        model, _ = model_and_data(cfg)
    except USER_ERRORS as err:
        sys.exit(f"error: {user_error_line(err)}")
    report = model.shape_report
    print(report.markdown() if report else "the model has no lazy parameters: nothing to infer")


if __name__ == "__main__":
    main(sys.argv[1:])  # as typed: data.root=~/Données is quoted for Hydra's grammar there
