"""Look before you train: build the configured model, dry-run it on the data's sample batch and
print its parameters before and after materialization and each layer's output shape. Writes
nothing but a folder's image cache, and runs no Trainer, so it answers in seconds.

    python scripts/shapes.py model=lazy_cnn
    python scripts/shapes.py model=lazy_mlp model.hidden=[512,256]
    python scripts/shapes.py model=lazy_cnn data=image_folder data.root=DIR   # your own images
"""

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

CONF = str(Path(__file__).resolve().parent.parent / "conf")


def main(overrides: list[str]) -> None:
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "output_dir=."])
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from lazytrain.data import DataError
    from lazytrain.dry_run import ShapeMismatchError, apply_init
    from lazytrain.models import build_net

    datamodule = instantiate(cfg.data)
    try:
        sample = datamodule.dry_run_sample(cfg.sample_size)
        report = apply_init(
            build_net(OmegaConf.to_container(cfg.model, resolve=True), datamodule.num_classes),
            sample,
            instantiate(cfg.init),
            seed=cfg.seed,
            num_classes=datamodule.num_classes,
        )
    except DataError as err:
        sys.exit(f"data error: {err}")
    except ShapeMismatchError as err:
        sys.exit(f"shape error: {err}")
    print(report.markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
