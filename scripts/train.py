"""Train a lazy model on Fashion-MNIST; every run lands in outputs/ with its TensorBoard events.

python scripts/train.py                                        # lazy_mlp, xavier, 20 epochs (about 30 s on 2 cores)
python scripts/train.py model=lazy_cnn init=normal init.std=0.05 trainer.max_epochs=5
python scripts/train.py -m model=lazy_mlp,lazy_cnn init=xavier,normal   # 4 runs
python scripts/train.py -m sweep=grid                          # the same grid, as a preset
python scripts/train.py -m experiment=cnn_recipe sweep=seeds   # a recipe over 3 seeds
python scripts/train.py resume=outputs/runs/<time>             # continue a run, exactly
tensorboard --logdir outputs --host 127.0.0.1
"""

import hydra
from omegaconf import DictConfig

import lazytrain  # noqa: F401  (registers the config's resolvers)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from lazytrain.job import main as job  # after Hydra parsed the CLI: --help stays fast

    return job(cfg)


if __name__ == "__main__":
    from lazytrain.command_line import make_readable

    make_readable()  # hydra.run.dir=/data/über: quoted for Hydra's grammar
    main()
