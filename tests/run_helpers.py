"""Helpers the run tests share (tests/launch/engine/test_loop.py, tests/launch/test_submit_runs.py, ...)."""
import os

import torch


def _weights(run_dir):
    return torch.load(os.path.join(run_dir, "checkpoint.pth"), weights_only=True)["model"]

