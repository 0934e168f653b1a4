"""Run one config in this process: plain python, or under torchrun for several GPUs.

    python launch/run.py image/configs/demo.yaml --run-dir runs/try train.epochs=1
    torchrun --nproc_per_node 8 launch/run.py image/configs/deit_s16_tome.yaml --run-dir runs/deit_s

Configs with stages or sweeps need launch/submit.py, which expands them into runs.
"""
from __future__ import annotations

import argparse
import sys

from launch.engine.errors import ConfigError, DataError
from launch.runs.submission import build_plan


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--run-dir", help="default: <out_dir>/<name>")
    args = parser.parse_intermixed_args(argv)
    try:
        plan, _ = build_plan(args.config, args.overrides, cluster="debug")
        if len(plan) != 1 or len(plan[0]) != 1:
            raise ConfigError(f"{args.config} expands to {sum(map(len, plan))} runs; "
                              f"use launch/submit.py for stages and sweeps")
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    from launch.engine.loop import run
    from launch.engine.rundir_lock import RunDirLocked
    only = plan[0][0]
    try:
        run(only.cfg, args.run_dir or only.run_dir)
    except RunDirLocked as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DataError as err:
        print(f"data error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
