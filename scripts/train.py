"""Train a lazy model on Fashion-MNIST; every run lands in outputs/ with its TensorBoard events.

python scripts/train.py                                        # lazy_mlp, xavier, 20 epochs (about 30 s on 2 cores)
python scripts/train.py model=lazy_cnn init=normal init.std=0.05 trainer.max_epochs=5
python scripts/train.py -m model=lazy_mlp,lazy_cnn init=xavier,normal   # 4 runs
python scripts/train.py -m experiment=grid                     # the same grid, as a preset
tensorboard --logdir outputs --host 127.0.0.1
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf


def _if(cond: object, then: object, otherwise: object) -> object:
    """conf/hydra/default.yaml: resume=<dir> runs in <dir>, writing its .hydra/ under a new name."""
    return then if cond else otherwise


def _sqlite(path: str) -> str:
    """conf/hparams_search/optuna.yaml: the study's database in the sweep directory, which Hydra
    creates only after the sweeper has opened the study."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(path).resolve()}"


OmegaConf.register_new_resolver("lazytrain.if", _if)
OmegaConf.register_new_resolver("lazytrain.sqlite", _sqlite)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from lazytrain.train import main as train  # after Hydra parsed the CLI: --help stays fast

    return train(cfg)


if __name__ == "__main__":
    main()
