"""Compare the runs under a directory: leaderboard over seeds, CSV and val/acc plot.

python scripts/compare.py outputs/multirun/2024-05-01_12-00-00       # one sweep
python scripts/compare.py outputs --out /tmp/report                   # everything, report elsewhere
"""

import argparse
import sys
from pathlib import Path

from lazytrain.compare import compare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a sweep, a run, or any folder of runs")
    parser.add_argument(
        "--out", type=Path, help="where leaderboard.csv and compare.png go (default: DIR)"
    )
    args = parser.parse_args(argv)
    try:
        print(compare(args.dir, args.out), end="")
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    out = args.out or args.dir
    print(f"\nwrote {out / 'leaderboard.csv'} and {out / 'compare.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
