"""Fixtures: small IDX datasets written by the tests, the real Fashion-MNIST, the real config
shrunk, and one real CLI run shared by every test that only reads what it left on disk.
Helpers live in ``tests/helpers.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lazytrain.fashion_mnist import SYSTEM_DIR, prepare_raw_files

from .helpers import FEW_BATCHES, make_cfg, train_run, write_fashion_mnist


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker (and every process it starts) gets its share of the cores:
    two workers each running torch on every core would thrash."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ["OMP_NUM_THREADS"] = threads
        torch.set_num_threads(int(threads))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only stand-in for /usr/share/datasets/fashion-mnist with small synthetic files."""
    return write_fashion_mnist(tmp_path_factory.mktemp("system-fashion-mnist"))


@pytest.fixture(scope="session")
def real_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding the real Fashion-MNIST (unpacked from Debian's package once)."""
    if not (Path(SYSTEM_DIR) / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(
            f"real Fashion-MNIST not installed in {SYSTEM_DIR} (apt-get install dataset-fashion-mnist)"
        )
    root = tmp_path_factory.mktemp("fashion-mnist-root")
    prepare_raw_files(root, download=False)
    return root


@pytest.fixture
def cfg_factory(tmp_path: Path, synthetic_dir: Path):
    return lambda *overrides: make_cfg(tmp_path, synthetic_dir, *overrides)


@pytest.fixture(scope="session")
def mlp_run(real_data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``scripts/train.py`` with the default config (lazy_mlp, xavier) on real Fashion-MNIST, cut
    to 2 epochs of 8 batches, tested on the whole test set. Read it; never write into it (copy
    it first)."""
    cwd = tmp_path_factory.mktemp("mlp-run")
    return train_run(
        cwd, f"data.root={real_data_root}", *FEW_BATCHES, "trainer.limit_test_batches=1.0"
    )
