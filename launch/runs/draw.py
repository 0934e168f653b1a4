"""Draw what a trained run merged: rebuild the run's model from its ``config.yaml``, load its
``checkpoint.pth``, run one validation sample with source tracing, and let the task paint the
groups (``launch/vis.py`` is the command)."""
from __future__ import annotations

import os
import sys

import torch
import yaml

import tome
from launch.engine.config import from_dict, model_r
from launch.engine.tasks import get_task


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
    model.r = model_r(cfg.tome, cfg.tome.r if r is None else r)
    item = task.build_dataset(cfg, train=False)[index]
    with torch.no_grad(), tome.trace(source=True) as t:
        model.eval()(item["input"][None])
    return task.paint(item["input"], t.source[0], model, out)
