"""Shared fixtures: small IDX datasets written by the tests, the real config composed and shrunk."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from lazytrain.data import FILES, SYSTEM_DIR

ROOT = Path(__file__).resolve().parent.parent
CONF = str(ROOT / "conf")


def idx_bytes(tensor: torch.Tensor, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in tensor.shape)
    return header + tensor.to(torch.uint8).contiguous().numpy().tobytes()


def synthetic_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable images: label k lights up rows 2k..2k+3 on top of noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = torch.randint(0, 60, (n, 28, 28), generator=g)
    for k in range(10):
        images[labels == k, 2 * k + 2 : 2 * k + 6, 4:24] = 220
    return images.to(torch.uint8), labels.to(torch.uint8)


def write_fashion_mnist(
    directory: Path, n_train: int = 640, n_test: int = 320, gz: bool = True
) -> Path:
    """The four Fashion-MNIST files, small and synthetic, as .gz (Debian's layout) or unpacked."""
    directory.mkdir(parents=True, exist_ok=True)
    parts = {"train": synthetic_split(n_train, 0), "t10k": synthetic_split(n_test, 1)}
    for name, (magic, _) in FILES.items():
        images, labels = parts[name.split("-")[0]]
        data = idx_bytes(images if "images" in name else labels, magic)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return directory


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
    from lazytrain.data import locate

    root = tmp_path_factory.mktemp("fashion-mnist-root")
    locate(root, download=False)
    return root


def shrunk_overrides(tmp_path: Path, data_dir: Path) -> list[str]:
    """Overrides that make the real config a few-second CPU run on the synthetic data."""
    return [
        f"output_dir={tmp_path / 'run'}",
        f"data.root={tmp_path / 'data'}",
        f"data.search_dirs=[{data_dir}]",
        "data.download=false",
        "data.val_size=128",
        "data.batch_size=64",
        "data.eval_batch_size=128",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=2",
        "callbacks.progress_bar.refresh_rate=0",
    ]


def make_cfg(tmp_path: Path, data_dir: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(CONF, version_base="1.3"):
        return compose("train", overrides=[*shrunk_overrides(tmp_path, data_dir), *overrides])


@pytest.fixture
def cfg_factory(tmp_path: Path, synthetic_dir: Path):
    return lambda *overrides: make_cfg(tmp_path, synthetic_dir, *overrides)


def run_script(
    script: str, *args: str, cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run one of scripts/*.py as a user would, from ``cwd``, capturing its output."""
    # tests/ importable, for fault injection (tests/faults.py) through the real CLI
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
