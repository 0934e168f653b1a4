"""``docs/recipes.md``: every paper-row config's recipe values beside the official ones.

    python launch/recipes.py            # (re)write docs/recipes.md
    python -m launch.recipes --check    # exit 1 if a value disagrees or the file is stale
"""
from __future__ import annotations

import argparse
import os
import sys

from launch.engine.errors import ConfigError
from launch.engine.official import ROWS
from launch.runs.recipes_table import DOC, fmt, render

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail on a mismatch or a stale file")
    parser.add_argument("--out", default=DOC)
    args = parser.parse_args(argv)
    try:
        text, bad = render()
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    for row, ours in bad:
        print(f"MISMATCH {row.config} {row.key}: ours {fmt(ours)}, official {fmt(row.value)} "
              f"({row.source})", file=sys.stderr)
    if args.check:
        stale = not os.path.isfile(args.out) or open(args.out).read() != text
        if stale:
            print(f"{args.out} is stale: run python -m launch.recipes", file=sys.stderr)
        return 1 if bad or stale else 0
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(f"written: {args.out} ({len(ROWS)} rows, {len(bad)} mismatches)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
