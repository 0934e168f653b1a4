"""Compare runs: a table (markdown + CSV) and an accuracy-versus-speed-up plot (PNG).

    python launch/compare.py runs/demo_image                  # every run under a directory
    python launch/compare.py runs/a runs/b --out report/ab    # several runs side by side

What the columns mean: ``launch/runs/report.py``.
"""
from __future__ import annotations

import argparse
import os
import sys

from launch.runs.report import write_report

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories or their parents")
    parser.add_argument("--out", help="output prefix (default: <first path>/compare)")
    args = parser.parse_args(argv)
    try:
        report = write_report(args.runs, args.out or os.path.join(args.runs[0], "compare"))
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report["markdown"])
    print(f"written: {', '.join(report['paths'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
