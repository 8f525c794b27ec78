"""Training throughput of lazytrain against plain PyTorch loops, in one process, interleaved.

    python scripts/bench.py                          # lazy_mlp and lazy_cnn, 5 rounds, batch 256
    python scripts/bench.py --write-readme           # also update the README's performance table
    python scripts/bench.py --rounds 1 --limit-batches 5 --models lazy_mlp   # a smoke test
    python scripts/bench.py --time-to-accuracy --write-readme   # speedruns against their recipes
    python scripts/bench.py --time-to-accuracy --speedruns cnn_91   # one (convnet_93: 30+ min a seed)
    python scripts/bench_baseline.py HEAD~1    # before and after a change, side by side

For each model and round, one training epoch of:
  (a) a plain loop over torchvision's FashionMNIST + ToTensor + DataLoader (the common baseline),
  (b) a plain loop over the in-memory tensors (same model, init, optimizer and batch order as c),
  (c) lazytrain's pipeline with its default config: Lightning, our data module, logging, progress
      bar (validation and test off, so all of them time the same work: one training epoch),
  (d) Lightning's floor: the same module and data in a bare Trainer (no logger, callbacks,
      checkpoints or progress bar): what (c) can at best reach without changing Lightning.
Prints medians (min–max) of samples/s, the ratios d/b, c/b and c/a, the dry-run time and the time
from process start to the first training step of `python scripts/train.py`, split into torch's and
Lightning's imports and lazytrain's share.

With --time-to-accuracy (minutes, not seconds): each speedrun (conf/speedrun) right after its
reference recipe (conf/experiment) for each seed (speedruns that race one recipe share its run),
as whole runs of `python scripts/train.py speedrun=<name>` and `experiment=<recipe>`; their test
accuracies and wall times (process start to test accuracy) as each run recorded them in
TensorBoard, the median times and the median ratio of the pairs' times. --write-readme replaces
the rows of the speedruns it ran and keeps the others. --keep DIR keeps the runs themselves, for
`python scripts/compare.py DIR`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from lazytrain.config import compose_config
from lazytrain.console import quiet
from lazytrain.event_files import scalar_values
from lazytrain.fashion_mnist import prepare_raw_files, raw_dir
from lazytrain.job import no_gpu_probe_per_step
from lazytrain.markdown_blocks import read_block, write_block
from lazytrain.speedruns import SPEEDRUNS
from lazytrain.train import build_model, model_and_data, train

ROOT = Path(__file__).resolve().parent.parent


class EpochTimer(L.Callback):
    """Wall time and samples of the last training epoch of the Lightning run (c)."""

    def __init__(self) -> None:
        self.seconds, self.samples = 0.0, 0

    def on_train_epoch_start(self, trainer, pl_module):
        self._start, self._samples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._samples += len(batch[1])

    def on_train_epoch_end(self, trainer, pl_module):
        _sync(pl_module.device)
        self.seconds, self.samples = time.perf_counter() - self._start, self._samples


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def config(model: str, args: argparse.Namespace, out: Path, *extra: str):
    overrides = [
        f"model={model}",
        f"data.root={args.data_root}",
        f"data.batch_size={args.batch_size}",
        f"output_dir={out}",
        f"trainer.accelerator={args.device}",
        "trainer.max_epochs=1",
        "trainer.limit_val_batches=0",
        "trainer.limit_test_batches=0",
        f"trainer.limit_train_batches={args.limit_batches or 1.0}",
        *extra,
    ]
    return compose_config(overrides)


def plain_epoch(model, batches, device, limit: int | None) -> tuple[float, int]:
    """One epoch of the textbook loop; returns (seconds, samples)."""
    net = model.net.to(device).train()
    optimizer, schedule = model.build_optimizer(lambda: limit or len(batches))
    samples = 0
    _sync(device)
    start = time.perf_counter()
    for i, (x, y) in enumerate(batches):
        if limit and i == limit:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y, label_smoothing=model.hparams.label_smoothing).backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        samples += len(y)
    _sync(device)
    return time.perf_counter() - start, samples


def bench_torchvision(model_name: str, args, out: Path) -> float:
    from torchvision import datasets, transforms

    model, _ = model_and_data(config(model_name, args, out))
    dataset = datasets.FashionMNIST(
        str(args.data_root), train=True, transform=transforms.ToTensor()
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers
    )
    seconds, samples = plain_epoch(model, loader, torch.device(args.device), args.limit_batches)
    return samples / seconds


def bench_in_memory(model_name: str, args, out: Path) -> tuple[float, float]:
    cfg = config(model_name, args, out)
    datamodule = instantiate(cfg.data)
    sample = datamodule.dry_run_sample(cfg.sample_size)
    start = time.perf_counter()
    model = build_model(cfg, sample, datamodule.num_classes)
    dry_run = time.perf_counter() - start
    device = torch.device(args.device)
    datamodule.setup("fit", device)  # on the device once, as under a trainer
    batches = datamodule.train_dataloader()
    seconds, samples = plain_epoch(model, batches, device, args.limit_batches)
    return samples / seconds, dry_run


def bench_lazytrain(model_name: str, args, out: Path) -> float:
    timer = EpochTimer()
    train(config(model_name, args, out), callbacks=[timer])
    return timer.samples / timer.seconds


def bench_bare_lightning(model_name: str, args, out: Path) -> float:
    """(d) Lightning's floor: the same module and data module in a Trainer with nothing else —
    no logger, callbacks, checkpoints or progress bar."""
    model, datamodule = model_and_data(config(model_name, args, out))
    timer = EpochTimer()
    trainer = L.Trainer(
        accelerator=args.device, devices=1, max_epochs=1, limit_val_batches=0,
        limit_train_batches=args.limit_batches or 1.0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
    )  # fmt: skip
    trainer.fit(model, datamodule=datamodule)
    return timer.samples / timer.seconds


def startup_seconds(args, out: Path) -> tuple[float, float]:
    """Process start to first training step of the real CLI, and the part of it spent importing
    torch and Lightning, as the run measured them in its process (``time/startup_seconds``,
    ``time/import_seconds`` in its events): the rest is lazytrain's share."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), f"data.root={args.data_root}",
         f"hydra.run.dir={out}", "trainer.max_steps=1", "trainer.limit_val_batches=0",
         "trainer.limit_test_batches=0", f"trainer.accelerator={args.device}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    first, imports = scalar_values(out, "time/startup_seconds", "time/import_seconds")
    return first[0], imports[0]


def stats(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def table(results: dict, args, startup: list[tuple[float, float]]) -> str:
    device = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    lines = [
        f"Batch {args.batch_size}, one training epoch, {args.rounds} rounds interleaved, median (min–max) "
        f"samples/s; torch {torch.__version__}, lightning {L.__version__}, {device}.",
        "",
        "| model | (a) torchvision DataLoader | (b) plain loop, in-memory | (d) bare Lightning "
        "| (c) lazytrain | d/b | c/b | c/a | dry run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def ratio(x: str, y: str) -> float:  # the median of the rounds' ratios
        return statistics.median(i / j for i, j in zip(r[x], r[y], strict=True))

    for name, r in results.items():
        lines.append(
            f"| {name} | {stats(r['a'])} | {stats(r['b'])} | {stats(r['d'])} | {stats(r['c'])} "
            f"| {ratio('d', 'b'):.2f} | {ratio('c', 'b'):.2f} | {ratio('c', 'a'):.1f} "
            f"| {statistics.median(r['dry']) * 1000:.0f} ms |"
        )
    if startup:
        first, imports = (statistics.median(values) for values in zip(*startup, strict=True))
        ours = statistics.median(f - i for f, i in startup)
        lines += ["", f"Process start to first training step (`python scripts/train.py`): "
                  f"median {first:.2f} s over {len(startup)} starts: importing torch and Lightning "
                  f"{imports:.2f} s, lazytrain's share (Hydra, config, data, dry run, trainer) "
                  f"{ours:.2f} s."]  # fmt: skip
    return "\n".join(lines)


def whole_run(recipe: str, seed: int, args: argparse.Namespace, out: Path) -> tuple[float, float]:
    """One training run of ``recipe`` (``speedrun=mlp_89``, ``experiment=mlp_recipe``) as a user
    starts it; its wall time from process start to the
    test accuracy and that accuracy, as the run recorded them (``time/run_seconds``, ``test/acc``
    in its TensorBoard events: the numbers its HPARAMS row and compare.py show)."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), recipe, f"seed={seed}",
         f"data.root={args.data_root}", f"hydra.run.dir={out}", f"trainer.accelerator={args.device}",
         "callbacks.progress_bar.refresh_rate=0", *args.extra],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    run_seconds, test_acc = scalar_values(out, "time/run_seconds", "test/acc")
    return run_seconds[-1], test_acc[-1]


SPEEDRUN_COLUMNS = (
    "speedrun", "target", "seeds", "test acc", "whole run", "reference", "its test acc",
    "its whole run", "time ratio", "measured",
)  # fmt: skip
SPEEDRUN_HEAD = "| " + " | ".join(SPEEDRUN_COLUMNS) + " |\n" + "|---" * len(SPEEDRUN_COLUMNS) + "|"


def time_to_accuracy(args: argparse.Namespace, tmp: Path) -> dict[str, str]:
    """The speedrun table's rows. For each seed the reference recipe runs first and its speedruns
    right after it, so a pair meets the same machine; speedruns that race the same recipe
    (``convnet_93``, ``convnet_94``) share its run, which takes the longest."""
    runs: dict[str, list[tuple[float, float]]] = {}  # recipe -> (seconds, test acc) per seed
    for reference in dict.fromkeys(SPEEDRUNS[name].reference for name in args.speedruns):
        racing = [f"speedrun={s}" for s in args.speedruns if SPEEDRUNS[s].reference == reference]
        for seed in range(args.seeds):
            for recipe in [f"experiment={reference}", *racing]:
                name = recipe.partition("=")[2]
                seconds, acc = whole_run(recipe, seed, args, tmp / f"{name}-{seed}")
                runs.setdefault(recipe, []).append((seconds, acc))
                print(f"seed {seed}: {recipe} {acc:.2%} in {seconds:.1f} s", flush=True)

    rows = {}
    for speedrun in args.speedruns:
        reference, target = SPEEDRUNS[speedrun]
        fast, slow = f"speedrun={speedrun}", f"experiment={reference}"
        pairs = zip(runs[fast], runs[slow], strict=True)
        ratio = statistics.median(f / s for (f, _), (s, _) in pairs)
        rows[fast] = (
            f"| `{fast}` | ≥ {100 * target:.1f} | {args.seeds} | {_accuracy(runs[fast])} "
            f"| {_seconds(runs[fast])} | `{slow}` | {_accuracy(runs[slow])} "
            f"| {_seconds(runs[slow])} | {ratio:.2f}× | {time.strftime('%Y-%m-%d')} |"
        )
    return rows


def speedrun_table(rows: dict[str, str], args: argparse.Namespace) -> str:
    known = [f"speedrun={name}" for name in SPEEDRUNS]
    return "\n".join([
        f"Whole runs (process start to test accuracy, from each run's `time/run_seconds`), each "
        f"speedrun right after its reference for every seed; median seconds, test accuracy mean "
        f"± std; torch {torch.__version__}, {args.device.upper()}, {torch.get_num_threads()} threads.",
        "",
        SPEEDRUN_HEAD,
        *(rows[name] for name in [*known, *sorted(set(rows) - set(known))] if name in rows),
    ])  # fmt: skip


def _accuracy(runs: list[tuple[float, float]]) -> str:
    values = [100 * acc for _, acc in runs]
    std = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.2f}{std}"


def _seconds(runs: list[tuple[float, float]]) -> str:
    return f"{statistics.median(seconds for seconds, _ in runs):.1f} s"


def measured_rows(readme: Path) -> dict[str, str]:
    """The speedrun rows the README holds: a run of some speedruns keeps the others' rows."""
    _, inside, _ = read_block(readme, "speedrun")
    rows = [line for line in inside.splitlines() if line.startswith("| `speedrun=")]
    return {row.split("`")[1]: row for row in rows if row.count("|") == len(SPEEDRUN_COLUMNS) + 1}


@contextlib.contextmanager
def runs_dir(keep: Path | None) -> Iterator[Path]:
    """Where the speedrun table's runs go: a temporary directory, or ``keep``, which must be new or
    empty (a second bench run never mixes its runs into, or overwrites, the first's)."""
    if keep is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
        return
    if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        raise SystemExit(
            f"--keep {keep}: not an empty directory; name a new one for this run's runs"
        )
    keep.mkdir(parents=True, exist_ok=True)
    yield keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["lazy_mlp", "lazy_cnn"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--limit-batches", type=int, default=None, help="batches per epoch (smoke tests)"
    )
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for (a)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-root", type=Path, default=ROOT / "data")
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument(
        "--readme", type=Path, default=ROOT / "README.md", help="for --write-readme"
    )
    parser.add_argument("--time-to-accuracy", action="store_true", help="the speedrun table")
    parser.add_argument("--speedruns", nargs="+", default=list(SPEEDRUNS), choices=list(SPEEDRUNS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--keep", type=Path, default=None,
        help="with --time-to-accuracy: keep the runs in this new directory (for scripts/compare.py)",
    )  # fmt: skip
    parser.add_argument(
        "--extra", nargs="*", default=[], help="overrides for every run (smoke tests)"
    )
    parser.add_argument(
        "--json", type=Path, default=None,
        help="also write each round's samples/s there (scripts/bench_baseline.py reads it)",
    )  # fmt: skip
    args = parser.parse_args()
    quiet()
    no_gpu_probe_per_step()  # as scripts/train.py does: every loop below gains alike
    if not (raw_dir(args.data_root) / "train-images-idx3-ubyte").is_file():
        prepare_raw_files(args.data_root)  # torchvision's reader in (a) needs the unpacked files

    if args.time_to_accuracy:
        with runs_dir(args.keep) as tmp:
            rows = time_to_accuracy(args, tmp)
        print(speedrun_table(rows, args))
        if args.write_readme:  # the rows of speedruns not run this time stay as they were
            rows = measured_rows(args.readme) | rows
            write_block(args.readme, "speedrun", speedrun_table(rows, args))
        return

    results = {m: {"a": [], "b": [], "c": [], "d": [], "dry": []} for m in args.models}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name in args.models:
                r = results[name]
                out = Path(tmp) / f"{name}-{round_}"
                r["a"].append(bench_torchvision(name, args, out))
                b, dry = bench_in_memory(name, args, out)
                r["b"].append(b)
                r["dry"].append(dry)
                r["d"].append(bench_bare_lightning(name, args, out))
                r["c"].append(bench_lazytrain(name, args, out))
                print(
                    f"round {round_}: {name} a={r['a'][-1]:,.0f} b={b:,.0f} d={r['d'][-1]:,.0f} "
                    f"c={r['c'][-1]:,.0f} samples/s",
                    flush=True,
                )
        startup = [
            startup_seconds(args, Path(tmp) / f"startup-{i}") for i in range(args.startup_runs)
        ]
    text = table(results, args, startup)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results))
    if args.write_readme:
        write_block(args.readme, "bench", text)


if __name__ == "__main__":
    main()
