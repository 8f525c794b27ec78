"""Look before you train: build the configured model, dry-run it on the sample batch and print its
parameters before and after materialization and each layer's output shape. Writes nothing, and
skips Lightning entirely, so it answers in about two seconds.

    python scripts/shapes.py model=lazy_cnn
    python scripts/shapes.py model=lazy_mlp model.hidden=[512,256]
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

    from lazytrain.data import CLASSES, FashionMNIST
    from lazytrain.dry_run import ShapeMismatchError, apply_init
    from lazytrain.models import build_net

    data = FashionMNIST.load(cfg.data.root, cfg.data.search_dirs, cfg.data.download)
    try:
        report = apply_init(
            build_net(OmegaConf.to_container(cfg.model, resolve=True), len(CLASSES)),
            data.dry_run_sample(cfg.sample_size),
            instantiate(cfg.init),
            seed=cfg.seed,
            num_classes=len(CLASSES),
        )
    except ShapeMismatchError as err:
        sys.exit(f"shape error: {err}")
    print(report.markdown())


if __name__ == "__main__":
    main(sys.argv[1:])
