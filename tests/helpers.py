"""What the tests share: small IDX datasets written on the spot, the real config shrunk to a
few-second run, the scripts run as a user runs them, and TensorBoard's events read back."""

from __future__ import annotations

import atexit
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import plugin_data_pb2

from lazytrain.config import CONF as CONF_DIR
from lazytrain.config import compose_config
from lazytrain.fashion_mnist import FILES

ROOT = Path(__file__).resolve().parent.parent
CONF = str(CONF_DIR)

# A real CLI run cut to a few batches, and the optimizer steps where its points land.
EPOCHS, BATCHES, LOG_EVERY = 2, 8, 4
FEW_BATCHES = [
    f"trainer.max_epochs={EPOCHS}",
    f"trainer.limit_train_batches={BATCHES}",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    f"trainer.log_every_n_steps={LOG_EVERY}",
]
STEP_LOGS = list(range(LOG_EVERY, EPOCHS * BATCHES + 1, LOG_EVERY))  # every log_every_n_steps
EPOCH_ENDS = [BATCHES * epoch for epoch in range(1, EPOCHS + 1)]  # epoch metrics, validation
WITH_INIT = [0, *EPOCH_ENDS]  # weight statistics: the init, then each epoch's end


def linear_params(*sizes: int) -> int:
    """Weights and biases of Linear layers ``sizes[0] -> sizes[1] -> ...``."""
    return sum(n_in * n_out + n_out for n_in, n_out in pairwise(sizes))


def conv_params(c_in: int, c_out: int, kernel: int) -> int:
    return c_out * c_in * kernel * kernel + c_out


# The default architectures on Fashion-MNIST (1x28x28, 10 classes), counted from conf/model: what
# the dry run must infer. LeNet: 5x5 convolutions, the first padded by 2, each followed by a 2x2
# pool (28 -> 28 -> 14 -> 10 -> 5: 16 maps of 5x5), then 400 -> 120 -> 84 -> 10.
MLP_PARAMS = linear_params(28 * 28, 256, 10)
CNN_PARAMS = conv_params(1, 6, 5) + conv_params(6, 16, 5) + linear_params(16 * 5 * 5, 120, 84, 10)


# --- data -------------------------------------------------------------------------------------


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


# --- configs and models -----------------------------------------------------------------------


def synthetic(tmp_path: Path, synthetic_dir: Path) -> list[str]:
    """Overrides that train the real config on the synthetic data, on the CPU, quietly."""
    return [
        f"data.root={tmp_path / 'data'}",
        f"data.search_dirs=[{synthetic_dir}]",
        "data.download=false",
        "data.val_size=128",
        "data.batch_size=64",
        "trainer.accelerator=cpu",
        "trainer.log_every_n_steps=2",
        "callbacks.progress_bar.refresh_rate=0",
    ]


def make_cfg(tmp_path: Path, data_dir: Path, *overrides: str) -> DictConfig:
    """The real config, composed as train.py composes it, shrunk to a few-second run."""
    shrunk = [
        f"output_dir={tmp_path / 'run'}",
        *synthetic(tmp_path, data_dir),
        "data.eval_batch_size=128",
        "trainer.max_epochs=2",
    ]
    return compose_config([*shrunk, *overrides])


def quiet_trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    """A CPU Trainer for 4 batches without logger, bar or checkpoints (override any of it)."""
    options = dict(
        accelerator="cpu", max_epochs=1, limit_train_batches=4, limit_val_batches=1,
        logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, enable_checkpointing=False,
    )  # fmt: skip
    return L.Trainer(**{**options, **kwargs})


# --- the scripts, as a user runs them ---------------------------------------------------------


class _WarmCLI:
    """Client of ``tests/warm_cli.py`` (started on first use, stopped at exit)."""

    def __init__(self) -> None:
        self.socket = Path(tempfile.mkdtemp(prefix="warm-cli-")) / "sock"
        self.server = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "warm_cli.py"), str(self.socket)],
            env=script_env(), stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        if self.server.stdout.readline().strip() != "ready":
            raise RuntimeError("tests/warm_cli.py did not start")
        atexit.register(self.server.terminate)

    def run(
        self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float, merge: bool
    ) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            request = {
                "script": argv[0], "args": argv[1:], "cwd": str(cwd), "env": env,
                "stdout": str(out), "stderr": str(err), "merge": merge, "timeout": timeout,
            }  # fmt: skip
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(str(self.socket))
                conn.sendall((json.dumps(request) + "\n").encode())
                code = int(conn.makefile().readline())
            stdout = out.read_text(errors="replace")
            stderr = None if merge else err.read_text(errors="replace")
        return subprocess.CompletedProcess(argv, code, stdout, stderr)


_warm: _WarmCLI | None = None


def script_env(**extra: str) -> dict[str, str]:
    """A script's environment: tests/ importable (fault injection through the real CLI), and the
    caller's PYTHONPATH kept (a worktree's src/ before the venv's editable install)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", "PYTHONPATH": path}
    return {**env, **extra}


def fresh_command(script: str, *args: str) -> list[str]:
    """The command line that runs ``scripts/<script>`` in a fresh interpreter (for ``Popen``:
    tests that signal or kill a run from outside)."""
    return [sys.executable, str(ROOT / "scripts" / script), *args]


def assert_refused(proc: subprocess.CompletedProcess, *messages: str) -> None:
    """The command failed as a user's mistake should: status 1, each message said, no traceback."""
    output = proc.stdout + (proc.stderr or "")
    assert proc.returncode == 1, output[-3000:]
    for message in messages:
        assert message in output, output[-3000:]
    assert "Traceback" not in output


def run_script(
    script: str,
    *args: str,
    cwd: Path,
    timeout: float = 600,
    merge: bool = False,
    fresh: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` as a user would, from ``cwd``, capturing its output (stderr into
    stdout with ``merge``, as a terminal shows them). A forked, pre-imported interpreter runs it
    (:mod:`tests.warm_cli`); a fresh one with ``fresh`` (where start-up time is what is tested)
    or, for every call, with ``LAZYTRAIN_TEST_COLD=1`` in the environment."""
    global _warm
    if fresh or os.environ.get("LAZYTRAIN_TEST_COLD"):
        return subprocess.run(
            fresh_command(script, *args), cwd=cwd, env=script_env(), text=True, timeout=timeout,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge else subprocess.PIPE,
        )  # fmt: skip
    if _warm is None:
        _warm = _WarmCLI()
    return _warm.run([str(ROOT / "scripts" / script), *args], cwd, script_env(), timeout, merge)


def train_run(cwd: Path, *overrides: str) -> Path:
    """``scripts/train.py`` with ``overrides`` into ``cwd/run``, as a user runs it: the run's
    directory, with what the terminal showed in ``cwd/console.txt``; a failed run fails the
    test, showing its output."""
    proc = run_script("train.py", *overrides, f"hydra.run.dir={cwd / 'run'}", cwd=cwd)
    (cwd / "console.txt").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return cwd / "run"


def evaluate_copy(trained: Path, cwd: Path, *overrides: str) -> tuple[Path, Path, str]:
    """``scripts/eval.py`` on the best checkpoint of a copy of the run ``trained`` (eval.py
    appends to its run): the copy, that checkpoint and what the command printed."""
    run = Path(shutil.copytree(trained, cwd / "run"))
    best = next((run / "checkpoints").glob("best-*.ckpt"))
    proc = run_script("eval.py", f"ckpt_path={best}", *overrides, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run, best, proc.stdout


# --- TensorBoard ------------------------------------------------------------------------------


@dataclass
class Events:
    scalars: dict[str, list[tuple[int, float]]]
    histogram_steps: dict[str, list[int]]
    texts: dict[str, str]
    hparams: dict[str, object]


def read_events(run_dir: Path) -> Events:
    """Everything a run wrote to TensorBoard, read back as TensorBoard itself reads it."""
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    ea.Reload()
    tags = ea.Tags()
    scalars = {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in tags["scalars"]}
    histograms = {t: [e.step for e in ea.Histograms(t)] for t in tags["histograms"]}
    texts = {
        t.removesuffix("/text_summary"): ea.Tensors(t)[0].tensor_proto.string_val[0].decode()
        for t in tags["tensors"]
        if t.endswith("/text_summary")
    }
    hparams: dict[str, object] = {}
    try:
        hparam_contents = ea.PluginTagToContent("hparams")
    except KeyError:  # an interrupted run has no hparams summary yet
        hparam_contents = {}
    for tag, content in hparam_contents.items():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if tag.endswith("session_start_info"):
            for key, value in data.session_start_info.hparams.items():
                hparams[key] = getattr(value, value.WhichOneof("kind"))
    return Events(scalars, histograms, texts, hparams)


def graphs(run_dir: Path) -> int:
    """Model graphs in a run's event files (TensorBoard warns about, and keeps one of, several)."""
    return sum(
        event.HasField("graph_def")
        for path in sorted(run_dir.glob("events.out.tfevents.*"))
        for event in EventFileLoader(str(path)).Load()
    )
