"""Compare the runs under a directory: leaderboard over seeds, CSV and val/acc plot.

python scripts/compare.py outputs/multirun/2024-05-01_12-00-00       # one sweep
python scripts/compare.py outputs --out /tmp/report                   # everything, report elsewhere
python scripts/compare.py outputs --where tags=lr-study --where model=lazy_cnn   # some runs
python scripts/compare.py --diff outputs/run_a outputs/run_b          # how two runs differ
"""

import argparse
import sys
from pathlib import Path

from lazytrain.compare import compare
from lazytrain.run_diff import diff
from lazytrain.selection import Where, WhereError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, nargs="?", help="a sweep, a run, or any folder of runs")
    parser.add_argument(
        "--out", type=Path, help="where leaderboard.csv and compare.png go (default: DIR)"
    )
    parser.add_argument(
        "--where", action="append", default=[], metavar="KEY=VALUE",
        help="only runs whose config key, group choice or tags match (repeatable: all must)",
    )  # fmt: skip
    parser.add_argument(
        "--diff", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"),
        help="print what differs between two runs: settings, lineage, results",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if (args.dir is None) == (args.diff is None):
        parser.error("give a directory of runs, or --diff RUN_A RUN_B")
    try:
        if args.diff:
            print(diff(*args.diff), end="")
            return 0
        print(compare(args.dir, args.out, [Where.parse(w) for w in args.where]), end="")
    except (FileNotFoundError, WhereError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    out = args.out or args.dir
    print(f"\nwrote {out / 'leaderboard.csv'} and {out / 'compare.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
