"""The paper's tables, row for row, ours beside theirs (markdown + CSV).

    python launch/tables.py runs/                 # every table (1-7 and Fig. 5) from the runs under runs/
    python launch/tables.py runs/ --table 5       # one table (1-7, f5, or a panel id such as t1c)
    python launch/tables.py runs/ --out report/paper

Runs are matched to the paper's rows by their config's ``paper:`` id and settings; a row without a
run says "not run". How the matching works: ``launch/runs/tables.py``; the commands that make each
row's run: docs/reproducing.md.
"""
from __future__ import annotations

import argparse
import os
import sys

from launch.runs.tables import table_key, write_tables


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories or their parents")
    parser.add_argument("--table", action="append", help="1-7, f5 or a panel id (repeatable; default: all)")
    parser.add_argument("--out", help="output prefix (default: <first path>/tables)")
    args = parser.parse_args(argv)
    try:
        tables = [table_key(t) for t in args.table] if args.table else None
        report = write_tables(args.runs, args.out or os.path.join(args.runs[0], "tables"), tables)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report["markdown"])
    print(f"written: {', '.join(report['paths'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
