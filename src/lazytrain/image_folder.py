"""Bring your own images: a folder in torchvision's ImageFolder layout, ``root/train/<class>/*``
and ``root/test/<class>/*`` (PNG, JPEG, anything PIL reads; class names are the folder names,
sorted, and the same in both), decoded once into uint8 tensors (:class:`~lazytrain.images.ImageSet`)
and cached for the next run.

- **Color**: if every image is grayscale (PIL mode ``L`` or ``1``) the tensors have 1 channel;
  otherwise every image is converted to RGB (3 channels; an alpha channel is dropped).
- **Size**: all images must have one size, or ``resize=[H, W]`` resizes every one (PIL bilinear).
- **Cache**: ``<cache_dir or root/.lazytrain-cache>/<size>-<fingerprint>.pt``, the fingerprint a
  hash of every file's relative path, size and modification time (ns) and of ``resize``: adding,
  removing or changing a file makes a new one (the old one is deleted). Written atomically; read
  with ``weights_only=True`` and checked against the folder, as a file from disk is untrusted (a
  damaged one is decoded again, with a warning). An unwritable location costs a warning, never
  the run.

Every problem with the folder is a :class:`~lazytrain.images.DataError` naming the file or folder
and the fix, raised before anything is written. Hidden files and folders (``.name``) are skipped.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from lazytrain.atomic_write import atomic_write
from lazytrain.images import DataError, ImageSet

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
CACHE_DIR = ".lazytrain-cache"
CACHE_FORMAT = 1  # part of the fingerprint: a new format never reads an old file
GRAYSCALE = ("L", "1")
# PIL decodes with the GIL released: on 2 busy cores, 4 threads decode 2,000 32×32 PNGs in 0.84 s,
# one thread in 1.06 s, two in 1.23 s (medians of 5); more cores gain more.
THREADS = 4


@dataclass(frozen=True)
class Listing:
    """What a folder holds, from directory listings and ``stat`` alone (nothing decoded)."""

    root: Path
    classes: tuple[str, ...]
    files: dict[str, list[tuple[Path, int]]]  # split -> [(path, label)], sorted
    stats: tuple[tuple[str, int, int], ...]  # (relative path, size, mtime_ns) of every file


def class_differences(a: Sequence[str], b: Sequence[str], a_name: str, b_name: str) -> str:
    """Two class lists' differences, in words: what each lacks, or that the order differs."""
    only_a = [c for c in a if c not in b]
    only_b = [c for c in b if c not in a]
    parts = [f"only {a_name} has {', '.join(only_a)}"] if only_a else []
    parts += [f"only {b_name} has {', '.join(only_b)}"] if only_b else []
    return "; ".join(parts) or f"{a_name} has them in another order ({', '.join(a)})"


def _visible(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if not p.name.startswith("."))


def _files_under(directory: Path) -> list[Path]:
    """Every visible file below ``directory`` (subfolders included, as torchvision reads them)."""
    found = []
    for path in _visible(directory):
        found += _files_under(path) if path.is_dir() else [path]
    return found


def scan(root: str | Path | None) -> Listing:
    """Check the folder's layout and list its images: both splits there, the same class folders
    in each, none of them empty, no file outside a class folder."""
    layout = "DIR/train/<class>/* and DIR/test/<class>/* (torchvision's ImageFolder layout)"
    if root is None or not Path(root).is_dir():
        raise DataError(f"data.root={root} is not a directory: give data.root=DIR holding {layout}")
    root = Path(root)
    missing = [f"{split}/" for split in SPLITS if not (root / split).is_dir()]
    if missing:
        raise DataError(
            f"{root} has no {' and no '.join(missing)} folder: put the images in {layout}"
        )
    classes: dict[str, list[str]] = {}
    files: dict[str, list[tuple[Path, int]]] = {}
    for split in SPLITS:
        entries = _visible(root / split)
        stray = [p for p in entries if not p.is_dir()]
        if stray:
            raise DataError(
                f"{stray[0]} is not in a class folder: move it into {root / split}/<class>/"
            )
        classes[split] = [p.name for p in entries]
        if not entries:
            raise DataError(f"{root / split} holds no class folders: put the images in {layout}")
    if classes["train"] != classes["test"]:
        diff = class_differences(classes["train"], classes["test"], "train/", "test/")
        raise DataError(
            f"{root}: test/ and train/ have different classes ({diff}); give both the same class folders"
        )
    stats: list[tuple[str, int, int]] = []
    for split in SPLITS:
        files[split] = []
        for label, name in enumerate(classes[split]):
            paths = _files_under(root / split / name)
            if not paths:
                raise DataError(
                    f"{root / split / name} is empty: put {name}'s images there, or delete the folder"
                )
            files[split] += [(path, label) for path in paths]
            for path in paths:
                st = path.stat()
                stats.append((str(path.relative_to(root)), st.st_size, st.st_mtime_ns))
    return Listing(root, tuple(classes["train"]), files, tuple(stats))


def fingerprint(listing: Listing, resize: tuple[int, int] | None) -> str:
    """Changes when a file is added, removed or changed (size or modification time), or
    ``resize`` does."""
    digest = hashlib.sha256(f"{CACHE_FORMAT} {resize}\n".encode())
    for relative, size, mtime_ns in listing.stats:
        digest.update(f"{relative}\0{size}\0{mtime_ns}\n".encode())
    return digest.hexdigest()


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """An image's mode and (height, width), from its header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.mode, (image.height, image.width)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise DataError(
            f"{path} is not an image PIL can read ({err}): delete it or move it out"
        ) from None


def _decode(path: Path, mode: str, size: tuple[int, int], out: torch.Tensor) -> None:
    """Decode ``path`` in ``mode``, resized to ``size`` (H, W) where it differs, into ``out``."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if (image.height, image.width) != size:
                image = image.resize(size[::-1], Image.Resampling.BILINEAR)
            pixels = np.array(image)  # a writable copy, for torch
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path} cannot be decoded ({err}): delete or replace it") from None
    out.copy_(torch.from_numpy(pixels).view(size[0], size[1], -1).permute(2, 0, 1))


def decode(listing: Listing, resize: tuple[int, int] | None) -> ImageSet:
    """Decode every image of the folder into one uint8 tensor per split (threads, see
    :data:`THREADS`): one color mode for all, one size (checked from the headers first)."""
    paths = [path for split in SPLITS for path, _ in listing.files[split]]
    with ThreadPoolExecutor(THREADS) as pool:
        headers = list(pool.map(_header, paths))
        mode = "L" if all(m in GRAYSCALE for m, _ in headers) else "RGB"
        first_of_size: dict[tuple[int, int], Path] = {}
        for path, (_, hw) in zip(paths, headers, strict=True):
            first_of_size.setdefault(hw, path)
        if resize is None and len(first_of_size) > 1:
            shown = [f"{path} is {h}x{w}" for (h, w), path in list(first_of_size.items())[:5]]
            more = f" and {len(first_of_size) - 5} more sizes" if len(first_of_size) > 5 else ""
            raise DataError(
                f"{listing.root}: images differ in size (H x W): {'; '.join(shown)}{more}; give "
                "data.resize=[H,W] to resize them all (bilinear)"
            )
        size = resize or next(iter(first_of_size))
        x = torch.empty(len(paths), 1 if mode == "L" else 3, *size, dtype=torch.uint8)
        list(pool.map(_decode, paths, [mode] * len(paths), [size] * len(paths), x))
    n_train = len(listing.files["train"])
    labels = {s: torch.tensor([label for _, label in listing.files[s]]) for s in SPLITS}
    return ImageSet(x[:n_train], labels["train"], x[n_train:], labels["test"], listing.classes)


def _checked_cache(blob: object, listing: Listing, key: str) -> ImageSet:
    """The cached images, if ``blob`` is exactly what :func:`decode` made of this folder."""
    if not isinstance(blob, dict) or blob.get("fingerprint") != key:
        raise ValueError("made from other files")
    images = ImageSet(
        blob["train_x"], blob["train_y"], blob["test_x"], blob["test_y"], tuple(blob["classes"])
    )
    for split in SPLITS:
        x, y = getattr(images, f"{split}_x"), getattr(images, f"{split}_y")
        expected = torch.tensor([label for _, label in listing.files[split]])
        if (
            x.dtype != torch.uint8
            or x.dim() != 4
            or len(x) != len(expected)
            or not torch.equal(y, expected)
        ):
            raise ValueError(f"its {split} images do not match the folder")
    if images.classes != listing.classes or images.train_x.shape[1:] != images.test_x.shape[1:]:
        raise ValueError("its classes or shapes do not match the folder")
    return images


def _read_cache(path: Path, listing: Listing, key: str) -> ImageSet | None:
    if not path.is_file():
        return None
    try:
        return _checked_cache(torch.load(path, map_location="cpu", weights_only=True), listing, key)
    except Exception as err:  # any damage: the cache is disposable, the folder is the truth
        log.warning("ignoring the image cache %s (%s): decoding the images again", path, err)
        return None


def _write_cache(path: Path, images: ImageSet, key: str, stale: str) -> None:
    """Write the cache atomically and delete this folder's older caches for the same size
    setting (``stale``: a pattern of their names); an unwritable place is only a warning."""
    blob = {
        "fingerprint": key,
        "classes": list(images.classes),
        **{f"{s}_{t}": getattr(images, f"{s}_{t}") for s in SPLITS for t in "xy"},
    }
    try:
        atomic_write(path, lambda f: torch.save(blob, f))
        for old in path.parent.iterdir():
            if old != path and re.fullmatch(stale, old.name):
                old.unlink()
    except OSError as err:
        log.warning(
            "cannot write the image cache %s (%s): the next run decodes the images again; "
            "set data.cache_dir to a writable directory to keep them",
            path,
            err,
        )


def load(
    root: str | Path | None,
    resize: Sequence[int] | None = None,
    cache_dir: str | Path | None = None,
) -> ImageSet:
    """The folder's images and labels: from the cache when no file changed since it was written,
    else decoded (and cached)."""
    if resize is not None:
        resize = tuple(resize)
        if len(resize) != 2 or not all(isinstance(v, int) and v > 0 for v in resize):
            raise DataError(
                f"data.resize={list(resize)} is not a size: give data.resize=[H,W], or null"
            )
    listing = scan(root)
    key = fingerprint(listing, resize)
    tag = f"{resize[0]}x{resize[1]}" if resize else "native"
    path = Path(cache_dir or listing.root / CACHE_DIR) / f"{tag}-{key[:20]}.pt"
    start = time.perf_counter()
    images = _read_cache(path, listing, key)
    if images is not None:
        images = replace(images, source=str(listing.root), digest=key[:16])
        log.info(
            "%d images from the cache %s in %.2f s",
            len(listing.stats),
            path,
            time.perf_counter() - start,
        )
        return images
    images = decode(listing, resize)
    log.info(
        "decoded %d images of %s from %s in %.2f s",
        len(listing.stats),
        list(images.train_x.shape[1:]),
        listing.root,
        time.perf_counter() - start,
    )
    _write_cache(path, images, key, stale=rf"{tag}-[0-9a-f]{{20}}\.pt")
    return replace(images, source=str(listing.root), digest=key[:16])
