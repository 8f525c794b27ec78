"""Training throughput before and after a change: this checkout against an earlier revision, in
one run.

    python scripts/bench_baseline.py HEAD~1                  # lazy_mlp, 8 rounds
    python scripts/bench_baseline.py main --models lazy_mlp lazy_cnn --rounds 10

On a shared machine the same epoch runs 30% faster or slower from one minute to the next, so a
change is measured against its revision side by side, never against a number from another hour.
The revision is checked out into a temporary git worktree; each round runs ``scripts/bench.py``
for one round in two fresh processes, this checkout's bench over each tree's ``lazytrain`` and
``conf/``, in alternating order. Printed: each tree's median (min–max) samples/s of (b) the plain
loop, (d) bare Lightning and (c) lazytrain with the median of the rounds' ratios after/before,
and (d), (c) against their own process's (b) on each side with that ratio's change round by
round. Read the last: two processes differ more than two loops in one. Comparing HEAD with
itself (2026-12-07, 6 and 8 rounds), the raw ratios came out 0.90-1.09 and the changes of d/b
and c/b 0.99-1.10: a change under 10% in one such run is not yet one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOPS = {"b": "(b) plain loop", "d": "(d) bare Lightning", "c": "(c) lazytrain"}
SIDES = ("before", "after")


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[tuple[Path, str]]:
    """``revision`` checked out beside this checkout (and its short hash), removed afterwards."""
    found = git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if found.returncode != 0:
        raise SystemExit(
            f"bench_baseline: {revision!r} is not a commit of {ROOT}: name one, e.g. HEAD~1"
        )
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        commit = found.stdout.strip()
        git("worktree", "add", "--detach", str(tree), commit, check=True)
        try:
            yield tree, commit[:7]
        finally:
            git("worktree", "remove", "--force", str(tree), check=True)


def git(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=check
    )


def one_round(src: Path, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """One round of ``scripts/bench.py`` with ``src``'s lazytrain: samples/s by model and loop."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "round.json"
        bench = [
            sys.executable, str(ROOT / "scripts" / "bench.py"), "--rounds", "1",
            "--startup-runs", "0", "--models", *args.models, "--batch-size", str(args.batch_size),
            "--data-root", str(args.data_root), "--json", str(out),
            *(["--device", args.device] if args.device else []),
            *(["--limit-batches", str(args.limit_batches)] if args.limit_batches else []),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(src)}
        proc = subprocess.run(bench, capture_output=True, text=True, cwd=tmp, env=env)
        if proc.returncode != 0:
            raise SystemExit(
                f"bench_baseline: scripts/bench.py failed over {src}:\n{proc.stderr[-3000:]}"
            )
        return json.loads(out.read_text())


def table(rounds: dict[str, list[dict]], baseline: str, args: argparse.Namespace) -> str:
    lines = [
        f"Batch {args.batch_size}, one training epoch, {args.rounds} rounds alternating, median "
        f"(min–max) samples/s; before: {baseline}, after: this checkout. The change to read is "
        "the last column's: each loop against its own process's plain loop (b).",
        "",
        "| model | loop | before | after | after/before | x/b before | x/b after | x/b after/before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in args.models:
        for loop, label in LOOPS.items():
            before, after = ([r[model][loop][0] for r in rounds[side]] for side in SIDES)
            ratio = statistics.median(a / b for a, b in zip(after, before, strict=True))
            row = f"| {model} | {label} | {spread(before)} | {spread(after)} | {ratio:.3f} |"
            if loop == "b":
                lines.append(f"{row} | | |")
            else:
                to_b_before, to_b_after, change = to_plain_loop(rounds, model, loop)
                lines.append(f"{row} {to_b_before:.2f} | {to_b_after:.2f} | {change:.3f} |")
    return "\n".join(lines)


def to_plain_loop(
    rounds: dict[str, list[dict]], model: str, loop: str
) -> tuple[float, float, float]:
    """The medians of the rounds' ``loop``/(b) before and after, and of their ratio round by round:
    each process's own plain loop cancels its machine's state out of the comparison."""
    before, after = ([r[model][loop][0] / r[model]["b"][0] for r in rounds[side]] for side in SIDES)
    paired = [a / b for a, b in zip(after, before, strict=True)]
    return statistics.median(before), statistics.median(after), statistics.median(paired)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("revision", help="the baseline: a commit, branch or tag (HEAD~1, main)")
    parser.add_argument("--models", nargs="+", default=["lazy_mlp"])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--limit-batches", type=int, default=None, help="(smoke tests)")
    parser.add_argument("--device", default=None, help="scripts/bench.py's default: cuda if any")
    parser.add_argument("--data-root", type=Path, default=ROOT / "data")
    args = parser.parse_args()
    args.data_root = args.data_root.resolve()
    rounds: dict[str, list[dict]] = {"before": [], "after": []}
    with worktree(args.revision) as (tree, commit):
        for i in range(args.rounds):
            for side in SIDES if i % 2 == 0 else SIDES[::-1]:
                src = (tree if side == "before" else ROOT) / "src"
                rounds[side].append(one_round(src, args))
                speeds = ", ".join(
                    f"{m} " + " ".join(f"{loop}={r[loop][0]:,.0f}" for loop in LOOPS)
                    for m, r in rounds[side][-1].items()
                )
                print(f"round {i}, {side}: {speeds} samples/s", flush=True)
    print(table(rounds, f"{args.revision} ({commit})", args))


if __name__ == "__main__":
    main()
