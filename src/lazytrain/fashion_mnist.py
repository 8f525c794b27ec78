"""Fashion-MNIST's files: found (``data.root``, Debian's package, torchvision's download), checked,
unpacked into torchvision's layout and loaded once as an :class:`~lazytrain.images.ImageSet`."""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from lazytrain.digests import files_digest
from lazytrain.images import DataError, ImageSet, Normalization

log = logging.getLogger(__name__)

SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
MEAN, STD = 0.2860, 0.3530  # of the 60k training images, in [0, 1]
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
# file name -> (IDX magic number: unsigned bytes and the number of dimensions, dims after the first)
FILES = {
    "train-images-idx3-ubyte": (0x803, (28, 28)),
    "train-labels-idx1-ubyte": (0x801, ()),
    "t10k-images-idx3-ubyte": (0x803, (28, 28)),
    "t10k-labels-idx1-ubyte": (0x801, ()),
}
HOW_TO_GET = (
    "Get the data in one of two ways: (1) on Debian/Ubuntu, as root: "
    "`apt-get install -y dataset-fashion-mnist` (files land in /usr/share/datasets/fashion-mnist); "
    "(2) on a machine with internet, run once with data.download=true (torchvision downloads "
    "into data.root). Or copy the four *-ubyte(.gz) files into {raw}."
)


def raw_dir(root: str | Path) -> Path:
    """torchvision's layout, so ``torchvision.datasets.FashionMNIST(root)`` reads the same files."""
    return Path(root) / "FashionMNIST" / "raw"


def _check_idx(path: Path, data: bytes | None = None) -> int:
    """Validate an IDX file's header against its size; return the number of examples.

    Catches truncated downloads, a wrong file under a right name and garbage alike, so a damaged
    file is never read into a tensor.
    """
    magic, item_shape = FILES[path.name.removesuffix(".gz")]
    header = 4 + 4 * (1 + len(item_shape))
    if data is None:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(header)
    else:
        size, head = len(data), data[:header]
    fields = [int.from_bytes(head[i : i + 4], "big") for i in range(0, len(head) - 3, 4)]
    expected_size = None
    if len(fields) == 1 + 1 + len(item_shape) and fields[0] == magic:
        count, dims = fields[1], tuple(fields[2:])
        if dims == item_shape:
            expected_size = header + count * int(torch.Size(item_shape).numel())
            if size == expected_size:
                return count
    raise DataError(
        f"{path} is not a valid Fashion-MNIST IDX file ({size} bytes"
        + (" unpacked" if data is not None else "")
        + (f", its header promises {expected_size}" if expected_size else ", bad header")
        + "): it is truncated or corrupted."
    )


def _copies(root: str | Path, search_dirs: Sequence[str], name: str) -> list[Path]:
    """The copies of ``name`` there are, in the order they are used: unpacked in ``root``
    (torchvision's layout, then flat), packed in ``root`` (same), packed in each search dir."""
    raw, flat = raw_dir(root), Path(root)
    places = [raw / name, flat / name, raw / f"{name}.gz", flat / f"{name}.gz"]
    places += [Path(d) / f"{name}.gz" for d in search_dirs]
    return [p for p in dict.fromkeys(places) if p.is_file()]


def _read_checked(path: Path) -> bytes | None:
    """Check a copy where it is: an unpacked file's header and size, a .gz file's decompressed
    contents (returned, to be unpacked)."""
    try:
        if path.suffix != ".gz":
            _check_idx(path)
            return None
        data = gzip.decompress(path.read_bytes())
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"{path} is not a readable gzip file ({err}).") from err
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err}).") from err
    _check_idx(path, data)
    return data


def _fix(copies: list[Path], root: str | Path, download: bool) -> str:
    """What to do about a damaged ``copies[0]``, and where the next copy would come from."""
    bad, raw = copies[0], raw_dir(root)
    if bad.parent in (raw, Path(root)):
        fix = "Delete it and run again"
    else:
        fix = f"Delete or replace it (or drop {bad.parent} from data.search_dirs) and run again"
    if len(copies) > 1:
        return f"{fix}: the next copy would come from {copies[1]}."
    if download:
        return f"{fix}: torchvision would then download a fresh copy into {raw}."
    how = HOW_TO_GET.format(raw=raw)
    return f"{fix}: there is no other copy and data.download is false. {how}"


def _unpack(src: Path, dst: Path, data: bytes) -> None:
    """Write ``src``'s checked, decompressed ``data`` to ``dst`` atomically: never a half-written
    file."""
    tmp = dst.with_suffix(f".tmp{os.getpid()}")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, dst)
    except OSError as err:
        raise DataError(
            f"cannot unpack {src.name} into {dst.parent} ({err}); set data.root to a writable directory"
        ) from err
    log.info("unpacked %s -> %s", src, dst)


def prepare_raw_files(
    root: str | Path, search_dirs: Sequence[str] = (SYSTEM_DIR,), download: bool = True
) -> Path:
    """Make sure the four unpacked IDX files are in ``raw_dir(root)`` and return that directory.

    Each file's first copy (see ``_copies``: ``root`` before ``search_dirs``, then torchvision's
    download) is the one used, checked where it is found: a damaged copy is an error naming it,
    never skipped for another one. Nothing is moved or unpacked until all four are checked, and
    lazytrain never replaces a file in ``raw_dir(root)`` (torchvision's download, which runs only
    when a file has no copy anywhere, rewrites all four there).
    """
    raw = raw_dir(root)
    chosen: dict[str, tuple[Path, bytes | None]] = {}
    missing = []
    for name in FILES:
        copies = _copies(root, search_dirs, name)
        if not copies:
            missing.append(name)
            continue
        try:
            chosen[name] = copies[0], _read_checked(copies[0])
        except DataError as err:
            raise DataError(f"{err} {_fix(copies, root, download)}") from err.__cause__
    for name, (src, data) in chosen.items():
        if data is not None:
            _unpack(src, raw / name, data)
        elif src != raw / name:  # flat: into torchvision's layout
            raw.mkdir(parents=True, exist_ok=True)
            os.replace(src, raw / name)
    if missing and download:
        _download(root)
        for name in missing:
            if (raw / name).is_file():
                try:
                    _check_idx(raw / name)
                except DataError as err:
                    raise DataError(f"{err} {_fix([raw / name], root, download)}") from None
        missing = [name for name in missing if not (raw / name).is_file()]
    if missing:
        looked = ", ".join(str(d) for d in [raw, Path(root), *(Path(d) for d in search_dirs)])
        raise DataError(
            f"Fashion-MNIST not found: missing {', '.join(missing)} (looked in {looked}"
            f"{'; download failed' if download else '; download disabled'}). "
            + HOW_TO_GET.format(raw=raw)
        )
    return raw


def _download(root: str | Path) -> None:
    from torchvision.datasets import FashionMNIST

    try:
        FashionMNIST(str(root), train=True, download=True)
    except Exception as err:  # no network, a proxy, a mirror down: all mean "not here"
        log.warning("torchvision could not download Fashion-MNIST: %s", err)


@dataclass(frozen=True)
class FashionMNIST(ImageSet):
    """The official 60k training and 10k test images (N×1×28×28) and labels."""

    classes: tuple[str, ...] = CLASSES

    @classmethod
    def load(
        cls, root: str | Path, search_dirs: Sequence[str] = (SYSTEM_DIR,), download: bool = True
    ):
        from torchvision.datasets.mnist import read_image_file, read_label_file

        raw = prepare_raw_files(root, search_dirs, download)
        data = cls(
            train_x=read_image_file(str(raw / "train-images-idx3-ubyte")).unsqueeze(1),
            train_y=read_label_file(str(raw / "train-labels-idx1-ubyte")),
            test_x=read_image_file(str(raw / "t10k-images-idx3-ubyte")).unsqueeze(1),
            test_y=read_label_file(str(raw / "t10k-labels-idx1-ubyte")),
            source=str(raw.resolve()),
            digest=files_digest(raw / name for name in FILES),
        )
        for part in ("train", "test"):
            x, y = getattr(data, f"{part}_x"), getattr(data, f"{part}_y")
            if len(x) != len(y) or (len(y) and int(y.max()) >= len(CLASSES)):
                raise DataError(
                    f"{raw}: {len(x)} {part} images, {len(y)} labels up to {int(y.max())}; "
                    f"expected equal counts and labels below {len(CLASSES)}. Delete and re-fetch."
                )
        return data


# Fashion-MNIST's published statistics (of all 60k training images), kept as they were: every run
# normalizes bit-identically to the runs before per-split statistics existed.
FASHION_MNIST_NORMALIZATION = Normalization((MEAN,), (STD,))
