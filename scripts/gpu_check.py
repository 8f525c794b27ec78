"""The GPU check: what decides lazytrain's speed on a GPU, measured by one command into one file.

    python scripts/gpu_check.py                   # about 8 minutes on one GPU -> gpu-check-<time>/
    python scripts/gpu_check.py --budget 900      # more resnet_recipe seeds

In order, each step recorded in ``<out>/results.md`` as it finishes (a step that fails is
recorded as failed and the next one runs, so a lent GPU's minutes are never lost to one error):
  1. the ``gpu``-marked tests;
  2. ``scripts/bench.py`` on the device at batch 256 and 1024: samples/s of (b) the plain loop,
     (c) lazytrain, (d) bare Lightning, and their ratios;
  3. the default run on ``trainer=gpu``;
  4. every speedrun on ``trainer=gpu``: test accuracy, whole run, training epochs;
  5. ``experiment=resnet_recipe`` on ``trainer=gpu``, seed 0, 1, 2 ... while the budget lasts.
The runs stay in ``<out>/runs`` (``python scripts/compare.py <out>/runs``). Without a GPU it runs
the same steps on the CPU (tests/test_gpu_check.py does, shrunk with --extra and --bench-args).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from lazytrain.event_files import scalar_values
from lazytrain.speedruns import SPEEDRUNS

ROOT = Path(__file__).resolve().parent.parent
RESNET_SEED_SECONDS = 150  # a resnet_recipe run is started only with this much budget left


class Check:
    """The results file, written section by section, and the budget's clock."""

    def __init__(self, out: Path, budget: float) -> None:
        self.out, self.results = out, out / "results.md"
        self.deadline = time.monotonic() + budget
        self.start = time.monotonic()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def write(self, text: str) -> None:
        with self.results.open("a") as f:
            f.write(text.rstrip("\n") + "\n\n")
        print(text, flush=True)

    def run(self, command: list[str], timeout: float) -> subprocess.CompletedProcess | None:
        """``command``, its output kept in ``<out>/logs``; None (recorded) when it failed."""
        logs = self.out / "logs"
        logs.mkdir(exist_ok=True)
        log = logs / f"{len(list(logs.iterdir())):02d}.log"
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=max(timeout, 1), cwd=ROOT
            )
        except subprocess.TimeoutExpired:
            self.write(f"`{shlex.join(command[1:])}` ran past {timeout:.0f} s and was stopped")
            return None
        log.write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or [""]
            self.write(
                f"`{shlex.join(command[1:])}` failed (exit {proc.returncode}): {last[0]} "
                f"(all of it: {log.relative_to(self.out)})"
            )
            return None
        return proc


def run_numbers(run: Path) -> tuple[float, float, float]:
    """A run's test accuracy (%), whole-run seconds (process start to test accuracy) and
    training-epoch seconds, as the run recorded them in TensorBoard."""
    test_acc, run_seconds, epochs = scalar_values(
        run, "test/acc", "time/run_seconds", "time/epoch_seconds"
    )
    return 100 * test_acc[-1], run_seconds[-1], sum(epochs)


def train_run(
    check: Check, name: str, overrides: list[str], args: argparse.Namespace
) -> tuple[float, float, float] | None:
    """``scripts/train.py`` on ``trainer=gpu`` (on ``--device``), as a user starts it."""
    run = check.out / "runs" / name
    command = [
        sys.executable, str(ROOT / "scripts" / "train.py"), *overrides, "trainer=gpu",
        f"trainer.accelerator={args.device}", f"hydra.run.dir={run}",
        "callbacks.progress_bar.refresh_rate=0", *args.extra,
    ]  # fmt: skip
    if check.run(command, timeout=check.left()) is None:
        return None
    return run_numbers(run)


def run_row(label: str, numbers: tuple[float, float, float], target: str = "") -> str:
    acc, whole, epochs = numbers
    return f"| {label} | {acc:.2f}{target} | {whole:.1f} s | {epochs:.1f} s |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, default=Path(f"gpu-check-{time.strftime('%Y%m%d-%H%M')}")
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--budget", type=float, default=480, help="seconds, resnet seeds included")
    parser.add_argument("--max-seeds", type=int, default=10, help="of resnet_recipe")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for every run")
    parser.add_argument("--bench-args", default="--rounds 3", help="for scripts/bench.py")
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"--out {args.out} exists: name a new directory for this check")
    args.out.mkdir(parents=True)
    check = Check(args.out, args.budget)
    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (no GPU here)"
    check.write(
        f"# GPU check: {device}, {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}\n\n"
        f"`python scripts/gpu_check.py {shlex.join(sys.argv[1:])}`"
    )

    tests = check.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"], 300
    )
    if tests is not None:
        check.write(f"## gpu-marked tests\n\n{tests.stdout.strip().splitlines()[-1]}")

    for batch in (256, 1024):
        bench = [
            sys.executable, str(ROOT / "scripts" / "bench.py"), "--device", args.device,
            "--batch-size", str(batch), *shlex.split(args.bench_args),
        ]  # fmt: skip
        proc = check.run(bench, timeout=check.left())
        if proc is not None:
            table = proc.stdout[proc.stdout.index(f"Batch {batch},") :]
            check.write(f"## bench, batch {batch}\n\n{table}")

    head = "| run | test acc % | whole run | training epochs |\n|---|---|---|---|"
    rows = []
    numbers = train_run(check, "default", [], args)
    if numbers is not None:
        rows.append(run_row("default config (`lazy_mlp`)", numbers))
    for speedrun, (_, target) in SPEEDRUNS.items():
        numbers = train_run(check, speedrun, [f"speedrun={speedrun}"], args)
        if numbers is not None:
            rows.append(run_row(f"`speedrun={speedrun}`", numbers, f" (≥ {100 * target:.1f})"))
    check.write("## runs on `trainer=gpu`\n\n" + "\n".join([head, *rows]))

    resnet = []  # (seed, numbers)
    while check.left() > RESNET_SEED_SECONDS and len(resnet) < args.max_seeds:
        seed = len(resnet)
        numbers = train_run(
            check, f"resnet-{seed}", ["experiment=resnet_recipe", f"seed={seed}"], args
        )
        if numbers is None:
            break
        resnet.append(numbers)
    if resnet:
        mean = sum(acc for acc, _, _ in resnet) / len(resnet)
        rows = [run_row(f"seed {seed}", numbers) for seed, numbers in enumerate(resnet)]
        check.write(
            f"## `experiment=resnet_recipe` on `trainer=gpu`\n\n{head}\n" + "\n".join(rows)
            + f"\n\nmean of {len(resnet)} seeds: {mean:.2f}% (goal: ≥ 95.0 over 3)"
        )  # fmt: skip
    else:
        check.write(f"## `experiment=resnet_recipe`\n\nnot run: under {RESNET_SEED_SECONDS} s left")
    check.write(f"done in {time.monotonic() - check.start:.0f} s")


if __name__ == "__main__":
    main()
