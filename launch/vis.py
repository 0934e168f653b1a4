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
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

import tome  # noqa: E402

from launch.config import from_dict, schedule  # noqa: E402
from launch.tasks import get_task  # noqa: E402


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Min-max scale a normalised input for display."""
    x = x.float()
    x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-8)
    return (x * 255).round().byte().numpy()


def draw(run_dir: str, r, index: int, out: str) -> str:
    with open(os.path.join(run_dir, "config.yaml")) as f:
        raw = yaml.safe_load(f)
    raw["model"]["checkpoint"] = None  # the run's own weights are loaded below
    cfg = from_dict(raw)
    task = get_task(cfg.task)
    model = task.build_model(cfg)
    task.patch(model, cfg)
    weights = os.path.join(run_dir, "checkpoint.pth")
    if os.path.isfile(weights):
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["model"])
    else:
        print(f"warning: {weights} not found, drawing with untrained weights", file=sys.stderr)
    model.r = schedule(cfg.tome, cfg.tome.r if r is None else r)
    item = task.build_dataset(cfg, train=False)[index]
    with torch.no_grad(), tome.trace(source=True) as t:
        model.eval()(item["input"][None])
    return task.paint(item["input"], t.source[0], model, out)


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
