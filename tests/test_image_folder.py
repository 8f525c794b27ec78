"""Bring your own images: one lazy model config trains on a folder of PNGs as on Fashion-MNIST,
the folder is decoded once and cached, and every problem with it is one line, nothing written."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lazytrain import image_folder
from lazytrain.datamodule import ImageFolderDataModule
from lazytrain.fashion_mnist import FASHION_MNIST_NORMALIZATION, MEAN, STD
from lazytrain.images import DataError, Normalization

from .helpers import (
    assert_refused,
    evaluate_copy,
    read_events,
    run_script,
    synthetic_split,
    train_run,
)

COLORS = ("blue", "green", "red")  # class k: channel 2 - k dominant (RGB order)
# 5 epochs of 4 batches on 108 training images: enough for the colors, seconds on 2 cores
TRAIN = ["data.batch_size=32", "trainer.max_epochs=5", "trainer.accelerator=cpu"]
TRAIN += ["trainer.log_every_n_steps=2", "callbacks.progress_bar.refresh_rate=0"]


def picture(label: int, rng: np.random.Generator, size: tuple[int, int] = (32, 32)) -> Image.Image:
    """Noise with one color channel lit: class ``label`` of :data:`COLORS`."""
    pixels = rng.integers(0, 100, (*size, 3), dtype=np.uint8)
    pixels[..., 2 - label] += 150
    return Image.fromarray(pixels)


def write_folder(root: Path, train: int = 40, test: int = 20, gray: bool = False) -> Path:
    """``root/{train,test}/{blue,green,red}/NNN.png``: 32×32, RGB (or grayscale)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for label, name in enumerate(COLORS):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image = picture(label, rng)
                (image.convert("L") if gray else image).save(root / split / name / f"{i:03d}.png")
    return root


def files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read it; never write into it (its cache is written by the first run that loads it)."""
    return write_folder(tmp_path_factory.mktemp("colors"))


@pytest.fixture(scope="module")
def cnn_run(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``scripts/train.py model=lazy_cnn data=image_folder`` on :func:`folder`."""
    cwd = tmp_path_factory.mktemp("cnn-run")
    return train_run(cwd, "model=lazy_cnn", "data=image_folder", f"data.root={folder}", *TRAIN)


# --- training, shapes and evaluation through the scripts --------------------------------------


@pytest.mark.slow
def test_lazy_cnn_trains_on_the_folder_with_every_input_size_inferred(cnn_run):
    events = read_events(cnn_run)
    assert events.scalars["test/acc"][-1][1] >= 0.9
    shapes = events.texts["parameter_shapes"]
    assert "| `0.weight` | uninitialized | [6, 3, 5, 5] |" in shapes  # 3 channels, from the data
    assert "| `7.weight` | uninitialized | [120, 576] |" in shapes  # 16×6×6 from 32×32 images
    assert "| `11.weight` | uninitialized | [3, 84] |" in shapes  # 3 classes, from the folders
    state = torch.load(cnn_run / "checkpoints" / "last.ckpt", weights_only=True)
    recorded = state["ImageFolderDataModule"]
    assert recorded["classes"] == list(COLORS) and len(recorded["mean"]) == 3


@pytest.mark.slow
def test_lazy_mlp_trains_on_the_folder_unchanged(folder, tmp_path):
    run = train_run(tmp_path, "model=lazy_mlp", "data=image_folder", f"data.root={folder}", *TRAIN)
    events = read_events(run)
    assert events.scalars["test/acc"][-1][1] >= 0.9
    assert "| `1.weight` | uninitialized | [256, 3072] |" in events.texts["parameter_shapes"]


def test_shapes_script_prints_the_3_channel_shapes(folder, tmp_path):
    proc = run_script(
        "shapes.py", "model=lazy_cnn", "data=image_folder", f"data.root={folder}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "| `0.weight` | uninitialized | [6, 3, 5, 5] |" in proc.stdout
    assert "| 6 | Flatten | [32, 16, 6, 6] | [32, 576] | 0 |" in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_eval_reproduces_the_test_accuracy_and_names_the_classes(cnn_run, folder, tmp_path):
    run, _, printed = evaluate_copy(cnn_run, tmp_path, "data=image_folder", f"data.root={folder}")
    trained_acc = read_events(run).scalars["test/acc"][-1][1]
    assert f"test accuracy {trained_acc:.2%}" in printed
    for name in COLORS:
        assert f"| {name} | " in printed and "| 20 |" in printed
    assert "| **2** |" in printed and "| **3** |" not in printed
    assert "| red | " in read_events(run).texts["eval/report"]  # and in TensorBoard


@pytest.mark.slow
def test_eval_refuses_data_of_other_classes(cnn_run, folder, tmp_path, synthetic_dir):
    renamed = shutil.copytree(folder, tmp_path / "renamed", ignore=shutil.ignore_patterns(".*"))
    for split in ("train", "test"):
        (renamed / split / "red").rename(renamed / split / "yellow")
    best = next((cnn_run / "checkpoints").glob("best-*.ckpt"))
    proc = run_script(
        "eval.py", f"ckpt_path={best}", "data=image_folder", f"data.root={renamed}", cwd=tmp_path
    )
    assert_refused(
        proc, "DataError", "only the checkpoint has red; only the data has yellow; give the data"
    )
    fashion = [f"data.root={tmp_path / 'fm'}", f"data.search_dirs=[{synthetic_dir}]"]
    proc = run_script("eval.py", f"ckpt_path={best}", *fashion, "data.download=false", cwd=tmp_path)
    assert_refused(proc, "a model of 3 classes of [3, 32, 32] images, the data has 10 classes")
    assert not (cnn_run / "eval").exists()


# --- normalization ----------------------------------------------------------------------------


def test_fashion_mnist_normalization_is_bit_identical_to_the_formula_of_every_earlier_run():
    every_value = torch.arange(256, dtype=torch.uint8).view(4, 1, 8, 8)
    fashion_like = synthetic_split(257, seed=0)[0].unsqueeze(1)  # odd sizes: vector tails too
    for images in (every_value, fashion_like):
        before = images.float().mul_(1.0 / (255.0 * STD)).sub_(MEAN / STD)
        assert torch.equal(FASHION_MNIST_NORMALIZATION(images), before)


def test_statistics_come_from_the_training_split_per_channel(folder):
    data = ImageFolderDataModule(str(folder), val_size=12)
    train_idx, val_idx = data.split()
    assert len(train_idx) == 108 and len(val_idx) == 12
    pixels = data.load().train_x[train_idx].double() / 255
    norm = data.normalization
    assert torch.allclose(torch.tensor(norm.mean, dtype=torch.float64), pixels.mean(dim=(0, 2, 3)))
    assert torch.allclose(
        torch.tensor(norm.std, dtype=torch.float64), pixels.std(dim=(0, 2, 3), correction=0)
    )
    sample = data.dry_run_sample(32)
    assert sample.shape == (32, 3, 32, 32) and sample.dtype == torch.float32
    whole = Normalization.measure(data.load().train_x, torch.arange(120))
    assert whole != norm  # the validation images are left out


# --- decoding and the cache -------------------------------------------------------------------


def test_grayscale_keeps_one_channel_and_any_color_makes_rgb(tmp_path):
    gray = write_folder(tmp_path / "gray", train=2, test=1, gray=True)
    assert image_folder.load(gray).train_x.shape == (6, 1, 32, 32)
    # one JPEG in color among grayscale PNGs: every image becomes RGB
    picture(0, np.random.default_rng(1)).save(gray / "test" / "blue" / "extra.jpg")
    images = image_folder.load(gray)
    assert images.train_x.shape == (6, 3, 32, 32) and images.test_x.shape == (4, 3, 32, 32)
    assert torch.equal(images.train_x[:, 0], images.train_x[:, 2])  # gray stays gray
    assert images.classes == COLORS and images.test_y.tolist() == [0, 0, 1, 2]


def test_a_second_load_reads_the_cache_not_the_images(tmp_path):
    root = write_folder(tmp_path / "colors", train=4, test=2)
    first = image_folder.load(root)
    (cache,) = files(root / ".lazytrain-cache")
    # Garbage of the same size and modification time: only a decode would notice.
    victim = root / "train" / "red" / "000.png"
    stat = victim.stat()
    victim.write_bytes(b"\0" * stat.st_size)
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = image_folder.load(root)
    assert torch.equal(second.train_x, first.train_x) and second.classes == first.classes
    assert files(root / ".lazytrain-cache") == [cache]
    # the data's lineage: where it was read from, and the same digest from the cache
    assert second.digest == first.digest and len(first.digest) == 16
    assert first.source == second.source == str(root)


def add(root: Path) -> None:
    picture(1, np.random.default_rng(2)).save(root / "train" / "green" / "new.png")


def remove(root: Path) -> None:
    (root / "test" / "blue" / "001.png").unlink()


def modify(root: Path) -> None:
    picture(2, np.random.default_rng(3)).save(root / "train" / "blue" / "002.png")


@pytest.mark.parametrize("change", [add, remove, modify])
def test_adding_removing_or_changing_a_file_replaces_the_cache(tmp_path, change):
    root = write_folder(tmp_path / "colors", train=4, test=2)
    before = image_folder.load(root)
    (old,) = files(root / ".lazytrain-cache")
    change(root)
    after = image_folder.load(root)
    (new,) = files(root / ".lazytrain-cache")  # the stale cache is gone
    assert new != old
    assert after.digest != before.digest  # a run on the changed folder says so in its lineage
    assert torch.equal(torch.load(new, weights_only=True)["train_x"], after.train_x)
    counts = {add: (13, 6), remove: (12, 5), modify: (12, 6)}[change]
    assert (len(after.train_y), len(after.test_y)) == counts
    if change is modify:  # blue's third training image, now red
        assert not torch.equal(after.train_x[2], before.train_x[2])
        assert after.train_x[2, 0].float().mean() > after.train_x[2, 2].float().mean()


def test_a_damaged_cache_is_decoded_again_and_rewritten(tmp_path, caplog):
    root = write_folder(tmp_path / "colors", train=2, test=1)
    first = image_folder.load(root)
    (cache,) = files(root / ".lazytrain-cache")
    cache.write_bytes(cache.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="lazytrain.image_folder"):
        assert torch.equal(image_folder.load(root).train_x, first.train_x)
    assert f"ignoring the image cache {cache}" in caplog.text
    assert torch.equal(torch.load(cache, weights_only=True)["train_x"], first.train_x)


def test_an_unwritable_cache_location_costs_a_warning_not_the_run(tmp_path, caplog):
    root = write_folder(tmp_path / "colors", train=2, test=1)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="lazytrain.image_folder"):
        images = image_folder.load(root, cache_dir=blocker / "cache")
    assert images.train_x.shape == (6, 3, 32, 32)
    assert "cannot write the image cache" in caplog.text and "data.cache_dir" in caplog.text
    assert files(tmp_path) == [blocker, *files(root)] and not (root / ".lazytrain-cache").exists()


def test_resize_makes_mixed_sizes_one(tmp_path):
    root = write_folder(tmp_path / "colors", train=2, test=1)
    picture(0, np.random.default_rng(4), size=(20, 24)).save(root / "train" / "blue" / "big.png")
    images = image_folder.load(root, resize=[16, 16])
    assert images.train_x.shape == (7, 3, 16, 16) and images.test_x.shape == (3, 3, 16, 16)
    assert [p.name[:6] for p in files(root / ".lazytrain-cache")] == ["16x16-"]


# --- refusals: one line naming the problem and the fix, nothing written ------------------------


def mixed_sizes(root: Path) -> str:
    picture(0, np.random.default_rng(4), size=(20, 24)).save(root / "train" / "blue" / "big.png")
    return (
        f"images differ in size (H x W): {root / 'train' / 'blue' / '000.png'} is 32x32; "
        f"{root / 'train' / 'blue' / 'big.png'} is 20x24; give data.resize=[H,W]"
    )


def empty_class(root: Path) -> str:
    shutil.rmtree(root / "test" / "green")
    (root / "test" / "green").mkdir()
    return f"{root / 'test' / 'green'} is empty: put green's images there, or delete the folder"


def not_an_image(root: Path) -> str:
    (root / "train" / "red" / "notes.txt").write_text("not a picture")
    return f"{root / 'train' / 'red' / 'notes.txt'} is not an image PIL can read"


def other_test_classes(root: Path) -> str:
    (root / "test" / "red").rename(root / "test" / "rouge")
    (root / "test" / "cyan").mkdir()
    return (
        "test/ and train/ have different classes (only train/ has red; only test/ has cyan, rouge)"
    )


def no_test_folder(root: Path) -> str:
    shutil.rmtree(root / "test")
    return (
        f"{root} has no test/ folder: put the images in DIR/train/<class>/* and DIR/test/<class>/*"
    )


REFUSALS = [mixed_sizes, empty_class, not_an_image, other_test_classes, no_test_folder]


@pytest.mark.parametrize("damage", REFUSALS)
def test_a_bad_folder_is_refused_naming_the_problem_and_the_fix(tmp_path, damage):
    root = write_folder(tmp_path / "colors", train=2, test=1)
    message = damage(root)
    before = files(tmp_path)
    with pytest.raises(DataError) as err:
        image_folder.load(root)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert files(tmp_path) == before and not (root / ".lazytrain-cache").exists()


@pytest.mark.parametrize("damage", [mixed_sizes, no_test_folder])
def test_the_cli_refuses_a_bad_folder_before_writing_anything(tmp_path, damage):
    root = write_folder(tmp_path / "colors", train=2, test=1)
    message = damage(root)
    before = files(root)
    run_dir = tmp_path / "run"
    proc = run_script(
        "train.py", "data=image_folder", f"data.root={root}", "trainer.accelerator=cpu",
        f"hydra.run.dir={run_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert_refused(proc, "DataError: ", message)
    assert files(root) == before
    assert [p.name for p in files(run_dir) if ".hydra" not in p.parts] == ["train.log"]


def test_no_root_is_refused():
    with pytest.raises(DataError, match="data.root=None is not a directory: give data.root=DIR"):
        ImageFolderDataModule().load()
