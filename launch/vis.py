"""Draw what a trained run merged: image groups (PNG), video groups across frames (GIF or PNG
grid), audio groups over the spectrogram (PNG).

    python launch/vis.py runs/demo_image/merge_ft --r 6 --out image_groups.png
    python launch/vis.py runs/demo_video/merge_ft --r 8 --out video_groups.gif
    python launch/vis.py runs/demo_audio/merge_ft --r 16 --out audio_groups.png

It rebuilds the run's model from its config.yaml, loads its checkpoint.pth, runs one validation
sample (``--index``) with source tracing, and lets the task paint the groups.
"""
from __future__ import annotations

import argparse
import sys

from launch.runs.draw import draw


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--r", type=int, default=None, help="default: the run's training r")
    parser.add_argument("--index", type=int, default=0, help="validation sample")
    parser.add_argument("--out", default="groups.png")
    args = parser.parse_args(argv)
    path = draw(args.run_dir, args.r, args.index, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
