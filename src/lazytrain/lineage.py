"""Where a run came from: the code (git commit, dirty flag, a digest of the changes), the library
versions, the data (where it was read from and a digest of it), the command line, the host and
the hardware, and the run's tags and notes.

Collected once when fit starts (rank 0; a few git calls and the data digest already made while
loading, nothing in the training loop) and written as ``lineage.json`` in the run directory and
as TensorBoard text. A resume keeps the first start's record and appends its own under
``resumed``, so a run continued on other code says so. Two runs of one configuration made by
different code or data are told apart by compare.py from this file.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig

from lazytrain.atomic_write import atomic_write
from lazytrain.lineage_file import FILE, code_label, read
from lazytrain.tracking import hardware, tensorboard_writer

TEXT_TAG = "lineage"
PACKAGES = ("torch", "torchvision", "lightning", "hydra-core", "lazytrain")


class LabelError(ValueError):
    """``tags`` or ``notes`` is not what a run can be labelled with."""


def labels(tags: Any, notes: Any) -> tuple[list[str], str]:
    """The run's tags (a list of words; one word alone is a list of one) and notes (text)."""
    if tags is None:
        tags = []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, Sequence) or not all(isinstance(t, str | int | float) for t in tags):
        raise LabelError(f"tags={tags!r} is not a list of words: give tags=[baseline,lr-study]")
    if notes is not None and not isinstance(notes, str | int | float):
        raise LabelError(f'notes={notes!r} is not text: give notes="what this run tries"')
    return [str(t) for t in tags], "" if notes is None else str(notes)


def _git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(directory), *args],
        capture_output=True, check=True, timeout=30,
    ).stdout.decode(errors="replace").strip()  # fmt: skip


def git_state(directory: Path) -> dict[str, Any] | None:
    """The checkout holding ``directory``: its top, commit, whether it differs from the commit
    (tracked changes or untracked files that are not ignored) and a digest of the difference
    (the diff against the commit and the untracked files' names). None outside a checkout or
    without git."""
    try:
        top = _git(directory, "rev-parse", "--show-toplevel")
        status = _git(directory, "status", "--porcelain")
        try:
            commit = _git(directory, "rev-parse", "HEAD")
        except subprocess.CalledProcessError:  # a repository without commits yet
            commit = None
        diff = _git(directory, "diff", "HEAD", "--binary") if commit else ""
    except (OSError, subprocess.SubprocessError):
        return None
    state: dict[str, Any] = {"repository": top, "commit": commit, "dirty": bool(status)}
    if status:
        untracked = [line for line in status.splitlines() if line.startswith("??")]
        digest = hashlib.sha256("\n".join([diff, *untracked]).encode()).hexdigest()[:16]
        state["diff_sha256"] = digest
    return state


def versions() -> dict[str, str]:
    """Python's and the installed packages' versions (a package not installed is left out);
    torch's with its build (``2.14.1+cu130``) and the CUDA it was built for."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    found["torch"] = torch.__version__
    if torch.version.cuda:
        found["cuda"] = torch.version.cuda
    return found


def collect(trainer: L.Trainer, tags: Sequence[str], notes: str) -> dict[str, Any]:
    """This process's record: code, versions, data, command, host, hardware, labels."""
    code_dir = Path(__file__).resolve().parent
    code = git_state(code_dir)
    project = git_state(Path.cwd())
    record: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        # the job's own overrides (in a multirun, this job's; see job.point_ddp_children_at_this_run)
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "cwd": os.getcwd(),
        "host": socket.gethostname(),
        "hardware": hardware(trainer),
        "code": code or {"package": str(code_dir)},
        "versions": versions(),
    }
    if HydraConfig.initialized():  # where it ran: hydra.run.dir, hydra.sweep.dir, the mode
        record["hydra_overrides"] = list(HydraConfig.get().overrides.hydra)
    if project is not None and (code is None or project["repository"] != code["repository"]):
        record["project"] = project  # the user's own checkout, run from
    images = getattr(trainer.datamodule, "load", None)
    if images is not None:
        data = images()
        record["data"] = {
            "source": data.source, "digest": data.digest,
            "images": {"train": len(data.train_y), "test": len(data.test_y)},
        }  # fmt: skip
    record.update(tags=list(tags), notes=notes)
    return record


def markdown(record: dict[str, Any]) -> str:
    """The record as a two-column table, for TensorBoard's TEXT tab."""
    rows = [
        ("started", record["started"]),
        ("commit", code_label(record) or "(not a git checkout)"),
        ("command", f"`{record['command']}`"),
        ("host", f"{record['host']} ({record['hardware']})"),
        ("versions", ", ".join(f"{k} {v}" for k, v in record["versions"].items())),
    ]
    if "data" in record:
        rows.append(("data", f"{record['data']['source']} (sha256 {record['data']['digest']})"))
    rows += [("tags", ", ".join(record["tags"]) or "–"), ("notes", record["notes"] or "–")]
    cells = [f"| {key} | {str(value).replace('|', '/')} |" for key, value in rows]
    return "\n".join([cells[0], "|---|---|", *cells[1:]])  # the start time as the header row


class Lineage(L.Callback):
    """Writes the run's lineage when fit starts: a fresh ``lineage.json`` for a new run, the
    resumed process's record appended for a resume; its table as TensorBoard text when training
    starts, at the step it starts from."""

    def __init__(self, run_dir: str | Path, tags: Sequence[str], notes: str, resumed: bool) -> None:
        self.run_dir, self.tags, self.notes, self.resumed = Path(run_dir), tags, notes, resumed

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        record = collect(trainer, self.tags, self.notes)
        earlier = read(self.run_dir) if self.resumed else None
        if earlier is not None:
            lineage = {**earlier, "resumed": [*earlier.get("resumed", []), record]}
        else:
            lineage = record
        text = json.dumps(lineage, indent=2) + "\n"
        atomic_write(self.run_dir / FILE, lambda f: f.write(text.encode()))
        self.record = record

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here a resumed run's step is restored (not yet at on_fit_start): each process's table
        # lands at the step it started from, and a resume's does not replace the first one's.
        writer = tensorboard_writer(trainer)
        if writer is not None and getattr(self, "record", None) is not None:
            writer.add_text(TEXT_TAG, markdown(self.record), trainer.global_step)
