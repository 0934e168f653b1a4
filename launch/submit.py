"""Run any experiment config through submitit: SLURM where there is one, this machine otherwise.

    python launch/submit.py video/configs/vitl_k400.yaml                    # the recipe
    python launch/submit.py image/configs/demo.yaml train.epochs=2          # overrides
    python launch/submit.py CONFIG --cluster debug                          # in this process
    python launch/submit.py CONFIG --dry-run                                # validate and list runs
    python launch/submit.py CONFIG --print                                  # resolved YAML + derived:

Every run of the config (stages x sweep values) is validated, and its data prepared, before the
first job is submitted. On SLURM the command prints job ids and log paths and returns (stages are
chained with afterok dependencies, sweeps are job arrays); on the local executor it runs the jobs
one after another, streams their logs, then writes the comparison table and plot.
"""
from __future__ import annotations

import argparse
import sys

from launch.engine.errors import ConfigError, DataError
from launch.runs.local_jobs import LauncherStopped
from launch.runs.submission import submit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Submit an experiment config (see module docstring).")
    parser.add_argument("config", help="a YAML config, e.g. image/configs/demo.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. tome.r=16")
    parser.add_argument("--cluster", choices=["auto", "slurm", "local", "debug"],
                        help="override launch.cluster")
    parser.add_argument("--dry-run", action="store_true", help="validate and list the runs only")
    parser.add_argument("--print", action="store_true", dest="print_config",
                        help="print every run's resolved config as YAML (with derived:), touch no data")
    parser.add_argument("--no-compare", action="store_true", help="skip the comparison report")
    args = parser.parse_intermixed_args(argv)
    try:
        if args.print_config:
            from launch.runs.resolved import resolved_yaml
            print(resolved_yaml(args.config, args.overrides), end="")
            return 0
        submit(args.config, args.overrides, args.cluster, args.dry_run, not args.no_compare)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    except DataError as err:  # a data list read while preparing the runs
        print(f"data error: {err}", file=sys.stderr)
        return 2
    except LauncherStopped as err:
        print(f"launcher: {err}", file=sys.stderr)
        return 128 + err.signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
