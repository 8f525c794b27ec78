"""Fashion-MNIST files: found in each place they may be, checked, batched on the device."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

import lazytrain.fashion_mnist as data
from lazytrain.datamodule import DeviceBatches
from lazytrain.fashion_mnist import FILES, FashionMNIST, prepare_raw_files, raw_dir
from lazytrain.images import DataError, split

from .helpers import run_script, write_fashion_mnist


def load(root: Path, *dirs: Path, download: bool = False) -> FashionMNIST:
    return FashionMNIST.load(root, [str(d) for d in dirs], download=download)


def truncate(path: Path) -> None:
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])


def truncate_inside_gz(path: Path) -> None:
    """A readable .gz whose contents are a truncated IDX file."""
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-5]))


def snapshot(directory: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_found_unpacked_in_the_data_root(tmp_path):
    write_fashion_mnist(raw_dir(tmp_path), gz=False)
    ds = load(tmp_path)
    assert ds.train_x.shape == (640, 1, 28, 28) and ds.train_x.dtype == torch.uint8
    assert ds.test_y.shape == (320,) and ds.test_y.dtype == torch.int64


def test_found_as_gz_in_the_data_root_and_unpacked_into_torchvision_layout(tmp_path):
    write_fashion_mnist(tmp_path, gz=True)
    ds = load(tmp_path)
    assert len(ds.train_y) == 640
    assert all((raw_dir(tmp_path) / name).is_file() for name in FILES)


def test_found_in_the_system_dir_without_touching_it(tmp_path, synthetic_dir):
    before = {p.name: p.stat().st_mtime_ns for p in synthetic_dir.iterdir()}
    ds = load(tmp_path / "root", synthetic_dir)
    assert len(ds.test_y) == 320
    assert {p.name: p.stat().st_mtime_ns for p in synthetic_dir.iterdir()} == before
    assert (raw_dir(tmp_path / "root") / "t10k-images-idx3-ubyte").is_file()


def test_torchvision_reads_the_same_files(tmp_path, synthetic_dir):
    from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

    ds = load(tmp_path, synthetic_dir)
    tv = TorchvisionFashionMNIST(str(tmp_path), train=False, download=False)
    assert torch.equal(tv.data, ds.test_x[:, 0]) and torch.equal(tv.targets, ds.test_y)


def test_download_is_the_last_resort(tmp_path, monkeypatch):
    """No network here: stand in for torchvision's download by writing what it would write."""
    calls = []

    def fake_download(root):
        calls.append(root)
        write_fashion_mnist(raw_dir(root), gz=False)

    monkeypatch.setattr(data, "_download", fake_download)
    assert len(load(tmp_path, download=True).train_y) == 640
    assert calls == [tmp_path]
    load(tmp_path, download=True)
    assert len(calls) == 1  # found locally the second time


def test_missing_data_names_both_ways_to_get_it(tmp_path):
    with pytest.raises(DataError) as err:
        load(tmp_path / "empty", tmp_path / "nowhere")
    for fact in ("missing train-images-idx3-ubyte", "dataset-fashion-mnist", "data.download=true"):
        assert fact in str(err.value)


def test_truncated_file_is_refused_not_read(tmp_path):
    raw = write_fashion_mnist(raw_dir(tmp_path), gz=False)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(
        DataError,
        match="train-images-idx3-ubyte is not a valid Fashion-MNIST IDX file.*truncated or corrupted",
    ):
        load(tmp_path)


def test_corrupted_gzip_is_refused_and_nothing_is_unpacked(tmp_path):
    src = write_fashion_mnist(tmp_path / "system", gz=True)
    blob = (src / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (src / "t10k-labels-idx1-ubyte.gz").write_bytes(blob[:20] + b"garbage" + blob[27:])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is not a readable gzip file"):
        load(tmp_path / "root", src)
    assert not (raw_dir(tmp_path / "root") / "t10k-labels-idx1-ubyte").exists()


def test_wrong_file_under_the_right_name(tmp_path):
    raw = write_fashion_mnist(raw_dir(tmp_path), gz=False)
    shutil.copy(raw / "t10k-labels-idx1-ubyte", raw / "train-images-idx3-ubyte")
    with pytest.raises(DataError, match="bad header"):
        load(tmp_path)


def test_labels_out_of_range_are_refused(tmp_path):
    raw = write_fashion_mnist(raw_dir(tmp_path), gz=False)
    path = raw / "t10k-labels-idx1-ubyte"
    blob = bytearray(path.read_bytes())
    blob[-1] = 42
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="labels below 10"):
        load(tmp_path)


@pytest.mark.parametrize(
    "layout, gz, damage",
    [
        ("torchvision", False, truncate),
        ("torchvision", True, truncate),
        ("flat", False, truncate),
        ("flat", True, truncate),
        ("flat", True, truncate_inside_gz),
    ],
    ids=["torchvision-unpacked", "torchvision-gz", "flat-unpacked", "flat-gz", "flat-gz-contents"],
)
def test_a_damaged_copy_in_the_data_root_is_an_error_not_a_fallback(tmp_path, layout, gz, damage):
    system = write_fashion_mnist(tmp_path / "system")  # a good copy where the next one would be
    root = tmp_path / "root"
    where = write_fashion_mnist(raw_dir(root) if layout == "torchvision" else root, gz=gz)
    bad = where / f"t10k-labels-idx1-ubyte{'.gz' if gz else ''}"  # the last one looked for
    damage(bad)
    before = snapshot(tmp_path)
    with pytest.raises(DataError) as err:
        load(root, system)
    message = str(err.value)
    assert message.startswith(f"{bad} is not a "), message
    assert message.endswith(
        f"Delete it and run again: the next copy would come from {system / 't10k-labels-idx1-ubyte.gz'}."
    )
    assert snapshot(tmp_path) == before  # nothing moved, unpacked, replaced or deleted


def test_a_damaged_copy_in_a_search_dir_is_an_error_naming_it(tmp_path):
    first = write_fashion_mnist(tmp_path / "first")
    second = write_fashion_mnist(tmp_path / "second")
    bad = first / "train-labels-idx1-ubyte.gz"
    truncate_inside_gz(bad)
    before = snapshot(tmp_path)
    with pytest.raises(DataError) as err:
        load(tmp_path / "root", first, second)
    message = str(err.value)
    assert message.startswith(f"{bad} is not a valid Fashion-MNIST IDX file"), message
    assert f"(or drop {first} from data.search_dirs)" in message
    assert f"the next copy would come from {second / 'train-labels-idx1-ubyte.gz'}" in message
    assert snapshot(tmp_path) == before  # the good files were not unpacked into the root either


def test_a_damaged_only_copy_is_not_downloaded_over(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(data, "_download", calls.append)
    bad = write_fashion_mnist(tmp_path, gz=False) / "train-images-idx3-ubyte"
    truncate(bad)
    with pytest.raises(DataError) as err:
        load(tmp_path, download=True)
    assert str(err.value).endswith(
        f"Delete it and run again: torchvision would then download a fresh copy into {raw_dir(tmp_path)}."
    )
    assert calls == []
    with pytest.raises(DataError, match="there is no other copy and data.download is false"):
        load(tmp_path, download=False)


def test_the_data_roots_own_copy_comes_before_a_search_dir(tmp_path, synthetic_dir):
    write_fashion_mnist(tmp_path, n_train=100, n_test=50, gz=False)  # flat, unpacked
    ds = load(tmp_path, synthetic_dir)
    assert len(ds.train_y) == 100 and len(ds.test_y) == 50


def test_the_cli_stops_on_a_damaged_file_in_the_data_root(tmp_path, synthetic_dir):
    root = tmp_path / "data"
    bad = write_fashion_mnist(root, gz=False) / "train-images-idx3-ubyte"
    truncate(bad)
    before = snapshot(root)
    run_dir = tmp_path / "run"
    proc = run_script(
        "train.py", f"data.root={root}", f"data.search_dirs=[{synthetic_dir}]",
        "data.download=false", "data.val_size=128", "trainer.accelerator=cpu",
        "trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0",
        f"hydra.run.dir={run_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    errors = [line for line in proc.stdout.splitlines() if "DataError:" in line]
    assert len(errors) == 1 and f"DataError: {bad} is not a valid" in errors[0], proc.stdout
    assert "the next copy would come from" in errors[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert snapshot(root) == before
    assert not (run_dir / "checkpoints").exists()
    assert not list(run_dir.glob("events.out.tfevents.*"))


def test_real_fashion_mnist_from_debian(real_data_root):
    ds = load(real_data_root)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.train_y).tolist() == [6000] * 10
    mean = ds.train_x.float().div(255).mean().item()
    assert abs(mean - data.MEAN) < 1e-3


def test_split_is_fixed_disjoint_and_complete():
    train, val = split(600, 100, seed=0)
    assert len(train) == 500 and len(val) == 100
    assert torch.equal(torch.sort(torch.cat([train, val])).values, torch.arange(600))
    assert torch.equal(split(600, 100, seed=0)[1], val)
    assert not torch.equal(split(600, 100, seed=1)[1], val)
    with pytest.raises(ValueError, match="val_size"):
        split(600, 600, seed=0)


def test_batches_cover_the_data_and_reshuffle_per_epoch():
    x = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1)
    y = torch.arange(100)
    epoch = [0]
    batches = DeviceBatches(x, y, 32, shuffle=True, seed=3, epoch=lambda: epoch[0])
    assert len(batches) == 4
    first = torch.cat([b for _, b in batches])
    assert sorted(first.tolist()) == list(range(100))
    assert torch.equal(torch.cat([b for _, b in batches]), first)  # same epoch, same order
    epoch[0] = 1
    assert not torch.equal(torch.cat([b for _, b in batches]), first)
    xb, yb = next(iter(batches))
    assert xb.dtype == torch.float32 and xb.shape == (32, 1, 1, 1)
    assert torch.allclose(xb.flatten(), (yb.float() / 255 - data.MEAN) / data.STD)


def test_batches_shard_disjointly_across_ranks():
    y = torch.arange(101)
    x = torch.zeros(101, 1, 1, 1, dtype=torch.uint8)
    shards = [
        torch.cat([b for _, b in DeviceBatches(x, y, 8, shuffle=True, rank=r, world_size=2)])
        for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == 50
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    assert len(DeviceBatches(x, y, 8, rank=0, world_size=2)) == 7


def test_gz_helper_writes_real_gzip(tmp_path):
    write_fashion_mnist(tmp_path)
    assert (
        gzip.decompress((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes())[:4]
        == b"\x00\x00\x08\x01"
    )
    assert prepare_raw_files(tmp_path, download=False) == raw_dir(tmp_path)
