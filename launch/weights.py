"""Prefetch checkpoint sources (or every one a config reads) into ``$TOME_CACHE``; print each
local path on its own line. Run it on a login node before submitting to offline compute nodes.

    python launch/weights.py video/configs/vitl_k400.yaml
    python -m launch.weights hf-hub:MCG-NJU/videomae-base-finetuned-kinetics timm:vit_base_patch16_224.augreg_in21k_ft_in1k

The sources a path may spell are listed in ``launch/engine/weights.py``.
"""
from __future__ import annotations

import argparse
import sys

from launch.engine.errors import ConfigError
from launch.engine.weights import SPELLINGS, fetch
from launch.runs.plan import checkpoint_sources


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", help=f"{SPELLINGS}, or a config .yaml")
    args = parser.parse_args(argv)
    try:
        for item in args.sources:
            todo = checkpoint_sources(item) if item.endswith((".yaml", ".yml")) else [item]
            for source in todo:
                print(fetch(source), flush=True)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
